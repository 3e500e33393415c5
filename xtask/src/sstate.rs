//! The shared artifact cache, like Yocto's sstate: the output of
//! `populate_sysroot` stored by task signature, so that another build
//! directory, a fresh clone or CI restores it instead of building.
//!
//! Location: `CROSSPYTHON_SSTATE_DIR` (default
//! `~/.cache/crosspython/sstate`), a directory that may be on a network
//! filesystem; `CROSSPYTHON_SSTATE_MIRRORS` adds read-only `http(s)://` or
//! `file://` bases that are tried when the local cache misses.

use std::fs::{self, File};
use std::io::{BufReader, BufWriter};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

pub struct Sstate {
    dir: PathBuf,
    mirrors: Vec<String>,
}

impl Sstate {
    pub fn new(dir: PathBuf) -> Sstate {
        let mirrors = crate::mirror::bases_from_env("CROSSPYTHON_SSTATE_MIRRORS");
        Sstate { dir, mirrors }
    }

    fn rel(name: &str, sig: &str) -> String {
        format!("{}/{name}-{sig}.tar.zst", &sig[..2])
    }

    fn path(&self, name: &str, sig: &str) -> PathBuf {
        self.dir.join(Self::rel(name, sig))
    }

    /// Is the output of `name` at `sig` available (locally, or from a mirror
    /// into the local cache)?
    pub fn has(&self, name: &str, sig: &str) -> bool {
        let local = self.path(name, sig);
        if local.exists() {
            return true;
        }
        self.mirrors.iter().any(|m| self.fetch_from(m, &local, &Self::rel(name, sig)).is_ok())
    }

    fn fetch_from(&self, mirror: &str, local: &Path, rel: &str) -> Result<()> {
        fs::create_dir_all(local.parent().expect("has a parent"))?;
        let part = local.with_extension(format!("part.{}", std::process::id()));
        let copied = match mirror.strip_prefix("file://") {
            Some(dir) => fs::copy(Path::new(dir).join(rel), &part).map(|_| ()).map_err(anyhow::Error::from),
            None => ureq::get(&format!("{mirror}/{rel}"))
                .call()
                .map_err(anyhow::Error::from)
                .and_then(|r| Ok(std::io::copy(&mut r.into_reader(), &mut File::create(&part)?).map(|_| ())?)),
        };
        match copied {
            Ok(()) => Ok(fs::rename(&part, local)?),
            Err(e) => {
                let _ = fs::remove_file(&part);
                Err(e)
            }
        }
    }

    /// Store `dir` as the output of `name` at `sig` (write, then rename).
    pub fn store(&self, name: &str, sig: &str, dir: &Path) -> Result<()> {
        let dest = self.path(name, sig);
        if dest.exists() {
            return Ok(());
        }
        fs::create_dir_all(dest.parent().expect("has a parent"))
            .with_context(|| format!("cannot create the artifact cache {}", self.dir.display()))?;
        let tmp = tempfile::NamedTempFile::new_in(dest.parent().expect("has a parent"))?;
        {
            let enc = zstd::Encoder::new(BufWriter::new(tmp.as_file()), 3)?.auto_finish();
            let mut tar = tar::Builder::new(enc);
            tar.follow_symlinks(false);
            tar.append_dir_all(".", dir).with_context(|| format!("cannot archive {}", dir.display()))?;
            tar.finish()?;
        }
        tmp.persist(&dest).with_context(|| format!("cannot write {}", dest.display()))?;
        Ok(())
    }

    /// Unpack the output of `name` at `sig` into `dir` (which is replaced).
    pub fn restore(&self, name: &str, sig: &str, dir: &Path) -> Result<()> {
        let src = self.path(name, sig);
        crate::sysroot::remove(dir)?;
        let tmp = dir.with_extension("restoring");
        crate::sysroot::remove(&tmp)?;
        fs::create_dir_all(&tmp)?;
        let f = File::open(&src).with_context(|| format!("cannot open {}", src.display()))?;
        let mut ar = tar::Archive::new(zstd::Decoder::new(BufReader::new(f))?);
        ar.set_preserve_permissions(true);
        ar.set_preserve_mtime(true);
        ar.unpack(&tmp).with_context(|| format!("cannot unpack {}", src.display()))?;
        fs::rename(&tmp, dir)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stored_tree_is_restored_with_its_symlinks() {
        let t = tempfile::tempdir().unwrap();
        let src = t.path().join("src");
        fs::create_dir_all(src.join("usr/lib")).unwrap();
        fs::write(src.join("usr/lib/libz.so.1.3.1"), b"elf").unwrap();
        std::os::unix::fs::symlink("libz.so.1.3.1", src.join("usr/lib/libz.so.1")).unwrap();
        let s = Sstate::new(t.path().join("sstate"));
        let sig = "ab".repeat(32);
        assert!(!s.has("zlib", &sig));
        s.store("zlib", &sig, &src).unwrap();
        assert!(s.has("zlib", &sig));
        let out = t.path().join("out");
        s.restore("zlib", &sig, &out).unwrap();
        assert_eq!(fs::read(out.join("usr/lib/libz.so.1.3.1")).unwrap(), b"elf");
        assert_eq!(fs::read_link(out.join("usr/lib/libz.so.1")).unwrap(), Path::new("libz.so.1.3.1"));
    }
}
