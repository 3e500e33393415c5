//! `cargo xtask bench`: what the build costs, how big the result is and
//! how fast the target interpreter runs, each next to a yardstick and
//! measured in one run (ratios and medians: these machines are noisy).
//! Results go to `deploy/bench/<arch>.json`; nothing here asserts a number.
//!
//! - resolve: reading, validating and resolving the manifest.
//! - build: cold builds (`--jobs 1` and `--jobs 2`) in fresh build dirs
//!   with an empty artifact cache (and, for every timed build, an empty zig
//!   compile cache), the critical path and how close the
//!   scheduler came to the best possible, a no-op rebuild, the rebuild
//!   after one OpenSSL configure change, a fresh clone with a warm cache.
//! - options: the interpreter rebuilt with each variant of build options
//!   (`lto+pgo`, features joined by `+`), everything else from the artifact cache:
//!   what each option costs in build time; `runtime` runs the results.
//! - footprint: each package profile, unpacked and compressed, next to
//!   Debian's own Python packages of the same arch and version.
//! - runtime: our interpreter and Debian's under the same qemu-user,
//!   alternating run by run: startup, imports, CPU-bound workloads.
//! - profile: the same cases counted (guest instructions and blocks, per
//!   function) instead of timed: why a ratio is what it is.
//!
//! Each phase is the module of its name (resolve is here); `debian` is the
//! yardstick the last three share, `plan` what a run is asked to do.

mod build;
mod debian;
mod footprint;
mod options;
mod plan;
mod profile;
mod runtime;
#[cfg(test)]
mod tests;

use std::fs;
use std::time::Instant;

use anyhow::{Context, Result};
use serde_json::{json, Value};

use self::debian::Debian;
use self::plan::median;
pub use self::plan::{Options, Phase};
use crate::engine::project::Project;
use crate::model::manifest::Loaded;

pub fn bench(project: &Project, loaded: &Loaded, o: &Options) -> Result<()> {
    for v in &o.variants {
        options::variant_features(loaded, v)?;
    }
    let want = |p: Phase| o.only.is_none_or(|only| only == p);
    // Footprint, runtime and profile measure the tree of `cargo xtask
    // build`: it is found before the build and options phases spend an
    // hour, not after.
    let measured = if want(Phase::Footprint) || want(Phase::Runtime) || want(Phase::Profile) {
        Some(crate::engine::image::ImageNote::read(&project.tree(&o.arch)).with_context(|| {
            format!(
                "bench --arch {a}: the footprint, runtime and profile phases measure the tree of `cargo xtask build --arch {a}` ({}); build it first, or bench with `--only build` or `--only options`",
                project.tree(&o.arch).display(),
                a = o.arch
            )
        })?)
    } else {
        None
    };
    // Its build directories are the same for every bench of the arch, and
    // the build phase starts by removing them: a second bench would pull
    // them from under the first (and time two at once).
    let _lock = crate::engine::project::BuildLock::take(&std::env::temp_dir().join(format!("crosspython-bench-{}.lock", o.arch)), false)?;
    let out_dir = project.build_dir.parent().unwrap_or(&project.root).join("deploy/bench");
    fs::create_dir_all(&out_dir)?;
    let out_path = out_dir.join(format!("{}.json", o.arch));
    // Phases not run this time keep their last results.
    let mut results: Value = fs::read(&out_path).ok().and_then(|b| serde_json::from_slice(&b).ok()).unwrap_or_else(|| json!({}));
    results["arch"] = json!(o.arch);
    // Debian's python fills a root shared by every bench of the arch:
    // under the lock.
    let debian = measured.map(|note| Debian::prepare(project, loaded, o, &note)).transpose()?;
    let mut table = String::new();
    // Each phase's results are written as soon as it ends: a later phase
    // that fails keeps what an hour of builds measured.
    let mut record = |results: &mut Value, name: &str, (v, t): (Value, String)| -> Result<()> {
        results[name] = v;
        table.push_str(&t);
        crate::engine::tasks::atomic_write(&out_path, &serde_json::to_vec_pretty(results)?)?;
        crate::engine::tasks::atomic_write(&out_path.with_extension("txt"), table.as_bytes())
    };
    if want(Phase::Resolve) {
        record(&mut results, "resolve", resolve(project, loaded)?)?;
    }
    if want(Phase::Build) {
        record(&mut results, "build", build::build(project, o)?)?;
    }
    if want(Phase::Options) {
        let measured = options::options(project, loaded, o, &results["build"])?;
        record(&mut results, "options", measured)?;
    }
    if let Some(debian) = &debian {
        if want(Phase::Footprint) {
            record(&mut results, "footprint", footprint::footprint(project, loaded, o, debian)?)?;
        }
        if want(Phase::Runtime) {
            record(&mut results, "runtime", runtime::runtime(project, loaded, o, debian)?)?;
        }
        if want(Phase::Profile) {
            record(&mut results, "profile", profile::profile(project, loaded, o, debian)?)?;
        }
    }
    println!("\n{table}\n(results: {}, {})", out_path.display(), out_path.with_extension("txt").display());
    Ok(())
}

/// Reading, validating and resolving the manifest for every arch: what
/// every command pays before any task runs.
fn resolve(project: &Project, loaded: &Loaded) -> Result<(Value, String)> {
    let arches: Vec<String> = loaded.manifest.arch.keys().cloned().collect();
    let mut times = vec![];
    for _ in 0..21 {
        let started = Instant::now();
        let l = Loaded::read(&project.manifest_path)?;
        for a in &arches {
            crate::model::resolve::resolve(&l, a)?;
        }
        times.push(started.elapsed().as_secs_f64());
    }
    let m = median(&mut times);
    let t = format!("resolve: read, validate and resolve the manifest for {} arches: median {:.1} ms of 21\n", arches.len(), m * 1000.0);
    Ok((json!({"arches": arches.len(), "median_secs": m, "runs": times}), t))
}
