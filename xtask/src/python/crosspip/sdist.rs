//! Wheels built from source distributions in a crossenv: the target's
//! sysconfig and compiler, meson's and CMake's cross files, Rust's target,
//! and what a failed build was missing.

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

use super::target::Target;
use super::venv::{run, BuildPython};
use crate::model::manifest::{project_name, Arch};

/// Rust extensions (setuptools-rust, maturin): cargo builds for the arch's
/// Rust triple and links with the toolchain's compiler (zig's wrapper);
/// PyO3 reads the target interpreter's sysconfig from its lib directory
/// instead of asking the crossenv's python. On musl, a cdylib must not link
/// the C runtime statically (rust-lang/rust#59302).
pub(super) fn rust_env(arch: &Arch, cc: &Path, libdir: &Path, pyver: &str) -> Vec<(String, String)> {
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
pub(super) fn add_rust_target(triple: &str, log: &mut String) -> Result<bool> {
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
pub(super) fn rust_extension(printed: &str) -> bool {
    ["setuptools_rust", "setuptools-rust", "maturin", "can't find Rust compiler", "cargo rustc", "Cargo.toml"].iter().any(|m| printed.contains(m))
}

/// Whether rustup offers a prebuilt standard library for a Rust target
/// (tier 1 and 2); None without rustup.
pub(super) fn rust_std_prebuilt(triple: &str) -> Option<bool> {
    let out = crate::base::process::checked(Command::new("rustup").args(["target", "list"])).ok()?;
    Some(String::from_utf8_lossy(&out.stdout).lines().any(|l| l.split_whitespace().next() == Some(triple)))
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
    pub(super) fn config_settings(&self) -> Vec<String> {
        let mut out = vec![format!("--config-settings=setup-args=--cross-file={}", self.cross_file.display())];
        if let Some(b) = &self.build_config {
            out.push(format!("--config-settings=setup-args=-Dpython.build_config={}", b.display()));
        }
        out
    }
}

/// A directory whose `sitecustomize` gives Python's temporary files and
/// uuid4 a fixed sequence of names, for the processes of a source build.
pub(super) fn fixed_names() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("python/fixed_names")
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
    // pip keeps the wheels it builds in its cache by sdist and tag, blind
    // to the compiler and flags this build gives it: a wheel built here is
    // reused only through the built-wheel cache, which knows them. pip's
    // downloads stay cached.
    crate::base::sysroot::remove(&ce.dir.join("pip-cache/wheels"))?;
    let epoch = crate::base::reproducible::source_date_epoch()?.to_string();
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
        // pip builds in a temporary directory, which the compiler records
        // as the objects' directory: under the build directory, the
        // compile prefix map (`-ffile-prefix-map=<build dir>=`) maps it
        // as it maps the recipes' (in /tmp it stayed in the debug
        // information as `/tmp/pip-wheel-*/`). Emptied first: a name that
        // a killed build left there would be passed over, and the build
        // would take the next (see `fixed_names`).
        let tmp = ce.dir.join("tmp");
        crate::base::sysroot::remove(&tmp)?;
        fs::create_dir_all(&tmp)?;
        cmd.env("TMPDIR", &tmp);
        // The same directory names in every build of an sdist (pip's and
        // meson-python's are random), and the wheel's members with the
        // build's time, not the clock's (bdist_wheel, meson-python and
        // maturin read it): two builds of one sdist give one wheel.
        // The caller's own PYTHONPATH is not kept: it must not reach a
        // build, as `engine::work` keeps it from every recipe's task
        // (crossenv's cross python puts its own paths before this one).
        cmd.env("PYTHONPATH", fixed_names());
        cmd.env("SOURCE_DATE_EPOCH", &epoch);
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
pub(super) fn missing_dependency(pip_output: &str) -> Option<String> {
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
pub(super) fn cmake_toolchain_file(arch: &Arch, tc: &crate::machine::toolchain::Toolchain, tree: &Path) -> String {
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
pub(super) fn build_requires(ce: &CrossEnv, requirement: &str, log: &mut String) -> Result<Vec<String>> {
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
pub(super) fn pyproject_of(sdist: &Path) -> Result<Option<String>> {
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
pub(super) fn missing_library(output: &str) -> Option<(String, String)> {
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
