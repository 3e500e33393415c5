//! `cargo xtask package`: archives of the tree (or an install into a root
//! filesystem); with `--app`, the application's package proven under qemu.

use std::path::PathBuf;

use anyhow::Result;

use crate::deploy::{package, qemu};
use crate::engine::project::{BuildLock, Project};

#[derive(clap::Args)]
pub struct Args {
    /// An arch of the manifest, a comma list, or `all`.
    #[arg(long)]
    pub arch: String,
    /// full, runtime (default), minimal or app (with --app): see [package.profile.*] in the manifest.
    #[arg(long)]
    pub profile: Option<String>,
    /// Where the tree lives on the board (default: the manifest's prefix).
    #[arg(long)]
    pub prefix: Option<String>,
    /// Install into this root filesystem directory instead of writing archives.
    #[arg(long)]
    pub rootfs: Option<PathBuf>,
    /// With --rootfs: overwrite files that differ.
    #[arg(long, requires = "rootfs")]
    pub force: bool,
    /// Wait for another command holding the build directory.
    #[arg(long)]
    pub wait: bool,
    /// Keep only what this application (a .py file) imports (the `app` profile, the default with --app), then run it from the package under qemu; its arguments follow `--`.
    #[arg(long, conflicts_with = "rootfs")]
    pub app: Option<PathBuf>,
    /// Arguments of --app's proof run.
    #[arg(last = true, requires = "app")]
    pub app_args: Vec<String>,
}

pub fn run(project: &Project, args: Args) -> Result<()> {
    let Args { arch, profile, prefix, rootfs, force, wait, app, app_args } = args;
    let loaded = project.load()?;
    let app = app.map(|file| package::App { file, args: app_args });
    let profile = profile.or_else(|| app.as_ref().map(|_| "app".to_string()));
    let opts = package::Options { profile, prefix, rootfs, force, app };
    for a in project.arches(&loaded, &arch)? {
        let _runs = match opts.app {
            Some(_) => Some(qemu::run_lock(project, &a, false, wait)?),
            None => None,
        };
        // deploy/<arch> and the tree it reads are the build's.
        let lock = BuildLock::take(&project.build_dir, wait)?;
        let out = package::package(project, &loaded, &a, &opts)?;
        // The app profile is proven by running the application from
        // the package alone, on the board root.
        if let (Some(app), Some(archive)) = (&opts.app, out.archive()) {
            let target = project.last_target(&a);
            let run = qemu::Run::App { app, system: false, memory_mib: None };
            qemu::test(project, &loaded, &a, &target, Some(&project.deploy_dir(&a).join(archive)), run, lock)?;
        }
    }
    Ok(())
}
