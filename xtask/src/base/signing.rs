//! Ed25519 signatures for a shared artifact cache, as Yocto signs sstate
//! with `SSTATE_SIG_KEY` and accepts `SSTATE_VALID_SIGS`: the producer (CI)
//! signs each entry's checksum file with its secret key; consumers that
//! list trusted public keys install only entries signed by one of them.
//!
//! - `CROSSPYTHON_SSTATE_SIGNING_KEY=<file>`: sign what this build stores
//!   (the file holds the 32-byte secret seed in hex; `cargo xtask
//!   sstate-keygen` makes one).
//! - `CROSSPYTHON_SSTATE_TRUSTED_KEYS=<file>`: public keys in hex, one per
//!   line (`#` comments); when set, an entry without a valid signature by
//!   one of them is refused like a damaged one.

use std::fs;
use std::io::Read as _;
use std::path::Path;

use anyhow::{bail, Context, Result};
use ed25519_dalek::{Signature, Signer as _, SigningKey, Verifier as _, VerifyingKey};

pub struct Signer(SigningKey);

#[derive(Debug, Clone)]
pub struct Trusted(Vec<VerifyingKey>);

impl Signer {
    pub fn read(path: &Path) -> Result<Signer> {
        let text = fs::read_to_string(path).with_context(|| format!("cannot read the signing key {}", path.display()))?;
        let seed: [u8; 32] = hex::decode(text.trim())
            .ok()
            .and_then(|b| b.try_into().ok())
            .with_context(|| format!("{}: not an ed25519 secret key (64 hex digits); make one with `cargo xtask sstate-keygen`", path.display()))?;
        Ok(Signer(SigningKey::from_bytes(&seed)))
    }

    pub fn public_hex(&self) -> String {
        hex::encode(self.0.verifying_key().as_bytes())
    }

    /// The signature of `message`, in hex.
    pub fn sign(&self, message: &[u8]) -> String {
        hex::encode(self.0.sign(message).to_bytes())
    }
}

impl Trusted {
    pub fn read(path: &Path) -> Result<Trusted> {
        let text = fs::read_to_string(path).with_context(|| format!("cannot read the trusted keys {}", path.display()))?;
        let mut keys = vec![];
        for (n, line) in text.lines().enumerate() {
            let line = line.split('#').next().unwrap_or_default().trim();
            if line.is_empty() {
                continue;
            }
            let key = hex::decode(line)
                .ok()
                .and_then(|b| <[u8; 32]>::try_from(b).ok())
                .and_then(|b| VerifyingKey::from_bytes(&b).ok())
                .with_context(|| format!("{}:{}: not an ed25519 public key (64 hex digits)", path.display(), n + 1))?;
            keys.push(key);
        }
        if keys.is_empty() {
            bail!("{}: no public key; an empty list would refuse every entry", path.display());
        }
        Ok(Trusted(keys))
    }

    /// Is `signature_hex` a signature of `message` by one of the keys?
    pub fn check(&self, message: &[u8], signature_hex: &str) -> Result<()> {
        let sig = hex::decode(signature_hex.trim())
            .ok()
            .and_then(|b| <[u8; 64]>::try_from(b).ok())
            .map(|b| Signature::from_bytes(&b))
            .context("the signature is not 128 hex digits")?;
        if self.0.iter().any(|k| k.verify(message, &sig).is_ok()) {
            Ok(())
        } else {
            bail!("signed by none of the {} trusted key(s)", self.0.len())
        }
    }
}

/// The signer and the trusted keys the environment names.
pub fn from_env() -> Result<(Option<Signer>, Option<Trusted>)> {
    let path = |var: &str| std::env::var_os(var).filter(|v| !v.is_empty()).map(std::path::PathBuf::from);
    let signer = path("CROSSPYTHON_SSTATE_SIGNING_KEY").map(|p| Signer::read(&p)).transpose()?;
    let trusted = path("CROSSPYTHON_SSTATE_TRUSTED_KEYS").map(|p| Trusted::read(&p)).transpose()?;
    Ok((signer, trusted))
}

/// A new secret key in `out` (mode 0600, never overwritten), its public
/// key beside it in `<out>.pub`; returns the public key.
pub fn keygen(out: &Path) -> Result<String> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut seed = [0u8; 32];
    fs::File::open("/dev/urandom")?.read_exact(&mut seed)?;
    let key = Signer(SigningKey::from_bytes(&seed));
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(out)
        .with_context(|| format!("cannot create {} (an existing key is never overwritten)", out.display()))?;
    std::io::Write::write_all(&mut f, format!("{}\n", hex::encode(seed)).as_bytes())?;
    let public = key.public_hex();
    let mut pub_path = out.as_os_str().to_owned();
    pub_path.push(".pub");
    fs::write(&pub_path, format!("{public}\n"))?;
    Ok(public)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_trusted_key_signature_of_the_same_bytes_passes() {
        let t = tempfile::tempdir().unwrap();
        let public = keygen(&t.path().join("ci.key")).unwrap();
        assert!(keygen(&t.path().join("ci.key")).is_err(), "an existing key is never overwritten");
        let signer = Signer::read(&t.path().join("ci.key")).unwrap();
        assert_eq!(signer.public_hex(), public);
        fs::write(t.path().join("trusted"), format!("# CI\n{public}\n")).unwrap();
        let trusted = Trusted::read(&t.path().join("trusted")).unwrap();
        let sig = signer.sign(b"abc  zlib-entry\n");
        assert!(trusted.check(b"abc  zlib-entry\n", &sig).is_ok());
        assert!(trusted.check(b"abd  zlib-entry\n", &sig).is_err(), "other bytes");
        keygen(&t.path().join("other.key")).unwrap();
        let other = Signer::read(&t.path().join("other.key")).unwrap();
        let err = trusted.check(b"abc  zlib-entry\n", &other.sign(b"abc  zlib-entry\n")).unwrap_err().to_string();
        assert!(err.contains("none of the 1 trusted key"), "{err}");
        assert!(trusted.check(b"x", "zz").is_err());
    }

    #[test]
    fn bad_key_files_are_named_with_their_line() {
        let t = tempfile::tempdir().unwrap();
        fs::write(t.path().join("trusted"), "# team\n\nnot-hex\n").unwrap();
        let err = Trusted::read(&t.path().join("trusted")).unwrap_err().to_string();
        assert!(err.ends_with("trusted:3: not an ed25519 public key (64 hex digits)"), "{err}");
        fs::write(t.path().join("empty"), "# nobody\n").unwrap();
        assert!(Trusted::read(&t.path().join("empty")).unwrap_err().to_string().contains("no public key"));
    }
}
