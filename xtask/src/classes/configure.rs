//! A hand-written `configure` that knows no `--host` (zlib): the cross
//! compiler comes from `CC` in the environment.

use anyhow::Result;

use super::{Ctx, Step};

pub fn configure(ctx: &Ctx) -> Result<Vec<Step>> {
    let script = ctx.dirs.src.join("configure");
    let mut argv = vec![script.display().to_string(), format!("--prefix={}", ctx.prefix())];
    argv.extend(ctx.configure_args()?);
    Ok(vec![ctx.run(argv)])
}
