//! The build machine itself (BitBake's `BUILD_SYS`): its Rust target, its
//! GNU triplet and its C compiler, which native recipes' signatures name.

use anyhow::{Context, Result};
use xshell::{cmd, Shell};

/// The build machine's Rust target (`x86_64-unknown-linux-gnu`): where
/// host tools such as `llvm-profdata` live in the Rust sysroot.
pub fn rust_target() -> String {
    format!("{}-unknown-linux-gnu", std::env::consts::ARCH)
}

/// The build machine's GNU triplet (`--build=`), from the host compiler.
pub fn triplet() -> Result<String> {
    let sh = Shell::new()?;
    Ok(cmd!(sh, "gcc -dumpmachine").quiet().read().context("the host C compiler `gcc` is needed")?.trim().to_string())
}

/// Identity of the host compiler, for the signatures of native recipes.
pub fn compiler_identity() -> String {
    let sh = match Shell::new() {
        Ok(sh) => sh,
        Err(_) => return String::new(),
    };
    cmd!(sh, "gcc --version").quiet().read().unwrap_or_default().lines().next().unwrap_or_default().to_string()
}
