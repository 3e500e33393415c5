//! Where things are (the clone, the build directory, the caches), the
//! build-directory lock, and turning the manifest into a plan for a set of
//! arches.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use fs4::fs_std::FileExt;

use crate::engine::tasks::{ArchBuild, Plan, PlanInputs};
use crate::machine::toolchain::Toolchain;
use crate::model::manifest::Loaded;

/// What the build targets besides the arch: the toolchain, the board and
/// its glibc floor (`build --toolchain --board --glibc-floor`).
#[derive(Debug, Default, Clone, serde::Serialize, serde::Deserialize)]
pub struct Target {
    pub toolchain: Option<String>,
    pub board: Option<PathBuf>,
    pub glibc_floor: Option<String>,
    /// The manifest board `--board` named (its root is `board`): its
    /// programs run after the checks, as the test board's do.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub board_name: Option<String>,
}

#[derive(Clone)]
pub struct Project {
    pub root: PathBuf,
    pub manifest_path: PathBuf,
    pub build_dir: PathBuf,
    pub dl_dir: PathBuf,
    pub sstate_dir: PathBuf,
    pub wheel_dir: PathBuf,
    /// Toolchains crosspython fetches itself, board roots.
    pub cache_dir: PathBuf,
}

impl Project {
    pub fn locate(manifest: Option<PathBuf>, build_dir: Option<PathBuf>) -> Result<Project> {
        // The workspace root: xtask's parent, where cargo runs us from.
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("xtask is in the workspace").to_path_buf();
        let cache = std::env::var_os("CROSSPYTHON_CACHE_DIR")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("XDG_CACHE_HOME").map(|c| PathBuf::from(c).join("crosspython")))
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/crosspython")))
            .context("no HOME: set CROSSPYTHON_CACHE_DIR")?;
        let env_dir = |var: &str, default: PathBuf| std::env::var_os(var).map(PathBuf::from).unwrap_or(default);
        Ok(Project {
            manifest_path: manifest.unwrap_or_else(|| root.join("recipes-manifest.toml")),
            build_dir: build_dir.or_else(|| std::env::var_os("CROSSPYTHON_BUILD_DIR").map(PathBuf::from)).unwrap_or_else(|| root.join("build")),
            dl_dir: env_dir("CROSSPYTHON_DL_DIR", cache.join("downloads")),
            sstate_dir: env_dir("CROSSPYTHON_SSTATE_DIR", cache.join("sstate")),
            wheel_dir: env_dir("CROSSPYTHON_WHEEL_DIR", cache.join("wheels")),
            cache_dir: cache,
            root,
        })
    }

    pub fn load(&self) -> Result<Loaded> {
        Loaded::read(&self.manifest_path)
    }

    pub fn deploy_dir(&self, arch: &str) -> PathBuf {
        self.build_dir.parent().unwrap_or(&self.root).join("deploy").join(arch)
    }

    pub fn tree(&self, arch: &str) -> PathBuf {
        crate::engine::image::tree_dir(&self.build_dir, arch)
    }

    /// `--arch all`, a comma list, or one name; unknown names list the known.
    pub fn arches(&self, loaded: &Loaded, spec: &str) -> Result<Vec<String>> {
        let known: Vec<String> = loaded.manifest.arch.keys().cloned().collect();
        if spec == "all" {
            return Ok(known);
        }
        let mut out = vec![];
        for a in spec.split(',').map(str::trim).filter(|a| !a.is_empty()) {
            if !known.iter().any(|k| k == a) {
                bail!("unknown arch `{a}`; known arches: {} (or `all`)", known.join(", "));
            }
            out.push(a.to_string());
        }
        if out.is_empty() {
            bail!("no arch given; known arches: {}", known.join(", "));
        }
        Ok(out)
    }

    /// The build's choices for `arch`, kept so that `pip` and `qemu-test`
    /// work on the tree as it was built.
    pub fn remember_target(&self, arch: &str, target: &Target) -> Result<()> {
        let path = self.build_dir.join(arch).join("target.json");
        let text = serde_json::to_vec_pretty(target)?;
        if fs::read(&path).ok().as_deref() != Some(text.as_slice()) {
            crate::engine::tasks::atomic_write(&path, &text)?;
        }
        Ok(())
    }

    /// What the last build of `arch` was for (defaults when none was).
    pub fn last_target(&self, arch: &str) -> Target {
        fs::read(self.build_dir.join(arch).join("target.json")).ok().and_then(|t| serde_json::from_slice(&t).ok()).unwrap_or_default()
    }

    /// The glibc floor of a build for `arch`: `--glibc-floor`, else the
    /// glibc of `--board`, else the manifest's `libc.glibc_floor`; a board
    /// that cannot run the result is refused here, before anything builds.
    pub fn glibc_floor(&self, loaded: &Loaded, arch_name: &str, target: &Target) -> Result<Option<(u32, u32)>> {
        let arch = &loaded.manifest.arch[arch_name];
        let board = match &target.board {
            Some(dir) => Some((dir.clone(), crate::machine::board::libc_of(dir, arch)?)),
            None => None,
        };
        if !arch.libc.is_glibc() {
            if let Some(f) = &target.glibc_floor {
                bail!("--glibc-floor {f}: {arch_name} builds for musl, which has no glibc floor");
            }
            if let Some((dir, libc)) = &board {
                crate::machine::board::check_serves(dir, libc, None, loaded.manifest.libc.musl_floor.as_deref(), arch)?;
            }
            return Ok(None);
        }
        let mut floor = loaded.manifest.libc.floor();
        if let Some((_, crate::machine::board::BoardLibc::Glibc { version, .. })) = &board {
            floor = Some(*version);
        }
        if let Some(f) = &target.glibc_floor {
            floor = Some(crate::model::manifest::parse_glibc(f).with_context(|| format!("--glibc-floor {f}: not a glibc version such as 2.28"))?);
        }
        if let (Some(f), Some(min)) = (floor, arch.glibc_min.as_deref().and_then(crate::model::manifest::parse_glibc)) {
            if f < min {
                bail!("glibc floor {}.{} is below the oldest glibc for {arch_name} ({}.{})", f.0, f.1, min.0, min.1);
            }
        }
        if let Some((dir, libc)) = &board {
            crate::machine::board::check_serves(dir, libc, floor, None, arch)?;
        }
        Ok(floor)
    }

    /// `--board` is a directory, or the name of one of the manifest's
    /// boards, assembled from Debian packages (cached) for `arch_name`.
    pub fn resolve_board(&self, loaded: &Loaded, arch_name: &str, target: &mut Target) -> Result<()> {
        let Some(given) = target.board.clone() else { return Ok(()) };
        if given.exists() || given.components().count() != 1 {
            return Ok(());
        }
        let name = given.display().to_string();
        let Some(board) = loaded.manifest.board.get(&name) else {
            let ours: Vec<&str> = loaded.manifest.board.iter().filter(|(_, b)| b.arch == arch_name).map(|(n, _)| n.as_str()).collect();
            bail!("--board {name}: no such directory, nor a board of that name in {} (boards for {arch_name}: {})", loaded.path.display(), ours.join(", "));
        };
        if board.arch != arch_name {
            bail!("--board {name} is a board for {}, not {arch_name} ({})", board.arch, loaded.path.display());
        }
        let arch = &loaded.manifest.arch[arch_name];
        let root = crate::machine::board::debian_root(&crate::sources::fetch::Fetcher::new(self.dl_dir.clone()), &self.cache_dir, &name, board, arch)?;
        target.board = Some(root);
        target.board_name = Some(name);
        Ok(())
    }

    /// The board root programs of `arch` run on: `--board`, else the arch's
    /// `test_board` assembled from Debian packages.
    pub fn board_root(&self, loaded: &Loaded, arch_name: &str, target: &Target) -> Result<PathBuf> {
        if let Some(dir) = &target.board {
            return Ok(dir.clone());
        }
        let arch = &loaded.manifest.arch[arch_name];
        let name = arch.test_board.as_deref().with_context(|| format!("arch {arch_name} has no test_board in {}", loaded.path.display()))?;
        let board = &loaded.manifest.board[name];
        crate::machine::board::debian_root(&crate::sources::fetch::Fetcher::new(self.dl_dir.clone()), &self.cache_dir, name, board, arch)
    }

    /// Resolve the manifest for each arch, find its toolchain and write its
    /// CONFIG_SITE, and build the task plan.
    pub fn plan(&self, loaded: &Loaded, arches: &[String], target: &Target) -> Result<Plan> {
        let mut builds = vec![];
        for name in arches {
            let arch = loaded.manifest.arch[name].clone();
            let graph = crate::model::resolve::resolve(loaded, name)?;
            for w in &graph.warnings {
                eprintln!("warning: {w}");
            }
            let needs: std::collections::BTreeSet<_> = graph.nodes.iter().flat_map(|n| n.toolchain_needs.iter().copied()).collect();
            let glibc_floor = self.glibc_floor(loaded, name, target)?;
            let no_needs = std::collections::BTreeSet::new();
            let choice = |needs| crate::machine::toolchain::Choice {
                explicit: target.toolchain.as_deref(),
                zig: loaded.manifest.toolchain.zig.as_ref(),
                cache: &self.cache_dir,
                glibc_floor,
                needs,
            };
            let mut toolchain = Toolchain::find(&arch, choice(&no_needs)).with_context(|| format!("arch {name}"))?;
            // Only the recipes whose options need more of the toolchain (PGO's
            // profile runtime) get the toolchain with it: the others keep
            // their signatures, and an LTO+PGO python3 rebuilds python3 alone.
            let needing = if needs.is_empty() { None } else { Some(Toolchain::find(&arch, choice(&needs)).with_context(|| format!("arch {name}"))?) };
            if let (Some(_), Some(libs)) = (&toolchain.zig_target, &arch.runtime_libs) {
                let fetcher = crate::sources::fetch::Fetcher::new(self.dl_dir.clone());
                let what = "shared objects zig's output needs that boards may lack";
                let root = crate::machine::board::debian_packages_root(&fetcher, &self.cache_dir, &format!("runtime-{name}"), what, libs, &arch)?;
                toolchain.runtime_lib_dirs = crate::machine::board::library_dirs(&root);
                toolchain.runtime_root = Some(root);
            }
            if toolchain.run_root.is_none() && (target.board.is_some() || arch.test_board.is_some()) {
                // zig has no C library to run programs with: the board's is used.
                toolchain.run_root = Some(self.board_root(loaded, name, target)?);
            }
            let config_site = self.build_dir.join(name).join("config.site");
            let mut site = String::from("# Answers for tests that cannot run when cross compiling (arch.config_site in the manifest).\n");
            let mut answers = loaded.manifest.config_site.clone();
            answers.extend(arch.config_site.clone());
            for (k, v) in &answers {
                site.push_str(&format!("{k}={v}\n"));
            }
            if fs::read_to_string(&config_site).ok().as_deref() != Some(site.as_str()) {
                crate::engine::tasks::atomic_write(&config_site, site.as_bytes())?;
            }
            let toolchain_with_needs = needing.map(|mut t| {
                t.runtime_lib_dirs = toolchain.runtime_lib_dirs.clone();
                t.runtime_root = toolchain.runtime_root.clone();
                t.run_root = toolchain.run_root.clone();
                t
            });
            builds.push(ArchBuild { name: name.clone(), arch, graph, toolchain, toolchain_with_needs, config_site, config_site_text: site });
        }
        let host_identity = crate::machine::build_sys::compiler_identity();
        let requirements = loaded.python_requirements()?;
        Plan::new(
            PlanInputs {
                build_dir: &self.build_dir,
                python: &crate::python::crosspip::PythonPackages {
                    requirements: requirements.clone(),
                    no_binary: loaded.manifest.distro.python_no_binary.clone(),
                    build_env: loaded.manifest.distro.python_build_env.clone(),
                    config_settings: loaded.python_config_settings(&requirements),
                    wheel_cache: self.wheel_dir.clone(),
                },
                patches_dir: &self.root.join("patches"),
                prefix: &loaded.manifest.distro.prefix,
                host_identity: &host_identity,
                libc: &loaded.manifest.libc,
                image_code: [("crosspip", crate::python::crosspip::VERSION), ("image", crate::engine::image::IMAGE_VERSION)],
            },
            builds,
        )
    }
}

/// An exclusive lock on the build directory, held while the value lives.
/// The lock file says who holds it.
pub struct BuildLock {
    _file: File,
}

impl BuildLock {
    pub fn take(build_dir: &Path, wait: bool) -> Result<BuildLock> {
        Self::take_named(build_dir, "the build directory", wait)
    }

    /// The lock of `dir` (its file `lock`), `what` naming it in the error.
    pub fn take_named(dir: &Path, what: &str, wait: bool) -> Result<BuildLock> {
        fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let path = dir.join("lock");
        let mut file = OpenOptions::new().read(true).write(true).create(true).truncate(false).open(&path)?;
        let got = FileExt::try_lock_exclusive(&file)?;
        if !got {
            let mut holder = String::new();
            let _ = file.read_to_string(&mut holder);
            let holder = holder.trim();
            if !wait {
                bail!(
                    "{what} {} is in use by another crosspython ({}); wait for it to finish, or pass --wait",
                    dir.display(),
                    if holder.is_empty() { "unknown process" } else { holder }
                );
            }
            eprintln!("waiting for {what} {} ({holder})", dir.display());
            FileExt::lock_exclusive(&file)?;
        }
        file.set_len(0)?;
        file.rewind()?;
        let args: Vec<String> = std::env::args().collect();
        write!(file, "pid {}: {}", std::process::id(), args.join(" "))?;
        file.flush()?;
        Ok(BuildLock { _file: file })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_board_is_a_directory_or_a_manifest_board_of_the_arch_by_name() {
        let project = Project::locate(None, None).unwrap();
        let loaded = project.load().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let mut target = Target { board: Some(dir.path().to_path_buf()), ..Default::default() };
        project.resolve_board(&loaded, "aarch64", &mut target).unwrap();
        assert_eq!((target.board.as_deref(), target.board_name.as_deref()), (Some(dir.path()), None), "a directory is taken as it is");
        let mut target = Target { board: Some("debian11-armhf".into()), ..Default::default() };
        let err = project.resolve_board(&loaded, "aarch64", &mut target).unwrap_err().to_string();
        assert!(err.starts_with("--board debian11-armhf is a board for armhf, not aarch64"), "{err}");
        let mut target = Target { board: Some("debian99-arm64".into()), ..Default::default() };
        let err = project.resolve_board(&loaded, "aarch64", &mut target).unwrap_err().to_string();
        assert!(err.contains("no such directory, nor a board of that name") && err.contains("debian13-arm64"), "{err}");
    }

    #[test]
    fn a_second_lock_is_refused_and_names_the_holder() {
        let t = tempfile::tempdir().unwrap();
        let _first = BuildLock::take(t.path(), false).unwrap();
        let err = BuildLock::take(t.path(), false).err().expect("the second lock must be refused").to_string();
        assert!(err.contains("is in use by another crosspython (pid"), "{err}");
        assert!(err.contains("pass --wait"), "{err}");
        // A test run's log directory: a second run of the same arch and
        // kind would write the first one's log and record.
        let runs = t.path().join("aarch64/qemu-user");
        let _run = BuildLock::take_named(&runs, "aarch64's qemu-user test run", false).unwrap();
        let err = BuildLock::take_named(&runs, "aarch64's qemu-user test run", false).err().expect("a second run must be refused").to_string();
        assert!(err.starts_with(&format!("aarch64's qemu-user test run {} is in use by another crosspython (pid", runs.display())), "{err}");
        assert!(BuildLock::take_named(&t.path().join("aarch64/qemu-system"), "aarch64's qemu-system test run", false).is_ok(), "the other kind runs beside it");
    }
}
