//! Host prerequisites (`doctor`): the tools and Debian packages a build
//! needs. Missing ones are installed with apt when running as root, or
//! the exact `sudo apt-get install` line is printed.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::model::manifest::{Arch, Manifest};

/// What is missing: Debian packages, each with the reason.
#[derive(Debug, Default)]
pub struct Missing(pub Vec<(String, String)>);

impl Missing {
    fn packages(&self) -> Vec<&str> {
        let set: BTreeSet<&str> = self.0.iter().map(|(p, _)| p.as_str()).collect();
        set.into_iter().collect()
    }
}

/// Check the host for `arches` built with the toolchain `choice`
/// (`--toolchain`): zig (the default) needs Debian's binutils of the arch
/// for strip and friends and pip to fetch it; `debian-gcc` needs Debian's
/// cross gcc and g++; a compiler of the user's own needs neither.
pub fn missing(m: &Manifest, arches: &[&Arch], choice: Option<&str>) -> Missing {
    let mut out = Missing::default();
    for (tool, pkg) in &m.host.tools {
        if which::which(tool).is_err() {
            out.0.push((pkg.clone(), format!("command `{tool}`")));
        }
    }
    let zig = m.toolchain.zig.is_some() && choice.is_none_or(|c| c == "zig") && std::env::var_os("CROSS_COMPILE").is_none();
    let own_toolchain = zig || choice.is_some_and(|c| c != crate::machine::toolchain::DEBIAN_GCC);
    if zig {
        let has_pip = Command::new("python3").args(["-m", "pip", "--version"]).output().is_ok_and(|o| o.status.success());
        if !has_pip {
            out.0.push(("python3-pip".into(), "pip, which fetches the zig toolchain (PyPI project ziglang)".into()));
        }
        for a in arches.iter().filter(|a| a.zig_target.is_some()) {
            if which::which(format!("{}-strip", a.binutils_triplet())).is_err() {
                out.0.push((format!("binutils-{}", a.binutils_triplet()), format!("{}-strip and -objcopy beside zig's compiler", a.binutils_triplet())));
            }
        }
    }
    if arches.iter().any(|a| a.test_board.is_some()) {
        for (tool, pkg) in [("gpgv", "gpgv")] {
            if which::which(tool).is_err() {
                out.0.push((pkg.into(), "checks the signature of Debian's package index (board roots)".into()));
            }
        }
        if !Path::new("/usr/share/keyrings/debian-archive-keyring.gpg").exists() {
            out.0.push(("debian-archive-keyring".into(), "Debian's archive keys (board roots)".into()));
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
pub fn ensure(m: &Manifest, arches: &[&Arch], choice: Option<&str>) -> Result<()> {
    let missing = missing(m, arches, choice);
    if missing.0.is_empty() {
        return Ok(());
    }
    install(&missing)?;
    let still = missing_after(m, arches, choice);
    if !still.is_empty() {
        bail!("still missing after apt-get install: {}", still.join(", "));
    }
    Ok(())
}

/// One program a command needs (`qemu-system-mipsel`), from its Debian
/// package, installed as `ensure` installs the build's.
pub fn ensure_tool(tool: &str, package: &str, why: &str) -> Result<()> {
    if which::which(tool).is_ok() {
        return Ok(());
    }
    install(&Missing(vec![(package.to_string(), format!("{tool} ({why})"))]))?;
    which::which(tool).with_context(|| format!("{tool} is still missing after apt-get install {package}"))?;
    Ok(())
}

/// Install `missing` with apt-get as root, or say the line to run.
fn install(missing: &Missing) -> Result<()> {
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
    Ok(())
}

fn missing_after(m: &Manifest, arches: &[&Arch], choice: Option<&str>) -> Vec<String> {
    missing(m, arches, choice).0.into_iter().map(|(p, why)| format!("{p} ({why})")).collect()
}
