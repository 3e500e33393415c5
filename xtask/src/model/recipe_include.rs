//! Recipe includes, as BitBake's `require`: `[include.python3]` holds what
//! every python3 recipe shares, and a recipe with `require = "python3"`
//! gets each key it does not set itself (tables such as `packageconfig`
//! and `arch` merge key by key, the recipe winning). A recipe adds to a
//! list of the include with `<key>_append` (`depends_append = ["zstd"]`).
//!
//! The expansion is textual (the manifest is rewritten with the keys copied
//! in, by `toml_edit`, which keeps the rest byte for byte), so the
//! manifest's own parser, its spans and its checks see one plain manifest;
//! `LineMap` turns positions in the expanded text back into lines of the
//! file the user wrote.
//!
//! Arches inherit the same way: `[arch.mipsel-musl] inherit = "mipsel"`
//! takes every field of `mipsel` it does not set, except those of another
//! C library, and every recipe's `[recipe.arch.mipsel]` overrides.

use anyhow::{bail, Result};
use toml_edit::{DocumentMut, Item, Table};

/// The manifest with its includes expanded, or None if it uses none.
pub fn expand(text: &str) -> Result<Option<(String, LineMap)>> {
    let Ok(mut doc) = text.parse::<DocumentMut>() else {
        // Syntax errors are reported by the manifest's parser, with positions.
        return Ok(None);
    };
    let includes = match doc.remove("include") {
        None => Table::new(),
        Some(Item::Table(t)) => t,
        Some(_) => bail!("`include` must be a table of tables: [include.<name>]"),
    };
    let inherited = inherit_arches(&mut doc)?;
    if includes.is_empty() && inherited.is_empty() {
        return Ok(None);
    }
    if let Some(recipes) = doc.get_mut("recipe").and_then(Item::as_array_of_tables_mut) {
        for recipe in recipes.iter_mut() {
            let Some(name) = recipe.remove("require") else { continue };
            let Some(name) = name.as_str().map(str::to_string) else {
                bail!("`require` of a recipe must name an [include.<name>] table");
            };
            let Some(Item::Table(include)) = includes.get(&name) else {
                let known: Vec<&str> = includes.iter().map(|(k, _)| k).collect();
                bail!("a recipe requires `{name}`, which no [include.{name}] defines (there are: {})", known.join(", "));
            };
            merge(recipe, include);
            append(recipe, include)?;
        }
    }
    copy_recipe_overrides(&mut doc, &inherited);
    copy_system_entries(&mut doc, &inherited);
    let expanded = doc.to_string();
    let map = LineMap::new(text, &expanded);
    Ok(Some((expanded, map)))
}

/// Fields that describe one C library; an arch that inherits from one of
/// another libc (`aarch64-musl` from `aarch64`) does not take them.
const LIBC_FIELDS: [&str; 3] = ["glibc_min", "runtime_libs", "cflags_from_glibc"];

/// `[arch.<name>] inherit = "<other>"`: the arch takes every field of the
/// other that it does not set (its `config_site` merges answer by answer).
/// Returns the (arch, inherited arch) pairs.
fn inherit_arches(doc: &mut DocumentMut) -> Result<Vec<(String, String)>> {
    let Some(arches) = doc.get_mut("arch").and_then(Item::as_table_mut) else { return Ok(vec![]) };
    let children: Vec<(String, String)> =
        arches.iter().filter_map(|(name, item)| Some((name.to_string(), item.as_table()?.get("inherit")?.as_str()?.to_string()))).collect();
    for (child, parent) in &children {
        let Some(Item::Table(from)) = arches.get(parent).cloned() else {
            bail!("[arch.{child}] inherits `{parent}`, which is no arch of the manifest");
        };
        if from.contains_key("inherit") {
            bail!("[arch.{child}] inherits `{parent}`, which inherits itself: one level only");
        }
        let into = arches.get_mut(child).and_then(Item::as_table_mut).expect("listed above");
        into.remove("inherit");
        let libc = |t: &Table| t.get("libc").and_then(Item::as_str).unwrap_or("glibc").to_string();
        let mut from = from;
        if libc(into) != libc(&from) {
            for f in LIBC_FIELDS {
                from.remove(f);
            }
        }
        merge(into, &from);
    }
    Ok(children)
}

/// A recipe's `[recipe.arch.<parent>]` overrides serve an inheriting arch
/// too, unless the recipe has its own for it.
fn copy_recipe_overrides(doc: &mut DocumentMut, pairs: &[(String, String)]) {
    let Some(recipes) = doc.get_mut("recipe").and_then(Item::as_array_of_tables_mut) else { return };
    for recipe in recipes.iter_mut() {
        if let Some(arch) = recipe.get_mut("arch").and_then(Item::as_table_mut) {
            copy_parents_entries(arch, pairs);
        }
    }
}

/// The parent's `[system.<parent>]` boots an inheriting arch too, unless it
/// has its own: the kernel and machine do not depend on the C library
/// (`mipsel-musl` boots malta as `mipsel` does).
fn copy_system_entries(doc: &mut DocumentMut, pairs: &[(String, String)]) {
    if let Some(system) = doc.get_mut("system").and_then(Item::as_table_mut) {
        copy_parents_entries(system, pairs);
    }
}

/// In a table keyed by arch, give each (child, parent) pair's child a copy
/// of the parent's entry where it has none of its own.
fn copy_parents_entries(by_arch: &mut Table, pairs: &[(String, String)]) {
    for (child, parent) in pairs {
        if by_arch.contains_key(child) {
            continue;
        }
        if let Some(Item::Table(t)) = by_arch.get(parent) {
            let copy = unplaced(t);
            by_arch.insert(child, Item::Table(copy));
        }
    }
}

/// Copy into `into` every key of `from` it lacks; tables merge recursively.
fn merge(into: &mut Table, from: &Table) {
    for (key, item) in from.iter() {
        match (into.get_mut(key), item) {
            (None, Item::Table(t)) => {
                into.insert(key, Item::Table(unplaced(t)));
            }
            (None, _) => {
                into.insert(key, item.clone());
            }
            (Some(Item::Table(mine)), Item::Table(theirs)) => merge(mine, theirs),
            (Some(Item::Value(toml_edit::Value::InlineTable(mine))), Item::Value(toml_edit::Value::InlineTable(theirs))) => {
                for (k, v) in theirs.iter() {
                    if !mine.contains_key(k) {
                        mine.insert(k, v.clone());
                    }
                }
            }
            // `x = { .. }` on one side, `[..x]` on the other.
            (Some(Item::Value(toml_edit::Value::InlineTable(mine))), Item::Table(theirs)) => {
                for (k, v) in theirs.iter() {
                    if let (false, Some(v)) = (mine.contains_key(k), v.as_value()) {
                        // Comments of a table's lines have no place in `{ .. }`.
                        let mut v = v.clone();
                        v.decor_mut().clear();
                        mine.insert(k, v);
                    }
                }
            }
            (Some(Item::Table(mine)), Item::Value(toml_edit::Value::InlineTable(theirs))) => {
                for (k, v) in theirs.iter() {
                    if !mine.contains_key(k) {
                        mine.insert(k, Item::Value(v.clone()));
                    }
                }
            }
            _ => {}
        }
    }
}

/// A copy of an include's table without its place in the file: toml_edit
/// writes a table with no position right after the one before it, so the
/// copy lands under its recipe's `[[recipe]]`, not where the include was.
fn unplaced(from: &Table) -> Table {
    let mut t = Table::new();
    t.set_implicit(from.is_implicit());
    for (key, item) in from.iter() {
        match item {
            Item::Table(sub) => t.insert(key, Item::Table(unplaced(sub))),
            other => t.insert(key, other.clone()),
        };
    }
    t
}

/// `<key>_append = [...]` of the recipe, added to the include's `<key>`.
fn append(recipe: &mut Table, include: &Table) -> Result<()> {
    let keys: Vec<String> =
        recipe.iter().map(|(k, _)| k.to_string()).filter(|k| k.ends_with("_append") && include.contains_key(k.trim_end_matches("_append"))).collect();
    for key in keys {
        let base = key.trim_end_matches("_append");
        let extra = recipe.remove(&key).and_then(|i| i.into_value().ok()).and_then(|v| match v {
            toml_edit::Value::Array(a) => Some(a),
            _ => None,
        });
        let Some(extra) = extra else { bail!("`{key}` must be a list") };
        let Some(list) = recipe.get_mut(base).and_then(Item::as_array_mut) else {
            bail!("`{key}` adds to `{base}`, which is not a list in the include");
        };
        for v in extra.iter() {
            list.push(v.clone());
        }
    }
    Ok(())
}

/// Lines of the expanded text, mapped to lines of the original: a line the
/// expansion kept maps to itself, a copied one to the include line it came from.
#[derive(Debug)]
pub struct LineMap {
    lines: Vec<usize>,
}

impl LineMap {
    fn new(original: &str, expanded: &str) -> LineMap {
        let orig: Vec<&str> = original.lines().collect();
        let mut lines = Vec::new();
        let mut next = 0;
        for line in expanded.lines() {
            if next < orig.len() && orig[next] == line {
                next += 1;
                lines.push(next);
            } else {
                // Copied from an include: the first original line like it.
                lines.push(orig.iter().position(|o| *o == line).map_or(next.max(1), |p| p + 1));
            }
        }
        LineMap { lines }
    }

    /// The original line of a 1-based line of the expanded text.
    pub fn original(&self, line: usize) -> usize {
        self.lines.get(line.saturating_sub(1)).copied().unwrap_or(line)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MANIFEST: &str = r#"[distro]
prefix = "/usr/local"

# shared by both versions
[include.py]
class = "cpython"
depends = ["zlib"]
configure = ["--enable-shared"]
env = { A = "1" }

[include.py.packageconfig.lto]
configure = ["--with-lto"]

[[recipe]]
name = "py"
version = "3.14.7"
require = "py"
depends_append = ["zstd"]

[recipe.packageconfig.freethreading]
configure = ["--disable-gil"]

[[recipe]]
name = "py"
version = "3.11.2"
require = "py"
configure = ["--enable-shared", "py_cv_module__crypt=n/a"]
"#;

    #[test]
    fn a_recipe_gets_what_it_requires_and_keeps_what_it_sets() {
        let (text, _) = expand(MANIFEST).unwrap().unwrap();
        let v: toml::Value = toml::from_str(&text).unwrap();
        let r = v["recipe"].as_array().unwrap();
        assert!(v.get("include").is_none());
        assert_eq!(r[0]["class"].as_str(), Some("cpython"));
        assert_eq!(r[0]["depends"], toml::Value::Array(vec!["zlib".into(), "zstd".into()]), "depends_append adds to the include's list");
        assert!(r[0].get("depends_append").is_none() && r[0].get("require").is_none());
        let pc = r[0]["packageconfig"].as_table().unwrap();
        assert_eq!(pc.keys().collect::<Vec<_>>(), ["freethreading", "lto"], "tables merge key by key");
        assert_eq!(r[1]["configure"], toml::Value::Array(vec!["--enable-shared".into(), "py_cv_module__crypt=n/a".into()]), "the recipe's own list wins");
        assert_eq!(r[1]["env"]["A"].as_str(), Some("1"));
    }

    #[test]
    fn lines_of_the_expanded_manifest_map_back_to_the_file() {
        let (text, map) = expand(MANIFEST).unwrap().unwrap();
        let at = |needle: &str| text.lines().position(|l| l.contains(needle)).unwrap() + 1;
        assert_eq!(map.original(at("version = \"3.11.2\"")), 25);
        assert_eq!(map.original(at("class = \"cpython\"")), 6, "a copied key points at the include");
    }

    #[test]
    fn an_unknown_include_is_named_with_the_ones_there_are() {
        let err = expand(&MANIFEST.replace("require = \"py\"\ndepends_append", "require = \"pyy\"\ndepends_append")).unwrap_err().to_string();
        assert_eq!(err, "a recipe requires `pyy`, which no [include.pyy] defines (there are: py)");
    }

    #[test]
    fn an_arch_inherits_what_it_does_not_set_and_the_recipes_overrides_of_its_parent() {
        let text = r#"[arch.mipsel]
triplet = "mipsel-linux-gnu"
machine = "mips"
runtime_libs = { suite = "bookworm", packages = ["libstdc++6"] }
[arch.mipsel.config_site]
ac_cv_wchar_t_signed = "yes"           # MIPS o32: wchar_t is int

[arch.mipsel-musl]
inherit = "mipsel"
libc = "musl"
triplet = "mipsel-linux-musl"
config_site = { ac_cv_func_preadv2 = "no" }

[system.mipsel]
machine = "malta"

[[recipe]]
name = "openssl"
[recipe.arch.mipsel]
env = { CFLAGS = "-DBROKEN_CLANG_ATOMICS" }
"#;
        let (out, _) = expand(text).unwrap().unwrap();
        let v: toml::Value = toml::from_str(&out).unwrap();
        let musl = &v["arch"]["mipsel-musl"];
        assert_eq!(musl["triplet"].as_str(), Some("mipsel-linux-musl"), "its own field wins");
        assert_eq!(musl["machine"].as_str(), Some("mips"));
        assert!(musl.get("runtime_libs").is_none(), "glibc's run-time libraries are not a musl arch's");
        assert!(musl.get("inherit").is_none());
        assert_eq!(musl["config_site"]["ac_cv_wchar_t_signed"].as_str(), Some("yes"));
        assert_eq!(musl["config_site"]["ac_cv_func_preadv2"].as_str(), Some("no"));
        assert_eq!(v["recipe"][0]["arch"]["mipsel-musl"]["env"]["CFLAGS"].as_str(), Some("-DBROKEN_CLANG_ATOMICS"));
        assert_eq!(v["arch"]["mipsel"].get("libc"), None, "the parent is unchanged");
        assert_eq!(v["system"]["mipsel-musl"]["machine"].as_str(), Some("malta"), "it boots as its parent does");
    }

    #[test]
    fn a_manifest_without_includes_is_left_alone() {
        assert!(expand("[distro]\nprefix = \"/usr\"\n").unwrap().is_none());
    }
}
