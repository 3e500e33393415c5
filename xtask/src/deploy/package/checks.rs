//! What a package must pass before it is written: every ELF file for the
//! target, with its libraries in the package, a non-executable stack,
//! RELRO, run paths that stay inside the package, glibc symbol versions no
//! newer than the floor and no file of glibc itself; no build-machine path in any file, no setuid
//! or world-writable file, no symlink that leaves the package.

use std::fmt;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Result};
use walkdir::WalkDir;

use crate::model::manifest::ElfExpect;

#[derive(Debug)]
pub struct Checked {
    pub elf: crate::engine::image::Checked,
    pub files: usize,
}

impl fmt::Display for Checked {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.elf.summary())?;
        writeln!(
            f,
            "package check: {} files; every ELF file has a non-executable stack, RELRO and run paths inside the package; \
             no build path, setuid, world-writable file or escaping symlink",
            self.files
        )
    }
}

pub fn check(root: &Path, want: &ElfExpect, build_paths: &[PathBuf], board: &crate::engine::image::BoardLibs) -> Result<Checked> {
    let elf = crate::engine::image::check_tree(root, want, board)?;
    let mut problems = vec![];
    for (path, info) in crate::machine::elf::elf_files(root)? {
        let rel = path.strip_prefix(root).unwrap().display().to_string();
        let loadable = info.interp.is_some() || info.soname.is_some() || !info.needed.is_empty();
        if info.exec_stack && !want.exec_stack {
            problems.push(format!("{rel}: executable stack (PT_GNU_STACK has PF_X)"));
        }
        if loadable && !info.relro && want.relro {
            problems.push(format!("{rel}: no RELRO (PT_GNU_RELRO)"));
        }
        for paths in [&info.rpath, &info.runpath].into_iter().flatten() {
            for entry in paths.split(':').filter(|e| !e.is_empty()) {
                if let Err(why) = run_path_inside(root, &path, entry) {
                    problems.push(format!("{rel}: run path {entry}: {why}"));
                }
            }
        }
    }
    let needles: Vec<Vec<u8>> = build_paths.iter().map(|p| p.display().to_string().into_bytes()).collect();
    let mut files = 0;
    for e in WalkDir::new(root).min_depth(1) {
        let e = e?;
        let rel = e.path().strip_prefix(root).unwrap().display().to_string();
        let meta = fs::symlink_metadata(e.path())?;
        if meta.file_type().is_symlink() {
            let target = fs::read_link(e.path())?;
            let resolved = crate::base::sysroot::normalize(&e.path().parent().unwrap().join(&target));
            if target.is_absolute() {
                problems.push(format!("{rel}: absolute symlink to {}", target.display()));
            } else if !resolved.starts_with(root) {
                problems.push(format!("{rel}: symlink {} leaves the package", target.display()));
            }
            continue;
        }
        let name = e.file_name().to_string_lossy();
        let private_glibc = e.path().parent().is_some_and(|d| d.ends_with(crate::machine::private_glibc::DIR));
        if !meta.is_dir() && board.has(&name) && !private_glibc {
            problems.push(format!("{rel}: a part of glibc; the board's own C library must be used, never replaced"));
        }
        let mode = meta.permissions().mode();
        if mode & 0o6000 != 0 {
            problems.push(format!("{rel}: setuid/setgid (mode {mode:o})"));
        }
        if meta.is_file() {
            files += 1;
            if mode & 0o002 != 0 {
                problems.push(format!("{rel}: world-writable (mode {mode:o})"));
            }
            let bytes = fs::read(e.path())?;
            if let Some(n) = needles.iter().find(|n| crate::base::bytes::contains(&bytes, n)) {
                problems.push(format!("{rel}: contains the build-machine path {}", String::from_utf8_lossy(n)));
            }
        }
    }
    if !problems.is_empty() {
        bail!("the package {} is not fit for a board:\n  {}", root.display(), problems.join("\n  "));
    }
    Ok(Checked { elf, files })
}

/// A run path entry must be `$ORIGIN`-relative and stay inside the package.
fn run_path_inside(root: &Path, file: &Path, entry: &str) -> Result<(), String> {
    let rest = entry
        .strip_prefix("$ORIGIN")
        .or_else(|| entry.strip_prefix("${ORIGIN}"))
        .ok_or("not relative to $ORIGIN: it names a directory of the build machine or of the board's /")?;
    let dir = crate::base::sysroot::normalize(&file.parent().unwrap().join(rest.trim_start_matches('/')));
    if !dir.starts_with(root) {
        return Err("climbs out of the package".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_paths_must_be_origin_relative_and_stay_inside() {
        let root = Path::new("/p");
        let bin = Path::new("/p/usr/local/bin/python3");
        assert!(run_path_inside(root, bin, "$ORIGIN/../lib").is_ok());
        assert!(run_path_inside(root, bin, "/usr/local/lib").is_err());
        assert!(run_path_inside(root, bin, "$ORIGIN/../../../../lib").is_err());
    }

    #[test]
    fn symlinks_leaving_the_package_and_build_paths_are_refused() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().join("root");
        fs::create_dir_all(root.join("lib")).unwrap();
        std::os::unix::fs::symlink("../../etc/passwd", root.join("lib/escape")).unwrap();
        fs::write(root.join("lib/notes.txt"), format!("built in {}", t.path().display())).unwrap();
        use crate::model::manifest::{ElfBits, ElfMachine, Endian};
        let want = ElfExpect { machine: ElfMachine::Aarch64, bits: ElfBits::B64, endian: Endian::Little, exec_stack: false, relro: true };
        let err = check(&root, &want, &[t.path().to_path_buf()], &Default::default()).unwrap_err().to_string();
        assert!(err.contains("lib/escape: symlink ../../etc/passwd leaves the package"), "{err}");
        assert!(err.contains("lib/notes.txt: contains the build-machine path"), "{err}");
    }
}
