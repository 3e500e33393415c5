//! `cargo xtask qemu-test`: the tree (or a package) over a board root,
//! under qemu-user or a booted kernel, checked; or an application run.

use std::path::PathBuf;

use anyhow::{Context, Result};

use crate::base::process;
use crate::deploy::{package, qemu};
use crate::engine::project::{BuildLock, Project};

#[derive(clap::Args)]
pub struct Args {
    /// An arch of the manifest, a comma list, or `all`.
    #[arg(long)]
    pub arch: String,
    /// Test this archive, unpacked over the board root, instead of `sysroots/<arch>`.
    #[arg(long)]
    pub package: Option<PathBuf>,
    /// Install over this board root (a directory, or a board of the manifest by name) instead of the arch's test_board (the one the build used).
    #[arg(long)]
    pub board: Option<PathBuf>,
    /// Also run CPython's own tests: `listed` (the default) the modules of the manifest's distro.cpython_tests, `all` the whole suite (hours under emulation).
    #[arg(long, value_enum, num_args = 0..=1, default_missing_value = "listed")]
    pub cpython_tests: Option<crate::deploy::regrtest::Selection>,
    /// Stop CPython's tests after this many minutes (booted, the default is the arch's suite_minutes; under qemu-user, none); the test files that finished are reported, and the next run of the whole suite on the same tree resumes.
    #[arg(long, requires = "cpython_tests")]
    pub minutes: Option<u64>,
    /// Go on with the whole suite from this earlier report of the same tree (a `deploy/<arch>/cpython-suite[-system].json` kept from another machine) instead of `deploy/<arch>/`'s.
    #[arg(long, requires = "cpython_tests", value_name = "REPORT")]
    pub resume_from: Option<PathBuf>,
    /// Wait for another command holding the build directory (the tree and `deploy/<arch>` are its).
    #[arg(long)]
    pub wait: bool,
    /// Boot a Debian kernel of the arch under qemu-system (`[system.<arch>]`) with the board root and the tree as its root (on a disk, or as its initramfs, as `[system.<arch>]` says), and run the checks there instead of under qemu-user.
    #[arg(long)]
    pub system: bool,
    /// The booted guest's memory in MiB, as your board's RAM (default: the arch's `memory_mib`, or `suite_memory_mib` for the whole suite).
    #[arg(long, requires = "system", value_parser = clap::value_parser!(u32).range(1..))]
    pub memory_mib: Option<u32>,
    /// Run this application (a .py file) instead of the checks, under qemu-user or, with --system, on a booted kernel (its time and peak RSS reported); it must exit 0. Its arguments follow `--`.
    #[arg(long, conflicts_with = "cpython_tests")]
    pub app: Option<PathBuf>,
    /// Arguments of --app.
    #[arg(last = true, requires = "app")]
    pub app_args: Vec<String>,
}

pub fn run(project: &Project, args: Args) -> Result<()> {
    let Args { arch, package, board, cpython_tests, minutes, resume_from, wait, system, memory_mib, app, app_args } = args;
    if let Some(file) = app.as_ref().filter(|f| !f.is_file()) {
        anyhow::bail!("qemu-test --app {}: no such file (the application to run on the target)", file.display());
    }
    let loaded = project.load()?;
    if system {
        // Ctrl-C stops the booted guest as its time limit would:
        // what finished is still reported (hours of a suite).
        ctrlc::set_handler(process::interrupt).context("cannot install the interrupt handler")?;
    }
    for a in project.arches(&loaded, &arch)? {
        let _runs = qemu::run_lock(project, &a, system, wait)?;
        // The tree it reads is swapped by builds: held until the tree
        // is copied over the board root (qemu-test lets it go then, and
        // takes it again to write deploy/<arch>/).
        let lock = BuildLock::take(&project.build_dir, wait)?;
        let mut target = project.last_target(&a);
        if board.is_some() {
            (target.board, target.board_name) = (board.clone(), None);
        }
        project.resolve_board(&loaded, &a, &mut target)?;
        let app = app.clone().map(|file| package::App { file, args: app_args.clone() });
        let run = match &app {
            Some(app) => qemu::Run::App { app, system, memory_mib },
            None => qemu::Run::Checks { cpython: cpython_tests, system, memory_mib, minutes, resume: resume_from.as_deref() },
        };
        qemu::test(project, &loaded, &a, &target, package.as_deref(), run, lock)?;
    }
    Ok(())
}
