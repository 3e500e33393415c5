//! A private glibc for trees built by a toolchain whose glibc is newer than
//! the board's (`--toolchain debian-gcc`: Debian 12's cross gcc links
//! against glibc 2.36). The toolchain's loader and C library go to
//! `<prefix>/lib/glibc/`; every program's `PT_INTERP` names that loader and
//! every ELF file's run path starts there, so the tree's objects resolve
//! `libc.so.6` to the private copy before the loader's cache and default
//! directories, and the board's `/lib` is never touched. Nix and
//! python-build-standalone's "install_only" builds face the same choice;
//! zig's glibc floor (the default) needs none of this.
//!
//! Limits, as for any private glibc: modules glibc loads by path at run
//! time (`gconv` for iconv codecs beyond the built-in ones, NSS modules
//! other than files/dns) come from the board and may not match.

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use crate::machine::elf;

/// Below the prefix: where the private glibc lives.
pub const DIR: &str = "lib/glibc";

/// The glibc a tree carries for itself, if any: its `libc.so.6` and the
/// newest symbol version that defines.
pub fn carried(tree: &Path, prefix: &str) -> Result<Option<(PathBuf, (u32, u32))>> {
    let libc = tree.join(prefix.trim_start_matches('/')).join(DIR).join("libc.so.6");
    if !libc.exists() {
        return Ok(None);
    }
    let version = elf::glibc_defined(&libc)?.with_context(|| format!("{}: defines no GLIBC_ version", libc.display()))?;
    Ok(Some((libc, version)))
}

/// Copy the toolchain's glibc (the objects of `sonames` the tree needs,
/// `libc.so.6` and the loader) from `run_root` into `<prefix>/lib/glibc`,
/// and point the tree's programs and libraries at it. Returns the files
/// copied, relative to `root`.
pub fn install(root: &Path, prefix: &str, run_root: &Path, sonames: &[String], report: &mut String) -> Result<Vec<String>> {
    let libc = find_in(run_root, "libc.so.6").with_context(|| format!("the toolchain's root {} has no libc.so.6", run_root.display()))?;
    let loader_path = elf::inspect(&libc)?.and_then(|i| i.interp).with_context(|| format!("{}: names no dynamic loader", libc.display()))?;
    let loader_name = Path::new(&loader_path).file_name().context("loader path")?.to_string_lossy().into_owned();
    let files = crate::machine::elf::elf_files(root)?;
    let mut wanted: Vec<String> = vec!["libc.so.6".into()];
    for (_, info) in &files {
        for n in &info.needed {
            if sonames.contains(n) && !wanted.contains(n) {
                wanted.push(n.clone());
            }
        }
    }
    let dir = root.join(prefix.trim_start_matches('/')).join(DIR);
    fs::create_dir_all(&dir)?;
    let beside = libc.parent().unwrap();
    for soname in &wanted {
        let from = beside.join(soname);
        if !from.exists() {
            bail!("the tree needs {soname}, which the toolchain's glibc ({}) lacks", beside.display());
        }
        copy_resolved(&from, &dir.join(soname))?;
    }
    let loader = crate::machine::board::resolve_in_root(run_root, Path::new(&loader_path))?;
    copy_resolved(&loader, &dir.join(&loader_name))?;
    let interp = format!("{}/{DIR}/{loader_name}", prefix.trim_end_matches('/'));
    let (mut programs, mut libraries) = (0, 0);
    for (path, info) in files {
        if path.starts_with(&dir) {
            continue;
        }
        if info.interp.is_some() {
            crate::machine::elf::patchelf(&path, &["--set-interpreter", &interp])?;
            programs += 1;
        }
        // Every file that needs anything gets the private directory first:
        // DT_RUNPATH only serves the file's own DT_NEEDED, so each needs it.
        if info.needed.is_empty() {
            continue;
        }
        let rel = crate::base::sysroot::relative(path.parent().unwrap(), &dir);
        let own = format!("$ORIGIN/{}", rel.display());
        let mut entries = vec![own.clone()];
        entries.extend(info.runpath.iter().chain(&info.rpath).flat_map(|p| p.split(':')).filter(|e| *e != own).map(str::to_string));
        crate::machine::elf::patchelf(&path, &["--set-rpath", &entries.join(":")])?;
        libraries += 1;
    }
    writeln!(
        report,
        "private glibc: {} from {} in {}/{DIR}; {programs} programs load {interp}, {libraries} files search there first",
        wanted.join(" "),
        run_root.display(),
        prefix
    )?;
    let rel = |name: &str| format!("{}/{DIR}/{name}", prefix.trim_matches('/'));
    Ok(wanted.iter().map(|s| rel(s)).chain([rel(&loader_name)]).collect())
}

/// After the tree moved from one prefix to another (`package --prefix`),
/// its programs' `PT_INTERP` names the new place of the private loader.
pub fn relocate(root: &Path, to: &str) -> Result<usize> {
    let dir = root.join(to.trim_start_matches('/')).join(DIR);
    let Some(loader) = fs::read_dir(&dir)
        .ok()
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .find(|n| n.starts_with("ld-") || n == "ld.so.1")
    else {
        return Ok(0);
    };
    let interp = format!("{}/{DIR}/{loader}", to.trim_end_matches('/'));
    let mut n = 0;
    for (path, info) in crate::machine::elf::elf_files(root)? {
        if info.interp.as_deref().is_some_and(|i| i != interp && i.ends_with(&format!("/{DIR}/{loader}"))) {
            crate::machine::elf::patchelf(&path, &["--set-interpreter", &interp])?;
            n += 1;
        }
    }
    Ok(n)
}

fn find_in(root: &Path, soname: &str) -> Option<PathBuf> {
    crate::machine::board::library_dirs(root).into_iter().map(|d| d.join(soname)).find(|p| p.exists())
}

/// Copy the file a (possibly symlinked) path names, as a plain file.
fn copy_resolved(from: &Path, to: &Path) -> Result<()> {
    let real = from.canonicalize().with_context(|| format!("cannot resolve {}", from.display()))?;
    fs::copy(&real, to).with_context(|| format!("cannot copy {} to {}", real.display(), to.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    /// A program of the build machine, with the build machine's own glibc
    /// as the "toolchain root": the same shape as a cross tree.
    fn program_in(root: &Path) -> PathBuf {
        let bin = root.join("usr/local/bin");
        fs::create_dir_all(&bin).unwrap();
        let src = root.join("hello.c");
        fs::write(
            &src,
            "#include <math.h>\n#include <stdio.h>\nint main(int c, char **v) { volatile double x = c; printf(\"%g\\n\", sqrt(x * 4)); return 0; }\n",
        )
        .unwrap();
        let out = bin.join("hello");
        let ok = Command::new("gcc").arg(&src).arg("-o").arg(&out).arg("-lm").status().unwrap().success();
        assert!(ok, "the host gcc builds the test program");
        out
    }

    #[test]
    fn programs_load_the_private_loader_and_find_libc_there_first() {
        let t = tempfile::tempdir().unwrap();
        let hello = program_in(t.path());
        let sonames: Vec<String> = ["libc.so.6", "libm.so.6", "libpthread.so.0"].map(String::from).into();
        let mut report = String::new();
        install(t.path(), "/usr/local", Path::new("/"), &sonames, &mut report).unwrap();
        let dir = t.path().join("usr/local/lib/glibc");
        assert!(dir.join("libc.so.6").is_file() && dir.join("libm.so.6").is_file(), "{report}");
        assert!(!dir.join("libpthread.so.0").exists(), "only what the tree needs");
        let info = elf::inspect(&hello).unwrap().unwrap();
        let interp = info.interp.unwrap();
        assert!(interp.starts_with("/usr/local/lib/glibc/ld-"), "{interp}");
        assert_eq!(info.runpath.as_deref(), Some("$ORIGIN/../lib/glibc"));
        // The private loader resolves the program's libraries to the private copies.
        let loader = dir.join(Path::new(&interp).file_name().unwrap());
        let out = Command::new(&loader).arg("--list").arg(&hello).output().unwrap();
        let listed = String::from_utf8_lossy(&out.stdout);
        let private = format!("{}/usr/local/bin/../lib/glibc", t.path().display());
        assert!(listed.contains(&format!("libc.so.6 => {private}/libc.so.6")), "{listed}");
        assert!(listed.contains(&format!("libm.so.6 => {private}/libm.so.6")), "{listed}");
        let run = Command::new(&loader).arg(&hello).output().unwrap();
        assert_eq!(String::from_utf8_lossy(&run.stdout), "2\n");
        assert_eq!(carried(t.path(), "/usr/local").unwrap().unwrap().1, elf::glibc_defined(&dir.join("libc.so.6")).unwrap().unwrap());
    }

    #[test]
    fn a_moved_tree_names_the_loader_at_its_new_place() {
        let t = tempfile::tempdir().unwrap();
        let hello = program_in(t.path());
        install(t.path(), "/usr/local", Path::new("/"), &["libc.so.6".to_string()], &mut String::new()).unwrap();
        fs::create_dir_all(t.path().join("opt")).unwrap();
        fs::rename(t.path().join("usr/local"), t.path().join("opt/python3")).unwrap();
        assert_eq!(relocate(t.path(), "/opt/python3").unwrap(), 1);
        let moved = t.path().join("opt/python3/bin").join(hello.file_name().unwrap());
        assert!(elf::inspect(&moved).unwrap().unwrap().interp.unwrap().starts_with("/opt/python3/lib/glibc/ld-"));
        assert_eq!(relocate(t.path(), "/opt/python3").unwrap(), 0, "nothing left to change");
    }
}
