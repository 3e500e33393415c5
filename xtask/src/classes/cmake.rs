//! CMake, as a Rust build script drives it: the design card's `cmake`
//! crate configures and builds for the cross toolchain (in a child
//! process of crosspython, `xtask class-cmake`, so that its output goes to
//! the task's log and a failure is the step's exit status, not a panic of
//! the build), and `cmake --install` puts the result into `D`, as Yocto's
//! cmake.bbclass does with DESTDIR.
//!
//! The recipe's `configure` list holds the `-D` options (Yocto's
//! EXTRA_OECMAKE); `source_subdir` names the directory with the top
//! CMakeLists.txt when it is not the source's top (zstd's `build/cmake`).

use std::path::PathBuf;

use anyhow::{bail, Context, Result};

use super::base::{Ctx, Step};

/// The build tree inside `B` (the crate's `out_dir/build`).
const BUILD: &str = "build";

pub fn compile(ctx: &Ctx) -> Result<Vec<Step>> {
    let Some((arch, _)) = ctx.target else {
        bail!("recipe {}: the cmake class builds for targets only", ctx.node.name);
    };
    let exe = own_program()?;
    let mut argv = vec![
        exe.display().to_string(),
        "class-cmake".into(),
        ctx.source_dir().display().to_string(),
        ctx.dirs.build.display().to_string(),
        ctx.prefix().to_string(),
        arch.rust_target.clone(),
        arch.machine.clone(),
        ctx.dirs.recipe_sysroot.display().to_string(),
    ];
    argv.extend(ctx.configure_args()?);
    Ok(vec![ctx.run(argv)])
}

/// crosspython's own program, which runs the cmake crate in a child. When
/// cargo rebuilt it during the build, Linux names the running one
/// `<path> (deleted)`: the program now at the path is taken.
fn own_program() -> Result<std::path::PathBuf> {
    let exe = std::env::current_exe().context("cannot find crosspython's own program")?;
    let text = exe.display().to_string();
    match text.strip_suffix(" (deleted)") {
        Some(path) if std::path::Path::new(path).is_file() => Ok(path.into()),
        Some(path) => bail!("crosspython's own program {path} was removed while it ran; run the build again"),
        None => Ok(exe),
    }
}

pub fn install(ctx: &Ctx) -> Result<Vec<Step>> {
    Ok(vec![Step::Shell { script: format!("DESTDIR=\"$D\" cmake --install {BUILD}"), cwd: ctx.dirs.build.clone() }])
}

/// What `xtask class-cmake` is given.
#[derive(Debug, clap::Args)]
pub struct Args {
    source: PathBuf,
    build: PathBuf,
    prefix: String,
    /// The arch's Rust target: the crate's `target`.
    rust_target: String,
    /// `uname -m` of the board: CMAKE_SYSTEM_PROCESSOR.
    machine: String,
    /// The recipe's sysroot: where find_package and find_library look.
    sysroot: PathBuf,
    /// `-DNAME=VALUE` options of the recipe.
    #[arg(allow_hyphen_values = true)]
    defines: Vec<String>,
}

/// Configure and build with the `cmake` crate, in the environment the
/// class gives every recipe (`CC`, `CFLAGS`, `AR`, pkg-config's sysroot).
pub fn drive(a: &Args) -> Result<()> {
    let var = |k: &str| std::env::var(k).with_context(|| format!("class-cmake runs in a recipe's environment: {k} is not set"));
    let cc = var("CC")?;
    let mut words = cc.split_whitespace();
    let compiler = words.next().context("CC is empty")?;
    let mut c = cc::Build::new();
    c.compiler(compiler).no_default_flags(true);
    // The class's flags, not those the cc crate would pick for the Rust
    // target (its `--target=aarch64-unknown-linux-gnu`, which zig refuses):
    // the crate passes its own only for the CMAKE_<LANG>_FLAGS not defined.
    let env_or_empty = |k: &str| std::env::var(k).unwrap_or_default();
    let compiler_args: Vec<&str> = words.collect();
    let cflags = [compiler_args.join(" "), env_or_empty("CFLAGS"), env_or_empty("CPPFLAGS")].join(" ").trim().to_string();
    let ldflags = env_or_empty("LDFLAGS");
    // The build's jobserver, as cargo hands it to a build script.
    if let Ok(flags) = std::env::var("MAKEFLAGS") {
        std::env::set_var("CARGO_MAKEFLAGS", flags);
    }
    let sysroot = a.sysroot.display().to_string();
    let mut cfg = cmake::Config::new(&a.source);
    cfg.out_dir(&a.build)
        .target(&a.rust_target)
        .host(&crate::machine::build_sys::rust_target())
        .profile("Release")
        .init_c_cfg(c)
        .no_build_target(true)
        .define("CMAKE_INSTALL_PREFIX", &a.prefix)
        .define("CMAKE_INSTALL_LIBDIR", "lib")
        .define("CMAKE_SYSTEM_NAME", "Linux")
        .define("CMAKE_SYSTEM_PROCESSOR", &a.machine)
        .define("CMAKE_AR", var("AR")?)
        .define("CMAKE_RANLIB", var("RANLIB")?)
        .define("CMAKE_STRIP", var("STRIP")?)
        .define("CMAKE_C_FLAGS", &cflags)
        .define("CMAKE_CXX_FLAGS", &cflags)
        .define("CMAKE_ASM_FLAGS", &cflags)
        .define("CMAKE_EXE_LINKER_FLAGS", &ldflags)
        .define("CMAKE_SHARED_LINKER_FLAGS", &ldflags)
        .define("CMAKE_MODULE_LINKER_FLAGS", &ldflags)
        // Headers and libraries of the recipe's sysroot only; programs of the build machine.
        .define("CMAKE_FIND_ROOT_PATH", &sysroot)
        .define("CMAKE_FIND_ROOT_PATH_MODE_PROGRAM", "NEVER")
        .define("CMAKE_FIND_ROOT_PATH_MODE_LIBRARY", "ONLY")
        .define("CMAKE_FIND_ROOT_PATH_MODE_INCLUDE", "ONLY")
        .define("CMAKE_FIND_ROOT_PATH_MODE_PACKAGE", "ONLY")
        // No run path to the build tree in what is installed.
        .define("CMAKE_SKIP_INSTALL_RPATH", "ON")
        .define("CMAKE_LINKER_TYPE", "DEFAULT");
    for d in &a.defines {
        let Some((k, v)) = d.strip_prefix("-D").and_then(|d| d.split_once('=')) else {
            bail!("class-cmake: `{d}` is not a -DNAME=VALUE option");
        };
        cfg.define(k, v);
    }
    cfg.build();
    Ok(())
}
