//! `[distro]` and `[host]`: the policy of the whole build (BitBake's
//! DISTRO): the image, providers, features, Python packages, CPython's
//! tests and their limits; and what the build machine must have.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, Result};
use serde::Deserialize;
use toml::Spanned;

use super::located::Name;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Distro {
    /// Install prefix of everything on the target.
    pub prefix: String,
    /// Run-time roots of the image: what `rootfs` puts on the board.
    pub image: Vec<Name>,
    #[serde(default)]
    pub preferred_provider: BTreeMap<String, Name>,
    #[serde(default)]
    pub preferred_version: BTreeMap<String, Name>,
    /// pip requirement specifiers cross-installed into the target.
    #[serde(default)]
    pub python_packages: Vec<String>,
    /// A requirements file (relative to the manifest) adding to python_packages.
    pub python_requirements: Option<String>,
    /// Project names that must be built from source (pip's --no-binary).
    #[serde(default)]
    pub python_no_binary: Vec<String>,
    /// Environment of every source build of a Python package.
    #[serde(default)]
    pub python_build_env: BTreeMap<String, String>,
    /// Build options switched on in every recipe that offers them in its
    /// `packageconfig` (BitBake's DISTRO_FEATURES driving PACKAGECONFIG);
    /// `cargo xtask build --feature <f>` (or `--lto`, `--pgo`) adds to them.
    #[serde(default)]
    pub features: Vec<Name>,
    /// Named sets of features (`release`): `--feature <set>` switches on
    /// each of them.
    #[serde(default)]
    pub feature_sets: BTreeMap<String, Vec<String>>,
    /// CPython's own test modules that `qemu-test --cpython-tests` runs on the target.
    #[serde(default)]
    pub cpython_tests: Vec<String>,
    /// CPython tests that cannot pass on a target for a reason outside the
    /// build; they are left out with regrtest's `--ignore` and reported.
    #[serde(default)]
    pub cpython_test_limits: Vec<TestLimit>,
}

/// One CPython test (a regrtest id or fnmatch pattern) that cannot pass
/// under emulation or on a target's ABI, and why.
#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct TestLimit {
    /// regrtest test ids or fnmatch patterns, as `--ignore` takes them.
    pub tests: Spanned<Vec<String>>,
    pub kind: LimitKind,
    pub why: String,
    /// The arches it applies to; all when empty.
    #[serde(default)]
    pub arches: Vec<String>,
}

#[derive(Debug, Deserialize, serde::Serialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum LimitKind {
    /// qemu-user does not emulate a syscall, a /proc file or timing.
    QemuUser,
    /// The emulated machine of a booted guest (qemu-system) lacks a device.
    QemuSystem,
    /// Any emulation (qemu-user or qemu-system) runs too slowly for the
    /// test's timing; a board's CPU does not.
    Emulation,
    /// The test assumes a calling convention or layout the target does not have.
    TargetAbi,
    /// The test uses a tool of the machine it runs on (a build-machine gcc).
    TestHost,
    /// The test assumes the install is where it was built, with absolute
    /// paths; the tree is relocatable by design.
    Relocatable,
    /// The test needs more memory than a booted guest sized like a small
    /// board has (mipsel's 256 MiB); qemu-user runs in the host's.
    BoardMemory,
}

impl LimitKind {
    pub fn as_str(self) -> &'static str {
        match self {
            LimitKind::QemuUser => "qemu-user",
            LimitKind::QemuSystem => "qemu-system",
            LimitKind::Emulation => "emulation",
            LimitKind::TargetAbi => "target-abi",
            LimitKind::TestHost => "test-host",
            LimitKind::Relocatable => "relocatable",
            LimitKind::BoardMemory => "board-memory",
        }
    }
}

impl TestLimit {
    /// Whether the limit holds for `arch` when the tests run `booted`
    /// (qemu-system) or not (qemu-user): an emulator's limit holds only
    /// under that emulator.
    pub fn applies_to(&self, arch: &str, booted: bool) -> bool {
        let machine = match self.kind {
            LimitKind::QemuUser => !booted,
            LimitKind::QemuSystem | LimitKind::BoardMemory => booted,
            LimitKind::Emulation | LimitKind::TargetAbi | LimitKind::TestHost | LimitKind::Relocatable => true,
        };
        machine && (self.arches.is_empty() || self.arches.iter().any(|a| a == arch))
    }
}

/// What a Python package needs of the recipes when pip builds it from its
/// sdist, and a short real use of it. Whenever the package is installed
/// (`distro.python_packages` or `cargo xtask pip install`) its `depends`
/// are built and put into the tree; `qemu-test` runs its `check` on the
/// target when the package is there.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PythonPackage {
    /// Recipes (or provided names) whose libraries and headers the
    /// package's build links and whose libraries it loads on the board.
    #[serde(default)]
    pub depends: Vec<Name>,
    /// Python source run on the target (`python3 -c`); it fails by raising.
    pub check: Option<String>,
    /// pip's `--config-settings` for its source build (`KEY=VALUE`).
    #[serde(default)]
    pub config_settings: Vec<String>,
}

/// The requirement specifiers of a requirements file: one per line,
/// `#` comments and blank lines skipped. pip options are refused rather
/// than ignored: their meaning (an index, a constraint) would be lost.
pub fn read_requirements(path: &Path) -> Result<Vec<String>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read the requirements file {}", path.display()))?;
    let mut out = vec![];
    for (i, line) in text.lines().enumerate() {
        let line = line.split(" #").next().unwrap_or(line).trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if line.starts_with('-') {
            anyhow::bail!(
                "{}:{}: `{line}`: pip options are not supported here; list requirement specifiers only \
                 (source builds: distro.python_no_binary or --no-binary)",
                path.display(),
                i + 1
            );
        }
        out.push(line.to_string());
    }
    Ok(out)
}

/// The normalized project name of a requirement specifier (PEP 503), or
/// of a wheel or sdist file (`dir/PyYAML-6.0.tar.gz`).
pub fn project_name(requirement: &str) -> String {
    let requirement = match requirement.rsplit_once('/') {
        Some((_, file)) => file.split('-').next().unwrap_or(file),
        None if requirement.ends_with(".whl") || requirement.ends_with(".tar.gz") || requirement.ends_with(".zip") => {
            requirement.split('-').next().unwrap_or(requirement)
        }
        None => requirement,
    };
    let end = requirement.find(|c: char| !(c.is_ascii_alphanumeric() || "-_.".contains(c))).unwrap_or(requirement.len());
    requirement[..end].to_ascii_lowercase().replace(['_', '.'], "-")
}

/// What the build machine must have, mapped to the Debian package that
/// provides it, so that `doctor` can install it or print the apt line.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Host {
    /// command -> Debian package
    #[serde(default)]
    pub tools: BTreeMap<String, String>,
    /// Debian packages checked with dpkg (libraries the native recipes use).
    #[serde(default)]
    pub packages: Vec<String>,
}
