//! The shared artifact cache, like Yocto's sstate: the output of
//! `populate_sysroot` stored by task signature, so that another build
//! directory, a fresh clone or CI restores it instead of building.
//!
//! Location: `CROSSPYTHON_SSTATE_DIR` (default
//! `~/.cache/crosspython/sstate`), a directory that may be on a network
//! filesystem; `CROSSPYTHON_SSTATE_MIRRORS` adds read-only `http(s)://` or
//! `file://` bases that are tried when the local cache misses.
//!
//! Nothing unchecked is installed: every entry has a `.sha256` file written
//! with it (and fetched with it from a mirror), checked before the entry
//! is used; inside, it names the recipe and signature it was made for and
//! the sha256 of every file it holds (checked again on the tree a restore
//! writes), and its zstd frames carry checksums. With trusted keys (see
//! `signing`) the `.sha256` file must also carry a producer's signature
//! (`.sig`). An entry that fails a check is moved to `quarantine/` (kept
//! for inspection, never used) and the recipe is built.

use std::fs::{self, File};
use std::io::{BufReader, BufWriter};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use crate::base::signing::{Signer, Trusted};

pub struct Sstate {
    dir: PathBuf,
    mirrors: Vec<String>,
    signer: Option<Signer>,
    trusted: Option<Trusted>,
}

impl Sstate {
    pub fn new(dir: PathBuf) -> Sstate {
        let mirrors = crate::sources::mirror::bases_from_env("CROSSPYTHON_SSTATE_MIRRORS");
        Sstate { dir, mirrors, signer: None, trusted: None }
    }

    #[cfg(test)]
    fn with_mirrors(self, mirrors: Vec<String>) -> Sstate {
        Sstate { mirrors, ..self }
    }

    /// Sign what is stored with `signer`; install only what `trusted` signed.
    pub fn with_keys(self, (signer, trusted): (Option<Signer>, Option<Trusted>)) -> Sstate {
        Sstate { signer, trusted, ..self }
    }

    /// `.v4`: entries record the build directory that made them, what
    /// they are for and their files' hashes, and come with a `.sha256`
    /// file (and a `.sig` when signed).
    fn rel(name: &str, sig: &str) -> String {
        format!("{}/{name}-{sig}.v4.tar.zst", &sig[..2])
    }

    fn path(&self, name: &str, sig: &str) -> PathBuf {
        self.dir.join(Self::rel(name, sig))
    }

    /// Is the output of `name` at `sig` available and intact (locally, or
    /// from a mirror into the local cache)? A damaged local entry is
    /// quarantined and counts as missing.
    pub fn has(&self, name: &str, sig: &str) -> bool {
        let local = self.path(name, sig);
        if local.exists() {
            match self.verify(&local) {
                Ok(()) => return true,
                Err(e) => self.quarantine(&local, &e),
            }
        }
        self.mirrors.iter().any(|m| match self.fetch_from(m, &local, &Self::rel(name, sig)) {
            Ok(()) => true,
            Err(e) => {
                if !format!("{e:#}").contains("404") && !format!("{e:#}").contains("No such file") {
                    eprintln!("warning: artifact cache mirror {m}: {}: {e:#}", Self::rel(name, sig));
                }
                false
            }
        })
    }

    /// Move a damaged entry (and its checksum) aside, where it is kept for
    /// inspection and never used.
    fn quarantine(&self, entry: &Path, why: &anyhow::Error) {
        let q = self.dir.join("quarantine");
        let _ = fs::create_dir_all(&q);
        let name = entry.file_name().expect("an entry has a name");
        let _ = fs::rename(entry, q.join(name));
        let _ = fs::rename(sum_path(entry), q.join(sum_path(Path::new(name))));
        let _ = fs::rename(sig_path(entry), q.join(sig_path(Path::new(name))));
        eprintln!("warning: artifact cache entry {} failed its check ({why:#}); moved to {}, the recipe is built instead", entry.display(), q.display());
    }

    /// The entry and its checksum from a mirror, checked before either is
    /// put into the local cache.
    fn fetch_from(&self, mirror: &str, local: &Path, rel: &str) -> Result<()> {
        fs::create_dir_all(local.parent().expect("has a parent"))?;
        let part = local.with_extension(format!("part.{}", std::process::id()));
        let sum_part = part.with_extension("sha256");
        let get = |rel: &str, to: &Path| -> Result<()> {
            match mirror.strip_prefix("file://") {
                Some(dir) => fs::copy(Path::new(dir).join(rel), to).map(|_| ()).map_err(anyhow::Error::from),
                None => ureq::get(&format!("{mirror}/{rel}"))
                    .call()
                    .map_err(anyhow::Error::from)
                    .and_then(|r| Ok(std::io::copy(&mut r.into_reader(), &mut File::create(to)?).map(|_| ())?)),
            }
        };
        let sig_part = part.with_extension("sig");
        let fetched = get(rel, &part)
            .and_then(|()| get(&format!("{rel}.sha256"), &sum_part))
            .and_then(|()| match self.trusted {
                // Said, not taken for "not on this mirror": the entry is there.
                Some(_) => get(&format!("{rel}.sig"), &sig_part)
                    .map_err(|_| anyhow::anyhow!("the entry has no signature ({rel}.sig) and trusted keys are set; not used")),
                None => Ok(()),
            })
            .and_then(|()| {
                fs::rename(&sum_part, sum_path(&part))?;
                if sig_part.exists() {
                    fs::rename(&sig_part, sig_path(&part))?;
                }
                self.verify(&part).with_context(|| format!("{mirror}/{rel}"))
            });
        match fetched {
            Ok(()) => {
                if sig_path(&part).exists() {
                    fs::rename(sig_path(&part), sig_path(local))?;
                }
                fs::rename(sum_path(&part), sum_path(local))?;
                Ok(fs::rename(&part, local)?)
            }
            Err(e) => {
                for f in [&part, &sum_part, &sum_path(&part), &sig_part, &sig_path(&part)] {
                    let _ = fs::remove_file(f);
                }
                Err(e)
            }
        }
    }

    /// Store `dir` as the output of `name` at `sig` (write, then rename),
    /// noting `build_dir`: text files in it (`_sysconfigdata`, `*-config`)
    /// may name the build directory, which differs where it is restored.
    pub fn store(&self, name: &str, sig: &str, dir: &Path, build_dir: &Path) -> Result<()> {
        let dest = self.path(name, sig);
        // A good entry stays; a damaged one is replaced by this build's.
        if dest.exists() && self.verify(&dest).is_ok() {
            return Ok(());
        }
        fs::create_dir_all(dest.parent().expect("has a parent")).with_context(|| format!("cannot create the artifact cache {}", self.dir.display()))?;
        let tmp = tempfile::NamedTempFile::new_in(dest.parent().expect("has a parent"))?;
        {
            let mut enc = zstd::Encoder::new(BufWriter::new(tmp.as_file()), 3)?;
            enc.include_checksum(true)?;
            let mut tar = tar::Builder::new(enc.auto_finish());
            tar.follow_symlinks(false);
            tar.append_dir_all(".", dir).with_context(|| format!("cannot archive {}", dir.display()))?;
            let origin = build_dir.display().to_string();
            let mut h = tar::Header::new_gnu();
            h.set_size(origin.len() as u64);
            h.set_mode(0o644);
            tar.append_data(&mut h, ORIGIN, origin.as_bytes())?;
            let id = format!("{name} {sig}");
            let mut h = tar::Header::new_gnu();
            h.set_size(id.len() as u64);
            h.set_mode(0o644);
            tar.append_data(&mut h, ID, id.as_bytes())?;
            let files = file_index(dir)?;
            let mut h = tar::Header::new_gnu();
            h.set_size(files.len() as u64);
            h.set_mode(0o644);
            tar.append_data(&mut h, FILES, files.as_bytes())?;
            tar.finish()?;
        }
        crate::engine::tasks::normal_mode(tmp.as_file())?;
        tmp.as_file().sync_all()?;
        // The checksum (and its signature) first: an entry is never seen without one.
        let sum = format!("{}  {}\n", crate::sources::fetch::sha256_file(tmp.path())?, Self::rel(name, sig));
        if let Some(signer) = &self.signer {
            crate::engine::tasks::atomic_write(&sig_path(&dest), format!("{}\n", signer.sign(sum.as_bytes())).as_bytes())?;
        }
        crate::engine::tasks::atomic_write(&sum_path(&dest), sum.as_bytes())?;
        tmp.persist(&dest).with_context(|| format!("cannot write {}", dest.display()))?;
        Ok(())
    }

    /// Unpack the output of `name` at `sig` into `dir` (which is replaced),
    /// with the build directory that made it replaced by `build_dir` in
    /// every text file, as Yocto's sstate does with its FIXMEDIR markers.
    pub fn restore(&self, name: &str, sig: &str, dir: &Path, build_dir: &Path) -> Result<()> {
        let src = self.path(name, sig);
        if let Err(e) = self.verify(&src) {
            self.quarantine(&src, &e);
            bail!("artifact cache entry {} failed its check ({e:#}); it was moved aside: run the build again to build {name}", src.display());
        }
        crate::base::sysroot::remove(dir)?;
        let tmp = dir.with_extension("restoring");
        crate::base::sysroot::remove(&tmp)?;
        fs::create_dir_all(&tmp)?;
        let f = File::open(&src).with_context(|| format!("cannot open {}", src.display()))?;
        let mut ar = tar::Archive::new(zstd::Decoder::new(BufReader::new(f))?);
        ar.set_preserve_permissions(true);
        ar.set_preserve_mtime(true);
        if let Err(e) = ar.unpack(&tmp) {
            let e = anyhow::Error::from(e);
            self.quarantine(&src, &e);
            crate::base::sysroot::remove(&tmp)?;
            bail!("cannot unpack the artifact cache entry {} ({e:#}); it was moved aside: run the build again to build {name}", src.display());
        }
        let id = fs::read_to_string(tmp.join(ID)).unwrap_or_default();
        if id != format!("{name} {sig}") {
            let e = anyhow::anyhow!("it holds `{id}`, not {name} {sig}");
            self.quarantine(&src, &e);
            crate::base::sysroot::remove(&tmp)?;
            bail!("artifact cache entry {} is another recipe's ({e}); it was moved aside: run the build again to build {name}", src.display());
        }
        fs::remove_file(tmp.join(ID))?;
        // The tree written must be the tree stored, file by file.
        let index = fs::read_to_string(tmp.join(FILES)).unwrap_or_default();
        fs::remove_file(tmp.join(FILES)).ok();
        let unpacked = file_index(&tmp)?;
        if index != unpacked {
            let e = anyhow::anyhow!("the unpacked files differ from its index ({})", first_difference(&index, &unpacked));
            self.quarantine(&src, &e);
            crate::base::sysroot::remove(&tmp)?;
            bail!("artifact cache entry {} failed its check ({e}); it was moved aside: run the build again to build {name}", src.display());
        }
        let origin = fs::read_to_string(tmp.join(ORIGIN)).with_context(|| format!("{} does not say where it was made", src.display()))?;
        fs::remove_file(tmp.join(ORIGIN))?;
        relocate(&tmp, origin.as_bytes(), build_dir.display().to_string().as_bytes())?;
        fs::rename(&tmp, dir)?;
        Ok(())
    }
}

/// The member of an entry that names the build directory that made it.
const ORIGIN: &str = ".crosspython-sstate-origin";

/// The member of an entry that names the recipe and signature it is for.
const ID: &str = ".crosspython-sstate-id";

fn sum_path(entry: &Path) -> PathBuf {
    let mut s = entry.as_os_str().to_owned();
    s.push(".sha256");
    PathBuf::from(s)
}

fn sig_path(entry: &Path) -> PathBuf {
    let mut s = entry.as_os_str().to_owned();
    s.push(".sig");
    PathBuf::from(s)
}

/// The member of an entry that lists its files: `sha256 <hex> <path>`,
/// `link <target> <path>`, `dir <path>`.
const FILES: &str = ".crosspython-sstate-files";

/// What `dir` holds, one line per entry, sorted; the entry's own members
/// (`ORIGIN`, `ID`, `FILES`) are not part of it.
fn file_index(dir: &Path) -> Result<String> {
    let mut out = String::new();
    for e in walkdir::WalkDir::new(dir).min_depth(1).sort_by_file_name() {
        let e = e?;
        let rel = e.path().strip_prefix(dir).unwrap().display().to_string();
        if [ORIGIN, ID, FILES].contains(&rel.as_str()) {
            continue;
        }
        let line = if e.file_type().is_symlink() {
            format!("link {} {rel}", fs::read_link(e.path())?.display())
        } else if e.file_type().is_dir() {
            format!("dir {rel}")
        } else {
            format!("sha256 {} {rel}", crate::sources::fetch::sha256_file(e.path())?)
        };
        out.push_str(&line);
        out.push('\n');
    }
    Ok(out)
}

fn first_difference(want: &str, got: &str) -> String {
    let (w, g): (std::collections::BTreeSet<&str>, std::collections::BTreeSet<&str>) = (want.lines().collect(), got.lines().collect());
    match (w.difference(&g).next(), g.difference(&w).next()) {
        (Some(l), _) => format!("listed, not found: {l}"),
        (None, Some(l)) => format!("found, not listed: {l}"),
        _ => "same lines, other order".into(),
    }
}

impl Sstate {
    /// The entry's bytes against the sha256 written with it, and that
    /// file against its signature when keys are trusted.
    fn verify(&self, entry: &Path) -> Result<()> {
        let text = fs::read_to_string(sum_path(entry)).with_context(|| format!("no checksum file {}", sum_path(entry).display()))?;
        if let Some(trusted) = &self.trusted {
            let sig = fs::read_to_string(sig_path(entry)).with_context(|| format!("no signature {} (trusted keys are set)", sig_path(entry).display()))?;
            trusted.check(text.as_bytes(), &sig).with_context(|| format!("{}", sig_path(entry).display()))?;
        }
        let want = text.split_whitespace().next().unwrap_or_default();
        let got = crate::sources::fetch::sha256_file(entry)?;
        if got != want {
            bail!("sha256 {got}, but {} says {want}", sum_path(entry).display());
        }
        Ok(())
    }
}

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
            if crate::base::bytes::contains(&t, from) {
                fs::remove_file(e.path())?;
                std::os::unix::fs::symlink(String::from_utf8_lossy(&crate::base::bytes::replace_all(&t, from, to)).as_ref(), e.path())?;
            }
        }
    }
    crate::base::bytes::rewrite_text_files(dir, &[from.to_vec()], &[(from.to_vec(), to.to_vec())])?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn zlib_entry(t: &Path) -> (Sstate, String) {
        let src = t.join("src");
        fs::create_dir_all(src.join("usr/lib")).unwrap();
        fs::write(src.join("usr/lib/libz.so.1.3.1"), b"zlib 1.3.1").unwrap();
        let s = Sstate::new(t.join("sstate"));
        let sig = "cd".repeat(32);
        s.store("zlib", &sig, &src, Path::new("/b/build")).unwrap();
        (s, sig)
    }

    #[test]
    fn a_damaged_entry_is_quarantined_and_counts_as_missing() {
        let t = tempfile::tempdir().unwrap();
        let (s, sig) = zlib_entry(t.path());
        let entry = s.path("zlib", &sig);
        let mut bytes = fs::read(&entry).unwrap();
        let mid = bytes.len() / 2;
        bytes[mid] ^= 0x10;
        fs::write(&entry, &bytes).unwrap();
        assert!(!s.has("zlib", &sig), "one flipped bit");
        assert!(!entry.exists());
        assert!(t.path().join("sstate/quarantine").join(entry.file_name().unwrap()).exists(), "kept for inspection");
        // Stored again, then cut short.
        let (s, sig) = zlib_entry(t.path());
        let len = fs::metadata(s.path("zlib", &sig)).unwrap().len();
        fs::File::options().write(true).open(s.path("zlib", &sig)).unwrap().set_len(len / 2).unwrap();
        assert!(!s.has("zlib", &sig), "a truncated entry");
    }

    #[test]
    fn an_entry_of_another_recipe_under_this_name_is_refused_and_moved_aside() {
        let t = tempfile::tempdir().unwrap();
        let (s, sig) = zlib_entry(t.path());
        let other = "ef".repeat(32);
        fs::create_dir_all(s.path("xz", &other).parent().unwrap()).unwrap();
        fs::copy(s.path("zlib", &sig), s.path("xz", &other)).unwrap();
        fs::copy(sum_path(&s.path("zlib", &sig)), sum_path(&s.path("xz", &other))).unwrap();
        assert!(s.has("xz", &other), "the bytes match their checksum file");
        let err = s.restore("xz", &other, &t.path().join("out"), Path::new("/b/build")).unwrap_err().to_string();
        assert!(err.contains("is another recipe's") && err.contains(&format!("zlib {sig}")), "{err}");
        assert!(!s.path("xz", &other).exists() && !t.path().join("out").exists());
    }

    #[test]
    fn a_mirror_entry_is_checked_before_it_enters_the_local_cache() {
        let t = tempfile::tempdir().unwrap();
        let (team, sig) = zlib_entry(&t.path().join("team"));
        let entry = team.path("zlib", &sig);
        let mut bytes = fs::read(&entry).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        fs::write(&entry, &bytes).unwrap();
        let local = Sstate::new(t.path().join("local")).with_mirrors(vec![format!("file://{}", t.path().join("team/sstate").display())]);
        assert!(!local.has("zlib", &sig));
        assert!(!local.path("zlib", &sig).exists(), "nothing unchecked is copied in");
    }

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

    #[test]
    fn a_file_changed_inside_a_consistent_entry_is_caught_by_the_index() {
        // Rewritten whole, with a matching checksum file: only the index inside tells.
        let t = tempfile::tempdir().unwrap();
        let (s, sig) = zlib_entry(t.path());
        let entry = s.path("zlib", &sig);
        let unpacked = t.path().join("unpacked");
        fs::create_dir_all(&unpacked).unwrap();
        tar::Archive::new(zstd::Decoder::new(fs::File::open(&entry).unwrap()).unwrap()).unpack(&unpacked).unwrap();
        fs::write(unpacked.join("usr/lib/libz.so.1.3.1"), b"zlib 1.6.6").unwrap();
        let mut tar = tar::Builder::new(zstd::Encoder::new(fs::File::create(&entry).unwrap(), 3).unwrap().auto_finish());
        tar.append_dir_all(".", &unpacked).unwrap();
        tar.finish().unwrap();
        drop(tar);
        fs::write(sum_path(&entry), format!("{}  x\n", crate::sources::fetch::sha256_file(&entry).unwrap())).unwrap();
        assert!(s.has("zlib", &sig), "the checksum file agrees");
        let out = t.path().join("out");
        let err = s.restore("zlib", &sig, &out, Path::new("/b/build")).unwrap_err().to_string();
        assert!(err.contains("differ from its index") && err.contains("libz.so.1.3.1"), "{err}");
        assert!(!out.exists() && !entry.exists(), "nothing restored; the entry is moved aside");
    }

    #[test]
    fn with_trusted_keys_only_entries_signed_by_them_are_used() {
        let t = tempfile::tempdir().unwrap();
        let key = t.path().join("ci.key");
        let public = crate::base::signing::keygen(&key).unwrap();
        fs::write(t.path().join("trusted"), &public).unwrap();
        let keys = || (Some(Signer::read(&key).unwrap()), Some(Trusted::read(&t.path().join("trusted")).unwrap()));
        // The team's CI signs into its cache; a developer's build reads it as a mirror.
        let (src, sig) = (t.path().join("src"), "cd".repeat(32));
        fs::create_dir_all(&src).unwrap();
        fs::write(src.join("libz.so"), b"zlib").unwrap();
        let team = Sstate::new(t.path().join("team")).with_keys(keys());
        team.store("zlib", &sig, &src, Path::new("/b")).unwrap();
        assert!(sig_path(&team.path("zlib", &sig)).exists());
        let dev = || Sstate::new(t.path().join("dev")).with_mirrors(vec![format!("file://{}", t.path().join("team").display())]).with_keys((None, keys().1));
        assert!(dev().has("zlib", &sig), "signed by a trusted key");
        // An unsigned entry (stored without a key) is refused.
        let unsigned = Sstate::new(t.path().join("team"));
        let other = "ef".repeat(32);
        unsigned.store("xz", &other, &src, Path::new("/b")).unwrap();
        assert!(!dev().has("xz", &other));
        assert!(!dev().path("xz", &other).exists(), "not copied in");
        // A signature that does not match the checksum file is refused, locally too.
        let entry = dev().path("zlib", &sig);
        fs::write(sum_path(&entry), format!("{}  x\n", "0".repeat(64))).unwrap();
        let offline = Sstate::new(t.path().join("dev")).with_keys((None, keys().1));
        assert!(!offline.has("zlib", &sig));
        assert!(t.path().join("dev/quarantine").join(sig_path(Path::new(entry.file_name().unwrap()))).exists());
        assert!(dev().has("zlib", &sig), "and the signed entry of the mirror replaces it");
    }
}
