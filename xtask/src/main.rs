//! crosspython: CPython, its C libraries and Python packages, cross-built
//! for embedded Linux boards from one manifest, tested under qemu-user and
//! packaged.
//!
//! # Architecture
//!
//! The source is in layers, one folder each, named for the BitBake concept
//! it holds. Bottom up:
//!
//! 1. `base/` and `model/`, the ground floor. `base` is what every layer
//!    does with the build machine: child processes, progress output,
//!    `SOURCE_DATE_EPOCH`, file trees (hard-linked sysroots, copies).
//!    `model` is the manifest and what it means: the typed and validated
//!    `recipes-manifest.toml`, its `require` includes, recipe versions, and
//!    the resolver that turns it into one arch's dependency graph
//!    (BitBake's parser and providers).
//! 2. `sources/`: `do_fetch` and `do_unpack`: the download cache verified
//!    by sha256 through premirrors, upstream and mirrors, the host's Debian
//!    mirror, and Debian's binary packages.
//! 3. `machine/`: BitBake's `MACHINE`: the cross toolchain (zig or gcc),
//!    what ELF files say and must pass, board root filesystems and their C
//!    library, and what the build machine needs to build for them.
//! 4. `classes/` and `python/`, side by side: how a recipe builds
//!    (BitBake's classes: autotools, a plain configure, make, CPython) and
//!    how Python packages get into the tree (crossenv-style wheels).
//! 5. `engine/`: BitBake's runqueue: the project (build directory, lock,
//!    plan), the task graph with signatures and stamps, the task bodies,
//!    `do_rootfs` (the target tree `sysroots/<arch>`), the artifact cache
//!    (sstate) and the scheduler.
//! 6. `deploy/`: the tree leaves the build: `package` (archives or a root
//!    filesystem) and `qemu-test` (installed over a board root and run
//!    under qemu-user, with CPython's own tests).
//! 7. `commands/`: commands that read across the layers: `check`, `graph`,
//!    `show`, `fetch`, `clean`, `pip`, `bench`.
//! 8. This file: the command line, dispatched to the layers.
//!
//! Imports only go down: a layer may use any layer below it, never one
//! above it, and the two layers of a floor never use each other. Each
//! folder's `mod.rs` says what the layer holds and what it may import.

// The layers, bottom up, a floor to a group: each may import only the
// floors before its own.
mod base;
mod model;

mod sources;

mod machine;

mod classes;
mod python;

mod engine;

mod deploy;

mod commands;

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};

use crate::base::{process, signing};
use crate::commands::{bench, inspect, pip};
use crate::deploy::{package, qemu};
use crate::engine::project::{self, BuildLock, Project};
use crate::engine::{scheduler, sstate, work};
use crate::machine::host;
use crate::sources::fetch;

#[derive(Parser)]
#[command(name = "cargo xtask", about = "Cross-build CPython and its libraries for embedded Linux boards")]
struct Cli {
    /// The manifest (default: recipes-manifest.toml in the workspace).
    #[arg(long, global = true)]
    manifest: Option<PathBuf>,
    /// The build directory (default: build/ in the workspace; or CROSSPYTHON_BUILD_DIR).
    #[arg(long, global = true)]
    build_dir: Option<PathBuf>,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(clap::Args)]
struct BuildArgs {
    /// An arch of the manifest, a comma list, or `all`.
    #[arg(long)]
    arch: String,
    /// Parallel jobs for the whole build (default: the number of cores).
    #[arg(long, short)]
    jobs: Option<usize>,
    /// Say why each task runs.
    #[arg(long, short = 'v', alias = "verbose")]
    explain: bool,
    /// Wait for another build holding the build directory.
    #[arg(long)]
    wait: bool,
    /// Cross toolchain: `zig` (the default), `debian-gcc`, a directory with bin/<triplet>-gcc, a prefix like /opt/sdk/bin/aarch64-linux-gnu-, or "CC ARGS".
    #[arg(long)]
    toolchain: Option<String>,
    /// The board's root filesystem (or SDK sysroot; or a board of the manifest by name): its C library decides the glibc floor; a board the build cannot serve is refused before building.
    #[arg(long)]
    board: Option<PathBuf>,
    /// No ELF file may need a glibc symbol version newer than this (default: the manifest's libc.glibc_floor).
    #[arg(long)]
    glibc_floor: Option<String>,
    /// Run this recipe's tasks even if they are up to date or in the artifact cache (BitBake's -f).
    #[arg(long, value_delimiter = ',')]
    rebuild: Vec<String>,
    #[command(flatten)]
    features: Features,
}

/// Build options on top of the manifest's `distro.features`.
#[derive(clap::Args)]
struct Features {
    /// Switch on a feature: every recipe's packageconfig of that name applies (comma list or repeated).
    #[arg(long = "feature", value_delimiter = ',')]
    names: Vec<String>,
    /// Link-time optimization of the interpreter (`--feature lto`).
    #[arg(long)]
    lto: bool,
    /// Profile-guided optimization: the profile task runs on the target under qemu-user (`--feature pgo`).
    #[arg(long)]
    pgo: bool,
    /// The configuration recommended for release builds: the features of the manifest's
    /// `distro.feature_sets.release` (`--feature release`).
    #[arg(long)]
    release: bool,
}

impl Features {
    fn names(&self) -> Vec<String> {
        let mut names = self.names.clone();
        names.extend(self.lto.then(|| "lto".to_string()));
        names.extend(self.pgo.then(|| "pgo".to_string()));
        names.extend(self.release.then(|| "release".to_string()));
        names
    }
}

#[derive(Subcommand)]
enum PipAction {
    /// Requirement specifiers or wheel files, as for `pip install`.
    Install {
        specs: Vec<String>,
        /// A requirements file (specifiers only).
        #[arg(short = 'r', long)]
        requirement: Option<PathBuf>,
        /// Build these projects from source (`:all:` for every one).
        #[arg(long)]
        no_binary: Vec<String>,
    },
}

#[derive(Subcommand)]
enum Cmd {
    /// Fetch, build every recipe and assemble sysroots/<arch>.
    Build(BuildArgs),
    /// Run the target tree (or a package) under qemu-user and check it.
    QemuTest {
        #[arg(long)]
        arch: String,
        /// Test this archive, unpacked over the board root, instead of sysroots/<arch>.
        #[arg(long)]
        package: Option<PathBuf>,
        /// Install over this board root (a directory, or a board of the manifest by name) instead of the arch's test_board (the one the build used).
        #[arg(long)]
        board: Option<PathBuf>,
        /// Also run CPython's own tests: `listed` (the default) the modules of the manifest's distro.cpython_tests, `all` the whole suite (hours under emulation).
        #[arg(long, value_enum, num_args = 0..=1, default_missing_value = "listed")]
        cpython_tests: Option<crate::deploy::regrtest::Selection>,
        /// Stop CPython's tests after this many minutes (booted, the default is the arch's suite_minutes; under qemu-user, none); the test files that finished are reported, and the next run of the whole suite on the same tree resumes.
        #[arg(long, requires = "cpython_tests")]
        minutes: Option<u64>,
        /// Go on with the whole suite from this earlier report of the same tree (a `deploy/<arch>/cpython-suite[-system].json` kept from another machine) instead of deploy/<arch>/'s.
        #[arg(long, requires = "cpython_tests", value_name = "REPORT")]
        resume_from: Option<PathBuf>,
        /// Wait for another command holding the build directory (the tree and deploy/<arch> are its).
        #[arg(long)]
        wait: bool,
        /// Boot a Debian kernel of the arch under qemu-system ([system.<arch>]) with the board root and the tree as its initramfs, and run the checks there instead of under qemu-user.
        #[arg(long)]
        system: bool,
        /// Run this application (a .py file) instead of the checks; it must exit 0. Its arguments follow `--`.
        #[arg(long, conflicts_with_all = ["system", "cpython_tests"])]
        app: Option<PathBuf>,
        /// Arguments of --app.
        #[arg(last = true, requires = "app")]
        app_args: Vec<String>,
    },
    /// Write deploy/<arch>/crosspython-<version>-<arch>.tar.gz.
    Package {
        #[arg(long)]
        arch: String,
        /// full, runtime (default), minimal or app (with --app): see [package.profile.*] in the manifest.
        #[arg(long)]
        profile: Option<String>,
        /// Where the tree lives on the board (default: the manifest's prefix).
        #[arg(long)]
        prefix: Option<String>,
        /// Install into this root filesystem directory instead of writing archives.
        #[arg(long)]
        rootfs: Option<PathBuf>,
        /// With --rootfs: overwrite files that differ.
        #[arg(long, requires = "rootfs")]
        force: bool,
        /// Wait for another command holding the build directory.
        #[arg(long)]
        wait: bool,
        /// Keep only what this application (a .py file) imports (the `app` profile, the default with --app), then run it from the package under qemu; its arguments follow `--`.
        #[arg(long, conflicts_with = "rootfs")]
        app: Option<PathBuf>,
        /// Arguments of --app's proof run.
        #[arg(last = true, requires = "app")]
        app_args: Vec<String>,
    },
    /// Install Python packages into the staged tree of an arch (ad hoc).
    Pip {
        #[arg(long)]
        arch: String,
        /// The cross toolchain the tree was built with (as for build).
        #[arg(long)]
        toolchain: Option<String>,
        #[command(subcommand)]
        action: PipAction,
    },
    /// Build cost, footprint and target speed next to yardsticks (deploy/bench/<arch>.json).
    Bench {
        #[arg(long, default_value = "aarch64")]
        arch: String,
        /// Run one part only (the others keep their last results).
        #[arg(long, value_enum)]
        only: Option<bench::Phase>,
        /// Runs of each runtime case and interpreter (medians are reported).
        #[arg(long, default_value_t = 5)]
        runs: usize,
        /// Job counts of the cold builds.
        #[arg(long, value_delimiter = ',', default_value = "1,2")]
        cold_jobs: Vec<usize>,
        /// Debian suite whose python of the tree's version is the yardstick (`auto`: the oldest that has it).
        #[arg(long, default_value = "auto")]
        suite: String,
        /// Build-option variants of the interpreter to build and run: `default`, or features joined by `+` (lto+pgo).
        #[arg(long, value_delimiter = ',', default_value = "lto+pgo")]
        variants: Vec<String>,
        /// The toolchain of the variants' builds (as `build --toolchain`: `debian-gcc` brings gcc's LTO and PGO where zig has none, as on mipsel).
        #[arg(long)]
        toolchain: Option<String>,
    },
    /// Validate the manifest and list every problem.
    Check,
    /// The resolved build (or run-time) graph.
    Graph {
        #[arg(long)]
        arch: String,
        /// Graphviz DOT instead of a tree.
        #[arg(long)]
        dot: bool,
        /// The run-time graph (rdepends) instead of the build graph.
        #[arg(long)]
        runtime: bool,
        /// The dependency chain that pulls this recipe in.
        #[arg(long)]
        why: Option<String>,
    },
    /// Every resolved value of a recipe, and where it came from.
    Show {
        recipe: String,
        #[arg(long, default_value = "aarch64")]
        arch: String,
        #[command(flatten)]
        features: Features,
    },
    /// Download and verify every source of the arches' builds.
    Fetch {
        #[arg(long, default_value = "all")]
        arch: String,
    },
    /// Check the host's prerequisites; install them with --install (as root).
    Doctor {
        #[arg(long, default_value = "all")]
        arch: String,
        #[arg(long)]
        install: bool,
    },
    /// (Internal) the cmake class's configure and build, run by a task.
    #[command(hide = true)]
    ClassCmake(classes::cmake::Args),
    /// Remove the build directory's outputs of a recipe (or all of them).
    Clean {
        recipe: Option<String>,
        #[arg(long, default_value = "all")]
        arch: String,
    },
    /// Make an ed25519 key for signing a shared artifact cache (CROSSPYTHON_SSTATE_SIGNING_KEY); prints its public key for CROSSPYTHON_SSTATE_TRUSTED_KEYS.
    SstateKeygen {
        /// Where to write the secret key (never overwritten); the public key goes to <file>.pub.
        out: PathBuf,
    },
}

fn main() {
    if let Err(e) = real_main() {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

fn real_main() -> Result<()> {
    let cli = Cli::parse();
    // Run by a task inside a recipe's build directory: needs no project.
    if let Cmd::ClassCmake(args) = &cli.command {
        return classes::cmake::drive(args);
    }
    let project = Project::locate(cli.manifest, cli.build_dir)?;
    match cli.command {
        Cmd::Build(args) => build(&project, &args),
        Cmd::QemuTest { arch, package, board, cpython_tests, minutes, resume_from, wait, system, app, app_args } => {
            let loaded = project.load()?;
            if system {
                // Ctrl-C stops the booted guest as its time limit would:
                // what finished is still reported (hours of a suite).
                ctrlc::set_handler(process::interrupt).context("cannot install the interrupt handler")?;
            }
            for a in project.arches(&loaded, &arch)? {
                let _runs = qemu::run_lock(&project, &a, system && app.is_none(), wait)?;
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
                    Some(app) => qemu::Run::App(app),
                    None => qemu::Run::Checks { cpython: cpython_tests, system, minutes, resume: resume_from.as_deref() },
                };
                qemu::test(&project, &loaded, &a, &target, package.as_deref(), run, lock)?;
            }
            Ok(())
        }
        Cmd::Package { arch, profile, prefix, rootfs, force, wait, app, app_args } => {
            let loaded = project.load()?;
            let app = app.map(|file| package::App { file, args: app_args });
            let profile = profile.or_else(|| app.as_ref().map(|_| "app".to_string()));
            let opts = package::Options { profile, prefix, rootfs, force, app };
            for a in project.arches(&loaded, &arch)? {
                let _runs = match opts.app {
                    Some(_) => Some(qemu::run_lock(&project, &a, false, wait)?),
                    None => None,
                };
                // deploy/<arch> and the tree it reads are the build's.
                let lock = BuildLock::take(&project.build_dir, wait)?;
                let out = package::package(&project, &loaded, &a, &opts)?;
                // The app profile is proven by running the application from
                // the package alone, on the board root.
                if let (Some(app), Some(archive)) = (&opts.app, out.archive()) {
                    let target = project.last_target(&a);
                    qemu::test(&project, &loaded, &a, &target, Some(&project.deploy_dir(&a).join(archive)), qemu::Run::App(app), lock)?;
                }
            }
            Ok(())
        }
        Cmd::Pip { arch, toolchain, action: PipAction::Install { specs, requirement, no_binary } } => {
            let loaded = project.load()?;
            if !loaded.manifest.arch.contains_key(&arch) {
                anyhow::bail!("unknown arch `{arch}`; the manifest has {}", loaded.manifest.arch.keys().cloned().collect::<Vec<_>>().join(", "));
            }
            pip::install(
                &project,
                &loaded,
                &pip::Request { arch: &arch, toolchain: toolchain.as_deref(), specs: &specs, requirements: requirement.as_deref(), no_binary: &no_binary },
            )
        }
        Cmd::Bench { arch, only, runs, cold_jobs, suite, variants, toolchain } => {
            let loaded = project.load()?;
            project.arches(&loaded, &arch)?;
            bench::bench(&project, &loaded, &bench::Options { arch, only, runs, cold_jobs, suite, variants, toolchain })
        }
        Cmd::Check => inspect::check(&project),
        Cmd::Graph { arch, dot, runtime, why } => inspect::graph(&project, &arch, dot, runtime, why.as_deref()),
        Cmd::Show { recipe, arch, features } => inspect::show(&project, &recipe, &arch, &features.names()),
        Cmd::Fetch { arch } => inspect::fetch_all(&project, &arch),
        Cmd::Doctor { arch, install } => {
            let loaded = project.load()?;
            let names = project.arches(&loaded, &arch)?;
            let arches: Vec<_> = names.iter().map(|n| &loaded.manifest.arch[n]).collect();
            if install {
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
        Cmd::Clean { recipe, arch } => inspect::clean(&project, recipe.as_deref(), &arch),
        Cmd::ClassCmake(_) => unreachable!("dispatched above"),
        Cmd::SstateKeygen { out } => {
            let public = signing::keygen(&out)?;
            println!("{public}");
            eprintln!("secret key: {} (keep it on the machine that stores entries); public key: {}.pub", out.display(), out.display());
            Ok(())
        }
    }
}

/// A recipe whose source no mirror has: name the versions of it the
/// manifest offers, where each can be had, and how to choose one.
fn offer_other_versions(e: anyhow::Error, loaded: &model::manifest::Loaded, fetcher: &fetch::Fetcher) -> anyhow::Error {
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

fn build(project: &Project, args: &BuildArgs) -> Result<()> {
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
