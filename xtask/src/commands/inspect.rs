//! Introspection commands: `check`, `graph`, `show`, `fetch`, `clean`.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use anyhow::{bail, Result};

use crate::engine::project::Project;
use crate::model::manifest::Problems;
use crate::model::resolve::{self, Graph};

/// Validate the manifest for every arch; print every problem, not only the first.
pub fn check(project: &Project) -> Result<()> {
    let loaded = project.load()?;
    let problems = problems(&loaded)?;
    if problems.is_empty() {
        println!("{}: ok ({} recipes, {} arches)", project.manifest_path.display(), loaded.manifest.recipes.len(), loaded.manifest.arch.len());
        Ok(())
    } else {
        Err(Problems(problems).into())
    }
}

/// Every problem of resolving the manifest for each of its arches.
fn problems(loaded: &crate::model::manifest::Loaded) -> Result<Vec<crate::model::manifest::Problem>> {
    let mut problems = vec![];
    for arch in loaded.manifest.arch.keys() {
        match resolve::resolve(loaded, arch) {
            Ok(g) => {
                for w in g.warnings {
                    eprintln!("warning ({arch}): {w}");
                }
            }
            Err(e) => match e.downcast::<Problems>() {
                Ok(p) => {
                    for p in p.0 {
                        if !problems.contains(&p) {
                            problems.push(p);
                        }
                    }
                }
                Err(e) => return Err(e),
            },
        }
    }
    Ok(problems)
}

pub fn graph(project: &Project, arch: &str, dot: bool, runtime: bool, why: Option<&str>) -> Result<()> {
    let loaded = project.load()?;
    let arch = single_arch(project, &loaded, arch)?;
    let g = resolve::resolve(&loaded, &arch)?;
    if let Some(name) = why {
        let Some(target) = g.index(name) else {
            bail!("`{name}` is not in the {} graph of {arch}", if runtime { "run-time" } else { "build" });
        };
        let path = g.why(target, runtime).expect("every node is reachable from a root");
        let names: Vec<String> = path.iter().map(|&i| label(&g, i)).collect();
        println!("{}", names.join(if runtime { " -rdepends-> " } else { " -depends-> " }));
        return Ok(());
    }
    print!("{}", if dot { to_dot(&g, runtime) } else { to_tree(&g, runtime) });
    Ok(())
}

fn label(g: &Graph, i: usize) -> String {
    format!("{} {}", g.nodes[i].name, g.nodes[i].version)
}

fn edges(g: &Graph, i: usize, runtime: bool) -> &[usize] {
    if runtime {
        &g.nodes[i].rdepends
    } else {
        &g.nodes[i].depends
    }
}

fn roots(g: &Graph, runtime: bool) -> Vec<usize> {
    let members: Vec<usize> = if runtime { g.runtime.clone() } else { (0..g.nodes.len()).collect() };
    members.iter().copied().filter(|&n| !members.iter().any(|&o| edges(g, o, runtime).contains(&n))).collect()
}

/// An indented tree; a subtree already printed is shown once and then
/// referred to with `(see above)`.
fn to_tree(g: &Graph, runtime: bool) -> String {
    fn walk(g: &Graph, n: usize, depth: usize, runtime: bool, seen: &mut BTreeSet<usize>, out: &mut String) {
        let again = !seen.insert(n) && !edges(g, n, runtime).is_empty();
        let _ = writeln!(out, "{}{}{}", "  ".repeat(depth), label(g, n), if again { " (see above)" } else { "" });
        if !again {
            for &d in edges(g, n, runtime) {
                walk(g, d, depth + 1, runtime, seen, out);
            }
        }
    }
    let mut out = String::new();
    let mut seen = BTreeSet::new();
    for r in roots(g, runtime) {
        walk(g, r, 0, runtime, &mut seen, &mut out);
    }
    out
}

fn to_dot(g: &Graph, runtime: bool) -> String {
    let mut out = format!("digraph \"{} {}\" {{\n  rankdir=LR;\n", g.arch, if runtime { "run-time" } else { "build" });
    let members: Vec<usize> = if runtime { g.runtime.clone() } else { (0..g.nodes.len()).collect() };
    for &n in &members {
        let shape = if g.nodes[n].is_native() { "box" } else { "ellipse" };
        let _ = writeln!(out, "  \"{}\" [label=\"{}\", shape={shape}];", g.nodes[n].name, label(g, n));
        for &d in edges(g, n, runtime) {
            let _ = writeln!(out, "  \"{}\" -> \"{}\";", g.nodes[n].name, g.nodes[d].name);
        }
    }
    out.push_str("}\n");
    out
}

/// Every resolved value of a recipe, like `bitbake-getvar`.
pub fn show(project: &Project, recipe: &str, arch: &str, features: &[String]) -> Result<()> {
    let mut loaded = project.load()?;
    loaded.enable_features(features)?;
    let arch = single_arch(project, &loaded, arch)?;
    let g = resolve::resolve(&loaded, &arch)?;
    let Some(i) = g.index(recipe) else {
        let names: Vec<&str> = g.nodes.iter().map(|n| n.name.as_str()).collect();
        bail!("`{recipe}` is not built for {arch}; built: {}", names.join(", "));
    };
    let n = &g.nodes[i];
    let value = serde_json::to_value(n)?;
    println!("# {} {} for {arch}", n.name, n.version);
    for (k, v) in value.as_object().expect("a node is an object") {
        if k == "origin" {
            continue;
        }
        let shown = match k.as_str() {
            "depends" | "rdepends" => {
                let names: Vec<String> = v.as_array().unwrap().iter().map(|x| label(&g, x.as_u64().unwrap() as usize)).collect();
                serde_json::to_string(&names)?
            }
            _ => v.to_string(),
        };
        println!("{k} = {shown}");
        if let Some(o) = n.origin.get(k) {
            println!("    # from {o}");
        }
    }
    let r = loaded.manifest.recipes.iter().find(|r| *r.name.get_ref() == n.recipe && *r.version.get_ref() == n.version).expect("a node has its recipe");
    for (name, pc) in r.packageconfig_for(resolve::override_key(n.variant, &arch)) {
        let state = if n.features.contains(name) {
            "on".to_string()
        } else if !pc.offered_on(&arch) {
            format!("off: offered on {} only", pc.arches.join(", "))
        } else {
            format!("off; `--feature {name}` switches it on")
        };
        println!("# packageconfig.{name} ({state}): {}", pc.summary);
    }
    Ok(())
}

fn single_arch(project: &Project, loaded: &crate::model::manifest::Loaded, arch: &str) -> Result<String> {
    let arches = project.arches(loaded, arch)?;
    match arches.as_slice() {
        [one] => Ok(one.clone()),
        _ => bail!("this command takes one arch"),
    }
}

/// Download and verify every source, for offline builds.
pub fn fetch_all(project: &Project, arch: &str) -> Result<()> {
    let loaded = project.load()?;
    let fetcher = crate::sources::fetch::Fetcher::new(project.dl_dir.clone());
    let mut done = BTreeSet::new();
    for a in project.arches(&loaded, arch)? {
        for n in resolve::resolve(&loaded, &a)?.nodes {
            if done.insert((n.recipe.clone(), n.version.clone())) {
                let (path, _) = fetcher.fetch(&n.name, &n.sources, &mut std::io::sink())?;
                println!("{} {}: {}", n.recipe, n.version, path.display());
            }
        }
    }
    Ok(())
}

/// Remove work directories and stamps (of one recipe, or all).
pub fn clean(project: &Project, recipe: Option<&str>, arch: &str) -> Result<()> {
    let loaded = project.load()?;
    let _lock = crate::engine::project::BuildLock::take(&project.build_dir, false)?;
    let arches = project.arches(&loaded, arch)?;
    let Some(recipe) = recipe else {
        crate::base::sysroot::remove(&project.build_dir)?;
        println!("removed {}", project.build_dir.display());
        // The arches' trees are the build's output too (sysroots/<arch>).
        for a in &arches {
            let tree = project.tree(a);
            if tree.exists() {
                crate::base::sysroot::remove(&tree)?;
                println!("removed {}", tree.display());
            }
        }
        return Ok(());
    };
    let base = recipe.strip_suffix("-native").unwrap_or(recipe);
    let versions: Vec<String> = loaded.manifest.recipes.iter().filter(|r| r.name.as_ref() == base).map(|r| r.version.as_ref().clone()).collect();
    if versions.is_empty() {
        let mut known: Vec<&str> = loaded.manifest.recipes.iter().map(|r| r.name.as_ref().as_str()).collect();
        known.dedup();
        anyhow::bail!("no recipe `{recipe}` in {}; known: {}", loaded.path.display(), known.join(", "));
    }
    let mut scopes = vec!["native".to_string()];
    scopes.extend(arches);
    let mut removed = 0;
    for scope in scopes {
        for sub in ["work", "stamps"] {
            let dir = project.build_dir.join(&scope).join(sub);
            for e in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
                if is_recipe_dir(&e.file_name().to_string_lossy(), recipe, &versions) {
                    crate::base::sysroot::remove(&e.path())?;
                    println!("removed {}", e.path().display());
                    removed += 1;
                }
            }
        }
    }
    if removed == 0 {
        println!("nothing of {recipe} in {}", project.build_dir.display());
    }
    Ok(())
}

/// Is `dir` (a work or stamps directory, `<recipe>-<version>`) one of
/// `recipe`'s? Versions hold dashes (`libedit-3.1-20250104`), so the name
/// is matched whole against the manifest's versions, never split.
fn is_recipe_dir(dir: &str, recipe: &str, versions: &[String]) -> bool {
    versions.iter().any(|v| dir == format!("{recipe}-{v}"))
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::model::manifest::Loaded;

    #[test]
    fn clean_matches_a_recipes_directories_by_whole_name_and_version() {
        let v = |s: &[&str]| s.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(is_recipe_dir("libedit-3.1-20250104", "libedit", &v(&["3.1-20250104"])), "a version with a dash");
        assert!(is_recipe_dir("python3-3.14.7", "python3", &v(&["3.14.7", "3.13.15"])));
        assert!(!is_recipe_dir("python3-native-3.14.7", "python3", &v(&["3.14.7"])), "the native recipe is its own");
        assert!(is_recipe_dir("python3-native-3.14.7", "python3-native", &v(&["3.14.7"])));
        assert!(!is_recipe_dir("zlib-ng-2.2.1", "zlib", &v(&["1.3.1"])));
    }

    /// `tests/manifests/<case>.toml` must fail with exactly `<case>.expected`.
    #[test]
    fn manifest_errors() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/manifests");
        let mut cases = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().and_then(|e| e.to_str()) != Some("toml") {
                continue;
            }
            let name = path.file_name().unwrap().to_str().unwrap().to_string();
            let expected = std::fs::read_to_string(path.with_extension("expected")).unwrap().replace("FILE", &name);
            let text = std::fs::read_to_string(&path).unwrap();
            let got: Vec<String> = match Loaded::parse(Path::new(&name), text) {
                Err(e) => e.downcast::<Problems>().unwrap().0.iter().map(|p| p.to_string()).collect(),
                Ok(loaded) => problems(&loaded).unwrap().iter().map(|p| p.to_string()).collect(),
            };
            assert_eq!(got.join("\n"), expected.trim_end(), "{name}");
            cases += 1;
        }
        assert!(cases >= 10, "one bad manifest per error class, found {cases}");
    }

    #[test]
    fn the_shipped_manifest_is_clean() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../recipes-manifest.toml");
        let loaded = Loaded::read(&path).unwrap();
        assert_eq!(problems(&loaded).unwrap(), vec![]);
    }
}
