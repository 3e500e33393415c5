//! What the checks need beside the tree: a TLS certificate for
//! `localhost` and the Python packages' checks, in a directory of their own.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result};

use crate::model::manifest::Loaded;

/// The directory of the fixtures (the checks' `HOME` under qemu-user).
pub(super) struct Fixtures {
    dir: tempfile::TempDir,
}

impl Fixtures {
    pub(super) fn new(loaded: &Loaded) -> Result<Fixtures> {
        let dir = tempfile::tempdir()?;
        make_test_certificate(dir.path())?;
        write_package_checks(loaded, &dir.path().join(PACKAGE_CHECKS))?;
        Ok(Fixtures { dir })
    }

    pub(super) fn dir(&self) -> &Path {
        self.dir.path()
    }
}

/// The manifest's `[python_package.<project>] check`s, for checks.py: it
/// runs those of the packages installed.
pub(super) const PACKAGE_CHECKS: &str = "package-checks.json";

fn write_package_checks(loaded: &Loaded, path: &Path) -> Result<()> {
    let checks: BTreeMap<String, &str> =
        loaded.manifest.python_package.iter().filter_map(|(project, p)| Some((crate::model::manifest::project_name(project), p.check.as_deref()?))).collect();
    fs::write(path, serde_json::to_vec_pretty(&checks)?).with_context(|| format!("cannot write {}", path.display()))
}

/// A self-signed certificate for `localhost`, made with the host's openssl,
/// for the TLS handshake check.
fn make_test_certificate(dir: &Path) -> Result<()> {
    crate::base::process::checked(
        Command::new("openssl")
            .args(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=localhost"])
            .args(["-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"])
            .arg("-keyout")
            .arg(dir.join("key.pem"))
            .arg("-out")
            .arg(dir.join("cert.pem")),
    )
    .context("a test certificate from the host's openssl (Debian package openssl)")?;
    Ok(())
}
