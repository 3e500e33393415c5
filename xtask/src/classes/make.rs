//! `make` and `make install DESTDIR=`: the compile and install steps of
//! every class. `make` gets its job slots from the build's jobserver.

use anyhow::Result;

use super::base::{Ctx, Step};

pub fn compile(ctx: &Ctx) -> Result<Vec<Step>> {
    let mut argv = vec!["make".to_string()];
    argv.extend(ctx.make_args()?);
    Ok(vec![ctx.run(argv)])
}

pub fn install(ctx: &Ctx) -> Result<Vec<Step>> {
    let mut argv = vec!["make".to_string()];
    argv.extend(ctx.make_args()?);
    argv.push("install".to_string());
    argv.push(format!("DESTDIR={}", ctx.dirs.image.display()));
    Ok(vec![ctx.run(argv)])
}
