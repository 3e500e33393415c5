//! `cargo xtask build`: the arches' plan run by the scheduler, with the
//! artifact cache, one lock on the build directory, and orphans of a killed
//! build stopped first.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};

use crate::base::{process, signing};
use crate::deploy::qemu;
use crate::engine::project::{self, BuildLock, Project};
use crate::engine::{scheduler, sstate, work};
use crate::machine::host;
use crate::model::manifest::Loaded;
use crate::sources::fetch;

#[derive(clap::Args)]
pub struct Args {
    /// An arch of the manifest, a comma list, or `all`.
    #[arg(long)]
    pub arch: String,
    /// Parallel jobs for the whole build (default: the number of cores).
    #[arg(long, short)]
    pub jobs: Option<usize>,
    /// Say why each task runs.
    #[arg(long, short = 'v', alias = "verbose")]
    pub explain: bool,
    /// Wait for another build holding the build directory.
    #[arg(long)]
    pub wait: bool,
    /// Cross toolchain: `zig` (the default), `debian-gcc`, a directory with `bin/<triplet>-gcc`, a prefix like /opt/sdk/bin/aarch64-linux-gnu-, or "CC ARGS".
    #[arg(long)]
    pub toolchain: Option<String>,
    /// The board's root filesystem (or SDK sysroot; or a board of the manifest by name): its C library decides the glibc floor; a board the build cannot serve is refused before building.
    #[arg(long)]
    pub board: Option<PathBuf>,
    /// No ELF file may need a glibc symbol version newer than this (default: the manifest's libc.glibc_floor).
    #[arg(long)]
    pub glibc_floor: Option<String>,
    /// Run this recipe's tasks even if they are up to date or in the artifact cache (BitBake's -f).
    #[arg(long, value_delimiter = ',')]
    pub rebuild: Vec<String>,
    #[command(flatten)]
    pub features: Features,
}

/// Build options on top of the manifest's `distro.features`.
#[derive(clap::Args)]
pub struct Features {
    /// Switch on a feature: every recipe's packageconfig of that name applies (comma list or repeated).
    #[arg(long = "feature", value_delimiter = ',')]
    pub names: Vec<String>,
    /// Link-time optimization of the interpreter (`--feature lto`).
    #[arg(long)]
    pub lto: bool,
    /// Profile-guided optimization: the profile task runs on the target under qemu-user (`--feature pgo`).
    #[arg(long)]
    pub pgo: bool,
    /// The configuration recommended for release builds: the features of the manifest's
    /// `distro.feature_sets.release` (`--feature release`).
    #[arg(long)]
    pub release: bool,
}

impl Features {
    pub fn names(&self) -> Vec<String> {
        let mut names = self.names.clone();
        names.extend(self.lto.then(|| "lto".to_string()));
        names.extend(self.pgo.then(|| "pgo".to_string()));
        names.extend(self.release.then(|| "release".to_string()));
        names
    }
}

pub fn run(project: &Project, args: &Args) -> Result<()> {
    let t0 = Instant::now();
    let mut target = project::Target { toolchain: args.toolchain.clone(), board: args.board.clone(), glibc_floor: args.glibc_floor.clone(), board_name: None };
    let mut loaded = project.load()?;
    loaded.enable_features(&args.features.names())?;
    let names = project.arches(&loaded, &args.arch)?;
    if let [only] = names.as_slice() {
        project.resolve_board(&loaded, only, &mut target)?;
    }
    let arches: Vec<_> = names.iter().map(|n| &loaded.manifest.arch[n]).collect();
    let choice = target.toolchain.clone().or_else(|| std::env::var("CROSSPYTHON_TOOLCHAIN").ok());
    host::ensure(&loaded.manifest, &arches, choice.as_deref())?;
    let _lock = BuildLock::take(&project.build_dir, args.wait)?;
    let killed = process::kill_orphans(&project.build_dir);
    if killed > 0 {
        eprintln!("crosspython: stopped {killed} process(es) a killed earlier build had left running in {}", project.build_dir.display());
    }
    process::mark_tasks_of(&project.build_dir);
    let plan = project.plan(&loaded, &names, &target)?;
    for n in &names {
        project.remember_target(n, &target)?;
    }
    for ab in &plan.arches {
        let Some(n) = ab.graph.nodes.iter().find(|n| n.runs_target_programs()) else { continue };
        let runnable = match &ab.toolchain.run_root {
            None => Err("the toolchain's dynamic loader was not found (libc.so.6 names it), and the arch has no test_board".to_string()),
            Some(_) => qemu::ensure_binfmt(&ab.arch),
        };
        if let Err(why) = runnable {
            anyhow::bail!(
                "{} for {} runs target programs while it builds (features: {}), and they cannot start: {why}",
                n.name,
                ab.name,
                n.features.join(", ")
            );
        }
    }
    let jobs = args.jobs.unwrap_or_else(|| std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)).max(1);
    if args.jobs.is_some_and(|j| j == 0 || j > 1024) {
        anyhow::bail!("--jobs {}: give 1 to 1024 (jobs share one make jobserver; more than that only adds processes)", args.jobs.unwrap());
    }
    ctrlc::set_handler(|| {
        process::interrupt();
    })
    .context("cannot install the interrupt handler")?;
    let worker = work::Worker::for_project(project, &loaded)?;
    let sstate = sstate::Sstate::new(project.sstate_dir.clone()).with_keys(signing::from_env()?);
    eprintln!("crosspython: building {} ({} recipes, {} tasks, {jobs} jobs)", names.join(", "), plan.units.len(), plan.tasks.len());
    let stats = scheduler::run(&plan, &worker, &sstate, &scheduler::Options { jobs, explain: args.explain, rebuild: args.rebuild.clone(), only: vec![] })
        .map_err(|e| offer_other_versions(e, &loaded, &worker.fetcher))?;
    let wall = t0.elapsed().as_secs_f64();
    if stats.tasks_run == 0 {
        eprintln!("crosspython: nothing to do, all {} tasks are up to date ({})", stats.tasks_total, scheduler::human(wall));
    } else {
        eprintln!(
            "crosspython: ran {} of {} tasks in {}{}",
            stats.tasks_run,
            stats.tasks_total,
            scheduler::human(wall),
            if stats.restored_from_sstate.is_empty() {
                String::new()
            } else {
                format!(", {} restored from the artifact cache", stats.restored_from_sstate.len())
            }
        );
        eprintln!("critical path: {} ({} tasks)", scheduler::human(stats.critical_path_secs), stats.critical_path.len());
        for step in &stats.critical_path {
            eprintln!("  {step}");
        }
    }
    for n in &names {
        eprintln!("target tree: {}", project.tree(n).display());
    }
    Ok(())
}

/// A recipe whose source no mirror has: name the versions of it the
/// manifest offers, where each can be had, and how to choose one.
fn offer_other_versions(e: anyhow::Error, loaded: &Loaded, fetcher: &fetch::Fetcher) -> anyhow::Error {
    let Some(failed) = e.chain().find_map(|c| c.downcast_ref::<fetch::Unfetchable>()) else { return e };
    let name = failed.recipe.strip_suffix("-native").unwrap_or(&failed.recipe).to_string();
    let versions: Vec<String> = loaded
        .manifest
        .recipes
        .iter()
        .filter(|r| r.name.get_ref() == &name)
        .map(|r| {
            let sources: Vec<_> = std::iter::once(r.source.clone()).chain(r.alternatives.iter().cloned()).collect();
            format!("  {name} {}: {}", r.version.get_ref(), fetcher.availability(&sources))
        })
        .collect();
    if versions.len() < 2 {
        return e;
    }
    e.context(format!(
        "the manifest ({}) offers these versions of {name}:\n{}\nchoose one with distro.preferred_version.{name} = \"<version>\"",
        loaded.path.display(),
        versions.join("\n")
    ))
}
