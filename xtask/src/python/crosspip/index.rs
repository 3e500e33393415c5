//! Wheels from the index: `pip download` for the target's tags, and what
//! the choice says (a pure-Python wheel, an older major version).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use std::fs;

use anyhow::{bail, Context, Result};

use super::target::{Target, WheelFile};
use super::venv::{run, BuildPython};

/// A wheel built from an sdist that came out `py3-none-any` is suspicious:
/// bcrypt 5's sdist without a Rust toolchain installs, then fails to
/// import its extension.
pub(super) fn warn_if_pure_python(req: &str, wheel: &Path, log: &mut String) -> Result<()> {
    if WheelFile::parse(wheel).is_ok_and(|w| w.abis == ["none"] && w.platforms == ["any"]) {
        writeln!(
            log,
            "WARNING {req}: its sdist built as a pure-Python wheel ({}); if the project has compiled parts (C, Cython, Rust), they were not built, and the import check on the target will say so",
            wheel.file_name().unwrap_or_default().to_string_lossy()
        )?;
    }
    Ok(())
}

/// The newest version `pip index versions` names (`pydantic (2.12.4)`).
pub(super) fn newest_on_index(printed: &str) -> Option<String> {
    let first = printed.lines().next()?;
    Some(first.split_once('(')?.1.split_once(')')?.0.trim().to_string())
}

/// The warning for a release older by a major version than the newest.
pub(super) fn older_major(name: &str, chosen: &str, newest: &str, platform: &str) -> Option<String> {
    let major = |v: &str| v.split(|c: char| !c.is_ascii_digit()).next().and_then(|m| m.parse::<u64>().ok());
    (major(chosen)? < major(newest)?).then(|| {
        format!(
            "{name}: pip took {chosen}, not {newest}, the newest on the index: the newer releases need a package with no wheel for {platform} \
             that is not built from source here; require \"{name}>={newest}\" to see which, and name it in --no-binary (distro.python_no_binary) to build it"
        )
    })
}

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
