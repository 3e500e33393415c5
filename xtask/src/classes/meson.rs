//! Meson: `meson setup` with a cross file of the toolchain (the one
//! meson-python source builds get), ninja, `meson install --destdir`, as
//! Yocto's meson.bbclass. The recipe's `configure` list holds the `-D`
//! options; `source_subdir` the directory of the top meson.build.

use anyhow::Result;

use super::base::{Ctx, Step};

const CROSS_FILE: &str = "meson-cross.ini";

pub fn configure(ctx: &Ctx) -> Result<Vec<Step>> {
    let cross = ctx.dirs.workdir.join(CROSS_FILE);
    let mut steps = vec![];
    if let Some((arch, tc)) = ctx.target {
        // meson runs no target program for a C library: no exe_wrapper.
        tc.meson_cross_file(arch, None, &cross)?;
    }
    let mut argv = vec!["meson".to_string(), "setup".to_string()];
    if ctx.target.is_some() {
        argv.push(format!("--cross-file={}", cross.display()));
    }
    argv.extend([format!("--prefix={}", ctx.prefix()), "--libdir=lib".into(), "--buildtype=release".into(), "--wrap-mode=nodownload".into()]);
    argv.extend(ctx.configure_args()?);
    argv.push(ctx.dirs.build.display().to_string());
    argv.push(ctx.source_dir().display().to_string());
    steps.push(Step::Run { argv, cwd: ctx.dirs.workdir.clone() });
    Ok(steps)
}

pub fn compile(ctx: &Ctx) -> Result<Vec<Step>> {
    // ninja 1.11 takes no job slots from a jobserver: one job, the one
    // slot this task holds, so the build never runs more than --jobs.
    Ok(vec![ctx.run(vec!["ninja".into(), "-j1".into()])])
}

pub fn install(ctx: &Ctx) -> Result<Vec<Step>> {
    Ok(vec![ctx.run(vec!["meson".into(), "install".into(), "--no-rebuild".into(), "--destdir".into(), ctx.dirs.image.display().to_string()])])
}
