//! Python packages for the target, crossenv-style: pip resolves and
//! downloads wheels for the target's platform, Python version,
//! implementation and ABI (`pip download --platform ...`), and the wheels
//! are installed into the target tree by pypa/installer with the board's
//! interpreter in every script's shebang. pip itself goes in the same way,
//! from the wheel CPython bundles, so that `pip` works on the board.

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::model::manifest::Arch;

/// Bumped when what this module installs changes (an input of `rootfs`).
pub const VERSION: &str = "crosspip-8";

/// The build-side environment: the native python of the target's version
/// and a venv beside it with the packaging tools.
pub struct BuildPython {
    pub venv: PathBuf,
}

/// Packages the build venv needs, pinned so that signatures mean something.
const BUILD_TOOLS: [&str; 2] = ["installer==0.7.0", "crossenv==1.6.2"];

impl BuildPython {
    /// Create (once) the venv at `dir` from `native_python`.
    pub fn ensure(native_python: &Path, dir: &Path, log: &mut String) -> Result<BuildPython> {
        let stamp = dir.join(".crosspython-ready");
        let wanted = format!("{}\n{}\n", native_python.display(), BUILD_TOOLS.join("\n"));
        if fs::read_to_string(&stamp).ok().as_deref() == Some(wanted.as_str()) {
            return Ok(BuildPython { venv: dir.to_path_buf() });
        }
        crate::base::sysroot::remove(dir)?;
        run(Command::new(native_python).args(["-m", "venv"]).arg(dir), log).with_context(|| format!("cannot create the build venv {}", dir.display()))?;
        run(Command::new(dir.join("bin/python")).args(["-m", "pip", "install", "--quiet"]).args(BUILD_TOOLS), log)
            .context("cannot install the build tools into the build venv (is PyPI reachable?)")?;
        fs::write(&stamp, wanted)?;
        Ok(BuildPython { venv: dir.to_path_buf() })
    }

    fn python(&self) -> PathBuf {
        self.venv.join("bin/python")
    }
}

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

/// Where and for what the packages go.
pub struct Target<'a> {
    /// The manifest's name of the arch.
    pub name: &'a str,
    pub arch: &'a Arch,
    pub tree: &'a Path,
    pub prefix: &'a str,
    /// "3.14"
    pub pyver: String,
    /// "3.14t" for a free-threaded CPython, else as `pyver`: the name of
    /// its stdlib and include directories (CPython's LDVERSION).
    pub ldversion: String,
    /// The boards' glibc (the newest manylinux that fits), or None for musl.
    pub glibc: Option<(u32, u32)>,
    /// When the boards' loader skips `DT_RELR` relocations: the C library
    /// version that would apply them. A wheel whose shared objects have
    /// them (musllinux wheels linked on current Alpine do) is not taken.
    pub relr_from: Option<String>,
}

/// CPython's LDVERSION in a tree: `3.14t` when the interpreter there is
/// free-threaded (its stdlib is `lib/python3.14t`), else `3.14`.
pub fn ldversion(tree: &Path, prefix: &str, pyver: &str) -> String {
    let t = format!("{pyver}t");
    if tree.join(prefix.trim_start_matches('/')).join(format!("lib/python{t}")).is_dir() {
        t
    } else {
        pyver.to_string()
    }
}

impl<'a> Target<'a> {
    pub fn new(name: &'a str, arch: &'a Arch, tree: &'a Path, prefix: &'a str, pyver: String, tc: &crate::machine::toolchain::Toolchain) -> Result<Target<'a>> {
        // manylinux_2_N up to the glibc the board has at least (the floor),
        // not the build machine's.
        let glibc = match arch.libc {
            crate::model::manifest::LibcKind::Musl => None,
            crate::model::manifest::LibcKind::Glibc => Some(tc.glibc.context("the toolchain targets no known glibc version (set libc.glibc_floor)")?),
        };
        let ldversion = ldversion(tree, prefix, &pyver);
        Ok(Target { name, arch, tree, prefix, pyver, ldversion, glibc, relr_from: None })
    }

    /// A free-threaded interpreter (PEP 703), which cannot load `abi3` modules.
    pub fn free_threaded(&self) -> bool {
        self.ldversion.ends_with('t')
    }

    /// The wheel ABI tag of the interpreter: `cp314`, or `cp314t`.
    pub fn abi_tag(&self) -> String {
        format!("cp{}{}", self.pyver.replace('.', ""), &self.ldversion[self.pyver.len()..])
    }

    /// The ABI tags of wheels that load: never `abi3` on a free-threaded
    /// interpreter (PEP 703: the stable ABI is not supported there).
    pub fn abi_tags(&self) -> Vec<String> {
        let mut tags = vec![self.abi_tag()];
        if !self.free_threaded() {
            tags.push("abi3".into());
        }
        tags.push("none".into());
        tags
    }

    /// Platform tags whose wheels run on the board, most specific first.
    pub fn platform_tags(&self) -> Vec<String> {
        // pip on the board tags by `uname -m`: the arch's `machine`.
        let arch = &self.arch.machine;
        let mut tags: Vec<String> = match self.glibc {
            Some(glibc) => {
                let mut t: Vec<String> = (17..=glibc.1).rev().map(|m| format!("manylinux_2_{m}_{arch}")).collect();
                t.push(format!("manylinux2014_{arch}"));
                t
            }
            // musl 1.2 (time64) is what every supported board runs; PEP 656.
            None => vec![format!("musllinux_1_2_{arch}"), format!("musllinux_1_1_{arch}")],
        };
        tags.push(format!("linux_{arch}"));
        tags
    }

    /// A wheel file given by path must carry a platform tag of the target
    /// (or `any`): pip's own refusal does not say which tags would fit.
    pub fn check_wheel_fits(&self, wheel: &str) -> Result<()> {
        let w = WheelFile::parse(Path::new(wheel))?;
        let (name, platforms) = (&w.file, &w.platforms);
        let tags = self.platform_tags();
        if !platforms.iter().any(|p| *p == "any" || tags.iter().any(|t| t == p)) {
            bail!(
                "{name} is built for {}, not for {} ({}); the target accepts {} or any",
                platforms.join("."),
                self.name,
                self.arch.triplet,
                [tags.first().map(String::as_str).unwrap_or(""), "...", tags.last().map(String::as_str).unwrap_or("")].join(" ")
            );
        }
        let abis = self.abi_tags();
        if !w.abis.iter().any(|a| abis.contains(a)) {
            let why = if self.free_threaded() && w.abis.iter().any(|a| a == "abi3") {
                " (a free-threaded interpreter cannot load stable-ABI modules, PEP 703)"
            } else {
                ""
            };
            bail!("{name} is built for the ABI {}, the target's python loads {}{why}", w.abis.join("."), abis.join(", "));
        }
        Ok(())
    }

    /// The suffix of the target interpreter's own extension modules
    /// (`.cpython-314-aarch64-linux-musl.so`), from its `_sysconfigdata`.
    pub fn ext_suffix(&self) -> Option<String> {
        ext_suffix_of(&self.tree.join(self.prefix.trim_start_matches('/')).join(format!("lib/python{}", self.ldversion)))
    }

    /// Every version-specific extension module in a wheel must carry the
    /// interpreter's suffix: a wheel built against another interpreter
    /// (a python3 rebuilt with another ABI since) would not be imported.
    pub fn check_wheel_extensions(&self, wheel: &Path) -> Result<()> {
        let Some(suffix) = self.ext_suffix() else { return Ok(()) };
        let file = fs::File::open(wheel).with_context(|| format!("cannot open {}", wheel.display()))?;
        let zip = zip::ZipArchive::new(file).with_context(|| format!("{} is not a wheel (zip) file", wheel.display()))?;
        let strangers: Vec<&str> = zip.file_names().filter(|n| n.ends_with(".so") && n.contains(".cpython-") && !n.ends_with(&suffix)).collect();
        if let Some(first) = strangers.first() {
            bail!(
                "{} holds {first}{}, built for another interpreter: the target's python loads *{suffix}",
                wheel.file_name().unwrap_or_default().to_string_lossy(),
                if strangers.len() > 1 { format!(" and {} more", strangers.len() - 1) } else { String::new() }
            );
        }
        Ok(())
    }

    /// The first shared object of a wheel the boards' loader could not
    /// relocate (`DT_RELR` where it skips them), if any.
    pub fn wheel_needs_newer_loader(&self, wheel: &Path) -> Result<Option<String>> {
        let Some(since) = &self.relr_from else { return Ok(None) };
        let file = fs::File::open(wheel).with_context(|| format!("cannot open {}", wheel.display()))?;
        let mut zip = zip::ZipArchive::new(file).with_context(|| format!("{} is not a wheel (zip) file", wheel.display()))?;
        let scratch = tempfile::tempdir()?;
        for i in 0..zip.len() {
            let mut member = zip.by_index(i)?;
            let name = member.name().to_string();
            if !(name.ends_with(".so") || name.contains(".so.")) {
                continue;
            }
            let path = scratch.path().join("member.so");
            std::io::copy(&mut member, &mut fs::File::create(&path)?)?;
            if crate::machine::elf::inspect(&path)?.is_some_and(|i| i.relr) {
                return Ok(Some(format!("{name} has packed relative relocations (DT_RELR), which loaders before {since} skip")));
            }
        }
        Ok(None)
    }

    /// The interpreter's PEP 739 `build-details.json` (CPython 3.14 on).
    pub fn build_details(&self) -> Option<PathBuf> {
        let file = self.tree.join(self.prefix.trim_start_matches('/')).join(format!("lib/python{}/build-details.json", self.ldversion));
        file.is_file().then_some(file)
    }

    fn site_packages(&self) -> PathBuf {
        self.tree.join(self.prefix.trim_start_matches('/')).join(format!("lib/python{}/site-packages", self.ldversion))
    }
}

/// The extension suffix of the interpreter whose stdlib is `stdlib`
/// (`.cpython-314-aarch64-linux-musl.so`), from its `_sysconfigdata_*.py`.
pub fn ext_suffix_of(stdlib: &Path) -> Option<String> {
    let file = fs::read_dir(stdlib)
        .ok()?
        .flatten()
        .map(|e| e.path())
        .find(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("_sysconfigdata_") && n.ends_with(".py")))?;
    let text = fs::read_to_string(file).ok()?;
    let at = text.find("'EXT_SUFFIX': '")? + "'EXT_SUFFIX': '".len();
    Some(text[at..].split('\'').next()?.to_string())
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
        let cache = py.wheel_cache.join(format!("{}-{}-{compiler}", target.name, target.abi_tag()));
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
        })
    }

    /// Download (or build) into `dest` the wheels of `requirements` and of
    /// everything they need; `no_binary` names projects (or `:all:`) to
    /// build from source. Each route is logged as `ROUTE <req>: ...`.
    /// `own_wheel(req)` runs before `req` is built from source or taken
    /// from the built-wheel cache: such a wheel links the tree's libraries
    /// (pip install brings the package's recipes into the tree then).
    pub fn wheels(
        &mut self,
        requirements: &[String],
        no_binary: &[String],
        dest: &Path,
        log: &mut String,
        own_wheel: &mut dyn FnMut(&str, &mut String) -> Result<()>,
    ) -> Result<Vec<PathBuf>> {
        // Wheels built for an earlier build of the interpreter with another
        // ABI (extension suffix) are dropped from the cache, and rebuilt.
        for e in fs::read_dir(&self.cache).into_iter().flatten().flatten() {
            if e.path().extension().is_some_and(|x| x == "whl") {
                if let Err(why) = self.target.check_wheel_extensions(&e.path()) {
                    writeln!(log, "dropped from the built-wheel cache: {why:#}")?;
                    fs::remove_file(e.path())?;
                }
            }
        }
        let mut wanted = vec![];
        // A requirement whose wheel needs a dependency with no wheel for the
        // target (pydantic 2 needs pydantic-core) has the dependency built
        // from source first, then is tried again, once.
        let mut queue: std::collections::VecDeque<String> = requirements.iter().cloned().collect();
        let mut tried_deps = std::collections::BTreeSet::new();
        let mut needed_by: std::collections::BTreeMap<String, String> = Default::default();
        // The wheels of the requirements' dependencies come with the last
        // download: a dependency found without a wheel there goes through
        // the queue as well, and the download is tried again.
        let wheels = loop {
            while let Some(req) = queue.pop_front() {
                let req = &req;
                let name = project_name(req);
                let local_sdist = Path::new(req).is_file() && !req.ends_with(".whl");
                let from_source = local_sdist || no_binary.iter().any(|n| project_name(n) == name || n == ":all:");
                let probe = tempfile::tempdir()?;
                if !from_source {
                    // pip may succeed without a wheel of the project (a direct
                    // sdist link): only a wheel of it counts.
                    let said = log.len();
                    let found = download(&self.bp, &self.target, std::slice::from_ref(req), &self.cache, probe.path(), false, log);
                    if found.is_err() {
                        if let Some(dep) = missing_dependency(&log[said..]).filter(|d| project_name(d) != name) {
                            if tried_deps.insert(project_name(&dep)) {
                                writeln!(log, "ROUTE {req}: needs {dep}, which has no wheel for the target; building it first")?;
                                queue.push_front(req.clone());
                                needed_by.insert(project_name(&dep), req.clone());
                                queue.push_front(dep);
                                continue;
                            }
                        }
                    }
                    let found = found.ok().and_then(|ws| ws.into_iter().find(|w| wheel_project(w) == name));
                    let too_new = match &found {
                        Some(w) => self.target.wheel_needs_newer_loader(w)?,
                        None => None,
                    };
                    if let Some(why) = &too_new {
                        writeln!(log, "ROUTE {req}: not the wheel: {why}; building from source")?;
                    }
                    if let Some(w) = found.filter(|_| too_new.is_none()) {
                        let file = w.file_name().unwrap().to_string_lossy().into_owned();
                        // The built-wheel cache is one of pip's find-links.
                        let built_here = self.cache.join(&file).exists();
                        let route = if built_here { "built from sdist earlier" } else { "wheel" };
                        writeln!(log, "ROUTE {req}: {route} ({file})")?;
                        if built_here {
                            own_wheel(req, log)?;
                            warn_if_pure_python(req, &w, log)?;
                        }
                        wanted.push(req.clone());
                        continue;
                    }
                }
                // A wheel built before for this arch and python that satisfies
                // the requirement: no second build.
                let cached = tempfile::tempdir()?;
                if let Ok(found) = download(&self.bp, &self.target, std::slice::from_ref(req), &self.cache, cached.path(), true, log) {
                    if let Some(w) = found.iter().find(|w| wheel_project(w) == name) {
                        let kept = self.cache.join(w.file_name().unwrap());
                        own_wheel(req, log)?;
                        writeln!(log, "ROUTE {req}: built from sdist earlier ({})", kept.file_name().unwrap().to_string_lossy())?;
                        warn_if_pure_python(req, &kept, log)?;
                        wanted.push(kept.display().to_string());
                        continue;
                    }
                }
                own_wheel(req, log)?;
                if self.crossenv.is_none() {
                    self.crossenv = Some(CrossEnv::ensure(&self.bp, &self.target, &self.host_python, &self.cc, &self.ar, &self.crossenv_dir, log)?);
                }
                let started = std::time::Instant::now();
                let setup = MesonSetup { cross_file: &self.meson_cross, build_config: self.target.build_details() };
                let settings = self.config_settings.get(&name).cloned().unwrap_or_default();
                let mut built = build_wheel(self.crossenv.as_ref().unwrap(), req, &self.env, &setup, &settings, &self.cache, log);
                // A Rust extension needs rustup's standard library for the
                // target: added on first need, then the build is tried again.
                if built.as_ref().is_err_and(|e| rust_extension(&format!("{e:#}"))) && add_rust_target(&self.target.arch.rust_target, log)? {
                    built = build_wheel(self.crossenv.as_ref().unwrap(), req, &self.env, &setup, &settings, &self.cache, log);
                }
                let wheel = built.map_err(|e| {
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
            })
            .map_err(|e| match needed_by.get(&name) {
                Some(parent) => e.context(format!("{parent} needs {req}, which has no wheel for the target and cannot be built for it")),
                None => e,
            })?;
                if let Err(why) = self.target.check_wheel_extensions(&wheel) {
                    fs::remove_file(&wheel)?;
                    bail!("{req}: the cross build gave a wheel the target cannot import: {why:#}");
                }
                let wheel = self.retag_mislabelled(req, wheel, log)?;
                let file = wheel.file_name().unwrap().to_string_lossy().into_owned();
                writeln!(log, "ROUTE {req}: built from sdist in {:.0}s ({file})", started.elapsed().as_secs_f64())?;
                warn_if_pure_python(req, &wheel, log)?;
                wanted.push(wheel.display().to_string());
            }
            let said = log.len();
            match download(&self.bp, &self.target, &wanted, &self.cache, dest, false, log) {
                Ok(wheels) => break wheels,
                Err(e) => match missing_dependency(&log[said..]) {
                    Some(dep) if tried_deps.insert(project_name(&dep)) => {
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

/// A wheel built from an sdist that came out `py3-none-any` is suspicious:
/// bcrypt 5's sdist without a Rust toolchain installs, then fails to
/// import its extension.
fn warn_if_pure_python(req: &str, wheel: &Path, log: &mut String) -> Result<()> {
    if WheelFile::parse(wheel).is_ok_and(|w| w.abis == ["none"] && w.platforms == ["any"]) {
        writeln!(
            log,
            "WARNING {req}: its sdist built as a pure-Python wheel ({}); if the project has compiled parts (C, Cython, Rust), they were not built, and the import check on the target will say so",
            wheel.file_name().unwrap_or_default().to_string_lossy()
        )?;
    }
    Ok(())
}

/// Rust extensions (setuptools-rust, maturin): cargo builds for the arch's
/// Rust triple and links with the toolchain's compiler (zig's wrapper);
/// PyO3 reads the target interpreter's sysconfig from its lib directory
/// instead of asking the crossenv's python. On musl, a cdylib must not link
/// the C runtime statically (rust-lang/rust#59302).
fn rust_env(arch: &Arch, cc: &Path, libdir: &Path, pyver: &str) -> Vec<(String, String)> {
    let triple = &arch.rust_target;
    let var = triple.to_uppercase().replace(['-', '.'], "_");
    let mut env = vec![
        ("CARGO_BUILD_TARGET".to_string(), triple.clone()),
        (format!("CARGO_TARGET_{var}_LINKER"), cc.display().to_string()),
        ("PYO3_CROSS_LIB_DIR".to_string(), libdir.display().to_string()),
        ("PYO3_CROSS_PYTHON_VERSION".to_string(), pyver.to_string()),
    ];
    if arch.libc == crate::model::manifest::LibcKind::Musl {
        env.push((format!("CARGO_TARGET_{var}_RUSTFLAGS"), "-C target-feature=-crt-static".to_string()));
    }
    env
}

/// Make rustup's standard library for `triple` present when rustup has a
/// prebuilt one and it is missing: true when it was added now.
fn add_rust_target(triple: &str, log: &mut String) -> Result<bool> {
    if rust_std_prebuilt(triple) != Some(true) {
        return Ok(false);
    }
    let installed = crate::base::process::checked(Command::new("rustup").args(["target", "list", "--installed"]))?;
    if String::from_utf8_lossy(&installed.stdout).lines().any(|l| l.trim() == triple) {
        return Ok(false);
    }
    run(Command::new("rustup").args(["target", "add", triple]), log).with_context(|| format!("rustup target add {triple}"))?;
    Ok(true)
}

/// Whether a failed source build was of a Rust extension, by what its
/// build backend printed.
fn rust_extension(printed: &str) -> bool {
    ["setuptools_rust", "setuptools-rust", "maturin", "can't find Rust compiler", "cargo rustc", "Cargo.toml"].iter().any(|m| printed.contains(m))
}

/// Whether rustup offers a prebuilt standard library for a Rust target
/// (tier 1 and 2); None without rustup.
fn rust_std_prebuilt(triple: &str) -> Option<bool> {
    let out = crate::base::process::checked(Command::new("rustup").args(["target", "list"])).ok()?;
    Some(String::from_utf8_lossy(&out.stdout).lines().any(|l| l.split_whitespace().next() == Some(triple)))
}

/// The newest version `pip index versions` names (`pydantic (2.12.4)`).
fn newest_on_index(printed: &str) -> Option<String> {
    let first = printed.lines().next()?;
    Some(first.split_once('(')?.1.split_once(')')?.0.trim().to_string())
}

/// The warning for a release older by a major version than the newest.
fn older_major(name: &str, chosen: &str, newest: &str, platform: &str) -> Option<String> {
    let major = |v: &str| v.split(|c: char| !c.is_ascii_digit()).next().and_then(|m| m.parse::<u64>().ok());
    (major(chosen)? < major(newest)?).then(|| {
        format!(
            "{name}: pip took {chosen}, not {newest}, the newest on the index: the newer releases need a package with no wheel for {platform} \
             that is not built from source here; require \"{name}>={newest}\" to see which, and name it in --no-binary (distro.python_no_binary) to build it"
        )
    })
}

/// What a wheel's file name says (`name-version[-build]-python-abi-platform.whl`).
pub struct WheelFile {
    pub file: String,
    /// Normalized (PEP 503).
    pub project: String,
    pub version: String,
    /// The ABI tags, split at `.` (`cp314`, `abi3`, `none`).
    pub abis: Vec<String>,
    /// The platform tags, split at `.` (`manylinux_2_27_aarch64.manylinux_2_28_aarch64`).
    pub platforms: Vec<String>,
}

impl WheelFile {
    pub fn parse(path: &Path) -> Result<WheelFile> {
        let file = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let parts: Vec<&str> = file.strip_suffix(".whl").unwrap_or("").split('-').collect();
        if parts.len() < 5 {
            bail!("{file} is not a wheel file name (name-version-python-abi-platform.whl)");
        }
        Ok(WheelFile {
            project: project_name(parts[0]),
            version: parts[1].to_string(),
            abis: parts[parts.len() - 2].split('.').map(String::from).collect(),
            platforms: parts[parts.len() - 1].split('.').map(String::from).collect(),
            file,
        })
    }
}

/// The normalized project name of a wheel file ("" for another name).
fn wheel_project(wheel: &Path) -> String {
    WheelFile::parse(wheel).map(|w| w.project).unwrap_or_default()
}

pub use crate::model::manifest::project_name;

/// Resolve `requirements` for the target with pip and download the wheels
/// into `dest`; wheels already in `find_links` (the built-wheel cache) count.
/// With `cache_only`, only `find_links` is looked at: the built-wheel cache
/// answers whether a source build can be skipped.
pub fn download(
    bp: &BuildPython,
    t: &Target,
    requirements: &[String],
    find_links: &Path,
    dest: &Path,
    cache_only: bool,
    log: &mut String,
) -> Result<Vec<PathBuf>> {
    if requirements.is_empty() {
        return Ok(vec![]);
    }
    fs::create_dir_all(dest)?;
    fs::create_dir_all(find_links)?;
    let mut cmd = Command::new(bp.python());
    cmd.args(["-m", "pip", "download", "--only-binary=:all:", "--python-version", &t.pyver, "--implementation", "cp"]);
    for a in t.abi_tags() {
        cmd.args(["--abi", &a]);
    }
    for p in t.platform_tags() {
        cmd.args(["--platform", &p]);
    }
    if cache_only {
        // Only whether this project was built before: its dependencies
        // are resolved with the index in the final download.
        cmd.args(["--no-index", "--no-deps"]);
    }
    cmd.arg("--find-links").arg(find_links).arg("--dest").arg(dest).args(requirements);
    run(&mut cmd, log).with_context(|| {
        let abi3 = if t.free_threaded() { "; abi3 wheels do not count: a free-threaded interpreter cannot load them (PEP 703)" } else { "" };
        format!("pip found no wheels for the target ({}, {}) for: {}{abi3}", t.platform_tags()[0], t.abi_tag(), requirements.join(" "))
    })?;
    let files: Vec<PathBuf> = fs::read_dir(dest)?.flatten().map(|e| e.path()).collect();
    if let Some(other) = files.iter().find(|p| p.extension().is_none_or(|e| e != "whl")) {
        bail!("pip gave {} instead of a wheel for the target", other.file_name().unwrap().to_string_lossy());
    }
    let mut wheels = files;
    wheels.sort();
    Ok(wheels)
}

/// A crossenv: a "cross python" whose sysconfig is the target's (compiler,
/// EXT_SUFFIX, platform tag) and a "build python" beside it where build
/// dependencies (setuptools, Cython, meson, ...) are installed as
/// build-machine tools, never as target wheels.
pub struct CrossEnv {
    dir: PathBuf,
}

impl CrossEnv {
    /// Create (once per target python and compiler) the crossenv at `dir`.
    /// `host_python` is the target interpreter in a tree that holds its
    /// `_sysconfigdata_*.py`.
    pub fn ensure(bp: &BuildPython, t: &Target, host_python: &Path, cc: &str, ar: &str, dir: &Path, log: &mut String) -> Result<CrossEnv> {
        let stamp = dir.join(".crosspython-ready");
        // The extension suffix too: a python3 rebuilt with another ABI
        // needs a new crossenv.
        let wanted = format!("{}\n{cc}\n{ar}\n{}\n{}\n{:?}\n", host_python.display(), t.platform_tags().join(" "), t.arch.machine, t.ext_suffix());
        if fs::read_to_string(&stamp).ok().as_deref() == Some(wanted.as_str()) {
            return Ok(CrossEnv { dir: dir.to_path_buf() });
        }
        crate::base::sysroot::remove(dir)?;
        let mut cmd = Command::new(bp.python());
        // --machine: wheels built here get the tag pip computes on the board
        // (linux_armv7l), not the one of the configure triplet (linux_arm).
        cmd.args(["-m", "crossenv", "--cc", cc, "--ar", ar, "--machine", &t.arch.machine]);
        for tag in t.platform_tags().iter().filter(|p| p.starts_with("manylinux_")) {
            cmd.args(["--manylinux", tag.rsplit_once('_').map(|(m, _)| m).unwrap_or(tag)]);
        }
        // crossenv looks for it in lib/python3.X only; a free-threaded
        // interpreter keeps it in lib/python3.Xt.
        let stdlib = host_python.parent().and_then(Path::parent).map(|p| p.join("lib").join(format!("python{}", t.ldversion)));
        let sysconfigdata = stdlib
            .and_then(|d| fs::read_dir(d).ok())
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .find(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("_sysconfigdata_") && n.ends_with(".py")));
        if let Some(file) = sysconfigdata {
            cmd.arg("--sysconfigdata-file").arg(file);
        }
        cmd.arg(host_python).arg(dir);
        run(&mut cmd, log).with_context(|| format!("cannot create the crossenv {}", dir.display()))?;
        fs::write(&stamp, wanted)?;
        Ok(CrossEnv { dir: dir.to_path_buf() })
    }

    fn build_python(&self) -> PathBuf {
        self.dir.join("build/bin/python")
    }

    fn cross_python(&self) -> PathBuf {
        self.dir.join("cross/bin/python")
    }
}

/// Build backends and build tools every source build gets on the build
/// side. pip cannot tell an sdist's build requirements without preparing
/// its metadata, and for meson-python that means a whole (native, wrong)
/// build: so the common backends are installed up front instead.
/// setuptools 77 reads PEP 639 license expressions (`license = "BSD-3-Clause"`,
/// markupsafe 3.0.4); a venv of Python 3.11 starts with setuptools 65.
/// setuptools-rust and maturin build Rust extensions; without the former,
/// bcrypt's setup.py quietly builds a pure-Python wheel that cannot import.
// scikit-build-core: pyzmq's backend (CMake, the host's).
const BUILD_BACKENDS: [&str; 9] =
    ["setuptools>=77", "wheel", "Cython>=3.0.6", "meson-python>=0.15", "meson", "ninja", "setuptools-rust", "maturin", "scikit-build-core"];

/// Build a wheel for the target from the sdist of `requirement` with the
/// crossenv's cross python, without build isolation (build requirements
/// are build-machine tools, already in its build python). meson-python
/// gets the meson cross file; setuptools ignores that setting.
/// What meson-python's `meson setup` is told about the target: the cross
/// file (compiler, `exe_wrapper`), and the target interpreter's PEP 739
/// `build-details.json` (3.14 on), which meson reads instead of asking the
/// crossenv's python (`python.build_config`, meson 1.9).
pub struct MesonSetup<'a> {
    pub cross_file: &'a Path,
    pub build_config: Option<PathBuf>,
}

impl MesonSetup<'_> {
    fn config_settings(&self) -> Vec<String> {
        let mut out = vec![format!("--config-settings=setup-args=--cross-file={}", self.cross_file.display())];
        if let Some(b) = &self.build_config {
            out.push(format!("--config-settings=setup-args=-Dpython.build_config={}", b.display()));
        }
        out
    }
}

pub fn build_wheel(
    ce: &CrossEnv,
    requirement: &str,
    env: &[(String, String)],
    meson: &MesonSetup,
    settings: &[String],
    out: &Path,
    log: &mut String,
) -> Result<PathBuf> {
    let stamp = ce.dir.join(".build-backends");
    if fs::read_to_string(&stamp).ok().as_deref() != Some(BUILD_BACKENDS.join("\n").as_str()) {
        run(Command::new(ce.build_python()).args(["-m", "pip", "install", "--quiet", "--upgrade"]).args(BUILD_BACKENDS), log)
            .context("cannot install the build backends into the crossenv's build python")?;
        // Wheels pip built with other backends (bcrypt without
        // setuptools-rust) must not be taken from its cache.
        crate::base::sysroot::remove(&ce.dir.join("pip-cache"))?;
        fs::write(&stamp, BUILD_BACKENDS.join("\n"))?;
    }
    let built = tempfile::tempdir()?;
    let attempt = |log: &mut String| -> Result<()> {
        let mut cmd = Command::new(ce.cross_python());
        cmd.args(["-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-binary", &project_name(requirement), "--wheel-dir"])
            .arg(built.path())
            // pip keeps the wheels it builds in its cache by sdist and tag, and
            // `linux_aarch64` tags a glibc and a musl build alike: each crossenv
            // (one per interpreter) gets a cache of its own.
            .arg("--cache-dir")
            .arg(ce.dir.join("pip-cache"))
            .args(meson.config_settings())
            .args(settings.iter().map(|s| format!("--config-settings={s}")))
            .arg(requirement);
        for (k, v) in env {
            cmd.env(k, v);
        }
        // As an activated crossenv: its build tools (cython, meson, ninja) on PATH.
        let path = format!("{}:{}:{}", ce.dir.join("cross/bin").display(), ce.dir.join("build/bin").display(), std::env::var("PATH").unwrap_or_default());
        cmd.env("PATH", path);
        run(&mut cmd, log)
    };
    let mut before = log.len();
    let mut result = attempt(log);
    // Builds run without isolation, with the usual backends in the build
    // python; a package that imports another build requirement (Pillow 13
    // imports pybind11 in its setup.py) gets its own PEP 518 list
    // installed there, and one more try.
    if result.is_err() && log[before..].contains("ModuleNotFoundError: No module named") {
        let requires = build_requires(ce, requirement, log)?;
        if !requires.is_empty() {
            writeln!(log, "{requirement}: installing its build requirements into the build python: {}", requires.join(" "))?;
            run(Command::new(ce.build_python()).args(["-m", "pip", "install", "--quiet"]).args(&requires), log)
                .with_context(|| format!("{requirement}: cannot install its build requirements {}", requires.join(" ")))?;
            before = log.len();
            result = attempt(log);
        }
    }
    if let Err(e) = result {
        if format!("{e:#}").contains("No matching distribution found") {
            bail!("{requirement}: there is neither a wheel for the target nor an sdist to build ({e:#})");
        }
        let e = e.context(format!("{requirement}: building the wheel for the target failed"));
        return Err(match missing_library(&log[before..]) {
            Some((what, line)) => e.context(MissingLibrary { project: project_name(requirement), what, line }),
            None => e,
        });
    }
    let wheel = fs::read_dir(built.path())?.flatten().map(|e| e.path()).find(|p| p.extension().is_some_and(|e| e == "whl")).context("pip built no wheel")?;
    fs::create_dir_all(out)?;
    let dest = out.join(wheel.file_name().unwrap());
    fs::copy(&wheel, &dest)?;
    Ok(dest)
}

/// The dependency pip found no distribution for, as pip names it
/// (`pydantic-core==2.41.5`), from its "No matching distribution" line.
/// or from its resolver's "no matching distributions available" list.
fn missing_dependency(pip_output: &str) -> Option<String> {
    let mut lines = pip_output.lines();
    while let Some(l) = lines.next() {
        if l.contains("have no matching distributions available for your environment:") {
            let name = lines.next().map(str::trim).filter(|n| !n.is_empty())?;
            // With the version the newest candidate pins (pip lists them
            // newest first): unpinned, pydantic-core is a placeholder
            // wheel of version 0.0.1.
            // (Environment markers dropped: pip evaluated them already.)
            let pinned = pip_output.lines().find_map(|l| {
                let (_, v) = l.split_once(&format!("depends on {name}"))?;
                Some(format!("{name}{}", v.split(';').next().unwrap_or_default().trim()))
            });
            return Some(pinned.unwrap_or_else(|| name.to_string()));
        }
    }
    let line = pip_output.lines().find_map(|l| l.split_once("No matching distribution found for ").map(|(_, r)| r.trim()))?;
    Some(line.split([' ', ';']).next()?.to_string())
}

/// A CMake toolchain file for the target: its compilers, and headers,
/// libraries and packages from the tree only (programs from the build
/// machine).
fn cmake_toolchain_file(arch: &Arch, tc: &crate::machine::toolchain::Toolchain, tree: &Path) -> String {
    format!(
        "# Written by crosspython for source builds of Python packages.\n\
         set(CMAKE_SYSTEM_NAME Linux)\n\
         set(CMAKE_SYSTEM_PROCESSOR {machine})\n\
         set(CMAKE_C_COMPILER {cc})\n\
         set(CMAKE_CXX_COMPILER {cxx})\n\
         set(CMAKE_AR {ar})\n\
         set(CMAKE_RANLIB {ranlib})\n\
         set(CMAKE_FIND_ROOT_PATH {tree})\n\
         set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)\n\
         set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)\n\
         set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)\n\
         set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)\n",
        machine = arch.machine,
        cc = tc.cc.display(),
        cxx = tc.tool("g++"),
        ar = tc.tool("ar"),
        ranlib = tc.tool("ranlib"),
        tree = tree.display(),
    )
}

/// `[build-system] requires` of the sdist of `requirement` (PEP 518): the
/// sdist is fetched by the build python, with build isolation, so that its
/// metadata is made on the build machine.
fn build_requires(ce: &CrossEnv, requirement: &str, log: &mut String) -> Result<Vec<String>> {
    let dir = tempfile::tempdir()?;
    let sdist = if Path::new(requirement).is_file() {
        PathBuf::from(requirement)
    } else {
        run(
            Command::new(ce.build_python())
                .args(["-m", "pip", "download", "--quiet", "--no-deps", "--no-binary", ":all:", "--dest"])
                .arg(dir.path())
                .arg(requirement),
            log,
        )
        .with_context(|| format!("{requirement}: cannot fetch its sdist to read its build requirements"))?;
        fs::read_dir(dir.path())?.flatten().map(|e| e.path()).next().context("pip downloaded nothing")?
    };
    let text = pyproject_of(&sdist)?;
    let Some(text) = text else { return Ok(vec![]) };
    let doc: toml::Value = toml::from_str(&text).with_context(|| format!("{}: pyproject.toml", sdist.display()))?;
    let requires = doc.get("build-system").and_then(|b| b.get("requires")).and_then(|r| r.as_array()).cloned().unwrap_or_default();
    Ok(requires.iter().filter_map(|r| r.as_str().map(str::to_string)).collect())
}

/// The top-level `pyproject.toml` of an sdist (`name-version/pyproject.toml`).
fn pyproject_of(sdist: &Path) -> Result<Option<String>> {
    let top_level = |p: &Path| p.components().count() == 2 && p.file_name().is_some_and(|n| n == "pyproject.toml");
    let name = sdist.display().to_string();
    if name.ends_with(".zip") {
        let mut z = zip::ZipArchive::new(fs::File::open(sdist)?)?;
        for i in 0..z.len() {
            let mut f = z.by_index(i)?;
            if top_level(Path::new(f.name())) {
                let mut text = String::new();
                std::io::Read::read_to_string(&mut f, &mut text)?;
                return Ok(Some(text));
            }
        }
        return Ok(None);
    }
    let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(fs::File::open(sdist)?));
    for entry in tar.entries()? {
        let mut entry = entry?;
        if top_level(&entry.path()?) {
            let mut text = String::new();
            std::io::Read::read_to_string(&mut entry, &mut text)?;
            return Ok(Some(text));
        }
    }
    Ok(None)
}

/// A source build that stopped for want of a C library: the project, the
/// library as the build named it, and the line that said so.
#[derive(Debug)]
pub struct MissingLibrary {
    pub project: String,
    pub what: String,
    pub line: String,
}

impl std::fmt::Display for MissingLibrary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: its build needs the C library `{}`, which the tree does not have (\"{}\")", self.project, self.what, self.line)
    }
}

/// The C library a failed build looked for and did not find, from what
/// compilers, linkers, pkg-config, CMake, meson and Pillow's setup.py
/// print: (library or header, the line).
pub fn missing_library(output: &str) -> Option<(String, String)> {
    let between = |line: &str, start: &str, end: &str| -> Option<String> {
        let rest = &line[line.find(start)? + start.len()..];
        let what = &rest[..rest.find(end)?];
        let what = what.trim_matches(|c| c == '\'' || c == '"' || c == '`');
        (!what.is_empty() && !what.contains(' ')).then(|| what.to_string())
    };
    for line in output.lines() {
        let found = between(line, "fatal error: ", ": No such file or directory")
            .or_else(|| between(line, "fatal error: ", " file not found"))
            .or_else(|| between(line, "cannot find -l", ":"))
            .or_else(|| line.split_once("unable to find library -l").map(|(_, l)| l.trim().to_string()))
            .or_else(|| between(line, "Package ", " was not found in the pkg-config search path"))
            .or_else(|| between(line, "could not be found for ", ","))
            .or_else(|| between(line, "Could NOT find ", " "))
            .or_else(|| between(line, "Dependency ", " not found"));
        // Python.h is the interpreter's, always in the tree: a build that
        // misses it looked in the wrong place, and no recipe would help.
        if let Some(what) = found.filter(|w| !w.eq_ignore_ascii_case("Python.h")) {
            return Some((what, line.trim().to_string()));
        }
    }
    None
}

fn run(cmd: &mut Command, log: &mut String) -> Result<()> {
    let _ = writeln!(log, "+ {cmd:?}");
    if crate::base::process::interrupted() {
        bail!("interrupted");
    }
    let out = crate::base::process::wait_stoppable(cmd).with_context(|| format!("cannot run {cmd:?}"))?;
    let output = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    log.push_str(&output);
    if !out.status.success() {
        // What ran (`python -m pip wheel`), and what it said last; the
        // full command line and environment are in the log.
        return Err(crate::base::process::failed(cmd, out.status, &output));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_target(glibc: Option<(u32, u32)>, check: impl FnOnce(&Target)) {
        with_python("3.13", glibc, check)
    }

    fn with_python(ldversion: &str, glibc: Option<(u32, u32)>, check: impl FnOnce(&Target)) {
        let loaded = crate::model::manifest::Loaded::parse(Path::new("m.toml"), crate::model::manifest::tests::MINIMAL.to_string()).unwrap();
        let pyver = ldversion.trim_end_matches('t').to_string();
        let t = Target {
            name: "aarch64",
            arch: &loaded.manifest.arch["aarch64"],
            tree: Path::new("/t"),
            prefix: "/usr/local",
            pyver,
            ldversion: ldversion.into(),
            glibc,
            relr_from: None,
        };
        check(&t);
    }

    #[test]
    fn a_wheel_whose_extensions_another_interpreter_would_load_is_refused() {
        let tree = tempfile::tempdir().unwrap();
        let stdlib = tree.path().join("usr/local/lib/python3.14");
        std::fs::create_dir_all(&stdlib).unwrap();
        std::fs::write(
            stdlib.join("_sysconfigdata__linux_aarch64-linux-musl.py"),
            "build_time_vars = {'EXT_SUFFIX': '.cpython-314-aarch64-linux-musl.so',\n}\n",
        )
        .unwrap();
        let wheel = |name: &str, members: &[&str]| {
            let path = tree.path().join(name);
            let mut w = zip::ZipWriter::new(std::fs::File::create(&path).unwrap());
            for m in members {
                w.start_file(*m, zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored)).unwrap();
            }
            w.finish().unwrap();
            path
        };
        let loaded = crate::model::manifest::Loaded::parse(Path::new("m.toml"), crate::model::manifest::tests::MINIMAL.to_string()).unwrap();
        let t = Target {
            name: "aarch64",
            arch: &loaded.manifest.arch["aarch64"],
            tree: tree.path(),
            prefix: "/usr/local",
            pyver: "3.14".into(),
            ldversion: "3.14".into(),
            glibc: None,
            relr_from: None,
        };
        assert_eq!(t.ext_suffix().as_deref(), Some(".cpython-314-aarch64-linux-musl.so"));
        t.check_wheel_extensions(&wheel("ok-1-cp314-cp314-linux_aarch64.whl", &["m/_a.cpython-314-aarch64-linux-musl.so", "m/_b.abi3.so", "m/__init__.py"]))
            .unwrap();
        let err = t
            .check_wheel_extensions(&wheel(
                "old-1-cp314-cp314-linux_aarch64.whl",
                &["m/_a.cpython-314-aarch64-linux-gnu.so", "m/_b.cpython-314-aarch64-linux-gnu.so"],
            ))
            .unwrap_err()
            .to_string();
        assert_eq!(err, "old-1-cp314-cp314-linux_aarch64.whl holds m/_a.cpython-314-aarch64-linux-gnu.so and 1 more, built for another interpreter: the target's python loads *.cpython-314-aarch64-linux-musl.so");
    }

    #[test]
    fn a_free_threaded_tree_is_found_by_its_stdlib_directory() {
        let tree = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(tree.path().join("usr/local/lib/python3.14")).unwrap();
        assert_eq!(ldversion(tree.path(), "/usr/local", "3.14"), "3.14");
        std::fs::create_dir_all(tree.path().join("usr/local/lib/python3.14t")).unwrap();
        assert_eq!(ldversion(tree.path(), "/usr/local", "3.14"), "3.14t");
    }

    #[test]
    fn meson_reads_the_targets_build_details_where_the_interpreter_has_them() {
        let tree = tempfile::tempdir().unwrap();
        let loaded = crate::model::manifest::Loaded::parse(Path::new("m.toml"), crate::model::manifest::tests::MINIMAL.to_string()).unwrap();
        let t = Target {
            name: "aarch64",
            arch: &loaded.manifest.arch["aarch64"],
            tree: tree.path(),
            prefix: "/usr/local",
            pyver: "3.14".into(),
            ldversion: "3.14t".into(),
            glibc: None,
            relr_from: None,
        };
        assert_eq!(t.build_details(), None, "3.13 and older have none");
        let file = tree.path().join("usr/local/lib/python3.14t/build-details.json");
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(&file, "{}").unwrap();
        let setup = MesonSetup { cross_file: Path::new("/b/meson-cross.ini"), build_config: t.build_details() };
        assert_eq!(
            setup.config_settings(),
            [
                "--config-settings=setup-args=--cross-file=/b/meson-cross.ini".to_string(),
                format!("--config-settings=setup-args=-Dpython.build_config={}", file.display())
            ]
        );
    }

    #[test]
    fn a_free_threaded_target_takes_cp314t_wheels_and_never_abi3() {
        with_python("3.14t", Some((2, 28)), |t| {
            assert_eq!(t.abi_tags(), ["cp314t", "none"]);
            t.check_wheel_fits("numpy-2.3.4-cp314-cp314t-manylinux_2_27_aarch64.manylinux_2_28_aarch64.whl").unwrap();
            let err = t.check_wheel_fits("cryptography-46.0.3-cp311-abi3-manylinux_2_28_aarch64.whl").unwrap_err().to_string();
            assert!(
                err.contains("built for the ABI abi3, the target's python loads cp314t, none (a free-threaded interpreter cannot load stable-ABI modules"),
                "{err}"
            );
            assert!(t.check_wheel_fits("numpy-2.3.4-cp314-cp314-manylinux_2_28_aarch64.whl").is_err(), "a GIL build's wheel does not load either");
        });
        with_python("3.14", Some((2, 28)), |t| assert_eq!(t.abi_tags(), ["cp314", "abi3", "none"]));
    }

    #[test]
    fn a_rust_extension_is_told_apart_by_what_its_backend_printed() {
        assert!(rust_extension("error: can't find Rust compiler\n"));
        assert!(rust_extension("💥 maturin failed"));
        assert!(!rust_extension("error: command 'gcc' failed: No such file or directory"));
        if which::which("rustup").is_ok() {
            assert_eq!(rust_std_prebuilt("mipsel-unknown-linux-gnu"), Some(false), "mipsel is tier 3");
            assert_eq!(rust_std_prebuilt("aarch64-unknown-linux-gnu"), Some(true));
        }
    }

    #[test]
    fn an_older_major_version_than_the_newest_is_said() {
        assert_eq!(newest_on_index("pydantic (2.12.4)\nAvailable versions: 2.12.4, 2.12.3\n").as_deref(), Some("2.12.4"));
        let w = older_major("pydantic", "1.10.27", "2.12.4", "linux_mips").unwrap();
        assert!(
            w.starts_with("pydantic: pip took 1.10.27, not 2.12.4, the newest on the index: the newer releases need a package with no wheel for linux_mips"),
            "{w}"
        );
        assert_eq!(older_major("numpy", "2.5.5", "2.5.6", "linux_mips"), None, "an older minor release is pip's business");
    }

    #[test]
    fn the_missing_library_is_read_from_what_the_build_printed() {
        let cases = [
            ("src/lxml/etree.c:96:10: fatal error: 'libxml/xmlversion.h' file not found", "libxml/xmlversion.h"),
            ("x.c:1:10: fatal error: zmq.h: No such file or directory", "zmq.h"),
            ("/usr/bin/ld: cannot find -ljpeg: No such file or directory", "jpeg"),
            ("ld.lld: error: unable to find library -lxslt", "xslt"),
            ("Package libxml-2.0 was not found in the pkg-config search path.", "libxml-2.0"),
            ("RequiredDependencyException: The headers or library files could not be found for jpeg,", "jpeg"),
            ("  Could NOT find ZeroMQ (missing: ZeroMQ_LIBRARY)", "ZeroMQ"),
            ("meson.build:12:0: ERROR: Dependency \"libzmq\" not found, tried pkgconfig", "libzmq"),
        ];
        for (line, what) in cases {
            let output = format!("building...\n{line}\nerror: command failed\n");
            assert_eq!(missing_library(&output).map(|(w, _)| w), Some(what.to_string()), "{line}");
        }
        assert_eq!(missing_library("error: expected ';' before '}' token\n"), None, "a compile error is not a missing library");
        assert_eq!(missing_library("_openssl.c:66:10: fatal error: 'Python.h' file not found\n"), None, "the interpreter's header is no recipe's");
    }

    #[test]
    fn an_sdists_build_requirements_are_read_from_its_pyproject() {
        let dir = tempfile::tempdir().unwrap();
        let sdist = dir.path().join("pillow-13.0.0.tar.gz");
        crate::sources::unpack::tests::tar_gz(
            &sdist,
            &[
                ("pillow-13.0.0/Tests/pyproject.toml", "[build-system]\nrequires = [\"not-this\"]\n"),
                ("pillow-13.0.0/pyproject.toml", "[build-system]\nrequires = [\"setuptools>=77\", \"pybind11\"]\n"),
            ],
        );
        let text = pyproject_of(&sdist).unwrap().unwrap();
        assert!(text.contains("pybind11") && !text.contains("not-this"), "the top-level file: {text}");
    }

    #[test]
    fn the_dependency_without_a_wheel_is_read_from_pips_refusal() {
        let out = "ERROR: Could not find a version that satisfies the requirement pydantic-core==2.41.5 (from pydantic) (from versions: none)\n\
                   ERROR: No matching distribution found for pydantic-core==2.41.5\n";
        assert_eq!(missing_dependency(out).as_deref(), Some("pydantic-core==2.41.5"));
        assert_eq!(missing_dependency("Successfully downloaded x\n"), None);
        let markers = "    cryptography 50.0.2 depends on cffi>=2.0.0; platform_python_implementation != \"PyPy\"\n\nAdditionally, some \
                       packages in these conflicts have no matching distributions available for your environment:\n    cffi\n";
        assert_eq!(missing_dependency(markers).as_deref(), Some("cffi>=2.0.0"), "markers are pip's business");
        let conflict = "    pydantic 2.14.4 depends on pydantic-core==2.41.5\n    pydantic 2.0 depends on pydantic-core==2.0.1\n\nAdditionally, some packages in these conflicts have no matching \
                        distributions available for your environment:\n    pydantic-core\n\nTo fix this you could try to:\n";
        assert_eq!(
            missing_dependency(conflict).as_deref(),
            Some("pydantic-core==2.41.5"),
            "a range: the resolver's list, pinned as the newest candidate pins it"
        );
    }

    #[test]
    fn project_names_are_normalized() {
        assert_eq!(project_name("PyYAML>=6"), "pyyaml");
        assert_eq!(project_name("markupsafe"), "markupsafe");
        assert_eq!(project_name("zope.interface[test]"), "zope-interface");
        assert_eq!(project_name("/tmp/x/Broken_Pkg-0.1.tar.gz"), "broken-pkg");
        assert_eq!(project_name("PyYAML-6.0.3-cp313-cp313-linux_mips.whl"), "pyyaml");
    }

    #[test]
    fn wheel_file_names_give_project_version_and_platforms() {
        let w = WheelFile::parse(Path::new("/c/PyYAML-6.0.3-cp313-cp313-manylinux_2_27_aarch64.manylinux_2_28_aarch64.whl")).unwrap();
        assert_eq!((w.project.as_str(), w.version.as_str()), ("pyyaml", "6.0.3"));
        assert_eq!(w.platforms, ["manylinux_2_27_aarch64", "manylinux_2_28_aarch64"]);
        assert!(WheelFile::parse(Path::new("pyyaml-6.0.3.tar.gz")).is_err());
    }

    #[test]
    fn a_wheel_for_another_arch_is_refused_with_the_tags_that_fit() {
        with_target(Some((2, 36)), |t| {
            let err = t.check_wheel_fits("/w/numpy-2.5.5-cp313-cp313-linux_mips.whl").unwrap_err().to_string();
            assert!(err.contains("built for linux_mips, not for aarch64"), "{err}");
            assert!(err.contains("manylinux_2_36_aarch64 ... linux_aarch64"), "{err}");
            t.check_wheel_fits("numpy-2.5.5-cp313-cp313-manylinux_2_27_aarch64.manylinux_2_28_aarch64.whl").unwrap();
            t.check_wheel_fits("idna-3.10-py3-none-any.whl").unwrap();
        });
    }

    #[test]
    fn platform_tags_are_those_pip_computes_on_the_board_up_to_the_toolchain_glibc() {
        with_target(Some((2, 19)), |t| {
            assert_eq!(
                t.platform_tags(),
                ["manylinux_2_19_aarch64", "manylinux_2_18_aarch64", "manylinux_2_17_aarch64", "manylinux2014_aarch64", "linux_aarch64"]
            );
        });
    }
}
