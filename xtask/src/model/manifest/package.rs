//! `[package]`: what `cargo xtask package` makes of the tree, by profile.

use std::collections::BTreeMap;

use serde::Deserialize;

/// What `cargo xtask package` makes of the tree, by profile.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Package {
    /// The profile used when `--profile` is not given.
    pub default_profile: Option<String>,
    #[serde(default)]
    pub profile: BTreeMap<String, Profile>,
}

#[derive(Debug, Default, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    #[serde(default)]
    pub description: String,
    /// Start from another profile's settings; `exclude` adds to its list.
    pub inherits: Option<String>,
    pub strip: Option<Strip>,
    pub pyc: Option<Pyc>,
    /// Optimization levels compiled (0, 1, 2), as `python -O`/`-OO` use them.
    pub pyc_opt_levels: Option<Vec<u8>>,
    /// Globs relative to the tree root; `{prefix}` is the distro prefix
    /// without its leading `/`, `{py}` is `python3.X`.
    #[serde(default)]
    pub exclude: Vec<String>,
    /// Keep only the stdlib modules and the Python packages an application
    /// imports (`package --app <file.py>`).
    pub app: Option<bool>,
    /// With `pyc = "zip"`: stdlib files (globs relative to `lib/python3.X/`)
    /// that stay files, because they are read beside their module through
    /// `__file__` or are not modules.
    #[serde(default)]
    pub zip_keep: Vec<String>,
    /// The application `cargo xtask bench` measures this profile with
    /// (relative to the manifest).
    pub bench_app: Option<String>,
}

#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum Strip {
    /// Leave every ELF file as built.
    None,
    /// Drop debug information only (`strip --strip-debug`).
    Debug,
    /// Drop every symbol not needed to run or link (`--strip-unneeded`).
    All,
}

#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum Pyc {
    /// `.py` sources with `__pycache__/*.pyc` next to them.
    WithSource,
    /// `.pyc` in place of each `.py` (no sources, no `__pycache__`).
    Sourceless,
    /// Sourceless, and the stdlib's byte code in one deflated
    /// `lib/python3XY.zip`, which CPython puts first on `sys.path`.
    Zip,
}
