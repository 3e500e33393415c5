//! The options phase: the interpreter rebuilt with each variant of build
//! options (`lto+pgo`), everything else from the artifact cache.

use std::fmt::Write as _;
use std::path::PathBuf;

use anyhow::{bail, Result};
use serde_json::{json, Value};

use super::build::{timed_build, TimedBuild};
use super::plan::Options;
use crate::engine::project::Project;
use crate::model::manifest::Loaded;

/// Where the options phase builds a variant: one directory per variant and
/// toolchain (`--toolchain`), kept for the runtime and profile phases and
/// apart from the cold builds, which start over.
pub(super) fn variant_build_dir(o: &Options, variant: &str) -> PathBuf {
    let toolchain = o.toolchain.as_deref().map(|t| format!("@{}", t.replace(['/', ' '], "_"))).unwrap_or_default();
    std::env::temp_dir().join(format!("crosspython-bench-{}-options", o.arch)).join(format!("{}{toolchain}", variant.replace('+', "-"))).join("build")
}

/// A variant is `default` or features of the manifest joined by `+`
/// (`lto+pgo`): any combination the recipes offer, no table of our own.
pub(super) fn variant_features(loaded: &Loaded, name: &str) -> Result<Vec<String>> {
    if name == "default" {
        return Ok(vec![]);
    }
    let offered = loaded.features_offered();
    // A feature set (`release`) stands for its features.
    let sets = &loaded.manifest.distro.feature_sets;
    let features: Vec<String> = name.split('+').flat_map(|f| sets.get(f).cloned().unwrap_or_else(|| vec![f.to_string()])).collect();
    if let Some(f) = features.iter().find(|f| !offered.contains(*f)) {
        bail!(
            "--variants {name}: `{f}` is not a feature of the manifest; give `default`, a feature set ({}) or features joined by `+` from: {}",
            sets.keys().cloned().collect::<Vec<_>>().join(", "),
            offered.into_iter().collect::<Vec<_>>().join(", ")
        );
    }
    Ok(features)
}

/// Seconds of python3's configure, compile and install in a build's task times.
pub(super) fn python3_secs(task_secs: &std::collections::BTreeMap<String, f64>) -> [f64; 3] {
    ["do_configure", "do_compile", "do_install"]
        .map(|kind| task_secs.iter().filter(|(k, _)| k.starts_with("python3 ") && k.ends_with(kind)).map(|(_, s)| s).sum())
}

/// python3 rebuilt (`--rebuild python3`) with each variant's options in a
/// build dir of its own, the other recipes from the artifact cache. The
/// baseline is python3 in the build phase's OpenSSL-change rebuild, which
/// also builds it alone on the machine.
pub(super) fn options(project: &Project, loaded: &Loaded, o: &Options, build: &Value) -> Result<(Value, String)> {
    let mut v = json!({"note": "python3 rebuilt alone with each option set; every other recipe restored from the artifact cache"});
    let mut t = format!("\nbuild options of the interpreter ({}; python3 built alone, --jobs default)\n", o.arch);
    writeln!(t, "  {:34} {:>10} {:>10} {:>10} {:>10}", "", "configure", "compile", "install", "python3")?;
    let h = crate::engine::scheduler::human;
    let row = |t: &mut String, name: &str, secs: [f64; 3], base: Option<f64>| -> Result<f64> {
        let total: f64 = secs.iter().sum();
        let ratio = base.map(|b| format!("  ({:.2}x)", total / b)).unwrap_or_default();
        writeln!(t, "  {:34} {:>10} {:>10} {:>10} {:>10}{ratio}", name, h(secs[0]), h(secs[1]), h(secs[2]), h(total))?;
        Ok(total)
    };
    let mut base = None;
    // The build phase's results, from this run or an earlier one's file.
    if let Ok(change) = serde_json::from_value::<TimedBuild>(build["openssl_change"].clone()) {
        let secs = python3_secs(&change.task_secs);
        base = Some(row(&mut t, "default (OpenSSL-change run)", secs, None)?);
        v["default_from_build_phase"] = json!({"configure": secs[0], "compile": secs[1], "install": secs[2]});
    }
    for name in &o.variants {
        let features = variant_features(loaded, name)?.join(",");
        let dir = variant_build_dir(o, name);
        let mut extra = vec!["--rebuild", "python3"];
        if let Some(t) = &o.toolchain {
            extra.extend(["--toolchain", t.as_str()]);
        }
        if !features.is_empty() {
            extra.extend(["--feature", features.as_str()]);
        }
        let r = timed_build(project, &dir, &project.sstate_dir, None, None, &o.arch, &extra)?;
        let secs = python3_secs(&r.task_secs);
        let label = o.toolchain.as_deref().map_or(name.clone(), |t| format!("{name}@{t}"));
        let total = row(&mut t, &label, secs, base)?;
        base.get_or_insert(total);
        v[label.as_str()] = json!({"features": features, "build_dir": dir, "python3_secs": {"configure": secs[0], "compile": secs[1], "install": secs[2], "total": total}, "wall_secs": r.wall_secs, "cpu_secs": r.cpu_secs});
    }
    Ok((v, t))
}
