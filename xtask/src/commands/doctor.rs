//! `cargo xtask doctor`: the host's prerequisites for the arches, installed
//! with `--install` (as root) or listed with the apt line to run.

use anyhow::Result;

use crate::engine::project::Project;
use crate::machine::host;

#[derive(clap::Args)]
pub struct Args {
    /// An arch of the manifest, a comma list, or `all`.
    #[arg(long, default_value = "all")]
    pub arch: String,
    /// Install what is missing with apt (as root).
    #[arg(long)]
    pub install: bool,
}

pub fn run(project: &Project, args: &Args) -> Result<()> {
    let loaded = project.load()?;
    let names = project.arches(&loaded, &args.arch)?;
    let arches: Vec<_> = names.iter().map(|n| &loaded.manifest.arch[n]).collect();
    if args.install {
        host::ensure(&loaded.manifest, &arches, None)?;
    }
    let missing = host::missing(&loaded.manifest, &arches, None);
    if missing.0.is_empty() {
        println!("host prerequisites: all present");
        return Ok(());
    }
    for (pkg, why) in &missing.0 {
        println!("missing: {pkg:28} for {why}");
    }
    anyhow::bail!("host prerequisites missing; run `cargo xtask doctor --install` as root")
}
