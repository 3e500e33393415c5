//! `package --rootfs <dir>`: the staged package installed into an existing
//! root filesystem (a Yocto or Buildroot image being assembled, or a board
//! root under test). Every conflict is found before anything is written: a
//! file that exists with other content (or of another type) is refused
//! unless `--force`. Paths are resolved inside the root as the board would
//! resolve them: a `lib -> /usr/lib` symlink of the root leads to the
//! root's `usr/lib`, never to the build machine's.

use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::Path;

use anyhow::{bail, Context, Result};
use walkdir::WalkDir;

pub fn install(staged: &Path, rootfs: &Path, force: bool) -> Result<()> {
    let rootfs = &rootfs.canonicalize().with_context(|| format!("--rootfs {}: not a directory; create the root filesystem first", rootfs.display()))?;
    if !rootfs.is_dir() {
        bail!("--rootfs {}: not a directory; create the root filesystem first", rootfs.display());
    }
    let mut conflicts = vec![];
    let mut entries = vec![];
    for e in WalkDir::new(staged).min_depth(1).sort_by_file_name() {
        let e = e?;
        let rel = e.path().strip_prefix(staged).unwrap().to_path_buf();
        // The last component is not followed: a symlink there is the
        // root's own entry, compared with the package's.
        let parent = crate::machine::board::resolve_in_root(rootfs, rel.parent().unwrap_or(Path::new("")))?;
        let dest = parent.join(rel.file_name().expect("a walked entry has a name"));
        // A symlink of the root where the package has a directory is the
        // board's layout (`lib -> usr/lib`) when it leads to a directory
        // inside the root: the package's files go there.
        let board_dir = e.file_type().is_dir() && crate::machine::board::resolve_in_root(rootfs, &rel)?.is_dir();
        if let Some(why) = differs(e.path(), &dest)?.filter(|_| !board_dir) {
            conflicts.push(format!("{}: {why}", rel.display()));
        }
        entries.push((e.path().to_path_buf(), dest, e.file_type()));
    }
    if !conflicts.is_empty() && !force {
        bail!(
            "{} file(s) of {} differ from the package; nothing was written (use --force to overwrite):\n  {}",
            conflicts.len(),
            rootfs.display(),
            conflicts.join("\n  ")
        );
    }
    let (mut written, mut same) = (0, 0);
    for (src, dest, ft) in entries {
        if differs(&src, &dest)?.is_none() && dest.symlink_metadata().is_ok() {
            same += 1;
            continue;
        }
        if ft.is_dir() {
            let inside = crate::machine::board::resolve_in_root(rootfs, dest.strip_prefix(rootfs).unwrap_or(&dest))?;
            if inside.is_dir() {
                continue;
            }
            if dest.symlink_metadata().is_ok() {
                fs::remove_file(&dest)?;
            }
            fs::create_dir_all(&dest)?;
            continue;
        }
        // Replace atomically: a temporary name in the same directory, then rename.
        let tmp = dest.with_file_name(format!(".{}.crosspython-new", dest.file_name().unwrap().to_string_lossy()));
        let _ = fs::remove_file(&tmp);
        if ft.is_symlink() {
            symlink(fs::read_link(&src)?, &tmp)?;
        } else {
            fs::copy(&src, &tmp).with_context(|| format!("cannot write {}", tmp.display()))?;
        }
        if dest.symlink_metadata().is_ok_and(|m| m.is_dir()) {
            fs::remove_dir_all(&dest)?;
        }
        fs::rename(&tmp, &dest).with_context(|| format!("cannot write {}", dest.display()))?;
        written += 1;
    }
    println!(
        "installed into {}: {written} written, {same} already identical{}",
        rootfs.display(),
        if conflicts.is_empty() { String::new() } else { format!(", {} overwritten (--force)", conflicts.len()) }
    );
    Ok(())
}

/// Why `dest` cannot be left as it is for `src`, or `None` when it is
/// absent or already the same.
fn differs(src: &Path, dest: &Path) -> Result<Option<String>> {
    let Ok(d) = dest.symlink_metadata() else { return Ok(None) };
    let s = src.symlink_metadata()?;
    let kind = |m: &fs::Metadata| {
        if m.file_type().is_symlink() {
            "symlink"
        } else if m.is_dir() {
            "directory"
        } else {
            "file"
        }
    };
    if kind(&s) != kind(&d) {
        // A directory where the package has a symlink to a directory (or the
        // reverse, as in merged-/usr roots) is the board's layout: keep it.
        if dest.is_dir() && src.is_dir() {
            return Ok(None);
        }
        return Ok(Some(format!("the root filesystem has a {} where the package has a {}", kind(&d), kind(&s))));
    }
    if s.file_type().is_symlink() {
        let (a, b) = (fs::read_link(src)?, fs::read_link(dest)?);
        return Ok((a != b).then(|| format!("symlink to {} (package: {})", b.display(), a.display())));
    }
    if s.is_file() {
        if s.len() != d.len() || fs::read(src)? != fs::read(dest)? {
            return Ok(Some("different content".into()));
        }
        if s.permissions().mode() & 0o7777 != d.permissions().mode() & 0o7777 {
            return Ok(Some(format!("mode {:o} (package: {:o})", d.permissions().mode() & 0o7777, s.permissions().mode() & 0o7777)));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn staged() -> tempfile::TempDir {
        let t = tempfile::tempdir().unwrap();
        fs::create_dir_all(t.path().join("usr/local/bin")).unwrap();
        fs::write(t.path().join("usr/local/bin/python3"), "new").unwrap();
        fs::write(t.path().join("usr/local/bin/pip"), "pip").unwrap();
        t
    }

    #[test]
    fn installs_into_an_empty_rootfs_and_again_is_a_no_op() {
        let (s, r) = (staged(), tempfile::tempdir().unwrap());
        install(s.path(), r.path(), false).unwrap();
        assert_eq!(fs::read_to_string(r.path().join("usr/local/bin/python3")).unwrap(), "new");
        install(s.path(), r.path(), false).unwrap();
    }

    #[test]
    fn a_differing_file_is_refused_and_nothing_is_written_without_force() {
        let (s, r) = (staged(), tempfile::tempdir().unwrap());
        fs::create_dir_all(r.path().join("usr/local/bin")).unwrap();
        fs::write(r.path().join("usr/local/bin/python3"), "old").unwrap();
        let err = install(s.path(), r.path(), false).unwrap_err().to_string();
        assert!(err.contains("usr/local/bin/python3: different content"), "{err}");
        assert!(!r.path().join("usr/local/bin/pip").exists(), "nothing is written when refusing");
        install(s.path(), r.path(), true).unwrap();
        assert_eq!(fs::read_to_string(r.path().join("usr/local/bin/python3")).unwrap(), "new");
    }

    #[test]
    fn absolute_symlinks_of_the_root_lead_inside_it_never_to_the_host() {
        use std::os::unix::fs::symlink;
        let (s, r) = (staged(), tempfile::tempdir().unwrap());
        // The root's `usr/local` points at an absolute path: on the board
        // that is its own /opt/crosspython-test-local, never the host's.
        fs::create_dir_all(r.path().join("usr")).unwrap();
        fs::create_dir_all(r.path().join("opt/crosspython-test-local")).unwrap();
        symlink("/opt/crosspython-test-local", r.path().join("usr/local")).unwrap();
        install(s.path(), r.path(), false).unwrap();
        assert_eq!(fs::read_to_string(r.path().join("opt/crosspython-test-local/bin/python3")).unwrap(), "new");
        assert!(!Path::new("/opt/crosspython-test-local").exists(), "nothing written outside the root");
    }

    #[test]
    fn a_missing_rootfs_is_an_error() {
        let s = staged();
        assert!(install(s.path(), Path::new("/nonexistent/rootfs"), false).is_err());
    }
}
