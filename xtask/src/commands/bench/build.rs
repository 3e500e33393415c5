//! The build phase: cold builds in fresh build directories with an empty
//! artifact cache and zig compile cache, the scheduler's critical path, a
//! no-op rebuild, one OpenSSL configure change, a fresh clone.

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};

use super::plan::Options;
use crate::engine::project::Project;

/// One timed `cargo xtask build`, as `deploy/bench/<arch>.json` keeps it.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub(super) struct TimedBuild {
    pub(super) wall_secs: f64,
    /// CPU time of everything it ran (its waited-for descendants).
    pub(super) cpu_secs: f64,
    pub(super) critical_path_secs: f64,
    pub(super) critical_path: Vec<String>,
    pub(super) tasks_run: usize,
    /// Task label -> seconds.
    pub(super) task_secs: std::collections::BTreeMap<String, f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) jobs: Option<usize>,
    /// Wall time over the best possible (critical path, or CPU time over jobs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) efficiency: Option<f64>,
}

/// zig's compile cache, set aside while one timed build runs. zig caches
/// every C compile by its arguments and the headers it reads, so a build
/// whose compile lines an earlier one ran (the same build directory path)
/// compiled almost nothing: the OpenSSL-change rebuild, the default
/// python3 that PGO's build time is compared with, found its objects from
/// the cold build just before. Each timed build starts with an empty
/// cache, as on a fresh machine; the user's is put back when it ends, or
/// by the next bench if this one was killed.
pub(super) struct ColdCompileCache {
    pub(super) cache: PathBuf,
    pub(super) aside: PathBuf,
}

impl ColdCompileCache {
    pub(super) fn new(cache_dir: &Path) -> Result<ColdCompileCache> {
        let cache = crate::machine::toolchain::toolchains_dir(cache_dir).join("zig-cache");
        let aside = cache.with_file_name("zig-cache.set-aside-by-bench");
        let c = ColdCompileCache { cache, aside };
        c.put_back()?;
        if c.cache.exists() {
            fs::rename(&c.cache, &c.aside).with_context(|| format!("cannot set {} aside", c.cache.display()))?;
        }
        Ok(c)
    }

    pub(super) fn put_back(&self) -> Result<()> {
        if self.aside.exists() {
            crate::base::sysroot::remove(&self.cache)?;
            fs::rename(&self.aside, &self.cache).with_context(|| format!("cannot put {} back", self.cache.display()))?;
        }
        Ok(())
    }
}

impl Drop for ColdCompileCache {
    fn drop(&mut self) {
        if let Err(e) = self.put_back() {
            eprintln!("warning: {e:#}");
        }
    }
}

/// One `cargo xtask build` as a child, with zig's compile cache empty
/// ([`ColdCompileCache`]): wall time, CPU time of everything it ran (its
/// waited-for descendants), and its buildstats.
pub(super) fn timed_build(
    project: &Project,
    build_dir: &Path,
    sstate: &Path,
    manifest: Option<&Path>,
    jobs: Option<usize>,
    arch: &str,
    extra: &[&str],
) -> Result<TimedBuild> {
    let _cold = ColdCompileCache::new(&project.cache_dir)?;
    let exe = std::env::current_exe()?;
    let mut cmd = Command::new(&exe);
    cmd.arg("--build-dir").arg(build_dir);
    if let Some(m) = manifest {
        cmd.arg("--manifest").arg(m);
    }
    cmd.args(["build", "--arch", arch]);
    if let Some(j) = jobs {
        cmd.args(["--jobs", &j.to_string()]);
    }
    cmd.args(extra);
    let before = children_cpu();
    let started = Instant::now();
    let status = cmd.env("CROSSPYTHON_SSTATE_DIR", sstate).stdin(Stdio::null()).status().with_context(|| format!("cannot run {}", exe.display()))?;
    let wall = started.elapsed().as_secs_f64();
    if !status.success() {
        bail!("the benchmark build in {} failed ({status})", build_dir.display());
    }
    let cpu = children_cpu() - before;
    let path = build_dir.join("buildstats/last-build.json");
    let stats: crate::engine::scheduler::Stats =
        serde_json::from_slice(&fs::read(&path).with_context(|| format!("the benchmark build wrote no {}", path.display()))?)
            .with_context(|| format!("{} is not a build's statistics", path.display()))?;
    Ok(TimedBuild {
        wall_secs: wall,
        cpu_secs: cpu,
        critical_path_secs: stats.critical_path_secs,
        critical_path: stats.critical_path,
        tasks_run: stats.tasks_run,
        task_secs: stats.task_secs,
        jobs,
        efficiency: None,
    })
}

/// User + system seconds of every waited-for descendant so far.
pub(super) fn children_cpu() -> f64 {
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: getrusage writes into the struct it is given.
    unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut u) };
    let t = |tv: libc::timeval| tv.tv_sec as f64 + tv.tv_usec as f64 / 1e6;
    t(u.ru_utime) + t(u.ru_stime)
}

pub(super) fn build(project: &Project, o: &Options) -> Result<(Value, String)> {
    let root = std::env::temp_dir().join(format!("crosspython-bench-{}", o.arch));
    crate::base::sysroot::remove(&root)?;
    fs::create_dir_all(&root)?;
    let mut v = json!({"note": "fresh build dirs and an empty artifact cache; downloads and built Python wheels come from the caches"});
    let mut t = format!("build ({}; sources and built wheels cached)\n", o.arch);
    let mut warm_sstate = None;
    for &jobs in &o.cold_jobs {
        let dir = root.join(format!("cold-j{jobs}/build"));
        let sstate = root.join(format!("sstate-j{jobs}"));
        let mut r = timed_build(project, &dir, &sstate, None, Some(jobs), &o.arch, &[])?;
        let (wall, cpu, cp) = (r.wall_secs, r.cpu_secs, r.critical_path_secs);
        let best = cp.max(cpu / jobs as f64);
        r.efficiency = Some(wall / best);
        writeln!(
            t,
            "  cold build --jobs {jobs}: {}  (CPU {}, critical path {}, wall / best possible {:.2})",
            crate::engine::scheduler::human(wall),
            crate::engine::scheduler::human(cpu),
            crate::engine::scheduler::human(cp),
            wall / best
        )?;
        v[format!("cold_jobs_{jobs}")] = serde_json::to_value(&r)?;
        warm_sstate = Some((dir, sstate));
    }
    if let Some((dir, sstate)) = warm_sstate {
        let noop = timed_build(project, &dir, &sstate, None, None, &o.arch, &[])?;
        writeln!(t, "  no-op rebuild: {}", crate::engine::scheduler::human(noop.wall_secs))?;
        v["noop"] = serde_json::to_value(&noop)?;
        let changed = manifest_with_openssl_change(project)?;
        let r = timed_build(project, &dir, &sstate, Some(&changed), None, &o.arch, &[]);
        let _ = fs::remove_file(&changed);
        let r = r?;
        writeln!(t, "  rebuild after one OpenSSL configure change: {} ({} tasks)", crate::engine::scheduler::human(r.wall_secs), r.tasks_run)?;
        v["openssl_change"] = serde_json::to_value(&r)?;
        let fresh = timed_build(project, &root.join("fresh-clone/build"), &sstate, None, None, &o.arch, &[])?;
        writeln!(t, "  fresh clone, warm artifact cache: {}", crate::engine::scheduler::human(fresh.wall_secs))?;
        v["fresh_clone_warm_sstate"] = serde_json::to_value(&fresh)?;
    }
    Ok((v, t))
}

/// The manifest with one more OpenSSL configure option: what a user
/// tuning OpenSSL would do.
pub(super) fn manifest_with_openssl_change(project: &Project) -> Result<PathBuf> {
    let doc = openssl_changed(&fs::read_to_string(&project.manifest_path)?)
        .with_context(|| format!("{}: the OpenSSL change of the build phase", project.manifest_path.display()))?;
    // Next to the real manifest: paths in it (requirements files) stay valid.
    let path = project.manifest_path.with_file_name(".bench-openssl-change.toml");
    crate::engine::tasks::atomic_write(&path, doc.as_bytes())?;
    Ok(path)
}

/// The manifest text, its includes expanded, with one more Configure
/// option (IDEA off: nothing in Python uses it) at the end of every openssl
/// recipe's `configure` list, which its `do_configure` hands to OpenSSL's
/// Configure as `$EXTRA_OECONF`.
pub(super) fn openssl_changed(text: &str) -> Result<String> {
    let expanded = crate::model::expand_includes(text)?.map(|(t, _)| t);
    let mut doc: toml::Table = toml::from_str(expanded.as_deref().unwrap_or(text))?;
    let recipes = doc.get_mut("recipe").and_then(|r| r.as_array_mut()).context("no [[recipe]]")?;
    let mut changed = 0;
    for r in recipes.iter_mut().filter(|r| r.get("name").and_then(|n| n.as_str()) == Some("openssl")) {
        let configure = r.as_table_mut().unwrap().entry("configure").or_insert_with(|| toml::Value::Array(vec![]));
        configure.as_array_mut().context("openssl's configure is not a list")?.push("no-idea".into());
        changed += 1;
    }
    if changed == 0 {
        bail!("the manifest has no openssl recipe to change");
    }
    Ok(toml::to_string(&doc)?)
}
