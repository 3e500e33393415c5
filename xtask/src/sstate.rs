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

    /// `.v2`: entries record the build directory that made them.
    fn rel(name: &str, sig: &str) -> String {
        format!("{}/{name}-{sig}.v2.tar.zst", &sig[..2])
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

    /// Store `dir` as the output of `name` at `sig` (write, then rename),
    /// noting `build_dir`: text files in it (`_sysconfigdata`, `*-config`)
    /// may name the build directory, which differs where it is restored.
    pub fn store(&self, name: &str, sig: &str, dir: &Path, build_dir: &Path) -> Result<()> {
        let dest = self.path(name, sig);
        if dest.exists() {
            return Ok(());
        }
        fs::create_dir_all(dest.parent().expect("has a parent")).with_context(|| format!("cannot create the artifact cache {}", self.dir.display()))?;
        let tmp = tempfile::NamedTempFile::new_in(dest.parent().expect("has a parent"))?;
        {
            let enc = zstd::Encoder::new(BufWriter::new(tmp.as_file()), 3)?.auto_finish();
            let mut tar = tar::Builder::new(enc);
            tar.follow_symlinks(false);
            tar.append_dir_all(".", dir).with_context(|| format!("cannot archive {}", dir.display()))?;
            let origin = build_dir.display().to_string();
            let mut h = tar::Header::new_gnu();
            h.set_size(origin.len() as u64);
            h.set_mode(0o644);
            tar.append_data(&mut h, ORIGIN, origin.as_bytes())?;
            tar.finish()?;
        }
        tmp.persist(&dest).with_context(|| format!("cannot write {}", dest.display()))?;
        Ok(())
    }

    /// Unpack the output of `name` at `sig` into `dir` (which is replaced),
    /// with the build directory that made it replaced by `build_dir` in
    /// every text file, as Yocto's sstate does with its FIXMEDIR markers.
    pub fn restore(&self, name: &str, sig: &str, dir: &Path, build_dir: &Path) -> Result<()> {
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
        let origin = fs::read_to_string(tmp.join(ORIGIN)).with_context(|| format!("{} does not say where it was made", src.display()))?;
        fs::remove_file(tmp.join(ORIGIN))?;
        relocate(&tmp, origin.as_bytes(), build_dir.display().to_string().as_bytes())?;
        fs::rename(&tmp, dir)?;
        Ok(())
    }
}

/// The member of an entry that names the build directory that made it.
const ORIGIN: &str = ".crosspython-sstate-origin";

/// `from` replaced by `to` in every symlink and text file below `dir`.
fn relocate(dir: &Path, from: &[u8], to: &[u8]) -> Result<()> {
    if from == to {
        return Ok(());
    }
    for e in walkdir::WalkDir::new(dir) {
        let e = e?;
        if e.file_type().is_symlink() {
            let target = fs::read_link(e.path())?;
            let t = target.display().to_string().into_bytes();
            if crate::image::contains(&t, from) {
                fs::remove_file(e.path())?;
                std::os::unix::fs::symlink(String::from_utf8_lossy(&crate::image::replace_all(&t, from, to)).as_ref(), e.path())?;
            }
        }
    }
    crate::image::rewrite_text_files(dir, &[from.to_vec()], &[(from.to_vec(), to.to_vec())])?;
    Ok(())
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
        s.store("zlib", &sig, &src, Path::new("/b/build")).unwrap();
        assert!(s.has("zlib", &sig));
        let out = t.path().join("out");
        s.restore("zlib", &sig, &out, Path::new("/b/build")).unwrap();
        assert_eq!(fs::read(out.join("usr/lib/libz.so.1.3.1")).unwrap(), b"elf");
        assert_eq!(fs::read_link(out.join("usr/lib/libz.so.1")).unwrap(), Path::new("libz.so.1.3.1"));
        assert!(!out.join(ORIGIN).exists());
    }

    #[test]
    fn build_paths_in_text_files_follow_the_build_dir_that_restores() {
        let t = tempfile::tempdir().unwrap();
        let src = t.path().join("src");
        fs::create_dir_all(src.join("usr/lib/python3.13")).unwrap();
        let sysconfig = "{'CC': 'gcc -I/ci/one/build/aarch64/work/python3/recipe-sysroot/usr/include'}";
        fs::write(src.join("usr/lib/python3.13/_sysconfigdata.py"), sysconfig).unwrap();
        fs::write(src.join("usr/lib/libx.so"), b"\x7fELF\x02\x01\x01\0 /ci/one/build kept").unwrap();
        // Marshal data: a path of another length would shift every offset.
        let pyc = b"\xf3\r\r\n\0\0\0\0\xe3\0\0\0/ci/one/build/native/os.py";
        fs::write(src.join("usr/lib/python3.13/os.cpython-313.pyc"), pyc).unwrap();
        // Byte code of a rewritten source holds the old paths: it goes.
        fs::create_dir_all(src.join("usr/lib/python3.13/__pycache__")).unwrap();
        fs::write(src.join("usr/lib/python3.13/__pycache__/_sysconfigdata.cpython-313.pyc"), b"\xf3\r\r\n\0/ci/one/build").unwrap();
        fs::write(src.join("usr/lib/python3.13/__pycache__/_sysconfigdata_extra.cpython-313.pyc"), b"\0kept").unwrap();
        let s = Sstate::new(t.path().join("sstate"));
        let sig = "cd".repeat(32);
        s.store("python3", &sig, &src, Path::new("/ci/one/build")).unwrap();
        let out = t.path().join("out");
        s.restore("python3", &sig, &out, Path::new("/home/me/clone/build")).unwrap();
        assert_eq!(
            fs::read_to_string(out.join("usr/lib/python3.13/_sysconfigdata.py")).unwrap(),
            "{'CC': 'gcc -I/home/me/clone/build/aarch64/work/python3/recipe-sysroot/usr/include'}"
        );
        assert_eq!(fs::read(out.join("usr/lib/libx.so")).unwrap(), b"\x7fELF\x02\x01\x01\0 /ci/one/build kept", "binaries are not edited");
        assert_eq!(fs::read(out.join("usr/lib/python3.13/os.cpython-313.pyc")).unwrap(), pyc, "byte code is not edited");
        assert!(!out.join("usr/lib/python3.13/__pycache__/_sysconfigdata.cpython-313.pyc").exists(), "stale byte code is removed");
        assert!(out.join("usr/lib/python3.13/__pycache__/_sysconfigdata_extra.cpython-313.pyc").exists(), "other modules' byte code stays");
    }
}
