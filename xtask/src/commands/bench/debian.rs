//! The yardstick: Debian's own Python of a suite for the arch, its four
//! packages and a root to run it in.

use std::collections::BTreeMap;
use std::fs;
use std::path::PathBuf;
use std::process::Command;

use anyhow::{bail, Context, Result};

use super::plan::Options;
use crate::engine::project::Project;
use crate::model::manifest::Loaded;

/// Debian's Python of the suite for the arch: the four packages that make
/// the interpreter and its standard library, and the root filesystem of
/// their run-time closure to run it under qemu, byte-compiled as an
/// installed system is.
pub(super) struct Debian {
    pub(super) suite: String,
    /// Whether `python` is the tree's minor version (else the newest the
    /// arch has, and its interpreter's name says which).
    pub(super) same_minor: bool,
    /// `python3.14`: the same minor version as the tree's.
    pub(super) python: String,
    pub(super) version: String,
    pub(super) packages: Vec<(String, u64, u64)>,
    pub(super) root: PathBuf,
}

/// Suites tried, oldest first, for a Debian python of the tree's minor
/// version when `--suite auto`: a stable release's build where there is
/// one (3.13 is trixie's), else the development suites (3.14 in 2026).
pub(super) const AUTO_SUITES: [&str; 3] = ["trixie", "forky", "sid"];
/// Tried last: Debian 12 is the last release with mipsel, whose python3.11
/// is then the yardstick of another minor version.
pub(super) const OLDER_SUITES: [&str; 1] = ["bookworm"];

/// `python3.11` for the highest `python3.X-minimal` of a suite.
pub(super) fn newest_python(index: &BTreeMap<String, crate::sources::debian::Package>) -> Option<String> {
    index.keys().filter_map(|k| k.strip_prefix("python3.")?.strip_suffix("-minimal")?.parse::<u32>().ok()).max().map(|minor| format!("python3.{minor}"))
}

impl Debian {
    /// `note` is the build note of the tree measured against it.
    pub(super) fn prepare(project: &Project, loaded: &Loaded, o: &Options, note: &crate::engine::image::ImageNote) -> Result<Debian> {
        let arch = &loaded.manifest.arch[&o.arch];
        let fetcher = crate::sources::fetch::Fetcher::new(project.dl_dir.clone());
        let build_python = note.build_python.clone().context("the tree's build note names no build python")?;
        let python = build_python.file_name().map(|n| n.to_string_lossy().into_owned()).context("the build python has no file name")?;
        let suites: Vec<&str> = if o.suite == "auto" { AUTO_SUITES.iter().chain(&OLDER_SUITES).copied().collect() } else { vec![o.suite.as_str()] };
        let mut indexes = vec![];
        let mut found = None;
        for suite in &suites {
            // A suite without the arch (mipsel after Debian 12) has no index.
            let index = match crate::sources::debian::index(&fetcher, suite, &arch.debian_arch) {
                Ok(index) => index,
                Err(e) if suites.len() > 1 => {
                    eprintln!("note: Debian {suite} has no {} packages to measure against ({e:#})", arch.debian_arch);
                    continue;
                }
                Err(e) => return Err(e),
            };
            if index.contains_key(&format!("{python}-minimal")) {
                found = Some((suite.to_string(), python.clone(), index));
                break;
            }
            indexes.push((suite.to_string(), index));
        }
        // No suite has the tree's minor version for this arch: the newest
        // python3.X of the first suite that has one, and the tables say so.
        let (suite, python, index) = match found {
            Some(f) => f,
            None => indexes
                .into_iter()
                .find_map(|(suite, index)| newest_python(&index).map(|p| (suite, p, index)))
                .with_context(|| format!("no Debian suite of {} has a python3.X for {}, the yardstick", suites.join(", "), arch.debian_arch))?,
        };
        let same_minor = Some(&python) == build_python.file_name().map(|n| n.to_string_lossy().into_owned()).as_ref();
        let wanted_pkgs = [format!("{python}-minimal"), format!("lib{python}-minimal"), format!("lib{python}-stdlib"), format!("lib{python}")];
        let debian_python: Vec<&str> = wanted_pkgs.iter().map(String::as_str).collect();
        let mut packages = vec![];
        let root = project.dl_dir.parent().unwrap_or(&project.dl_dir).join(format!("bench/debian-{suite}-{}", arch.debian_arch));
        let stamp = root.join(".complete");
        let closure = crate::sources::debian::closure(&index, &debian_python)?;
        let wanted: String = closure.iter().map(|p| format!("{} {}\n", p.name, p.version)).collect();
        let fresh = fs::read_to_string(&stamp).ok().as_deref() != Some(wanted.as_str());
        if fresh {
            crate::base::sysroot::remove(&root)?;
            fs::create_dir_all(&root)?;
        }
        for p in &closure {
            let deb = crate::sources::debian::fetch(&fetcher, p)?;
            // The four measured on their own: the root holds the whole closure.
            if debian_python.contains(&p.name.as_str()) {
                let scratch = tempfile::tempdir()?;
                packages.push((p.name.clone(), crate::sources::debian::extract(&deb, scratch.path())?, p.size));
            }
            if fresh {
                crate::sources::debian::extract(&deb, &root)?;
            }
        }
        if fresh {
            // Debian's /usr is merged: the dynamic loader's /lib path and
            // friends are symlinks that no package ships (base-files makes them).
            for d in ["bin", "sbin", "lib", "lib64"] {
                if !root.join(d).exists() && root.join("usr").join(d).is_dir() {
                    std::os::unix::fs::symlink(format!("usr/{d}"), root.join(d))?;
                }
            }
            // What Debian's postinst (py3compile) does on a real system: the
            // packages ship no byte code. Our build python when it is the
            // same version (fast), else Debian's own under qemu-user.
            let mut compile = if same_minor {
                Command::new(&build_python)
            } else {
                crate::machine::runner::TargetRunner::new(arch, &root).command(&root.join("usr/bin").join(&python), false)
            };
            let out = crate::base::process::output(
                compile.args(["-I", "-m", "compileall", "-q", "-j0", "-s"]).arg(&root).args(["-p", "/"]).arg(root.join("usr/lib").join(&python)),
            )?;
            if out.stdout.is_empty() && !out.status.success() {
                bail!("byte-compiling Debian's stdlib failed: {}", String::from_utf8_lossy(&out.stderr));
            }
            fs::write(&stamp, wanted)?;
        }
        let version = index.get(debian_python[0]).map(|p| p.version.clone()).unwrap_or_default();
        Ok(Debian { suite, python, version, packages, root, same_minor })
    }
}
