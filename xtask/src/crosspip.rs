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

use crate::manifest::Arch;

/// Bumped when what this module installs changes (an input of `rootfs`).
pub const VERSION: &str = "crosspip-3";

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
        crate::sysroot::remove(dir)?;
        run(Command::new(native_python).args(["-m", "venv"]).arg(dir), log)
            .with_context(|| format!("cannot create the build venv {}", dir.display()))?;
        run(Command::new(dir.join("bin/python")).args(["-m", "pip", "install", "--quiet"]).args(BUILD_TOOLS), log)
            .context("cannot install the build tools into the build venv (is PyPI reachable?)")?;
        fs::write(&stamp, wanted)?;
        Ok(BuildPython { venv: dir.to_path_buf() })
    }

    fn python(&self) -> PathBuf {
        self.venv.join("bin/python")
    }
}

/// Where and for what the packages go.
pub struct Target<'a> {
    pub arch: &'a Arch,
    pub tree: &'a Path,
    pub prefix: &'a str,
    /// "3.13"
    pub pyver: String,
    /// The toolchain's glibc: the newest manylinux that fits.
    pub glibc: (u32, u32),
}

impl Target<'_> {
    /// Platform tags whose wheels run on the board, most specific first.
    pub fn platform_tags(&self) -> Vec<String> {
        // pip on the board tags by `uname -m`: the arch's `machine`.
        let arch = &self.arch.machine;
        let mut tags: Vec<String> = (17..=self.glibc.1).rev().map(|m| format!("manylinux_2_{m}_{arch}")).collect();
        tags.push(format!("manylinux2014_{arch}"));
        tags.push(format!("linux_{arch}"));
        tags
    }

    fn site_packages(&self) -> PathBuf {
        self.tree.join(self.prefix.trim_start_matches('/')).join(format!("lib/python{}/site-packages", self.pyver))
    }
}

pub fn install_wheels(bp: &BuildPython, t: &Target, wheels: &[PathBuf], log: &mut String) -> Result<()> {
    if wheels.is_empty() {
        return Ok(());
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("python/install_wheels.py");
    let mut cmd = Command::new(bp.python());
    cmd.arg(&script).arg("--root").arg(t.tree).args(["--prefix", t.prefix, "--pyver", &t.pyver]).args(wheels);
    run(&mut cmd, log)
}

/// pip from the wheel that CPython bundles in `ensurepip`.
pub fn install_pip(bp: &BuildPython, t: &Target, log: &mut String) -> Result<()> {
    let bundled = t.tree.join(t.prefix.trim_start_matches('/')).join(format!("lib/python{}/ensurepip/_bundled", t.pyver));
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

/// The normalized project name of a requirement specifier (PEP 503).
pub fn project_name(requirement: &str) -> String {
    let end = requirement.find(|c: char| !(c.is_ascii_alphanumeric() || "-_.".contains(c))).unwrap_or(requirement.len());
    requirement[..end].to_ascii_lowercase().replace(['_', '.'], "-")
}

/// Resolve `requirements` for the target with pip and download the wheels
/// into `dest`; wheels already in `find_links` (the built-wheel cache) count.
/// With `cache_only`, only `find_links` is looked at: the built-wheel cache
/// answers whether a source build can be skipped.
pub fn download(bp: &BuildPython, t: &Target, requirements: &[String], find_links: &Path, dest: &Path, cache_only: bool, log: &mut String) -> Result<Vec<PathBuf>> {
    if requirements.is_empty() {
        return Ok(vec![]);
    }
    fs::create_dir_all(dest)?;
    fs::create_dir_all(find_links)?;
    let mut cmd = Command::new(bp.python());
    cmd.args(["-m", "pip", "download", "--only-binary=:all:", "--python-version", &t.pyver, "--implementation", "cp"]);
    let abi = format!("cp{}", t.pyver.replace('.', ""));
    for a in [abi.as_str(), "abi3", "none"] {
        cmd.args(["--abi", a]);
    }
    for p in t.platform_tags() {
        cmd.args(["--platform", &p]);
    }
    if cache_only {
        cmd.arg("--no-index");
    }
    cmd.arg("--find-links").arg(find_links).arg("--dest").arg(dest).args(requirements);
    run(&mut cmd, log).with_context(|| {
        format!(
            "pip found no wheels for the target ({}, cp{}) for: {}",
            t.platform_tags()[0],
            t.pyver.replace('.', ""),
            requirements.join(" ")
        )
    })?;
    let mut wheels: Vec<PathBuf> = fs::read_dir(dest)?.flatten().map(|e| e.path()).filter(|p| p.extension().is_some_and(|e| e == "whl")).collect();
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
        let wanted = format!("{}\n{cc}\n{ar}\n{}\n{}\n", host_python.display(), t.platform_tags().join(" "), t.arch.machine);
        if fs::read_to_string(&stamp).ok().as_deref() == Some(wanted.as_str()) {
            return Ok(CrossEnv { dir: dir.to_path_buf() });
        }
        crate::sysroot::remove(dir)?;
        let mut cmd = Command::new(bp.python());
        // --machine: wheels built here get the tag pip computes on the board
        // (linux_armv7l), not the one of the configure triplet (linux_arm).
        cmd.args(["-m", "crossenv", "--cc", cc, "--ar", ar, "--machine", &t.arch.machine]);
        for tag in t.platform_tags().iter().filter(|p| p.starts_with("manylinux_")) {
            cmd.args(["--manylinux", tag.rsplit_once('_').map(|(m, _)| m).unwrap_or(tag)]);
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

/// A meson cross file for meson-python packages (numpy): the cross tools,
/// the target's pkg-config, qemu as the exe_wrapper, the CPU family and the
/// long double format that meson cannot probe on a foreign machine.
pub fn meson_cross_file(t: &Target, tc: &crate::toolchain::Toolchain, path: &Path) -> Result<()> {
    let list = |words: Vec<String>| format!("[{}]", words.iter().map(|w| format!("'{w}'")).collect::<Vec<_>>().join(", "));
    let mut cc = vec![tc.cc.display().to_string()];
    cc.extend(tc.cc_args.iter().cloned());
    let cxx_path = tc.tool("g++");
    let mut text = String::from("# Written by crosspython for meson-python source builds.\n[binaries]\n");
    let _ = writeln!(text, "c = {}", list(cc));
    if which::which(&cxx_path).is_ok() {
        let _ = writeln!(text, "cpp = {}", list(vec![cxx_path]));
    }
    for (k, tool) in [("ar", "ar"), ("strip", "strip"), ("nm", "nm"), ("objcopy", "objcopy")] {
        let _ = writeln!(text, "{k} = '{}'", tc.tool(tool));
    }
    let _ = writeln!(text, "pkg-config = 'pkg-config'");
    let _ = writeln!(text, "exe_wrapper = {}", list(vec![t.arch.qemu.clone(), "-L".into(), t.tree.display().to_string()]));
    let _ = writeln!(text, "\n[properties]\nneeds_exe_wrapper = true\nlongdouble_format = '{}'", t.arch.longdouble_format);
    let _ = writeln!(
        text,
        "\n[host_machine]\nsystem = 'linux'\ncpu_family = '{}'\ncpu = '{}'\nendian = '{}'",
        t.arch.meson_cpu_family, t.arch.meson_cpu, t.arch.elf.endian
    );
    fs::write(path, text)?;
    Ok(())
}

/// Build backends and build tools every source build gets on the build
/// side. pip cannot tell an sdist's build requirements without preparing
/// its metadata, and for meson-python that means a whole (native, wrong)
/// build: so the common backends are installed up front instead.
const BUILD_BACKENDS: [&str; 6] = ["setuptools", "wheel", "Cython>=3.0.6", "meson-python>=0.15", "meson", "ninja"];

/// Build a wheel for the target from the sdist of `requirement` with the
/// crossenv's cross python, without build isolation (build requirements
/// are build-machine tools, already in its build python). meson-python
/// gets the meson cross file; setuptools ignores that setting.
pub fn build_wheel(ce: &CrossEnv, requirement: &str, env: &[(String, String)], meson_cross: &Path, out: &Path, log: &mut String) -> Result<PathBuf> {
    let stamp = ce.dir.join(".build-backends");
    if !stamp.exists() {
        run(Command::new(ce.build_python()).args(["-m", "pip", "install", "--quiet"]).args(BUILD_BACKENDS), log)
            .context("cannot install the build backends into the crossenv's build python")?;
        fs::write(&stamp, BUILD_BACKENDS.join("\n"))?;
    }
    let built = tempfile::tempdir()?;
    let mut cmd = Command::new(ce.cross_python());
    cmd.args(["-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-binary", &project_name(requirement), "--wheel-dir"])
        .arg(built.path())
        .arg(format!("--config-settings=setup-args=--cross-file={}", meson_cross.display()))
        .arg(requirement);
    for (k, v) in env {
        cmd.env(k, v);
    }
    // As an activated crossenv: its build tools (cython, meson, ninja) on PATH.
    let path = format!("{}:{}:{}", ce.dir.join("cross/bin").display(), ce.dir.join("build/bin").display(), std::env::var("PATH").unwrap_or_default());
    cmd.env("PATH", path);
    run(&mut cmd, log).with_context(|| format!("{requirement}: building the wheel for the target failed"))?;
    let wheel = fs::read_dir(built.path())?.flatten().map(|e| e.path()).find(|p| p.extension().is_some_and(|e| e == "whl")).context("pip built no wheel")?;
    fs::create_dir_all(out)?;
    let dest = out.join(wheel.file_name().unwrap());
    fs::copy(&wheel, &dest)?;
    Ok(dest)
}

fn run(cmd: &mut Command, log: &mut String) -> Result<()> {
    let _ = writeln!(log, "+ {cmd:?}");
    if crate::engine::INTERRUPTED.load(std::sync::atomic::Ordering::SeqCst) {
        bail!("interrupted");
    }
    let out = crate::work::wait_stoppable(cmd).with_context(|| format!("cannot run {cmd:?}"))?;
    log.push_str(&String::from_utf8_lossy(&out.stdout));
    log.push_str(&String::from_utf8_lossy(&out.stderr));
    if !out.status.success() {
        let tail: Vec<&str> = log.lines().rev().take(15).collect::<Vec<_>>().into_iter().rev().collect();
        bail!("{cmd:?} exited with {}:\n{}", out.status, tail.join("\n"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn project_names_are_normalized() {
        assert_eq!(project_name("PyYAML>=6"), "pyyaml");
        assert_eq!(project_name("markupsafe"), "markupsafe");
        assert_eq!(project_name("zope.interface[test]"), "zope-interface");
    }

    #[test]
    fn platform_tags_are_those_pip_computes_on_the_board_up_to_the_toolchain_glibc() {
        let loaded = crate::manifest::Loaded::parse(Path::new("m.toml"), crate::manifest::tests::MINIMAL.to_string()).unwrap();
        let t = Target { arch: &loaded.manifest.arch["aarch64"], tree: Path::new("/t"), prefix: "/usr/local", pyver: "3.13".into(), glibc: (2, 19) };
        assert_eq!(
            t.platform_tags(),
            ["manylinux_2_19_aarch64", "manylinux_2_18_aarch64", "manylinux_2_17_aarch64", "manylinux2014_aarch64", "linux_aarch64"]
        );
    }
}
