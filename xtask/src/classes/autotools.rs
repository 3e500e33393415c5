//! GNU autotools: `configure --build --host --prefix`, out of tree.

use anyhow::Result;

use super::base::{Ctx, Step};

pub fn configure(ctx: &Ctx) -> Result<Vec<Step>> {
    let mut argv =
        vec![ctx.configure_script(), format!("--build={}", ctx.build_sys), format!("--host={}", ctx.host_sys()), format!("--prefix={}", ctx.prefix())];
    argv.extend(ctx.configure_args()?);
    Ok(vec![ctx.run(argv)])
}
