//! `recipes-manifest.toml`: the typed form of the file, parsing with
//! source positions, and validation of everything that can be checked
//! without resolving the dependency graph.
//!
//! Every struct denies unknown keys, so a typo is an error with a line and
//! column instead of a silently ignored setting.
//!
//! One file a part of the manifest: `recipe`, `arch` (with `[libc]` and
//! `[toolchain]`), `board` (with `[system]`), `package`, `distro` (with
//! `[host]`); `located` holds what every part uses: names with their
//! place, and problems at a place.

pub mod arch;
mod board;
mod distro;
mod located;
mod package;
mod recipe;
#[cfg(test)]
pub(crate) mod tests;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::Deserialize;
use toml::Spanned;

pub use self::arch::{parse_glibc, Arch, DebianPackages, ElfExpect, ElfMachine, Endian, Libc, LibcKind, Toolchains, ZigToolchain};
pub use self::board::{Board, GuestMachine, GuestRoot, SystemBoot};
pub use self::distro::{project_name, read_requirements, Distro, Host, PythonPackage, TestLimit};
use self::located::word_at;
pub use self::located::{line_col, Name, Problem, Problems};
pub use self::package::{Package, Profile, Pyc, Strip};
use self::recipe::RECIPE_KEYS;
pub use self::recipe::{Class, Overrides, Recipe, Source, ToolchainNeed};
pub use crate::model::build::Build;
use crate::model::version::Version;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub distro: Distro,
    #[serde(default)]
    pub host: Host,
    /// Configure answers shared by every arch (an arch's own add to them).
    #[serde(default)]
    pub config_site: BTreeMap<String, String>,
    pub arch: BTreeMap<String, Arch>,
    #[serde(rename = "recipe")]
    pub recipes: Vec<Recipe>,
    #[serde(default)]
    pub package: Package,
    /// The boards' C library: the glibc floor and what belongs to glibc.
    #[serde(default)]
    pub libc: Libc,
    /// Toolchains crosspython provides itself (`[toolchain.zig]`).
    #[serde(default)]
    pub toolchain: Toolchains,
    /// Board root filesystems assembled from Debian packages, to test on.
    #[serde(default)]
    pub board: BTreeMap<String, Board>,
    /// How `qemu-test --system` boots each arch (by arch name).
    #[serde(default)]
    pub system: BTreeMap<String, SystemBoot>,
    /// Python packages by normalized project name: the recipes they link
    /// and how `qemu-test` proves them (BitBake's `python3-<name>` recipes).
    #[serde(default)]
    pub python_package: BTreeMap<String, PythonPackage>,
}

fn did_you_mean(wanted: &str, known: &[String]) -> String {
    known.iter().map(|k| (strsim::levenshtein(wanted, k), k)).filter(|(d, _)| *d <= 2).min().map(|(_, k)| format!("; did you mean `{k}`?")).unwrap_or_default()
}

fn unknown_feature(f: &str, offered: &std::collections::BTreeSet<String>) -> String {
    let list: Vec<&str> = offered.iter().map(String::as_str).collect();
    let hint = offered
        .iter()
        .map(|o| (strsim::levenshtein(f, o), o))
        .filter(|(d, _)| *d <= 2)
        .min()
        .map(|(_, o)| format!("; did you mean `{o}`?"))
        .unwrap_or_default();
    format!("no recipe offers the feature `{f}` in its packageconfig{hint} (offered: {})", if list.is_empty() { "none".to_string() } else { list.join(", ") })
}

/// The manifest with the text it was read from, so that positions can be
/// turned into lines and columns.
pub struct Loaded {
    pub manifest: Manifest,
    pub path: PathBuf,
    /// The text parsed: the file, with its recipe includes expanded.
    text: String,
    /// Lines of `text` back to lines of the file, when includes were expanded.
    lines: Option<crate::model::recipe_include::LineMap>,
}

impl Loaded {
    pub fn read(path: &Path) -> Result<Loaded> {
        let text = std::fs::read_to_string(path).with_context(|| format!("cannot read the manifest {}", path.display()))?;
        Loaded::parse(path, text)
    }

    /// Parse and validate; every problem found is reported, not only the first.
    pub fn parse(path: &Path, text: String) -> Result<Loaded> {
        let (text, lines) = match crate::model::recipe_include::expand(&text).with_context(|| format!("{}: recipe includes", path.display()))? {
            Some((expanded, lines)) => (expanded, Some(lines)),
            None => (text, None),
        };
        let manifest: Manifest = match toml::from_str(&text) {
            Ok(m) => m,
            Err(e) => {
                let (line, column) = e.span().map(|s| line_col(&text, s.start)).unwrap_or((0, 0));
                let line = lines.as_ref().map_or(line, |l| l.original(line));
                let key = e.span().map(|s| word_at(&text, s.start)).unwrap_or_default();
                let problem = Problem { file: path.to_path_buf(), line, column, key, message: e.message().to_string() };
                return Err(Problems(vec![problem]).into());
            }
        };
        let loaded = Loaded { manifest, path: path.to_path_buf(), text, lines };
        let problems = loaded.validate();
        if !problems.is_empty() {
            return Err(Problems(problems).into());
        }
        Ok(loaded)
    }

    /// `distro.python_packages` and the lines of `distro.python_requirements`.
    pub fn python_requirements(&self) -> Result<Vec<String>> {
        let mut out = self.manifest.distro.python_packages.clone();
        if let Some(file) = &self.manifest.distro.python_requirements {
            let path = self.path.parent().unwrap_or(Path::new(".")).join(file);
            out.extend(read_requirements(&path).with_context(|| format!("distro.python_requirements in {}", self.path.display()))?);
        }
        Ok(out)
    }

    /// pip's `--config-settings` of these requirements' projects.
    pub fn python_config_settings(&self, requirements: &[String]) -> BTreeMap<String, Vec<String>> {
        self.python_package_entries(requirements)
            .into_iter()
            .filter(|(_, p)| !p.config_settings.is_empty())
            .map(|(k, p)| (project_name(k), p.config_settings.clone()))
            .collect()
    }

    /// The `[python_package]` entries of these requirements, by project name.
    pub fn python_package_entries<'a>(&'a self, requirements: &[String]) -> Vec<(&'a str, &'a PythonPackage)> {
        let wanted: std::collections::BTreeSet<String> = requirements.iter().map(|r| project_name(r)).collect();
        self.manifest.python_package.iter().filter(|(k, _)| wanted.contains(&project_name(k))).map(|(k, p)| (k.as_str(), p)).collect()
    }

    /// Every feature some recipe's `packageconfig` (or an override's) offers.
    pub fn features_offered(&self) -> std::collections::BTreeSet<String> {
        let mut out = std::collections::BTreeSet::new();
        for r in &self.manifest.recipes {
            out.extend(r.packageconfig.keys().cloned());
            for o in r.arch.values() {
                out.extend(o.packageconfig.iter().flat_map(|p| p.keys().cloned()));
            }
        }
        out
    }

    /// Switch features on from the command line (`build --feature`), as if
    /// `distro.features` listed them.
    pub fn enable_features(&mut self, features: &[String]) -> Result<()> {
        let offered = self.features_offered();
        // (feature, the set it came from)
        let mut wanted: Vec<(&String, Option<&String>)> = vec![];
        for f in features {
            match self.manifest.distro.feature_sets.get(f) {
                Some(set) => wanted.extend(set.iter().map(|m| (m, Some(f)))),
                None => wanted.push((f, None)),
            }
        }
        let mut enabled = vec![];
        for (f, set) in wanted {
            if !offered.contains(f) {
                let (asked, hint) = match set {
                    Some(set) => (format!("--feature {set} (distro.feature_sets.{set} in {})", self.path.display()), String::new()),
                    None => {
                        let near = self.manifest.distro.feature_sets.keys().find(|s| strsim::levenshtein(f, s) <= 2);
                        (format!("--feature {f}"), near.map(|s| format!("; did you mean the feature set `{s}`?")).unwrap_or_default())
                    }
                };
                anyhow::bail!("{asked}: {}{hint}", unknown_feature(f, &offered));
            }
            enabled.push(f.clone());
        }
        for f in &enabled {
            if !self.manifest.distro.features.iter().any(|d| d.get_ref() == f) {
                self.manifest.distro.features.push(Spanned::new(0..0, f.clone()));
            }
        }
        Ok(())
    }

    /// Line and column in the manifest file of an offset into the parsed text.
    pub fn line_col(&self, offset: usize) -> (usize, usize) {
        let (line, column) = line_col(&self.text, offset);
        (self.lines.as_ref().map_or(line, |l| l.original(line)), column)
    }

    /// A problem located at the span of `at`.
    pub fn problem<T>(&self, at: &Spanned<T>, key: &str, message: impl Into<String>) -> Problem {
        let (line, column) = self.line_col(at.span().start);
        Problem { file: self.path.clone(), line, column, key: key.to_string(), message: message.into() }
    }

    /// A problem located at a key of the `i`th `[[recipe]]` (`["arch",
    /// "native", "configur"]`), or at the recipe when the key has no place.
    fn problem_at_key(&self, i: usize, path: &[&str], key: &str, message: impl Into<String>) -> Problem {
        let offset = (|| {
            let doc = toml_edit::ImDocument::parse(self.text.as_str()).ok()?;
            let mut table: &dyn toml_edit::TableLike = doc.get("recipe")?.as_array_of_tables()?.get(i)?;
            let (last, parents) = path.split_last()?;
            for p in parents {
                table = table.get(p)?.as_table_like()?;
            }
            table.key(last)?.span().map(|s| s.start)
        })();
        let (line, column) = self.line_col(offset.unwrap_or_else(|| self.manifest.recipes[i].name.span().start));
        Problem { file: self.path.clone(), line, column, key: key.to_string(), message: message.into() }
    }

    /// A problem located where `[key]`'s table starts (for fields read
    /// without a span).
    pub fn problem_at_start(&self, key: &str, message: impl Into<String>) -> Problem {
        let table = key.rsplit_once('.').map_or(key, |(t, _)| t);
        let offset = self.text.find(&format!("[{table}]")).unwrap_or(0);
        let (line, column) = self.line_col(offset);
        Problem { file: self.path.clone(), line, column, key: key.to_string(), message: message.into() }
    }

    /// Checks of single fields: versions, checksums, URL schemes, duplicates.
    fn validate(&self) -> Vec<Problem> {
        [
            self.recipe_problems(),
            self.preferred_version_problems(),
            self.profile_problems(),
            self.feature_problems(),
            self.machine_problems(),
            self.test_limit_problems(),
        ]
        .concat()
    }

    /// Recipes: names, versions, sources, overrides and unknown fields.
    fn recipe_problems(&self) -> Vec<Problem> {
        let m = &self.manifest;
        let mut problems = Vec::new();
        let mut seen: BTreeMap<(String, String), &Name> = BTreeMap::new();
        for (i, r) in m.recipes.iter().enumerate() {
            let key = |k: &str| format!("recipe {}.{k}", r.name.get_ref());
            if !valid_name(r.name.get_ref()) {
                problems.push(self.problem(&r.name, &key("name"), "a recipe name is lowercase letters, digits, `-`, `_`, `+` and `.`"));
            }
            if let Err(e) = Version::parse(r.version.get_ref()) {
                problems.push(self.problem(&r.version, &key("version"), e.to_string()));
            }
            let id = (r.name.get_ref().clone(), r.version.get_ref().clone());
            if let Some(first) = seen.get(&id) {
                let (line, _) = self.line_col(first.span().start);
                problems.push(self.problem(&r.name, &key("name"), format!("{} {} is defined twice (first at line {line})", id.0, id.1)));
            } else {
                seen.insert(id, &r.name);
            }
            for (i, s) in std::iter::once(&r.source).chain(&r.alternatives).enumerate() {
                let field = if i == 0 { key("source") } else { key(&format!("alternatives[{}]", i - 1)) };
                problems.extend(self.check_source(s, &field));
            }
            for arch in r.arch.keys() {
                if arch != "native" && !m.arch.contains_key(arch) {
                    problems.push(self.problem(
                        &r.name,
                        &key(&format!("arch.{arch}")),
                        format!("override for unknown arch `{arch}`; known: native, {}", m.arch.keys().cloned().collect::<Vec<_>>().join(", ")),
                    ));
                }
            }
            for k in r.unknown.keys() {
                let known: Vec<String> = RECIPE_KEYS.iter().map(|k| k.to_string()).chain(Build::fields()).collect();
                let hint = did_you_mean(k, &known);
                problems.push(self.problem_at_key(i, &[k], &key(k), format!("unknown field `{k}`{hint}")));
            }
            for (arch, o) in &r.arch {
                if let Err(e) = r.build.overlay(&o.build) {
                    let at = ["arch", arch.as_str(), e.field.as_str()];
                    problems.push(self.problem_at_key(i, &at, &key(&at.join(".")), e.message));
                }
            }
            if r.arch.contains_key("native") && !r.native {
                problems.push(self.problem(&r.name, &key("arch.native"), "a `native` override needs `native = true`"));
            }
        }
        problems
    }

    /// `distro.preferred_version`: versions, with `%` only at the end.
    fn preferred_version_problems(&self) -> Vec<Problem> {
        let m = &self.manifest;
        let mut problems = Vec::new();
        for (name, pattern) in &m.distro.preferred_version {
            let p = pattern.get_ref();
            let stem = p.strip_suffix('%').unwrap_or(p);
            if stem.contains('%') || (!stem.is_empty() && Version::parse(stem.trim_end_matches('.')).is_err()) {
                problems.push(self.problem(
                    pattern,
                    &format!("distro.preferred_version.{name}"),
                    format!("`{p}` is not a version; `%` may only end it, as in \"3.13.%\""),
                ));
            }
        }
        problems
    }

    /// `[package.profile.*]`: what they inherit and exclude, and the default.
    fn profile_problems(&self) -> Vec<Problem> {
        let m = &self.manifest;
        let mut problems = Vec::new();
        for (name, p) in &m.package.profile {
            if let Some(parent) = &p.inherits {
                if !m.package.profile.contains_key(parent) {
                    problems.push(self.problem_at_start(
                        &format!("package.profile.{name}.inherits"),
                        format!("no profile `{parent}`; known: {}", m.package.profile.keys().cloned().collect::<Vec<_>>().join(", ")),
                    ));
                }
            }
            for g in &p.exclude {
                if let Err(e) = globset::Glob::new(g) {
                    problems.push(self.problem_at_start(&format!("package.profile.{name}.exclude"), format!("`{g}` is not a glob: {e}")));
                }
            }
        }
        if let Some(d) = &m.package.default_profile {
            if !m.package.profile.contains_key(d) {
                problems.push(self.problem_at_start("package.default_profile", format!("no profile `{d}`")));
            }
        }
        problems
    }

    /// `distro.features`: each offered by some recipe.
    fn feature_problems(&self) -> Vec<Problem> {
        let m = &self.manifest;
        let mut problems = Vec::new();
        let offered = self.features_offered();
        for f in &m.distro.features {
            if !offered.contains(f.get_ref()) {
                problems.push(self.problem(f, "distro.features", unknown_feature(f.get_ref(), &offered)));
            }
        }
        problems
    }

    /// The C library floor, the arches' boards and glibc versions, the boards' arches, zig's checksums.
    fn machine_problems(&self) -> Vec<Problem> {
        let m = &self.manifest;
        let mut problems = Vec::new();
        if let Some(f) = m.libc.glibc_floor.as_deref().filter(|f| parse_glibc(f).is_none()) {
            problems.push(self.problem_at_start("libc.glibc_floor", format!("`{f}` is not a glibc version such as 2.28")));
        }
        for (name, a) in &m.arch {
            if let Some(b) = a.test_board.as_ref().filter(|b| !m.board.contains_key(*b)) {
                problems.push(self.problem_at_start(
                    &format!("arch.{name}.test_board"),
                    format!("no board `{b}`; known: {}", m.board.keys().cloned().collect::<Vec<_>>().join(", ")),
                ));
            }
            for v in a.glibc_min.iter().chain(a.cflags_from_glibc.keys()) {
                if parse_glibc(v).is_none() {
                    problems.push(self.problem_at_start(&format!("arch.{name}.glibc_min"), format!("`{v}` is not a glibc version such as 2.28")));
                }
            }
        }
        for (name, b) in &m.board {
            if !m.arch.contains_key(&b.arch) {
                problems.push(self.problem_at_start(
                    &format!("board.{name}.arch"),
                    format!("unknown arch `{}`; known: {}", b.arch, m.arch.keys().cloned().collect::<Vec<_>>().join(", ")),
                ));
            }
        }
        if let Some(z) = &m.toolchain.zig {
            for sha in z.wheel_sha256.values().filter(|s| !is_sha256(s)) {
                problems.push(self.problem_at_start("toolchain.zig.wheel_sha256", format!("`{sha}`: a sha256 is 64 lowercase hex digits")));
            }
        }
        problems
    }

    /// `distro.cpython_test_limits`: known arches and a reason each.
    fn test_limit_problems(&self) -> Vec<Problem> {
        let m = &self.manifest;
        let mut problems = Vec::new();
        for (i, limit) in m.distro.cpython_test_limits.iter().enumerate() {
            for arch in limit.arches.iter().filter(|a| !m.arch.contains_key(*a)) {
                problems.push(self.problem(
                    &limit.tests,
                    &format!("distro.cpython_test_limits[{i}].arches"),
                    format!("unknown arch `{arch}`; known: {}", m.arch.keys().cloned().collect::<Vec<_>>().join(", ")),
                ));
            }
            if limit.why.trim().is_empty() {
                problems.push(self.problem(&limit.tests, &format!("distro.cpython_test_limits[{i}].why"), "say why the test cannot pass"));
            }
        }
        problems
    }

    fn check_source(&self, s: &Source, key: &str) -> Vec<Problem> {
        let mut problems = Vec::new();
        for (i, url) in std::iter::once(&s.url).chain(&s.mirrors).enumerate() {
            let field = if i == 0 { format!("{key}.url") } else { format!("{key}.mirrors[{}]", i - 1) };
            if !valid_url(url.get_ref()) {
                problems.push(self.problem(
                    url,
                    &field,
                    format!("`{}` has an unsupported scheme; use https://, http://, file://, debian:<pool path> or pypi:<name>==<version>", url.get_ref()),
                ));
            }
        }
        match &s.sha256 {
            None => problems.push(self.problem(&s.url, &format!("{key}.sha256"), "every source needs a sha256")),
            Some(h) if !is_sha256(h.get_ref()) => problems.push(self.problem(h, &format!("{key}.sha256"), "a sha256 is 64 lowercase hex digits")),
            Some(_) => {}
        }
        problems
    }
}

pub fn valid_name(name: &str) -> bool {
    !name.is_empty() && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "-_+./".contains(c))
}

fn valid_url(url: &str) -> bool {
    ["https://", "http://", "file://", "debian:", "pypi:"].iter().any(|s| url.starts_with(s) && url.len() > s.len())
}

fn is_sha256(s: &str) -> bool {
    s.len() == 64 && s.chars().all(|c| matches!(c, '0'..='9' | 'a'..='f'))
}
