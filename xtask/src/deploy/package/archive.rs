//! Reproducible archives: entries sorted, owner root, every mtime
//! `SOURCE_DATE_EPOCH` (see `reproducible`), no timestamp in the gzip
//! header (zstd frames have none), written to a temporary file and renamed.

use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use anyhow::{Context, Result};
use walkdir::WalkDir;

#[derive(Clone, Copy, Debug)]
pub enum Format {
    Gzip,
    Zstd,
}

impl Format {
    /// Every archive `package` writes of a profile, in this order.
    pub const ALL: [Format; 2] = [Format::Gzip, Format::Zstd];

    pub fn extension(self) -> &'static str {
        match self {
            Format::Gzip => "tar.gz",
            Format::Zstd => "tar.zst",
        }
    }
}

/// The package's stem (`crosspython-3.14.7-aarch64-minimal`) in the name
/// of one of its archives: the name its other files (`.sizes.txt`, ...)
/// are written under.
pub fn stem_of(file_name: &str) -> Option<&str> {
    Format::ALL.iter().find_map(|f| file_name.strip_suffix(f.extension())?.strip_suffix('.'))
}

pub fn write(root: &Path, out: &Path, format: Format, epoch: u64) -> Result<()> {
    let dir = out.parent().context("an archive path has a directory")?;
    let tmp = tempfile::NamedTempFile::new_in(dir)?;
    let file = BufWriter::new(tmp.as_file());
    match format {
        Format::Gzip => {
            let gz = flate2::GzBuilder::new().mtime(0).write(file, flate2::Compression::best());
            let mut tar = tar::Builder::new(gz);
            write_entries(&mut tar, root, epoch)?;
            tar.into_inner()?.finish()?.flush()?;
        }
        Format::Zstd => {
            let mut z = zstd::Encoder::new(file, 12)?;
            // Single-threaded: the output must not depend on the machine.
            // Level 12: near level 19 in size at ten times the speed.
            z.include_checksum(true)?;
            let mut tar = tar::Builder::new(z);
            write_entries(&mut tar, root, epoch)?;
            tar.into_inner()?.finish()?.flush()?;
        }
    }
    crate::engine::tasks::normal_mode(tmp.as_file())?;
    tmp.persist(out).with_context(|| format!("cannot write {}", out.display()))?;
    Ok(())
}

/// Every file, directory and symlink of the tree, sorted, with fixed owner
/// and time.
fn write_entries<W: Write>(tar: &mut tar::Builder<W>, tree: &Path, epoch: u64) -> Result<()> {
    for e in WalkDir::new(tree).min_depth(1).sort_by_file_name() {
        let e = e?;
        let rel = e.path().strip_prefix(tree).unwrap();
        let meta = fs::symlink_metadata(e.path())?;
        let mut h = tar::Header::new_gnu();
        h.set_mtime(epoch);
        h.set_uid(0);
        h.set_gid(0);
        h.set_username("root")?;
        h.set_groupname("root")?;
        // Drop group/other write: no world-writable files on the board.
        h.set_mode(meta.permissions().mode() & 0o7755);
        if meta.file_type().is_symlink() {
            h.set_entry_type(tar::EntryType::Symlink);
            h.set_size(0);
            tar.append_link(&mut h, rel, fs::read_link(e.path())?)?;
        } else if meta.is_dir() {
            h.set_entry_type(tar::EntryType::Directory);
            h.set_size(0);
            tar.append_data(&mut h, rel, std::io::empty())?;
        } else {
            h.set_entry_type(tar::EntryType::Regular);
            h.set_size(meta.len());
            tar.append_data(&mut h, rel, File::open(e.path())?)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree() -> tempfile::TempDir {
        let t = tempfile::tempdir().unwrap();
        fs::create_dir_all(t.path().join("usr/bin")).unwrap();
        fs::write(t.path().join("usr/bin/b"), "b").unwrap();
        fs::write(t.path().join("usr/a"), "a").unwrap();
        std::os::unix::fs::symlink("a", t.path().join("usr/c")).unwrap();
        t
    }

    #[test]
    fn the_same_tree_gives_the_same_bytes_whatever_the_file_times() {
        for format in [Format::Gzip, Format::Zstd] {
            let (t1, t2) = (tree(), tree());
            File::options().write(true).open(t2.path().join("usr/a")).unwrap().set_modified(std::time::SystemTime::UNIX_EPOCH).unwrap();
            let out = tempfile::tempdir().unwrap();
            let (a, b) = (out.path().join("1"), out.path().join("2"));
            write(t1.path(), &a, format, 7).unwrap();
            write(t2.path(), &b, format, 7).unwrap();
            assert_eq!(fs::read(&a).unwrap(), fs::read(&b).unwrap(), "{format:?}");
        }
    }

    #[test]
    fn entries_are_sorted_and_owned_by_root_at_the_epoch() {
        let t = tree();
        let out = tempfile::tempdir().unwrap();
        let a = out.path().join("x.tar.gz");
        write(t.path(), &a, Format::Gzip, 7).unwrap();
        let mut ar = tar::Archive::new(flate2::read::GzDecoder::new(File::open(&a).unwrap()));
        let entries: Vec<(String, u64, u64)> = ar
            .entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                (e.path().unwrap().display().to_string(), e.header().mtime().unwrap(), e.header().uid().unwrap())
            })
            .collect();
        let names: Vec<&str> = entries.iter().map(|e| e.0.as_str()).collect();
        assert_eq!(names, ["usr", "usr/a", "usr/bin", "usr/bin/b", "usr/c"]);
        assert!(entries.iter().all(|e| e.1 == 7 && e.2 == 0));
    }
}
