//! Host prerequisites (`doctor`): the tools and Debian packages a build
//! needs. Missing ones are installed with apt when running as root, or
//! the exact `sudo apt-get install` line is printed.

use std::collections::BTreeSet;
use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::manifest::{Arch, Manifest};

/// What is missing: Debian packages, each with the reason.
#[derive(Debug, Default)]
pub struct Missing(pub Vec<(String, String)>);

impl Missing {
    fn packages(&self) -> Vec<&str> {
        let set: BTreeSet<&str> = self.0.iter().map(|(p, _)| p.as_str()).collect();
        set.into_iter().collect()
    }
}

/// Check the host for `arches`. `own_toolchain`: the user chose a
/// compiler, so Debian's cross gcc is not required.
pub fn missing(m: &Manifest, arches: &[&Arch], own_toolchain: bool) -> Missing {
    let mut out = Missing::default();
    for (tool, pkg) in &m.host.tools {
        if which::which(tool).is_err() {
            out.0.push((pkg.clone(), format!("command `{tool}`")));
        }
    }
    for a in arches {
        if !own_toolchain && which::which(format!("{}-gcc", a.triplet)).is_err() {
            out.0.push((format!("gcc-{}", a.triplet), format!("cross compiler {}-gcc", a.triplet)));
        }
        // C++ parts of Python packages built from source (numpy).
        if !own_toolchain && !m.distro.python_packages.is_empty() && which::which(format!("{}-g++", a.triplet)).is_err() {
            out.0.push((format!("g++-{}", a.triplet), format!("cross C++ compiler {}-g++ (Python packages built from source)", a.triplet)));
        }
        if which::which(&a.qemu).is_err() {
            out.0.push(("qemu-user".into(), format!("command `{}`", a.qemu)));
        }
    }
    for pkg in &m.host.packages {
        if !dpkg_installed(pkg) {
            out.0.push((pkg.clone(), "host library for the native recipes".into()));
        }
    }
    out
}

fn dpkg_installed(pkg: &str) -> bool {
    Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", pkg])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).contains("install ok installed"))
        .unwrap_or(false)
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Make sure the host has what the build needs; install it with apt as
/// root unless `CROSSPYTHON_NO_INSTALL` is set.
pub fn ensure(m: &Manifest, arches: &[&Arch], own_toolchain: bool) -> Result<()> {
    let missing = missing(m, arches, own_toolchain);
    if missing.0.is_empty() {
        return Ok(());
    }
    let pkgs = missing.packages();
    eprintln!("Host prerequisites missing:");
    for (pkg, why) in &missing.0 {
        eprintln!("  {pkg:28} for {why}");
    }
    let can_install = is_root() && which::which("apt-get").is_ok() && std::env::var_os("CROSSPYTHON_NO_INSTALL").is_none();
    if !can_install {
        bail!(
            "install them first:\n    sudo apt-get update && sudo apt-get install -y {}\n(or run as root, and crosspython installs them itself)",
            pkgs.join(" ")
        );
    }
    eprintln!("Installing with apt-get (as root): {}", pkgs.join(" "));
    let status = Command::new("apt-get").arg("update").status().context("cannot run apt-get update")?;
    if !status.success() {
        bail!("apt-get update failed ({status}); fix the host's apt configuration, then run again");
    }
    let status = Command::new("apt-get")
        .args(["install", "-y", "--no-install-recommends"])
        .args(&pkgs)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .status()
        .context("cannot run apt-get install")?;
    if !status.success() {
        bail!("apt-get install {} failed ({status})", pkgs.join(" "));
    }
    let still = missing_after(m, arches, own_toolchain);
    if !still.is_empty() {
        bail!("still missing after apt-get install: {}", still.join(", "));
    }
    Ok(())
}

fn missing_after(m: &Manifest, arches: &[&Arch], own_toolchain: bool) -> Vec<String> {
    missing(m, arches, own_toolchain).0.into_iter().map(|(p, why)| format!("{p} ({why})")).collect()
}
