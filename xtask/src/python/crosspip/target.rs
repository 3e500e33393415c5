//! What fits the board: the target interpreter's version, ABI and
//! platform tags, and the checks a wheel must pass before it is installed.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use crate::model::manifest::{project_name, Arch};

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

    pub(super) fn site_packages(&self) -> PathBuf {
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
pub(super) fn wheel_project(wheel: &Path) -> String {
    WheelFile::parse(wheel).map(|w| w.project).unwrap_or_default()
}
