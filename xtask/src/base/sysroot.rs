//! File trees: per-recipe sysroots made of hard links, the
//! `populate_sysroot` filter, and plain copies for the target tree.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use walkdir::WalkDir;

/// What a recipe's `populate_sysroot` leaves out of its install: docs and
/// libtool archives (whose absolute paths break cross links).
fn sysroot_excluded(rel: &Path) -> bool {
    let s = rel.to_string_lossy();
    s.ends_with(".la")
        || ["share/man", "share/doc", "share/info", "share/gtk-doc"]
            .iter()
            .any(|d| s.split_once(d).is_some_and(|(pre, post)| (pre.is_empty() || pre.ends_with('/')) && (post.is_empty() || post.starts_with('/'))))
}

/// `install`'s image -> `sysroot-destdir`, by hard links.
pub fn populate(image: &Path, destdir: &Path) -> Result<()> {
    remove(destdir)?;
    fs::create_dir_all(destdir)?;
    if !image.exists() {
        return Ok(());
    }
    let mut owners = BTreeMap::new();
    link_tree(image, destdir, "image", &mut owners, &sysroot_excluded)
}

/// Hard-link the tree `from` into `to`; `owners` records which recipe put
/// each file there, so that two recipes shipping different files at one
/// path is an error that names both.
pub fn link_tree(from: &Path, to: &Path, owner: &str, owners: &mut BTreeMap<PathBuf, String>, skip: &dyn Fn(&Path) -> bool) -> Result<()> {
    for entry in WalkDir::new(from).min_depth(1).sort_by_file_name() {
        let entry = entry.with_context(|| format!("cannot read {}", from.display()))?;
        let rel = entry.path().strip_prefix(from).expect("walkdir yields paths below its root");
        if skip(rel) {
            continue;
        }
        let dest = to.join(rel);
        let ft = entry.file_type();
        stays_inside(to, rel)?;
        if ft.is_dir() {
            fs::create_dir_all(&dest)?;
            continue;
        }
        if let Some(first) = owners.get(rel) {
            if same_content(entry.path(), &dest)? {
                continue;
            }
            bail!("{} is installed by both {first} and {owner}, with different contents", rel.display());
        }
        if let Some(parent) = dest.parent() {
            fs::create_dir_all(parent)?;
        }
        if ft.is_symlink() {
            symlink(fs::read_link(entry.path())?, &dest)?;
        } else if let Err(e) = fs::hard_link(entry.path(), &dest) {
            // Another filesystem: copy instead.
            if e.kind() == io::ErrorKind::CrossesDevices {
                fs::copy(entry.path(), &dest)?;
            } else {
                return Err(e).with_context(|| format!("cannot link {} to {}", entry.path().display(), dest.display()));
            }
        }
        owners.insert(rel.to_path_buf(), owner.to_string());
    }
    Ok(())
}

fn same_content(a: &Path, b: &Path) -> Result<bool> {
    let (ma, mb) = (fs::symlink_metadata(a)?, fs::symlink_metadata(b)?);
    if ma.file_type().is_symlink() || mb.file_type().is_symlink() {
        return Ok(ma.file_type().is_symlink() && mb.file_type().is_symlink() && fs::read_link(a)? == fs::read_link(b)?);
    }
    Ok(ma.len() == mb.len() && fs::read(a)? == fs::read(b)?)
}

/// A real copy of a tree (the target tree is edited in place later, so it
/// must not share inodes with the sysroots). Symlinks stay symlinks.
pub fn copy_tree(from: &Path, to: &Path) -> Result<()> {
    for entry in WalkDir::new(from).min_depth(1).sort_by_file_name() {
        let entry = entry?;
        let rel = entry.path().strip_prefix(from).expect("below root");
        let dest = to.join(rel);
        let ft = entry.file_type();
        stays_inside(to, rel)?;
        if ft.is_dir() {
            fs::create_dir_all(&dest)?;
        } else {
            if let Some(parent) = dest.parent() {
                fs::create_dir_all(parent)?;
            }
            if dest.symlink_metadata().is_ok() {
                fs::remove_file(&dest)?;
            }
            if ft.is_symlink() {
                symlink(fs::read_link(entry.path())?, &dest)?;
            } else {
                fs::copy(entry.path(), &dest).with_context(|| format!("cannot copy {} to {}", entry.path().display(), dest.display()))?;
                // Keep mtimes: CPython's .pyc files name their source's.
                let modified = entry.metadata()?.modified()?;
                fs::File::options().write(true).open(&dest)?.set_modified(modified)?;
            }
        }
    }
    Ok(())
}

/// `rel` below `root` must not pass through a symlink that leaves `root`:
/// one recipe's `share/x -> /some/host/dir` must not let another recipe's
/// `share/x/file` be written onto the build machine.
fn stays_inside(root: &Path, rel: &Path) -> Result<()> {
    let mut at = root.to_path_buf();
    let components: Vec<_> = rel.components().collect();
    for c in &components[..components.len().saturating_sub(1)] {
        at.push(c);
        match fs::symlink_metadata(&at) {
            Ok(m) if m.file_type().is_symlink() => {
                let real = at.canonicalize().unwrap_or_else(|_| fs::read_link(&at).unwrap_or_default());
                let root_real = root.canonicalize().unwrap_or_else(|_| root.to_path_buf());
                if !real.starts_with(&root_real) {
                    bail!(
                        "{} would be written through the symlink {} -> {}, which leaves {}; nothing was written there",
                        rel.display(),
                        at.strip_prefix(root).unwrap_or(&at).display(),
                        fs::read_link(&at)?.display(),
                        root.display()
                    );
                }
            }
            Ok(_) => {}
            Err(_) => break,
        }
    }
    Ok(())
}

/// Remove a directory tree if it is there.
pub fn remove(path: &Path) -> Result<()> {
    match fs::remove_dir_all(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e).with_context(|| format!("cannot remove {}", path.display())),
    }
}

/// The path from `from` to `to`, both below the same root.
pub fn relative(from: &Path, to: &Path) -> PathBuf {
    let f: Vec<_> = from.components().collect();
    let t: Vec<_> = to.components().collect();
    let common = f.iter().zip(&t).take_while(|(a, b)| a == b).count();
    let mut p = PathBuf::new();
    for _ in common..f.len() {
        p.push("..");
    }
    for c in &t[common..] {
        p.push(c);
    }
    p
}

/// `a/b/../c` as `a/c`, without touching the file system.
pub fn normalize(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            std::path::Component::ParentDir => {
                out.pop();
            }
            std::path::Component::CurDir => {}
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_under_a_symlink_that_leaves_the_tree_is_refused() {
        let (t, outside) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let (a, b, to) = (t.path().join("a"), t.path().join("b"), t.path().join("tree"));
        fs::create_dir_all(a.join("usr/share")).unwrap();
        symlink(outside.path(), a.join("usr/share/x")).unwrap();
        fs::create_dir_all(b.join("usr/share/x")).unwrap();
        fs::write(b.join("usr/share/x/file"), "b").unwrap();
        copy_tree(&a, &to).unwrap();
        let err = copy_tree(&b, &to).unwrap_err().to_string();
        assert!(err.contains("usr/share/x/file would be written through the symlink usr/share/x"), "{err}");
        assert!(fs::read_dir(outside.path()).unwrap().next().is_none(), "nothing was written outside the tree");
        // A symlink that stays inside the tree is the tree's own layout.
        let (c, d, to2) = (t.path().join("c"), t.path().join("d"), t.path().join("tree2"));
        fs::create_dir_all(c.join("usr/lib")).unwrap();
        symlink("usr/lib", c.join("lib")).unwrap();
        fs::create_dir_all(d.join("lib")).unwrap();
        fs::write(d.join("lib/y"), "d").unwrap();
        copy_tree(&c, &to2).unwrap();
        copy_tree(&d, &to2).unwrap();
        assert_eq!(fs::read_to_string(to2.join("usr/lib/y")).unwrap(), "d");
    }

    #[test]
    fn populate_leaves_out_docs_and_libtool_archives() {
        let t = tempfile::tempdir().unwrap();
        let image = t.path().join("image");
        for f in ["usr/lib/libz.so.1", "usr/lib/libz.la", "usr/share/man/man3/zlib.3", "usr/include/zlib.h", "usr/share/pkgconfig/x.pc"] {
            fs::create_dir_all(image.join(f).parent().unwrap()).unwrap();
            fs::write(image.join(f), f).unwrap();
        }
        let dest = t.path().join("dest");
        populate(&image, &dest).unwrap();
        let mut got: Vec<String> = WalkDir::new(&dest)
            .into_iter()
            .flatten()
            .filter(|e| e.file_type().is_file())
            .map(|e| e.path().strip_prefix(&dest).unwrap().display().to_string())
            .collect();
        got.sort();
        assert_eq!(got, ["usr/include/zlib.h", "usr/lib/libz.so.1", "usr/share/pkgconfig/x.pc"]);
    }

    #[test]
    fn two_recipes_with_different_files_at_one_path_is_an_error() {
        let t = tempfile::tempdir().unwrap();
        for (d, content) in [("a", "one"), ("b", "two")] {
            fs::create_dir_all(t.path().join(d).join("usr/include")).unwrap();
            fs::write(t.path().join(d).join("usr/include/x.h"), content).unwrap();
        }
        let to = t.path().join("sysroot");
        let mut owners = BTreeMap::new();
        link_tree(&t.path().join("a"), &to, "a", &mut owners, &|_| false).unwrap();
        let err = link_tree(&t.path().join("b"), &to, "b", &mut owners, &|_| false).unwrap_err();
        assert_eq!(err.to_string(), "usr/include/x.h is installed by both a and b, with different contents");
    }
}
