//! A hand-written `configure` that knows no `--host` (zlib): the cross
//! compiler comes from `CC` in the environment.

use anyhow::Result;

use super::base::{Ctx, Step};

pub fn configure(ctx: &Ctx) -> Result<Vec<Step>> {
    let mut argv = vec![ctx.configure_script(), format!("--prefix={}", ctx.prefix())];
    argv.extend(ctx.configure_args()?);
    Ok(vec![ctx.run(argv)])
}
