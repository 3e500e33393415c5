//! do_unpack: extract a source archive (`.tar.gz`, `.tgz`, `.tar.xz`,
//! `.tar.bz2`, `.tar.zst`) into a fresh directory, stripping its leading
//! directories; the result appears at once, by a rename.

use std::fs::{self, File};
use std::io::{BufReader, Read};
use std::path::Path;

use anyhow::{bail, Context, Result};

/// The decompressing reader for a tar archive named `name` (by its
/// extension), or `None` for a name that is not a known archive type.
pub fn decoder<'a>(name: &str, r: impl Read + 'a) -> Result<Option<Box<dyn Read + 'a>>> {
    Ok(Some(if name.ends_with(".tar.gz") || name.ends_with(".tgz") {
        Box::new(flate2::read::GzDecoder::new(r))
    } else if name.ends_with(".tar.xz") {
        Box::new(xz2::read::XzDecoder::new(r))
    } else if name.ends_with(".tar.bz2") {
        Box::new(bzip2::read::BzDecoder::new(r))
    } else if name.ends_with(".tar.zst") {
        Box::new(zstd::Decoder::new(r)?)
    } else if name.ends_with(".tar") {
        Box::new(r)
    } else {
        return Ok(None);
    }))
}

pub fn unpack(archive: &Path, dest: &Path, strip: usize) -> Result<()> {
    let name = archive.file_name().and_then(|n| n.to_str()).unwrap_or_default();
    let file = BufReader::new(File::open(archive).with_context(|| format!("cannot open {}", archive.display()))?);
    let Some(reader) = decoder(name, file)? else {
        bail!("{}: unknown archive type (expected .tar.gz, .tgz, .tar.xz, .tar.bz2, .tar.zst or .tar)", archive.display());
    };
    let parent = dest.parent().expect("the source directory has a parent");
    fs::create_dir_all(parent)?;
    let tmp = tempfile::Builder::new().prefix(".unpack-").tempdir_in(parent)?;
    let mut ar = tar::Archive::new(reader);
    ar.set_preserve_permissions(true);
    ar.set_preserve_mtime(true);
    // Entry by entry, so that a name that would land outside the directory
    // is refused by name (the tar crate quietly drops a leading `/` and
    // skips `..`, which then surfaced as a strip_components error).
    for entry in ar.entries().with_context(|| format!("cannot read {}", archive.display()))? {
        let mut entry = entry.with_context(|| format!("cannot read {}", archive.display()))?;
        let path = entry.path()?.into_owned();
        if path.is_absolute() || path.components().any(|c| c == std::path::Component::ParentDir) {
            bail!("{}: entry `{}` names a place outside the source directory; refused, nothing was unpacked", archive.display(), path.display());
        }
        if !entry.unpack_in(tmp.path()).with_context(|| format!("cannot unpack `{}` of {}", path.display(), archive.display()))? {
            bail!("{}: entry `{}` would be written outside the source directory; refused, nothing was unpacked", archive.display(), path.display());
        }
    }
    let mut root = tmp.path().to_path_buf();
    for level in 0..strip {
        let entries: Vec<_> = fs::read_dir(&root)?.flatten().collect();
        match entries.as_slice() {
            [one] if one.file_type()?.is_dir() => root = one.path(),
            _ => bail!(
                "{}: cannot strip {strip} leading director{} (level {} has {} entries); set strip_components in the recipe's source",
                archive.display(),
                if strip == 1 { "y" } else { "ies" },
                level + 1,
                entries.len()
            ),
        }
    }
    crate::base::sysroot::remove(dest)?;
    fs::rename(&root, dest).with_context(|| format!("cannot move the unpacked tree to {}", dest.display()))?;
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    fn tarball(dir: &Path, files: &[(&str, &str)]) -> std::path::PathBuf {
        let path = dir.join("t-1.0.tar.gz");
        tar_gz(&path, files);
        path
    }

    /// A gzipped tarball of `files` (name, content), for tests.
    pub(crate) fn tar_gz(path: &Path, files: &[(&str, &str)]) {
        let enc = flate2::write::GzEncoder::new(File::create(path).unwrap(), flate2::Compression::fast());
        let mut b = tar::Builder::new(enc);
        for (name, content) in files {
            let mut h = tar::Header::new_gnu();
            h.set_size(content.len() as u64);
            h.set_mode(0o644);
            h.set_cksum();
            b.append_data(&mut h, name, content.as_bytes()).unwrap();
        }
        b.into_inner().unwrap().finish().unwrap();
    }

    #[test]
    fn the_top_directory_is_stripped() {
        let t = tempfile::tempdir().unwrap();
        let a = tarball(t.path(), &[("t-1.0/configure", "#!/bin/sh"), ("t-1.0/src/a.c", "int x;")]);
        let dest = t.path().join("work/src");
        unpack(&a, &dest, 1).unwrap();
        assert_eq!(fs::read_to_string(dest.join("src/a.c")).unwrap(), "int x;");
    }

    #[test]
    fn an_entry_with_an_absolute_path_is_refused_by_name() {
        let t = tempfile::tempdir().unwrap();
        // tar::Builder refuses such names, so the header is written by hand.
        let path = t.path().join("t-1.0.tar");
        let mut h = tar::Header::new_gnu();
        h.as_gnu_mut().unwrap().name[..11].copy_from_slice(b"/etc/passwd");
        h.set_size(1);
        h.set_mode(0o644);
        h.set_cksum();
        let mut bytes = h.as_bytes().to_vec();
        bytes.extend([b'x'; 512]);
        bytes.extend([0u8; 1024]);
        fs::write(&path, bytes).unwrap();
        let err = unpack(&path, &t.path().join("src"), 1).unwrap_err().to_string();
        assert!(err.contains("entry `/etc/passwd` names a place outside the source directory"), "{err}");
        assert!(!t.path().join("src").exists());
    }

    #[test]
    fn an_archive_without_a_single_top_directory_is_an_error() {
        let t = tempfile::tempdir().unwrap();
        let a = tarball(t.path(), &[("a.c", "1"), ("b.c", "2")]);
        let err = unpack(&a, &t.path().join("src"), 1).unwrap_err().to_string();
        assert!(err.contains("cannot strip 1 leading directory (level 1 has 2 entries)"), "{err}");
    }
}
