//! Debian's own binary packages, the yardstick of `bench`: the suite's
//! `InRelease` checked with gpgv against the host's debian-archive-keyring,
//! `Packages.xz` checked by the sha256 it lists, every `.deb` by the sha256
//! of `Packages`; all fetched through the host's apt mirror and cached.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::sources::fetch::Fetcher;

#[derive(Debug, Clone)]
pub struct Package {
    pub name: String,
    pub version: String,
    /// Each entry: alternatives (`a | b`), names without version constraints.
    pub depends: Vec<Vec<String>>,
    pub filename: String,
    pub sha256: String,
    pub size: u64,
}

/// The packages of one suite and architecture.
pub fn index(fetcher: &Fetcher, suite: &str, arch: &str) -> Result<BTreeMap<String, Package>> {
    let inrelease = fetcher.debian_file(&format!("dists/{suite}/InRelease"), None)?;
    let keyring = Path::new("/usr/share/keyrings/debian-archive-keyring.gpg");
    if let Err(e) = crate::base::process::checked(Command::new("gpgv").arg("--keyring").arg(keyring).arg(&inrelease)) {
        let _ = fs::remove_file(&inrelease);
        return Err(e.context(format!("{}: bad signature (gpgv, with the Debian packages gpgv and debian-archive-keyring)", inrelease.display())));
    }
    let release = fs::read_to_string(&inrelease)?;
    let wanted = format!("main/binary-{arch}/Packages.xz");
    let sha =
        sha256_section(&release).find(|(_, _, name)| *name == wanted).map(|(sha, _, _)| sha.to_string()).with_context(|| format!("{suite} has no {wanted}"))?;
    let packages_xz = fetcher.debian_file(&format!("dists/{suite}/{wanted}"), Some(&sha))?;
    let mut text = String::new();
    xz2::read::XzDecoder::new(File::open(&packages_xz)?).read_to_string(&mut text)?;
    Ok(parse_packages(&text))
}

/// `(sha256, size, path)` lines of a Release file's `SHA256:` section.
fn sha256_section(release: &str) -> impl Iterator<Item = (&str, &str, &str)> {
    release.lines().skip_while(|l| *l != "SHA256:").skip(1).take_while(|l| l.starts_with(' ')).filter_map(|l| {
        let mut w = l.split_whitespace();
        Some((w.next()?, w.next()?, w.next()?))
    })
}

pub fn parse_packages(text: &str) -> BTreeMap<String, Package> {
    let mut out = BTreeMap::new();
    for stanza in text.split("\n\n") {
        let mut fields: BTreeMap<&str, String> = BTreeMap::new();
        let mut last = "";
        for line in stanza.lines() {
            if line.starts_with(' ') {
                if let Some(v) = fields.get_mut(last) {
                    v.push_str(line);
                }
            } else if let Some((k, v)) = line.split_once(':') {
                last = k;
                fields.insert(k, v.trim().to_string());
            }
        }
        let Some(name) = fields.get("Package") else { continue };
        let deps = [fields.get("Pre-Depends"), fields.get("Depends")]
            .into_iter()
            .flatten()
            .flat_map(|d| d.split(','))
            .map(|alts| {
                alts.split('|')
                    .map(|a| a.split_whitespace().next().unwrap_or("").split(':').next().unwrap_or("").to_string())
                    .filter(|a| !a.is_empty())
                    .collect::<Vec<_>>()
            })
            .filter(|a| !a.is_empty())
            .collect();
        let p = Package {
            name: name.clone(),
            version: fields.get("Version").cloned().unwrap_or_default(),
            depends: deps,
            filename: fields.get("Filename").cloned().unwrap_or_default(),
            sha256: fields.get("SHA256").cloned().unwrap_or_default(),
            size: fields.get("Size").and_then(|s| s.parse().ok()).unwrap_or(0),
        };
        out.insert(name.clone(), p);
    }
    out
}

/// `roots` and everything they depend on (first alternative that exists;
/// virtual names without a package of their own are skipped).
pub fn closure<'a>(index: &'a BTreeMap<String, Package>, roots: &[&str]) -> Result<Vec<&'a Package>> {
    let mut seen = BTreeSet::new();
    let mut queue: Vec<String> = roots.iter().map(|r| r.to_string()).collect();
    let mut out = vec![];
    while let Some(name) = queue.pop() {
        if !seen.insert(name.clone()) {
            continue;
        }
        let Some(p) = index.get(&name) else {
            if roots.contains(&name.as_str()) {
                bail!("Debian has no package {name}");
            }
            continue;
        };
        out.push(p);
        for alts in &p.depends {
            if let Some(a) = alts.iter().find(|a| index.contains_key(*a)) {
                queue.push(a.clone());
            }
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// The `.deb` of a package, verified and cached.
pub fn fetch(fetcher: &Fetcher, p: &Package) -> Result<PathBuf> {
    fetcher.debian_file(&p.filename, Some(&p.sha256)).with_context(|| format!("Debian package {} {}", p.name, p.version))
}

/// Unpack a `.deb`'s data into `dest`; returns the bytes of its files.
pub fn extract(deb: &Path, dest: &Path) -> Result<u64> {
    let mut ar = ar::Archive::new(File::open(deb).with_context(|| format!("cannot open {}", deb.display()))?);
    while let Some(entry) = ar.next_entry() {
        let entry = entry?;
        let name = String::from_utf8_lossy(entry.header().identifier()).into_owned();
        if !name.starts_with("data.tar") {
            continue;
        }
        let Some(reader) = crate::sources::unpack::decoder(&name, entry)? else {
            bail!("{}: unknown member {name}", deb.display());
        };
        let mut tar = tar::Archive::new(reader);
        tar.set_preserve_permissions(true);
        let mut bytes = 0;
        for e in tar.entries()? {
            let mut e = e?;
            if e.header().entry_type().is_file() {
                bytes += e.header().size()?;
            }
            e.unpack_in(dest)?;
        }
        return Ok(bytes);
    }
    bail!("{} has no data.tar member", deb.display())
}

#[cfg(test)]
mod tests {
    use super::*;

    const PACKAGES: &str = "Package: python3.13-minimal\nVersion: 3.13.5-2\nPre-Depends: libc6 (>= 2.38)\nDepends: libpython3.13-minimal (= 3.13.5-2), libexpat1 (>= 2.1~beta3), zlib1g (>= 1:1.2.0)\nFilename: pool/main/p/python3.13/python3.13-minimal_3.13.5-2_arm64.deb\nSize: 2000\nSHA256: aa\n\nPackage: libpython3.13-minimal\nVersion: 3.13.5-2\nDepends: libc6 (>= 2.14), libssl3t64 (>= 3.0.0) | libssl3\nFilename: pool/x.deb\nSize: 10\nSHA256: bb\n\nPackage: libc6\nVersion: 2.41-12\nFilename: pool/c.deb\nSize: 1\nSHA256: cc\n\nPackage: libssl3t64\nVersion: 3.5.1-1\nDepends: libc6\nFilename: pool/s.deb\nSize: 1\nSHA256: dd\n\nPackage: zlib1g\nVersion: 1:1.3\nDepends: libc6\n  (>= 2.14)\nFilename: pool/z.deb\nSize: 1\nSHA256: ee\n";

    #[test]
    fn stanzas_give_versions_files_and_dependencies_without_constraints() {
        let idx = parse_packages(PACKAGES);
        let p = &idx["python3.13-minimal"];
        assert_eq!(p.version, "3.13.5-2");
        assert_eq!(p.depends, vec![vec!["libc6"], vec!["libpython3.13-minimal"], vec!["libexpat1"], vec!["zlib1g"]]);
        assert_eq!(idx["libpython3.13-minimal"].depends[1], vec!["libssl3t64", "libssl3"]);
        assert_eq!(idx["zlib1g"].depends, vec![vec!["libc6"]], "continuation lines belong to their field");
    }

    #[test]
    fn the_closure_follows_the_first_existing_alternative_and_skips_missing_virtuals() {
        let idx = parse_packages(PACKAGES);
        let names: Vec<&str> = closure(&idx, &["python3.13-minimal"]).unwrap().iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["libc6", "libpython3.13-minimal", "libssl3t64", "python3.13-minimal", "zlib1g"]);
        assert!(closure(&idx, &["python9"]).is_err());
    }

    #[test]
    fn release_files_list_sha256_size_and_path() {
        let r = "MD5Sum:\n 00 1 a\nSHA256:\n be16 9614192 main/binary-arm64/Packages.xz\n ff 1 main/x\nNext: y\n";
        assert_eq!(sha256_section(r).collect::<Vec<_>>(), [("be16", "9614192", "main/binary-arm64/Packages.xz"), ("ff", "1", "main/x")]);
    }
}
