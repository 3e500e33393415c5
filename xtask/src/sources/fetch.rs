//! do_fetch: get a recipe's source into the download cache, verified by
//! sha256. Order of tries, as Yocto's PREMIRRORS / SRC_URI / MIRRORS:
//! the cache, `CROSSPYTHON_PREMIRRORS`, the upstream URL, then `mirrors`
//! (with `debian:` paths resolved against the host's apt configuration).
//! Downloads go to a `.part` file, hashed while streaming, and are renamed
//! into the cache only when the hash matches: a good cached file is never
//! replaced, and a bad download never stays.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use sha2::{Digest, Sha256};

use crate::model::manifest::Source;

pub struct Fetcher {
    pub dl_dir: PathBuf,
    premirrors: Vec<String>,
    debian_mirrors: Vec<String>,
    agent: ureq::Agent,
}

/// No source of a recipe could be had: the message lists every try. The
/// build adds the other versions the manifest offers, and where each is.
#[derive(Debug)]
pub struct Unfetchable {
    pub recipe: String,
    message: String,
}

impl Unfetchable {
    /// The same failure, told another way (with the task's log).
    pub fn with_message(&self, message: String) -> Unfetchable {
        Unfetchable { recipe: self.recipe.clone(), message }
    }
}

impl std::fmt::Display for Unfetchable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Unfetchable {}

/// `pypi:<name>==<version>`: the project's source distribution, fetched
/// by the build machine's pip from the index its configuration names (the
/// way zig comes), into `dir`. The caller checks its sha256.
fn pypi_sdist(requirement: &str, dir: &Path) -> Result<PathBuf> {
    if !requirement.contains("==") {
        bail!("pypi:{requirement}: pin one version (pypi:<name>==<version>)");
    }
    crate::base::process::checked(
        std::process::Command::new("python3")
            .args(["-m", "pip", "download", "--quiet", "--no-deps", "--no-binary", ":all:", "--dest"])
            .arg(dir)
            .arg(requirement),
    )
    .with_context(|| format!("pypi:{requirement}: pip download (Debian package python3-pip)"))?;
    let mut files: Vec<PathBuf> = fs::read_dir(dir)?.flatten().map(|e| e.path()).collect();
    match files.len() {
        1 => Ok(files.remove(0)),
        n => bail!("pip download {requirement} gave {n} files, not one source distribution"),
    }
}

/// What one try gave.
struct Attempt {
    url: String,
    outcome: String,
}

impl Fetcher {
    pub fn new(dl_dir: PathBuf) -> Fetcher {
        let premirrors = crate::sources::mirror::bases_from_env("CROSSPYTHON_PREMIRRORS");
        let agent = ureq::AgentBuilder::new().timeout_connect(Duration::from_secs(15)).timeout_read(Duration::from_secs(60)).build();
        Fetcher { dl_dir, premirrors, debian_mirrors: crate::sources::mirror::debian_mirrors(), agent }
    }

    /// The cached, verified file of the first source alternative that can
    /// be had, and that alternative.
    pub fn fetch<'s>(&self, recipe: &str, sources: &'s [Source], log: &mut dyn Write) -> Result<(PathBuf, &'s Source)> {
        fs::create_dir_all(&self.dl_dir).with_context(|| format!("cannot create the download cache {}", self.dl_dir.display()))?;
        let mut attempts = Vec::new();
        for source in sources {
            let sha = source.sha256.as_ref().expect("validated: every source has a sha256").get_ref();
            let name = file_name(source.url.get_ref());
            let cached = self.dl_dir.join(&name);
            if cached.exists() {
                let actual = sha256_file(&cached)?;
                if &actual == sha {
                    writeln!(log, "{name}: in the download cache, sha256 ok")?;
                    return Ok((cached, source));
                }
                // Not the file we want (another release under the same
                // name, or damaged): set it aside, never use it.
                let aside = self.dl_dir.join(format!("{name}.bad-{}", &actual[..12]));
                fs::rename(&cached, &aside)?;
                writeln!(log, "{name}: cached file has sha256 {actual}, expected {sha}; moved to {}", aside.display())?;
            }
            for url in self.urls(source, &name) {
                writeln!(log, "trying {url}")?;
                match self.download(&url, &cached, Some(sha)) {
                    Ok(()) => {
                        writeln!(log, "{name}: downloaded from {url}, sha256 ok")?;
                        return Ok((cached, source));
                    }
                    Err(e) => {
                        writeln!(log, "  failed: {e:#}")?;
                        attempts.push(Attempt { url, outcome: format!("{e:#}") });
                    }
                }
            }
        }
        let mut msg = format!("recipe {recipe}: no source could be fetched; tried:\n");
        for a in &attempts {
            msg.push_str(&format!("  {}\n    {}\n", a.url, a.outcome));
        }
        msg.push_str(&format!("Put the file into {} by hand, or set CROSSPYTHON_PREMIRRORS to a directory or URL that has it.", self.dl_dir.display()));
        Err(Unfetchable { recipe: recipe.to_string(), message: msg }.into())
    }

    /// Where a recipe's source could come from now, without fetching it:
    /// the download cache (verified), else the first URL that answers a
    /// HEAD request; for an error that offers other versions.
    pub fn availability(&self, sources: &[Source]) -> String {
        for source in sources {
            let name = file_name(source.url.get_ref());
            let cached = self.dl_dir.join(&name);
            let sha = source.sha256.as_ref().map(|s| s.get_ref().as_str());
            if cached.exists() && sha256_file(&cached).ok().as_deref() == sha {
                return "in the download cache".into();
            }
        }
        for source in sources {
            for url in self.urls(source, &file_name(source.url.get_ref())) {
                if let Some(dir) = url.strip_prefix("file://") {
                    if Path::new(dir).exists() {
                        return format!("fetchable from {url}");
                    }
                } else if self.agent.head(&url).call().is_ok() {
                    return format!("fetchable from {url}");
                }
            }
        }
        "not fetchable from any mirror".into()
    }

    /// Every URL to try for a source, in order.
    fn urls(&self, source: &Source, name: &str) -> Vec<String> {
        let mut urls: Vec<String> = self.premirrors.iter().map(|p| format!("{p}/{name}")).collect();
        for u in std::iter::once(&source.url).chain(&source.mirrors) {
            urls.extend(self.expand(u.get_ref()));
        }
        urls
    }

    /// `debian:<pool path>` becomes one URL per Debian mirror of the host.
    fn expand(&self, url: &str) -> Vec<String> {
        match url.strip_prefix("debian:") {
            Some(path) => self.debian_mirrors.iter().map(|m| format!("{m}/{}", path.trim_start_matches('/'))).collect(),
            None => vec![url.to_string()],
        }
    }

    /// A file of the Debian archive (`dists/...` or `pool/...`) from the
    /// first apt mirror that has it, checked against `sha256` (or, with
    /// `None`, kept as fetched for a signature check), cached under
    /// `<downloads>/debian/`.
    pub fn debian_file(&self, path: &str, sha256: Option<&str>) -> Result<PathBuf> {
        let dest = self.dl_dir.join("debian").join(path.trim_start_matches('/'));
        if let Some(sha) = sha256 {
            if dest.exists() && sha256_file(&dest)? == sha {
                return Ok(dest);
            }
        }
        fs::create_dir_all(dest.parent().unwrap())?;
        let mut errors = vec![];
        for m in &self.debian_mirrors {
            let url = format!("{m}/{}", path.trim_start_matches('/'));
            match self.download(&url, &dest, sha256) {
                Ok(()) => return Ok(dest),
                Err(e) => errors.push(format!("{url}: {e:#}")),
            }
        }
        bail!("cannot fetch {path} from the Debian mirrors of the host's apt configuration:\n  {}", errors.join("\n  "))
    }

    /// Download `url` to `dest` through a part file; with `sha`, only a
    /// file with that sha256 is kept (without, the caller checks it, as a
    /// signed `InRelease` is checked by gpgv).
    fn download(&self, url: &str, dest: &Path, sha: Option<&str>) -> Result<()> {
        // Unique per download, not per process: a recipe and its -native
        // variant fetch the same file at the same time from two threads.
        static COUNTER: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let part = dest.with_extension(format!("part.{}.{n}", std::process::id()));
        let result = (|| -> Result<String> {
            let pypi_dir = tempfile::Builder::new().prefix(".pypi-").tempdir_in(dest.parent().unwrap_or(Path::new(".")))?;
            let local = match url.strip_prefix("pypi:") {
                Some(requirement) => Some(pypi_sdist(requirement, pypi_dir.path())?),
                None => url.strip_prefix("file://").map(PathBuf::from),
            };
            let (mut reader, len): (Box<dyn Read>, Option<u64>) = match local {
                Some(path) => {
                    let f = File::open(&path).with_context(|| format!("cannot open {}", path.display()))?;
                    let len = f.metadata()?.len();
                    (Box::new(f), Some(len))
                }
                None => {
                    let resp = self.agent.get(url).call().map_err(|e| match e {
                        ureq::Error::Status(code, _) => anyhow::anyhow!("HTTP {code}"),
                        ureq::Error::Transport(t) => anyhow::anyhow!("{t}"),
                    })?;
                    let len = resp.header("content-length").and_then(|l| l.parse().ok());
                    (Box::new(resp.into_reader()), len)
                }
            };
            let bar = crate::base::progress::download_bar(file_name(url), len);
            let mut out = File::create(&part).with_context(|| format!("cannot write {}", part.display()))?;
            let mut hasher = Sha256::new();
            let mut buf = vec![0u8; 1 << 16];
            loop {
                let n = reader.read(&mut buf)?;
                if n == 0 {
                    break;
                }
                hasher.update(&buf[..n]);
                out.write_all(&buf[..n])?;
                bar.inc(n as u64);
            }
            out.sync_all()?;
            bar.finish_and_clear();
            Ok(hex::encode(hasher.finalize()))
        })();
        match result {
            Ok(actual) if sha.is_none_or(|s| s == actual) => {
                fs::rename(&part, dest)?;
                Ok(())
            }
            Ok(actual) => {
                let _ = fs::remove_file(&part);
                bail!("sha256 mismatch: expected {}, got {actual}; the downloaded file was deleted", sha.unwrap_or_default())
            }
            Err(e) => {
                let _ = fs::remove_file(&part);
                Err(e)
            }
        }
    }
}

/// The cache name of a source: the last path component of its URL.
pub fn file_name(url: &str) -> String {
    url.rsplit('/').next().unwrap_or(url).to_string()
}

pub fn sha256_file(path: &Path) -> Result<String> {
    let mut f = File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut hasher = Sha256::new();
    io::copy(&mut f, &mut hasher)?;
    Ok(hex::encode(hasher.finalize()))
}

pub fn sha256_bytes(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use toml::Spanned;

    fn source(url: &str, sha: &str) -> Source {
        let s = format!("url = \"{url}\"\nsha256 = \"{sha}\"");
        toml::from_str(&s).unwrap()
    }

    fn fetcher(dl: &Path) -> Fetcher {
        Fetcher { dl_dir: dl.to_path_buf(), premirrors: vec![], debian_mirrors: vec![], agent: ureq::agent() }
    }

    fn sha(bytes: &[u8]) -> String {
        hex::encode(Sha256::digest(bytes))
    }

    #[test]
    fn a_file_url_is_fetched_into_the_cache_and_verified() {
        let t = tempfile::tempdir().unwrap();
        fs::write(t.path().join("a-1.tar.gz"), b"payload").unwrap();
        let url = format!("file://{}/a-1.tar.gz", t.path().display());
        let f = fetcher(&t.path().join("dl"));
        let (path, _) = f.fetch("a", &[source(&url, &sha(b"payload"))], &mut io::sink()).unwrap();
        assert_eq!(fs::read(path).unwrap(), b"payload");
    }

    #[test]
    fn two_threads_fetching_the_same_file_both_succeed() {
        // A recipe and its -native variant share one source.
        let t = tempfile::tempdir().unwrap();
        let payload = vec![7u8; 4 << 20];
        fs::write(t.path().join("big-1.tar.gz"), &payload).unwrap();
        let url = format!("file://{}/big-1.tar.gz", t.path().display());
        let f = fetcher(&t.path().join("dl"));
        let src = [source(&url, &sha(&payload))];
        std::thread::scope(|s| {
            let handles: Vec<_> = (0..4).map(|_| s.spawn(|| f.fetch("big", &src, &mut io::sink()).map(|(p, _)| p))).collect();
            for h in handles {
                assert_eq!(fs::read(h.join().unwrap().unwrap()).unwrap().len(), payload.len());
            }
        });
    }

    #[test]
    fn a_checksum_mismatch_names_recipe_url_and_both_hashes_and_keeps_nothing() {
        let t = tempfile::tempdir().unwrap();
        fs::write(t.path().join("a-1.tar.gz"), b"evil").unwrap();
        let url = format!("file://{}/a-1.tar.gz", t.path().display());
        let f = fetcher(&t.path().join("dl"));
        let want = sha(b"payload");
        let err = format!("{:#}", f.fetch("a", &[source(&url, &want)], &mut io::sink()).unwrap_err());
        assert!(err.contains("recipe a: no source could be fetched"), "{err}");
        assert!(err.contains(&url), "{err}");
        assert!(err.contains(&format!("expected {want}, got {}", sha(b"evil"))), "{err}");
        assert_eq!(fs::read_dir(t.path().join("dl")).unwrap().count(), 0, "the bad file is deleted");
    }

    #[test]
    fn a_good_cached_file_is_used_and_never_replaced() {
        let t = tempfile::tempdir().unwrap();
        let dl = t.path().join("dl");
        fs::create_dir_all(&dl).unwrap();
        fs::write(dl.join("a-1.tar.gz"), b"payload").unwrap();
        let f = fetcher(&dl);
        // The URL is unreachable: the cache must answer before it is tried.
        let (path, _) = f.fetch("a", &[source("file:///nonexistent/a-1.tar.gz", &sha(b"payload"))], &mut io::sink()).unwrap();
        assert_eq!(fs::read(path).unwrap(), b"payload");
    }

    #[test]
    fn every_url_tried_is_listed_when_none_works() {
        let t = tempfile::tempdir().unwrap();
        let mut s = source("file:///nonexistent/a-1.tar.gz", &sha(b"x"));
        s.mirrors.push(Spanned::new(0..0, "file:///also/missing/a-1.tar.gz".to_string()));
        let err = format!("{:#}", fetcher(&t.path().join("dl")).fetch("a", &[s], &mut io::sink()).unwrap_err());
        assert!(err.contains("file:///nonexistent/a-1.tar.gz"), "{err}");
        assert!(err.contains("file:///also/missing/a-1.tar.gz"), "{err}");
    }

    #[test]
    fn the_second_alternative_is_used_when_the_first_cannot_be_had() {
        let t = tempfile::tempdir().unwrap();
        fs::write(t.path().join("z-dfsg.tar.gz"), b"repack").unwrap();
        let alt = source(&format!("file://{}/z-dfsg.tar.gz", t.path().display()), &sha(b"repack"));
        let sources = [source("file:///nonexistent/z-1.tar.gz", &sha(b"upstream")), alt];
        let (path, chosen) = fetcher(&t.path().join("dl")).fetch("z", &sources, &mut io::sink()).unwrap();
        assert_eq!(fs::read(path).unwrap(), b"repack");
        assert!(chosen.url.get_ref().ends_with("z-dfsg.tar.gz"));
    }

    #[test]
    fn debian_paths_expand_against_each_host_mirror() {
        let mut f = fetcher(Path::new("/tmp"));
        f.debian_mirrors = vec!["http://mirror.example/debian".into()];
        assert_eq!(f.expand("debian:pool/main/z/zlib/z.tar.gz"), ["http://mirror.example/debian/pool/main/z/zlib/z.tar.gz"]);
    }
}
