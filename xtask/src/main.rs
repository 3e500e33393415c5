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
//! 7. `commands/`: the commands, one module each with its arguments where
//!    they are more than a line: `build`, `qemu-test`, `package`, `doctor`,
//!    `pip`, `bench`, and `inspect` (`check`, `graph`, `show`, `fetch`,
//!    `clean`).
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

use anyhow::Result;
use clap::{Parser, Subcommand};

use crate::base::signing;
use crate::commands::{bench, build, doctor, inspect, package, pip, qemu_test};
use crate::engine::project::Project;

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
    /// Fetch, build every recipe and assemble `sysroots/<arch>`.
    Build(build::Args),
    /// Run the target tree (or a package) under qemu-user and check it.
    QemuTest(qemu_test::Args),
    /// Write `deploy/<arch>/crosspython-<version>-<arch>.tar.gz`.
    Package(package::Args),
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
    /// Build cost, footprint and target speed next to yardsticks (`deploy/bench/<arch>.json`).
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
        features: build::Features,
    },
    /// Download and verify every source of the arches' builds.
    Fetch {
        #[arg(long, default_value = "all")]
        arch: String,
    },
    /// Check the host's prerequisites; install them with --install (as root).
    Doctor(doctor::Args),
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
        /// Where to write the secret key (never overwritten); the public key goes to `<file>.pub`.
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
        Cmd::Build(args) => build::run(&project, &args),
        Cmd::QemuTest(args) => qemu_test::run(&project, args),
        Cmd::Package(args) => package::run(&project, args),
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
        Cmd::Doctor(args) => doctor::run(&project, &args),
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

#[cfg(test)]
mod tests {
    use clap::{CommandFactory, Parser};

    use super::*;

    #[test]
    fn the_command_line_is_consistent_and_each_command_takes_its_own_arguments() {
        // clap's own check: every `requires`, `conflicts_with` and default
        // names an argument of its command (the commands' arguments live in
        // their modules).
        Cli::command().debug_assert();
        // Each command's one-line help is its own.
        let about = |name: &str| Cli::command().find_subcommand(name).and_then(|c| c.get_about().map(|a| a.to_string())).unwrap_or_default();
        assert_eq!(about("package"), "Write `deploy/<arch>/crosspython-<version>-<arch>.tar.gz`");
        assert_eq!(about("pip"), "Install Python packages into the staged tree of an arch (ad hoc)");
        let cli = Cli::parse_from(["xtask", "qemu-test", "--arch", "armhf", "--system", "--cpython-tests", "all", "--minutes", "5"]);
        let Cmd::QemuTest(a) = cli.command else { panic!("qemu-test parses to QemuTest") };
        assert_eq!((a.arch.as_str(), a.system, a.minutes), ("armhf", true, Some(5)));
        assert!(Cli::try_parse_from(["xtask", "qemu-test", "--arch", "armhf", "--minutes", "5"]).is_err(), "--minutes needs --cpython-tests");
        let cli = Cli::parse_from(["xtask", "build", "--arch", "mipsel", "--release", "--feature", "lto,pgo"]);
        let Cmd::Build(b) = cli.command else { panic!("build parses to Build") };
        assert_eq!(b.features.names(), ["lto", "pgo", "release"]);
        let cli = Cli::parse_from(["xtask", "package", "--arch", "aarch64", "--app", "svc.py", "--", "--self-test"]);
        let Cmd::Package(p) = cli.command else { panic!("package parses to Package") };
        assert_eq!(p.app_args, ["--self-test"]);
        assert!(Cli::try_parse_from(["xtask", "package", "--arch", "aarch64", "--app", "a.py", "--rootfs", "/r"]).is_err(), "--app conflicts with --rootfs");
    }
}
