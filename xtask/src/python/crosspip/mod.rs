//! Python packages for the target, crossenv-style: pip resolves and
//! downloads wheels for the target's platform, Python version,
//! implementation and ABI (`pip download --platform ...`), and the wheels
//! are installed into the target tree by pypa/installer with the board's
//! interpreter in every script's shebang. pip itself goes in the same way,
//! from the wheel CPython bundles, so that `pip` works on the board.
//!
//! `Session` (here) turns requirements into wheels: from the index
//! (`index`), the built-wheel cache, or an sdist built in a crossenv
//! (`sdist`), whose wheel names no directory of the build (`built`);
//! `target` says what fits the board, `venv` is the build side.

mod built;
mod index;
mod sdist;
mod target;
#[cfg(test)]
mod tests;
mod venv;

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

pub use self::built::record_line;
use self::built::BuildPaths;
use self::index::{download, newest_on_index, older_major, warn_if_pure_python};
pub use self::sdist::MissingLibrary;
use self::sdist::{add_rust_target, build_wheel, cmake_toolchain_file, missing_dependency, rust_env, rust_extension, rust_std_prebuilt, CrossEnv, MesonSetup};
use self::target::wheel_project;
pub use self::target::{ext_suffix_of, ldversion, Target, WheelFile};
use self::venv::run;
pub use self::venv::BuildPython;

/// Bumped when what this module installs changes (an input of `rootfs`).
pub const VERSION: &str = "crosspip-8";

/// The distro's Python packages and how to build them.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct PythonPackages {
    pub requirements: Vec<String>,
    pub no_binary: Vec<String>,
    pub build_env: std::collections::BTreeMap<String, String>,
    /// pip's `--config-settings` for a project's source build (by project
    /// name), from its `[python_package]` table.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub config_settings: std::collections::BTreeMap<String, Vec<String>>,
    /// Built wheels, by arch and python version (not a signature input).
    #[serde(skip)]
    pub wheel_cache: PathBuf,
}

pub fn install_wheels(bp: &BuildPython, t: &Target, wheels: &[PathBuf], log: &mut String) -> Result<()> {
    if wheels.is_empty() {
        return Ok(());
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("python/install_wheels.py");
    let mut cmd = Command::new(bp.python());
    cmd.arg(&script).arg("--root").arg(t.tree).args(["--prefix", t.prefix, "--pyver", &t.ldversion]).args(wheels);
    run(&mut cmd, log)
}

/// pip from the wheel that CPython bundles in `ensurepip`.
pub fn install_pip(bp: &BuildPython, t: &Target, log: &mut String) -> Result<()> {
    let bundled = t.tree.join(t.prefix.trim_start_matches('/')).join(format!("lib/python{}/ensurepip/_bundled", t.ldversion));
    let wheels: Vec<PathBuf> = fs::read_dir(&bundled)
        .with_context(|| format!("{} is missing: the target python has no bundled pip", bundled.display()))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("pip-") && n.ends_with(".whl")))
        .collect();
    if wheels.len() != 1 {
        bail!("expected one bundled pip wheel in {}, found {}", bundled.display(), wheels.len());
    }
    install_wheels(bp, t, &wheels, log)?;
    if !t.site_packages().join("pip").is_dir() {
        bail!("pip was not installed into {}", t.site_packages().display());
    }
    Ok(())
}

/// Turns requirements into wheels that fit the target: a wheel from the
/// index when one fits, else one built earlier for this arch and python
/// (the built-wheel cache), else one built now from the sdist in a
/// crossenv with the target's sysconfig and compiler.
pub struct Session<'a> {
    pub bp: BuildPython,
    pub target: Target<'a>,
    /// Built wheels of this arch and python.
    cache: PathBuf,
    env: Vec<(String, String)>,
    /// pip's `--config-settings` by project name.
    pub config_settings: std::collections::BTreeMap<String, Vec<String>>,
    meson_cross: PathBuf,
    crossenv_dir: PathBuf,
    host_python: PathBuf,
    cc: String,
    ar: String,
    crossenv: Option<CrossEnv>,
    /// What a wheel built here must not keep (`built`).
    build_paths: BuildPaths,
}

/// The built-wheel cache's format, part of its directory's name: 2 since
/// its wheels name no build directory (`built`), 3 since two builds of one
/// sdist give the same wheel (`sdist::fixed_names`, the build's
/// `SOURCE_DATE_EPOCH`); the wheels of an older format are left where they
/// are, unused.
const BUILT_WHEELS_FORMAT: u32 = 3;

/// Runs before a requirement's wheel is built from source or taken from
/// the built-wheel cache (see `Session::wheels`).
pub type OwnWheel<'f> = &'f mut dyn FnMut(&str, &mut String) -> Result<()>;

/// What became of a requirement.
enum Route {
    /// Its wheel: a requirement for the last download, or a built wheel's path.
    Take(String),
    /// A dependency it needs, with no wheel for the target, to build first.
    DependencyFirst(String),
}

/// The dependencies built first for the requirements that needed them.
#[derive(Default)]
struct Dependencies {
    /// Their projects, each tried once.
    tried: std::collections::BTreeSet<String>,
    /// Project -> the requirement that needed it.
    needed_by: std::collections::BTreeMap<String, String>,
}

impl<'a> Session<'a> {
    /// `work` is the arch's build directory (crossenv, meson cross file);
    /// `host_python` the target interpreter in a tree with its sysconfig.
    pub fn new(
        bp: BuildPython,
        target: Target<'a>,
        py: &PythonPackages,
        build_dir: &Path,
        work: &Path,
        tc: &crate::machine::toolchain::Toolchain,
        host_python: &Path,
    ) -> Result<Session<'a>> {
        let tree = target.tree;
        let libdir = tree.join(target.prefix.trim_start_matches('/'));
        let mut env: Vec<(String, String)> = py.build_env.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        // The prefix maps keep this build's paths out of the extension modules.
        // The interpreter's headers too: build scripts that ask the cross
        // python for them (cryptography-cffi's) get a path of its own build.
        let cflags = format!(
            "-O2 -I{0}/include -I{0}/include/python{1} -ffile-prefix-map={2}=/usr/src/debug -ffile-prefix-map={3}=/",
            libdir.display(),
            target.ldversion,
            build_dir.display(),
            tree.display()
        );
        env.push(("CFLAGS".into(), cflags.clone()));
        // And C++'s (numpy's sorting and linalg): without them its objects
        // named the tree's headers and pip's build directory as they are.
        env.push(("CXXFLAGS".into(), cflags.clone()));
        // The cc crate (the C parts of Rust extensions: orjson's yyjson,
        // openssl-sys's probe) gives clang `--target=<its triple>`, which
        // overrides the zig wrapper's own and which zig cannot parse
        // (`riscv64-unknown-linux-gnu`: "UnknownOperatingSystem"). Without
        // its default flags it gives none; -fPIC, one of them, comes here.
        env.push(("CRATE_CC_NO_DEFAULTS".into(), "1".into()));
        env.push((format!("CFLAGS_{}", target.arch.rust_target.replace(['-', '.'], "_")), format!("{cflags} -fPIC")));
        env.push(("LDFLAGS".into(), format!("-L{0}/lib -Wl,-rpath-link,{0}/lib", libdir.display())));
        env.push(("PKG_CONFIG_LIBDIR".into(), format!("{}/lib/pkgconfig", libdir.display())));
        env.push(("PKG_CONFIG_SYSROOT_DIR".into(), tree.display().to_string()));
        env.extend(rust_env(target.arch, &tc.cc, &libdir.join("lib"), &target.pyver));
        // C++ extensions (ujson): the target interpreter's sysconfig says
        // `c++`, the build machine's; setuptools takes these instead.
        env.push(("CXX".into(), tc.tool("g++")));
        env.push(("LDCXXSHARED".into(), format!("{} -shared", tc.tool("g++"))));
        // CMake-based backends (scikit-build-core: pyzmq) cross-compile
        // with a toolchain file (CMake reads CMAKE_TOOLCHAIN_FILE from the
        // environment), and take no offence at meson-python's settings.
        let cmake_toolchain = work.join("cmake-toolchain.cmake");
        fs::write(&cmake_toolchain, cmake_toolchain_file(target.arch, tc, tree)).with_context(|| format!("cannot write {}", cmake_toolchain.display()))?;
        env.push(("CMAKE_TOOLCHAIN_FILE".into(), cmake_toolchain.display().to_string()));
        env.push(("SKBUILD_STRICT_CONFIG".into(), "false".into()));
        let meson_cross = work.join("meson-cross.ini");
        // Programs meson runs need only the C library: the board root's (zig's
        // output), or the tree's copy of the toolchain's.
        tc.meson_cross_file(target.arch, Some(tc.run_root.as_deref().unwrap_or(target.tree)), &meson_cross)?;
        // Built wheels are only good for the compiler and glibc floor that built them.
        let compiler = &crate::sources::fetch::sha256_bytes(tc.identity().as_bytes())[..12];
        let cache = py.wheel_cache.join(format!("{}-{}-{compiler}-{BUILT_WHEELS_FORMAT}", target.name, target.abi_tag()));
        let build_paths = BuildPaths::new(build_dir, tree, target.name);
        Ok(Session {
            bp,
            target,
            cache,
            env,
            meson_cross,
            crossenv_dir: work.join("crossenv"),
            host_python: host_python.to_path_buf(),
            cc: tc.cc_command(None),
            ar: tc.tool("ar"),
            crossenv: None,
            config_settings: py.config_settings.clone(),
            build_paths,
        })
    }

    /// Download (or build) into `dest` the wheels of `requirements` and of
    /// everything they need; `no_binary` names projects (or `:all:`) to
    /// build from source. Each route is logged as `ROUTE <req>: ...`.
    /// `own_wheel(req)` runs before `req` is built from source or taken
    /// from the built-wheel cache: such a wheel links the tree's libraries
    /// (pip install brings the package's recipes into the tree then).
    pub fn wheels(&mut self, requirements: &[String], no_binary: &[String], dest: &Path, log: &mut String, own_wheel: OwnWheel) -> Result<Vec<PathBuf>> {
        self.drop_wheels_of_another_abi(log)?;
        let mut wanted = vec![];
        // A requirement whose wheel needs a dependency with no wheel for the
        // target (pydantic 2 needs pydantic-core) has the dependency built
        // from source first, then is tried again, once.
        let mut queue: std::collections::VecDeque<String> = requirements.iter().cloned().collect();
        let mut deps = Dependencies::default();
        // The wheels of the requirements' dependencies come with the last
        // download: a dependency found without a wheel there goes through
        // the queue as well, and the download is tried again.
        let wheels = loop {
            while let Some(req) = queue.pop_front() {
                match self.route(&req, no_binary, log, own_wheel, &mut deps)? {
                    Route::Take(wheel) => wanted.push(wheel),
                    Route::DependencyFirst(dep) => {
                        queue.push_front(req);
                        queue.push_front(dep);
                    }
                }
            }
            let said = log.len();
            match download(&self.bp, &self.target, &wanted, &self.cache, dest, false, log) {
                Ok(wheels) => break wheels,
                Err(e) => match missing_dependency(&log[said..]) {
                    Some(dep) if deps.tried.insert(project_name(&dep)) => {
                        writeln!(log, "ROUTE {dep}: a dependency with no wheel for the target; building it")?;
                        queue.push_back(dep);
                    }
                    _ => return Err(e),
                },
            }
        };
        self.older_majors(requirements, &wheels, log)?;
        Ok(wheels)
    }

    /// Wheels built for an earlier build of the interpreter with another
    /// ABI (extension suffix) are dropped from the cache, and rebuilt.
    fn drop_wheels_of_another_abi(&self, log: &mut String) -> Result<()> {
        for e in fs::read_dir(&self.cache).into_iter().flatten().flatten() {
            if e.path().extension().is_some_and(|x| x == "whl") {
                if let Err(why) = self.target.check_wheel_extensions(&e.path()) {
                    writeln!(log, "dropped from the built-wheel cache: {why:#}")?;
                    fs::remove_file(e.path())?;
                }
            }
        }
        Ok(())
    }

    /// Where `req`'s wheel comes from: the index (a wheel that fits the
    /// board), the built-wheel cache, or a build from source; or first a
    /// dependency with no wheel for the target.
    fn route(&mut self, req: &str, no_binary: &[String], log: &mut String, own_wheel: OwnWheel, deps: &mut Dependencies) -> Result<Route> {
        let name = project_name(req);
        let local_sdist = Path::new(req).is_file() && !req.ends_with(".whl");
        let from_source = local_sdist || no_binary.iter().any(|n| project_name(n) == name || n == ":all:");
        if !from_source {
            if let Some(route) = self.index_wheel(req, log, own_wheel, deps)? {
                return Ok(route);
            }
        }
        // A wheel built before for this arch and python that satisfies
        // the requirement: no second build.
        let cached = tempfile::tempdir()?;
        if let Ok(found) = download(&self.bp, &self.target, &[req.to_string()], &self.cache, cached.path(), true, log) {
            if let Some(w) = found.iter().find(|w| wheel_project(w) == name) {
                let kept = self.cache.join(w.file_name().unwrap());
                own_wheel(req, log)?;
                writeln!(log, "ROUTE {req}: built from sdist earlier ({})", kept.file_name().unwrap().to_string_lossy())?;
                warn_if_pure_python(req, &kept, log)?;
                return Ok(Route::Take(kept.display().to_string()));
            }
        }
        own_wheel(req, log)?;
        let wheel = self.build_from_source(req, log).map_err(|e| match deps.needed_by.get(&name) {
            Some(parent) => e.context(format!("{parent} needs {req}, which has no wheel for the target and cannot be built for it")),
            None => e,
        })?;
        Ok(Route::Take(wheel.display().to_string()))
    }

    /// `req` from the index: its wheel when one runs on the board, `None`
    /// when there is none (or it needs a newer loader than the board's),
    /// or first a dependency with no wheel for the target.
    fn index_wheel(&mut self, req: &str, log: &mut String, own_wheel: OwnWheel, deps: &mut Dependencies) -> Result<Option<Route>> {
        let name = project_name(req);
        // pip may succeed without a wheel of the project (a direct sdist
        // link): only a wheel of it counts.
        let said = log.len();
        let probe = tempfile::tempdir()?;
        let found = download(&self.bp, &self.target, &[req.to_string()], &self.cache, probe.path(), false, log);
        if found.is_err() {
            if let Some(dep) = missing_dependency(&log[said..]).filter(|d| project_name(d) != name) {
                if deps.tried.insert(project_name(&dep)) {
                    writeln!(log, "ROUTE {req}: needs {dep}, which has no wheel for the target; building it first")?;
                    deps.needed_by.insert(project_name(&dep), req.to_string());
                    return Ok(Some(Route::DependencyFirst(dep)));
                }
            }
        }
        let Some(w) = found.ok().and_then(|ws| ws.into_iter().find(|w| wheel_project(w) == name)) else {
            return Ok(None);
        };
        if let Some(why) = self.target.wheel_needs_newer_loader(&w)? {
            writeln!(log, "ROUTE {req}: not the wheel: {why}; building from source")?;
            return Ok(None);
        }
        let file = w.file_name().unwrap().to_string_lossy().into_owned();
        // The built-wheel cache is one of pip's find-links.
        let built_here = self.cache.join(&file).exists();
        let route = if built_here { "built from sdist earlier" } else { "wheel" };
        writeln!(log, "ROUTE {req}: {route} ({file})")?;
        if built_here {
            own_wheel(req, log)?;
            warn_if_pure_python(req, &w, log)?;
        }
        Ok(Some(Route::Take(req.to_string())))
    }

    /// A wheel of `req` built from its sdist in the crossenv (made on first
    /// need), checked to load on the target.
    fn build_from_source(&mut self, req: &str, log: &mut String) -> Result<PathBuf> {
        let name = project_name(req);
        if self.crossenv.is_none() {
            self.crossenv = Some(CrossEnv::ensure(&self.bp, &self.target, &self.host_python, &self.cc, &self.ar, &self.crossenv_dir, log)?);
        }
        let started = std::time::Instant::now();
        let setup = MesonSetup { cross_file: &self.meson_cross, build_config: self.target.build_details() };
        let settings = self.config_settings.get(&name).cloned().unwrap_or_default();
        // Built beside the cache and moved in once it is checked and names
        // no directory of this build: the cache never holds a wheel that
        // is not.
        fs::create_dir_all(&self.cache)?;
        let staged = tempfile::tempdir_in(&self.cache)?;
        let mut built = build_wheel(self.crossenv.as_ref().unwrap(), req, &self.env, &setup, &settings, staged.path(), log);
        // A Rust extension needs rustup's standard library for the
        // target: added on first need, then the build is tried again.
        if built.as_ref().is_err_and(|e| rust_extension(&format!("{e:#}"))) && add_rust_target(&self.target.arch.rust_target, log)? {
            built = build_wheel(self.crossenv.as_ref().unwrap(), req, &self.env, &setup, &settings, staged.path(), log);
        }
        let wheel = built.map_err(|e| self.why_not_built(req, e))?;
        if let Err(why) = self.target.check_wheel_extensions(&wheel) {
            bail!("{req}: the cross build gave a wheel the target cannot import: {why:#}");
        }
        let rewritten =
            built::keep_build_paths_out(&wheel, &self.build_paths).with_context(|| format!("{req}: cannot keep the build's paths out of its wheel"))?;
        if rewritten > 0 {
            writeln!(log, "{req}: {rewritten} file(s) of its wheel named this build's directories; rewritten as rootfs rewrites the tree")?;
        }
        let kept = self.cache.join(wheel.file_name().unwrap());
        fs::rename(&wheel, &kept)?;
        let wheel = kept;
        let wheel = self.retag_mislabelled(req, wheel, log)?;
        let file = wheel.file_name().unwrap().to_string_lossy().into_owned();
        writeln!(log, "ROUTE {req}: built from sdist in {:.0}s ({file})", started.elapsed().as_secs_f64())?;
        warn_if_pure_python(req, &wheel, log)?;
        Ok(wheel)
    }

    /// What a failed source build means beyond pip's output: a Rust
    /// extension's target, a free-threaded interpreter's ABI.
    fn why_not_built(&self, req: &str, e: anyhow::Error) -> anyhow::Error {
        if rust_extension(&format!("{e:#}")) {
            let std = match rust_std_prebuilt(&self.target.arch.rust_target) {
                Some(false) => format!(
                    "; Rust has no prebuilt standard library for {} (a tier 3 target: it would take a nightly toolchain and -Zbuild-std)",
                    self.target.arch.rust_target
                ),
                _ => String::new(),
            };
            return e.context(format!(
                "{req}: building its Rust extension (setuptools-rust or maturin) for {} failed{std}; \
                 take a release with a wheel for {} or leave it out",
                self.target.arch.rust_target,
                self.target.platform_tags()[0]
            ));
        }
        if self.target.free_threaded() {
            // Say why a package with abi3 wheels came to a source build.
            e.context(format!(
                "{req}: no {} wheel fits the target (abi3 wheels do not count: a free-threaded interpreter cannot load them, PEP 703), so it was built from source",
                self.target.abi_tag()
            ))
        } else {
            e
        }
    }

    /// A wheel built here that says it is pure Python (`none-any`) but
    /// holds extension modules of the target gets the target's tags: the
    /// tag is what pip on the board and the checks here go by.
    /// scikit-build-core in a crossenv tags pyzmq so.
    fn retag_mislabelled(&self, req: &str, wheel: PathBuf, log: &mut String) -> Result<PathBuf> {
        let (Ok(w), Some(suffix)) = (WheelFile::parse(&wheel), self.target.ext_suffix()) else { return Ok(wheel) };
        if !(w.abis == ["none"] && w.platforms == ["any"]) {
            return Ok(wheel);
        }
        let zip = zip::ZipArchive::new(fs::File::open(&wheel)?).with_context(|| format!("{} is not a zip file", wheel.display()))?;
        if !zip.file_names().any(|n| n.ends_with(&suffix)) {
            return Ok(wheel);
        }
        let (abi, platform) = (self.target.abi_tag(), self.target.platform_tags().pop().expect("linux_<machine> is always a tag"));
        let file = wheel.file_name().unwrap().to_string_lossy().into_owned();
        let retagged = wheel.with_file_name(file.replace("-none-any.whl", &format!("-{abi}-{platform}.whl")));
        run(Command::new(self.bp.python()).args(["-m", "wheel", "tags", "--remove", "--abi-tag", &abi, "--platform-tag", &platform]).arg(&wheel), log)
            .with_context(|| format!("{req}: cannot retag {file}"))?;
        anyhow::ensure!(retagged.is_file(), "{req}: `wheel tags` did not write {}", retagged.display());
        writeln!(log, "{req}: {file} holds extension modules for the target ({suffix}); retagged {}", retagged.file_name().unwrap().to_string_lossy())?;
        Ok(retagged)
    }

    /// pip's resolver backtracks silently: when a newer release needs a
    /// package with no wheel for the target (pydantic 2 needs
    /// pydantic-core), it takes an older one that has none (pydantic
    /// 1.10, pure Python). Say so when it went back a whole major version
    /// and the requirement did not ask for it.
    fn older_majors(&self, requirements: &[String], wheels: &[PathBuf], log: &mut String) -> Result<()> {
        for req in requirements.iter().filter(|r| !Path::new(r).exists() && !r.contains(['<', '=', '~', '@'])) {
            let name = project_name(req);
            let Some(chosen) = wheels.iter().filter_map(|w| WheelFile::parse(w).ok()).find(|w| w.project == name) else { continue };
            let mut cmd = Command::new(self.bp.python());
            cmd.args(["-m", "pip", "index", "versions", &name]);
            let Ok(out) = crate::base::process::output(&mut cmd) else { continue };
            let Some(newest) = newest_on_index(&String::from_utf8_lossy(&out.stdout)) else { continue };
            if let Some(warning) = older_major(&name, &chosen.version, &newest, &self.target.platform_tags()[0]) {
                writeln!(log, "WARNING {warning}")?;
            }
        }
        Ok(())
    }
}

pub use crate::model::manifest::project_name;
