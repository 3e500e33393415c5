//! `[[recipe]]`: what a recipe is made of (BitBake's `.bb` file): its
//! source, class, dependencies, build options and per-arch overrides.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::located::Name;
use crate::model::build::Build;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Class {
    /// `configure --build --host --prefix`, `make`, `make install DESTDIR=`.
    Autotools,
    /// A hand-written `configure` script that takes no --host (zlib).
    Configure,
    /// Only a Makefile (bzip2).
    Make,
    /// CPython: autotools plus the cross-build python and CONFIG_SITE.
    Cpython,
    /// CMake, configured and built by the `cmake` crate for the cross
    /// toolchain, installed with `cmake --install` into `D`.
    Cmake,
    /// Meson with a cross file of the toolchain, ninja, `meson install`.
    Meson,
}

#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct Source {
    /// `https://...`, `http://...`, `file://...`, `debian:<pool path>`, or
    /// `pypi:<name>==<version>` (a source distribution by the host's pip).
    pub url: Name,
    pub sha256: Option<Name>,
    /// Where the same bytes can also be found.
    #[serde(default)]
    pub mirrors: Vec<Name>,
    /// Leading path components to strip when unpacking (default 1).
    #[serde(default = "one")]
    pub strip_components: usize,
}

fn one() -> usize {
    1
}

/// Build fields that an arch override (`[recipe.arch.<arch>]`, with
/// `native` for the native variant) may replace or append to.
#[derive(Debug, Clone, Default, Deserialize, serde::Serialize)]
pub struct Overrides {
    pub depends: Option<Vec<Name>>,
    pub rdepends: Option<Vec<Name>>,
    #[serde(default)]
    pub configure_append: Vec<String>,
    pub packageconfig: Option<BTreeMap<String, PackageConfig>>,
    /// Fields of [`Build`] this override replaces (`env` merges key by
    /// key); checked against `Build` when the manifest is read.
    #[serde(flatten)]
    pub build: toml::Table,
}

/// One build option of a recipe (BitBake's PACKAGECONFIG): what it adds
/// to the recipe when the distro feature of the same name is on.
#[derive(Debug, Clone, Default, Deserialize, serde::Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct PackageConfig {
    /// What the option does, for `cargo xtask show`.
    pub summary: String,
    pub configure: Vec<String>,
    pub make_args: Vec<String>,
    /// make arguments for one compiler family (`gcc`, `clang`) only.
    pub make_args_for_compiler: BTreeMap<crate::model::build::Compiler, Vec<String>>,
    pub env: BTreeMap<String, String>,
    /// What the option needs of the toolchain beyond a compiler.
    pub toolchain_needs: Vec<ToolchainNeed>,
    /// CPython modules it links into the interpreter (`Build::builtin_modules`).
    pub builtin_modules: Vec<String>,
    /// The arches it is offered on, when not every one has what it needs
    /// (a compiler feature of one target); empty: all. On the others the
    /// feature is left off, and `show` says so.
    pub arches: Vec<String>,
}

impl PackageConfig {
    /// Whether the option is offered on `arch` (`arches` empty: on every one).
    pub fn offered_on(&self, arch: &str) -> bool {
        self.arches.is_empty() || self.arches.iter().any(|a| a == arch)
    }
}

/// A part of a toolchain some build options need.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ToolchainNeed {
    /// clang's PGO: compiler-rt's profile runtime and an `llvm-profdata`
    /// of the compiler's LLVM (gcc brings its own libgcov).
    ProfileRuntime,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Recipe {
    pub name: Name,
    pub version: Name,
    pub class: Class,
    pub license: String,
    #[serde(default)]
    pub summary: String,
    pub source: Source,
    /// Other tarballs of the same release with their own checksum, tried
    /// after `source` (Debian's dfsg repacks, for example).
    #[serde(default)]
    pub alternatives: Vec<Source>,
    #[serde(default)]
    pub depends: Vec<Name>,
    #[serde(default)]
    pub rdepends: Vec<Name>,
    #[serde(default)]
    pub rrecommends: Vec<Name>,
    #[serde(default)]
    pub provides: Vec<Name>,
    #[serde(default)]
    pub rprovides: Vec<Name>,
    #[serde(default)]
    pub rconflicts: Vec<Name>,
    #[serde(default)]
    pub rreplaces: Vec<Name>,
    /// Also define `<name>-native`, built for the build machine.
    #[serde(default)]
    pub native: bool,
    /// Configure arguments added when the named recipe is a direct
    /// dependency (after provider selection), like BitBake's PACKAGECONFIG.
    #[serde(default)]
    pub configure_with: BTreeMap<String, Vec<String>>,
    /// How it is built (`configure`, `env`, `do_install`, ...).
    #[serde(flatten)]
    pub build: Build,
    /// Build options, keyed by the distro feature that switches them on.
    #[serde(default)]
    pub packageconfig: BTreeMap<String, PackageConfig>,
    /// Per-arch overrides; the key `native` applies to the native variant.
    #[serde(default)]
    pub arch: BTreeMap<String, Overrides>,
    /// Keys that are no field of a recipe (serde cannot deny them through
    /// `flatten`): reported with their place when the manifest is read.
    #[serde(flatten)]
    pub unknown: BTreeMap<String, toml::Value>,
}

impl Recipe {
    /// The build options one variant offers: an override's (`[recipe.arch.<key>]`,
    /// `native` for the native variant) replace the recipe's.
    pub fn packageconfig_for(&self, override_key: &str) -> &BTreeMap<String, PackageConfig> {
        self.arch.get(override_key).and_then(|o| o.packageconfig.as_ref()).unwrap_or(&self.packageconfig)
    }
}

/// The keys of a `[[recipe]]` besides those of [`Build`], for suggestions
/// only: what is accepted is what serde reads.
pub(super) const RECIPE_KEYS: [&str; 18] = [
    "name",
    "version",
    "class",
    "license",
    "summary",
    "source",
    "alternatives",
    "depends",
    "rdepends",
    "rrecommends",
    "provides",
    "rprovides",
    "rconflicts",
    "rreplaces",
    "native",
    "configure_with",
    "packageconfig",
    "arch",
];
