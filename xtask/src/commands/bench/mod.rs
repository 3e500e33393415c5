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
//!   function) instead of timed: why a ratio is what it is (profile.rs).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};

mod profile;

use crate::engine::project::Project;
use crate::model::manifest::Loaded;

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Phase {
    Resolve,
    Build,
    Options,
    Footprint,
    Runtime,
    Profile,
}

pub struct Options {
    pub arch: String,
    pub only: Option<Phase>,
    pub runs: usize,
    /// Cold builds with these job counts.
    pub cold_jobs: Vec<usize>,
    /// The Debian suite whose Python is the yardstick.
    pub suite: String,
    /// Build-option variants of the interpreter to build and run: `default`
    /// or manifest features joined by `+`.
    pub variants: Vec<String>,
    /// The toolchain of the variants' builds (`build --toolchain`); zig when none.
    pub toolchain: Option<String>,
}

pub fn bench(project: &Project, loaded: &Loaded, o: &Options) -> Result<()> {
    for v in &o.variants {
        variant_features(loaded, v)?;
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
        record(&mut results, "build", build(project, o)?)?;
    }
    if want(Phase::Options) {
        let measured = options(project, loaded, o, &results["build"])?;
        record(&mut results, "options", measured)?;
    }
    if let Some(debian) = &debian {
        if want(Phase::Footprint) {
            record(&mut results, "footprint", footprint(project, loaded, o, debian)?)?;
        }
        if want(Phase::Runtime) {
            record(&mut results, "runtime", runtime(project, loaded, o, debian)?)?;
        }
        if want(Phase::Profile) {
            record(&mut results, "profile", profile::profile(project, loaded, o, debian)?)?;
        }
    }
    println!("\n{table}\n(results: {}, {})", out_path.display(), out_path.with_extension("txt").display());
    Ok(())
}

// ---------------------------------------------------------------- resolve

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

// ------------------------------------------------------------------ build

/// One timed `cargo xtask build`, as `deploy/bench/<arch>.json` keeps it.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
struct TimedBuild {
    wall_secs: f64,
    /// CPU time of everything it ran (its waited-for descendants).
    cpu_secs: f64,
    critical_path_secs: f64,
    critical_path: Vec<String>,
    tasks_run: usize,
    /// Task label -> seconds.
    task_secs: std::collections::BTreeMap<String, f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    jobs: Option<usize>,
    /// Wall time over the best possible (critical path, or CPU time over jobs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    efficiency: Option<f64>,
}

/// zig's compile cache, set aside while one timed build runs. zig caches
/// every C compile by its arguments and the headers it reads, so a build
/// whose compile lines an earlier one ran (the same build directory path)
/// compiled almost nothing: the OpenSSL-change rebuild, the default
/// python3 that PGO's build time is compared with, found its objects from
/// the cold build just before. Each timed build starts with an empty
/// cache, as on a fresh machine; the user's is put back when it ends, or
/// by the next bench if this one was killed.
struct ColdCompileCache {
    cache: PathBuf,
    aside: PathBuf,
}

impl ColdCompileCache {
    fn new(cache_dir: &Path) -> Result<ColdCompileCache> {
        let cache = cache_dir.join("toolchains").join("zig-cache");
        let aside = cache.with_file_name("zig-cache.set-aside-by-bench");
        let c = ColdCompileCache { cache, aside };
        c.put_back()?;
        if c.cache.exists() {
            fs::rename(&c.cache, &c.aside).with_context(|| format!("cannot set {} aside", c.cache.display()))?;
        }
        Ok(c)
    }

    fn put_back(&self) -> Result<()> {
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
fn timed_build(
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
fn children_cpu() -> f64 {
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: getrusage writes into the struct it is given.
    unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut u) };
    let t = |tv: libc::timeval| tv.tv_sec as f64 + tv.tv_usec as f64 / 1e6;
    t(u.ru_utime) + t(u.ru_stime)
}

fn build(project: &Project, o: &Options) -> Result<(Value, String)> {
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
fn manifest_with_openssl_change(project: &Project) -> Result<PathBuf> {
    let doc = openssl_changed(&fs::read_to_string(&project.manifest_path)?)
        .with_context(|| format!("{}: the OpenSSL change of the build phase", project.manifest_path.display()))?;
    // Next to the real manifest: paths in it (requirements files) stay valid.
    let path = project.manifest_path.with_file_name(".bench-openssl-change.toml");
    crate::engine::tasks::atomic_write(&path, doc.as_bytes())?;
    Ok(path)
}

/// The manifest text with one more Configure option for every openssl
/// recipe and its arch overrides (IDEA off: nothing in Python uses it), at
/// the end of the Configure command of a `do_configure` script or in the
/// `configure` list.
fn openssl_changed(text: &str) -> Result<String> {
    let mut doc: toml::Table = toml::from_str(text)?;
    let recipes = doc.get_mut("recipe").and_then(|r| r.as_array_mut()).context("no [[recipe]]")?;
    let mut changed = 0;
    for r in recipes.iter_mut().filter(|r| r.get("name").and_then(|n| n.as_str()) == Some("openssl")) {
        let r = r.as_table_mut().unwrap();
        let overrides = r
            .get_mut("arch")
            .and_then(|a| a.as_table_mut())
            .map(|a| a.iter_mut().filter_map(|(_, o)| o.as_table_mut()).collect::<Vec<_>>())
            .unwrap_or_default();
        for o in overrides {
            if let Some(script) = o.get("do_configure").and_then(|d| d.as_str()) {
                let script = with_configure_option(script, "no-idea")?;
                o.insert("do_configure".into(), script.into());
            }
        }
        if let Some(script) = r.get("do_configure").and_then(|d| d.as_str()) {
            let script = with_configure_option(script, "no-idea")?;
            r.insert("do_configure".into(), script.into());
        } else {
            let configure = r.entry("configure").or_insert_with(|| toml::Value::Array(vec![]));
            configure.as_array_mut().context("openssl's configure is not a list")?.push("no-idea".into());
        }
        changed += 1;
    }
    if changed == 0 {
        bail!("the manifest has no openssl recipe to change");
    }
    Ok(toml::to_string(&doc)?)
}

/// `script` with `option` after the last argument of its `Configure`
/// command, which may go on over lines ending in `\`; what follows the
/// command (a `make` of a generated header) is left as it is.
fn with_configure_option(script: &str, option: &str) -> Result<String> {
    let mut lines: Vec<String> = script.lines().map(str::to_string).collect();
    let start = lines.iter().position(|l| l.contains("/Configure")).context("a do_configure without a Configure command")?;
    let end = (start..lines.len()).find(|&i| !lines[i].trim_end().ends_with('\\')).context("a Configure command continued past the script's end")?;
    lines[end] = format!("{} {option}", lines[end].trim_end());
    Ok(lines.join("\n") + "\n")
}

// ---------------------------------------------------------------- options

/// Where the options phase builds a variant (its tree is what the runtime
/// phase runs); kept apart from the cold builds, which start over.
/// Where a variant is built: one directory per variant and toolchain
/// (`--toolchain`), kept for the runtime and profile phases.
fn variant_build_dir(o: &Options, variant: &str) -> PathBuf {
    let toolchain = o.toolchain.as_deref().map(|t| format!("@{}", t.replace(['/', ' '], "_"))).unwrap_or_default();
    std::env::temp_dir().join(format!("crosspython-bench-{}-options", o.arch)).join(format!("{}{toolchain}", variant.replace('+', "-"))).join("build")
}

/// A variant is `default` or features of the manifest joined by `+`
/// (`lto+pgo`): any combination the recipes offer, no table of our own.
fn variant_features(loaded: &Loaded, name: &str) -> Result<Vec<String>> {
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
fn python3_secs(task_secs: &std::collections::BTreeMap<String, f64>) -> [f64; 3] {
    ["do_configure", "do_compile", "do_install"]
        .map(|kind| task_secs.iter().filter(|(k, _)| k.starts_with("python3 ") && k.ends_with(kind)).map(|(_, s)| s).sum())
}

/// python3 rebuilt (`--rebuild python3`) with each variant's options in a
/// build dir of its own, the other recipes from the artifact cache. The
/// baseline is python3 in the build phase's OpenSSL-change rebuild, which
/// also builds it alone on the machine.
fn options(project: &Project, loaded: &Loaded, o: &Options, build: &Value) -> Result<(Value, String)> {
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

// -------------------------------------------------------------- footprint

/// Debian's Python of the suite for the arch: the four packages that make
/// the interpreter and its standard library, and the root filesystem of
/// their run-time closure to run it under qemu, byte-compiled as an
/// installed system is.
struct Debian {
    suite: String,
    /// Whether `python` is the tree's minor version (else the newest the
    /// arch has, and its interpreter's name says which).
    same_minor: bool,
    /// `python3.14`: the same minor version as the tree's.
    python: String,
    version: String,
    packages: Vec<(String, u64, u64)>,
    root: PathBuf,
}

/// Suites tried, oldest first, for a Debian python of the tree's minor
/// version when `--suite auto`: a stable release's build where there is
/// one (3.13 is trixie's), else the development suites (3.14 in 2026).
const AUTO_SUITES: [&str; 3] = ["trixie", "forky", "sid"];
/// Tried last: Debian 12 is the last release with mipsel, whose python3.11
/// is then the yardstick of another minor version.
const OLDER_SUITES: [&str; 1] = ["bookworm"];

/// `python3.11` for the highest `python3.X-minimal` of a suite.
fn newest_python(index: &BTreeMap<String, crate::sources::debian::Package>) -> Option<String> {
    index.keys().filter_map(|k| k.strip_prefix("python3.")?.strip_suffix("-minimal")?.parse::<u32>().ok()).max().map(|minor| format!("python3.{minor}"))
}

impl Debian {
    /// `note` is the build note of the tree measured against it.
    fn prepare(project: &Project, loaded: &Loaded, o: &Options, note: &crate::engine::image::ImageNote) -> Result<Debian> {
        let arch = &loaded.manifest.arch[&o.arch];
        let fetcher = crate::sources::fetch::Fetcher::new(project.dl_dir.clone());
        let build_python = note.build_python.clone().context("the tree's build note names no build python")?;
        let python = build_python.file_name().map(|n| n.to_string_lossy().into_owned()).context("the build python has no file name")?;
        let suites: Vec<&str> = if o.suite == "auto" { AUTO_SUITES.iter().chain(&OLDER_SUITES).copied().collect() } else { vec![o.suite.as_str()] };
        let mut indexes = vec![];
        let mut found = None;
        for suite in &suites {
            // A suite without the arch (mipsel after Debian 12) has no index.
            let index = match crate::sources::debian::index(&fetcher, suite, &arch.debian_arch) {
                Ok(index) => index,
                Err(e) if suites.len() > 1 => {
                    eprintln!("note: Debian {suite} has no {} packages to measure against ({e:#})", arch.debian_arch);
                    continue;
                }
                Err(e) => return Err(e),
            };
            if index.contains_key(&format!("{python}-minimal")) {
                found = Some((suite.to_string(), python.clone(), index));
                break;
            }
            indexes.push((suite.to_string(), index));
        }
        // No suite has the tree's minor version for this arch: the newest
        // python3.X of the first suite that has one, and the tables say so.
        let (suite, python, index) = match found {
            Some(f) => f,
            None => indexes
                .into_iter()
                .find_map(|(suite, index)| newest_python(&index).map(|p| (suite, p, index)))
                .with_context(|| format!("no Debian suite of {} has a python3.X for {}, the yardstick", suites.join(", "), arch.debian_arch))?,
        };
        let same_minor = Some(&python) == build_python.file_name().map(|n| n.to_string_lossy().into_owned()).as_ref();
        let wanted_pkgs = [format!("{python}-minimal"), format!("lib{python}-minimal"), format!("lib{python}-stdlib"), format!("lib{python}")];
        let debian_python: Vec<&str> = wanted_pkgs.iter().map(String::as_str).collect();
        let mut packages = vec![];
        let root = project.dl_dir.parent().unwrap_or(&project.dl_dir).join(format!("bench/debian-{suite}-{}", arch.debian_arch));
        let stamp = root.join(".complete");
        let closure = crate::sources::debian::closure(&index, &debian_python)?;
        let wanted: String = closure.iter().map(|p| format!("{} {}\n", p.name, p.version)).collect();
        let fresh = fs::read_to_string(&stamp).ok().as_deref() != Some(wanted.as_str());
        if fresh {
            crate::base::sysroot::remove(&root)?;
            fs::create_dir_all(&root)?;
        }
        for p in &closure {
            let deb = crate::sources::debian::fetch(&fetcher, p)?;
            // The four measured on their own: the root holds the whole closure.
            if debian_python.contains(&p.name.as_str()) {
                let scratch = tempfile::tempdir()?;
                packages.push((p.name.clone(), crate::sources::debian::extract(&deb, scratch.path())?, p.size));
            }
            if fresh {
                crate::sources::debian::extract(&deb, &root)?;
            }
        }
        if fresh {
            // Debian's /usr is merged: the dynamic loader's /lib path and
            // friends are symlinks that no package ships (base-files makes them).
            for d in ["bin", "sbin", "lib", "lib64"] {
                if !root.join(d).exists() && root.join("usr").join(d).is_dir() {
                    std::os::unix::fs::symlink(format!("usr/{d}"), root.join(d))?;
                }
            }
            // What Debian's postinst (py3compile) does on a real system: the
            // packages ship no byte code. Our build python when it is the
            // same version (fast), else Debian's own under qemu-user.
            let mut compile = if same_minor {
                Command::new(&build_python)
            } else {
                crate::machine::runner::TargetRunner::new(arch, &root).command(&root.join("usr/bin").join(&python), false)
            };
            let out = crate::base::process::output(
                compile.args(["-I", "-m", "compileall", "-q", "-j0", "-s"]).arg(&root).args(["-p", "/"]).arg(root.join("usr/lib").join(&python)),
            )?;
            if out.stdout.is_empty() && !out.status.success() {
                bail!("byte-compiling Debian's stdlib failed: {}", String::from_utf8_lossy(&out.stderr));
            }
            fs::write(&stamp, wanted)?;
        }
        let version = index.get(debian_python[0]).map(|p| p.version.clone()).unwrap_or_default();
        Ok(Debian { suite, python, version, packages, root, same_minor })
    }
}

fn footprint(project: &Project, loaded: &Loaded, o: &Options, debian: &Debian) -> Result<(Value, String)> {
    let mut ours = vec![];
    for (profile, p) in &loaded.manifest.package.profile {
        // An application-sized profile is measured with its sample application.
        let app = p.bench_app.as_ref().map(|f| crate::deploy::package::App { file: loaded.path.parent().unwrap_or(Path::new(".")).join(f), args: vec![] });
        let opts = crate::deploy::package::Options { profile: Some(profile.clone()), prefix: None, rootfs: None, force: false, app };
        ours.push(crate::deploy::package::package(project, loaded, &o.arch, &opts)?);
    }
    let mib = |b: u64| b as f64 / 1048576.0;
    let mut t = format!("\nfootprint ({}; MiB)\n  {:44} {:>9} {:>9} {:>9}\n", o.arch, "", "unpacked", ".tar.gz", ".tar.zst");
    for p in &ours {
        let size = |ext: &str| p.archives.iter().find(|(n, _)| n.ends_with(ext)).map_or(0, |a| a.1);
        writeln!(
            t,
            "  {:44} {:>9.1} {:>9.1} {:>9.1}",
            format!("crosspython {} profile", p.profile),
            mib(p.unpacked_bytes),
            mib(size(".tar.gz")),
            mib(size(".tar.zst"))
        )?;
    }
    // Like for like: what Debian's four packages hold is the interpreter,
    // the stdlib and its C modules; ours by component, per profile.
    let debian_unpacked: u64 = debian.packages.iter().map(|(_, u, _)| u).sum();
    // The same modules: stdlib modules Debian ships in other packages than
    // the four (ensurepip is python3.X-venv's) are left out of ours.
    let debian_stdlib = debian.root.join("usr/lib").join(&debian.python);
    let debian_has = |module: &str| module.ends_with(".zip") || debian_stdlib.join(module).is_dir() || debian_stdlib.join(format!("{module}.py")).is_file();
    for p in &ours {
        let part = |f: &dyn Fn(&str) -> bool| p.components.iter().filter(|(k, _)| f(k)).map(|(_, v)| *v).sum::<u64>();
        let python = part(&|k| k.starts_with("interpreter") || k.starts_with("stdlib"));
        let libs = part(&|k| k.starts_with("C library"));
        let toolchain = part(&|k| k.starts_with("toolchain"));
        let site = part(&|k| k.starts_with("site-packages"));
        writeln!(
            t,
            "  {:44} {:>9.1}   ({:.2} of Debian's four; C libraries {:.1}, toolchain /lib {:.1}, site-packages {:.1})",
            format!("  {}: interpreter + stdlib + C modules", p.profile),
            mib(python),
            python as f64 / debian_unpacked.max(1) as f64,
            mib(libs),
            mib(toolchain),
            mib(site)
        )?;
        let elsewhere: Vec<(&String, &u64)> = p.stdlib_modules.iter().filter(|(m, _)| !debian_has(m)).collect();
        if !elsewhere.is_empty() {
            let same = python - elsewhere.iter().map(|(_, b)| **b).sum::<u64>();
            let names: Vec<&str> = elsewhere.iter().map(|(m, _)| m.as_str()).collect();
            writeln!(
                t,
                "  {:44} {:>9.1}   ({:.2} of Debian's four; without {}, not in them)",
                "    the same modules as Debian's four",
                mib(same),
                same as f64 / debian_unpacked.max(1) as f64,
                names.join(", ")
            )?;
        }
    }
    let (mut du, mut dc) = (0, 0);
    for (name, unpacked, deb) in &debian.packages {
        writeln!(t, "  {:44} {:>9.1} {:>9.1} (.deb)", format!("Debian {} {}", debian.suite, name), mib(*unpacked), mib(*deb))?;
        du += unpacked;
        dc += deb;
    }
    writeln!(t, "  {:44} {:>9.1} {:>9.1} (.deb)", format!("Debian {} {} {} (the four)", debian.suite, debian.python, debian.version), mib(du), mib(dc))?;
    writeln!(t, "  (ours include pip and the manifest's packages, the C libraries and the toolchain's /lib; Debian's four need libc6, libssl, ... besides)")?;
    let v = json!({
        "ours": ours,
        "debian": {"suite": debian.suite, "version": debian.version, "packages": debian.packages.iter().map(|(n, u, c)| json!({"name": n, "unpacked_bytes": u, "deb_bytes": c})).collect::<Vec<_>>(), "unpacked_bytes": du, "deb_bytes": dc},
    });
    Ok((v, t))
}

// ---------------------------------------------------------------- runtime

struct Interp {
    name: String,
    root: PathBuf,
    python: PathBuf,
    /// The same program with its symbols (ours: the tree's, which the
    /// package strips) to name the profile's functions.
    symbols: PathBuf,
    /// Where the files of `root` that are ours have their symbols (the
    /// tree, as `root` has them at the same paths), for shared objects.
    unstripped: Option<PathBuf>,
}

impl Interp {
    /// The interpreter with `args` under the arch's qemu-user, as every
    /// runtime case and profile count runs it.
    fn command(&self, arch: &crate::model::manifest::Arch, args: &[String]) -> Command {
        let mut cmd = crate::machine::runner::TargetRunner::new(arch, &self.root).command(&self.python, false);
        cmd.args(args);
        cmd.env("LC_ALL", "C.UTF-8").env("PYTHONDONTWRITEBYTECODE", "1").env("HOME", "/tmp").stdin(Stdio::null());
        cmd
    }
}

/// The interpreters of a run, each in a board root of its own; the roots
/// live as long as this.
struct Lineup {
    _stage: tempfile::TempDir,
    interps: Vec<Interp>,
    /// What of ours runs, for the tables: `the runtime package`.
    ours: String,
}

/// Our interpreters: the build directory's own tree (unless `default` is
/// a variant), each variant the options phase built; then Debian's.
///
/// Each runs as a user's board has it: Debian's root with our package (the
/// manifest's default profile, staged by `package`) installed over it at the
/// prefix as `package --rootfs` installs it (Debian's own: the root alone).
/// The package, not the tree: its byte code is unchecked-hash and, where the
/// profile says, sourceless, where the tree's is checked-hash (the build's
/// `SOURCE_DATE_EPOCH` makes `compileall` hash every source again at each
/// import: 1.7% of `-I -S -c pass` and 3.7% of the imports case on aarch64).
/// All roots side by side in one staging directory, so that every
/// interpreter's path is its board path under the same parent: CPython's
/// start costs about 30,000 guest instructions per character of the
/// interpreter's path (getpath). The same C library and loader for all
/// (qemu's `-L`): only the interpreters differ.
fn interpreters(project: &Project, loaded: &Loaded, o: &Options, debian: &Debian) -> Result<Lineup> {
    let prefix = loaded.manifest.distro.prefix.trim_start_matches('/');
    let mut builds = vec![];
    if !o.variants.iter().any(|v| v == "default") {
        let features: Vec<String> =
            crate::engine::image::ImageNote::read(&project.tree(&o.arch)).map(|n| n.features.into_values().flatten().collect()).unwrap_or_default();
        builds.push((if features.is_empty() { "default".into() } else { features.join("+") }, project.clone()));
    }
    for name in &o.variants {
        let label = o.toolchain.as_deref().map_or(name.clone(), |t| format!("{name}@{t}"));
        let variant = Project { build_dir: variant_build_dir(o, name), ..project.clone() };
        let python = variant.tree(&o.arch).join(prefix).join("bin/python3");
        if python.exists() {
            builds.push((label, variant));
        } else {
            eprintln!("note: no {name} build to run ({} is missing); `bench --only options` builds it", python.display());
        }
    }
    let parent = debian.root.parent().context("Debian's root has no parent directory")?;
    let stage =
        tempfile::Builder::new().prefix("boards-").tempdir_in(parent).with_context(|| format!("cannot make a staging directory in {}", parent.display()))?;
    let mut interps = vec![];
    let mut ours = String::new();
    for (k, (name, build)) in builds.into_iter().enumerate() {
        let opts = crate::deploy::package::Options { profile: None, prefix: None, rootfs: None, force: false, app: None };
        let package = crate::deploy::package::prepare(&build, loaded, &o.arch, &opts).with_context(|| format!("cannot stage the package of {name}"))?;
        ours = format!("ours: the {} package over Debian's root, at {}", package.profile_name, loaded.manifest.distro.prefix);
        let root = board_root(stage.path(), k, &debian.root, Some(&package.root))?;
        let tree = build.tree(&o.arch);
        let symbols = tree.join(prefix).join("bin/python3");
        interps.push(Interp { name, python: root.join(prefix).join("bin/python3"), root, symbols, unstripped: Some(tree) });
    }
    let name = if debian.same_minor { format!("debian-{}", debian.suite) } else { format!("debian-{}-{}", debian.suite, debian.python) };
    let root = board_root(stage.path(), interps.len(), &debian.root, None)?;
    let python = root.join("usr/bin").join(&debian.python);
    interps.push(Interp { name, symbols: python.clone(), python, root, unstripped: None });
    for i in &interps {
        if !i.python.exists() {
            bail!("{} does not exist; build the tree first", i.python.display());
        }
    }
    Ok(Lineup { _stage: stage, interps, ours })
}

/// `<stage>/<index>`: Debian's root (hard-linked: nothing writes to it),
/// and `tree` (a staged package: `usr/local/...`) installed over it as
/// qemu-test installs it over a board root (`package --rootfs`).
fn board_root(stage: &Path, index: usize, debian_root: &Path, tree: Option<&Path>) -> Result<PathBuf> {
    let root = stage.join(index.to_string());
    crate::base::sysroot::link_tree(debian_root, &root, "Debian's root", &mut BTreeMap::new(), &|rel| rel == Path::new(".complete"))
        .with_context(|| format!("cannot stage {} in {}", debian_root.display(), root.display()))?;
    if let Some(tree) = tree {
        crate::deploy::package::install_over(tree, &root, false)
            .with_context(|| format!("cannot install {} over Debian's root in {}", tree.display(), root.display()))?;
    }
    Ok(root)
}

/// One thing `runtime` times and `profile` counts: the interpreter's
/// arguments, and whether the program prints its own time (startup excluded).
struct Case {
    name: String,
    args: Vec<String>,
    inner: bool,
}

fn cases(project: &Project) -> Vec<Case> {
    let workloads = project.root.join("tests/bench/workloads.py");
    let imports = "import json, re, decimal, sqlite3, ssl, asyncio, email.parser, xml.etree.ElementTree, zlib, lzma, ctypes";
    let argv = |a: &[&str]| a.iter().map(|s| s.to_string()).collect();
    let mut cases = vec![
        Case { name: "startup (-c pass)".into(), args: argv(&["-c", "pass"]), inner: false },
        Case { name: "startup (-I -S -c pass)".into(), args: argv(&["-I", "-S", "-c", "pass"]), inner: false },
        Case { name: "import 11 stdlib modules".into(), args: argv(&["-c", imports]), inner: false },
    ];
    for w in ["nbody", "float", "json", "regex", "sqlite", "richards", "pidigits"] {
        cases.push(Case { name: w.into(), args: vec![workloads.display().to_string(), w.into()], inner: true });
    }
    cases
}

fn runtime(project: &Project, loaded: &Loaded, o: &Options, debian: &Debian) -> Result<(Value, String)> {
    let arch = &loaded.manifest.arch[&o.arch];
    let lineup = interpreters(project, loaded, o, debian)?;
    let interps = &lineup.interps;
    let yardstick = interps.len() - 1;
    let run = |i: &Interp, args: &[String], inner: bool| -> Result<f64> {
        let mut cmd = i.command(arch, args);
        let started = Instant::now();
        let out = crate::base::process::checked(&mut cmd).with_context(|| format!("{} {}", i.name, args.join(" ")))?;
        let wall = started.elapsed().as_secs_f64();
        if inner {
            return String::from_utf8_lossy(&out.stdout).trim().parse::<f64>().context("a workload printed no time");
        }
        Ok(wall)
    };
    let ys = &interps[yardstick].name;
    let mut t = format!(
        "\nruntime ({} under {}, seconds, median of {} runs, alternating; ratio = ours / {ys}, < 1: ours is faster;\n         {})\n  {:26}",
        o.arch, arch.qemu, o.runs, lineup.ours, ""
    );
    for i in interps {
        write!(t, " {:>13}", i.name)?;
    }
    for i in &interps[..yardstick] {
        write!(t, " {:>13}", format!("ratio {}", i.name))?;
    }
    t.push('\n');
    let mut v = BTreeMap::new();
    for Case { name, args, inner } in &cases(project) {
        let mut times: Vec<Vec<f64>> = vec![vec![]; interps.len()];
        // Warm the page cache once for each, then alternate.
        for i in interps {
            run(i, args, *inner)?;
        }
        for _ in 0..o.runs {
            for (k, i) in interps.iter().enumerate() {
                times[k].push(run(i, args, *inner)?);
            }
        }
        let medians: Vec<f64> = times.iter_mut().map(|ts| median(ts)).collect();
        write!(t, "  {name:26}")?;
        for m in &medians {
            write!(t, " {m:>13.3}")?;
        }
        let mut case = serde_json::Map::new();
        let mut ratios = serde_json::Map::new();
        for (k, i) in interps.iter().enumerate() {
            case.insert(i.name.clone(), json!({"runs": times[k], "median": medians[k]}));
            if k != yardstick {
                let r = medians[k] / medians[yardstick];
                write!(t, " {r:>13.2}")?;
                ratios.insert(i.name.clone(), json!(r));
            }
        }
        t.push('\n');
        case.insert("ratio".into(), Value::Object(ratios));
        v.insert(name.clone(), Value::Object(case));
    }
    let names: Vec<&str> = interps.iter().map(|i| i.name.as_str()).collect();
    Ok((
        json!({"runs": o.runs, "interpreters": names, "ours": lineup.ours, "yardstick": ys, "debian_version": debian.version, "qemu": arch.qemu, "cases": v}),
        t,
    ))
}

fn median(xs: &mut [f64]) -> f64 {
    xs.sort_by(|a, b| a.total_cmp(b));
    let n = xs.len();
    if n == 0 {
        0.0
    } else if n % 2 == 1 {
        xs[n / 2]
    } else {
        (xs[n / 2 - 1] + xs[n / 2]) / 2.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The build phase's OpenSSL change is one more option of the
    /// Configure command of every openssl recipe of the real manifest, and
    /// of its arch overrides, never an argument of a command after it.
    #[test]
    fn the_openssl_change_adds_an_option_to_every_configure_command() {
        let manifest = fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../recipes-manifest.toml")).unwrap();
        let changed: toml::Table = toml::from_str(&openssl_changed(&manifest).unwrap()).unwrap();
        let mut scripts = vec![];
        for r in changed["recipe"].as_array().unwrap().iter().filter(|r| r["name"].as_str() == Some("openssl")) {
            scripts.extend(r.get("do_configure").and_then(|s| s.as_str()));
            for o in r.get("arch").and_then(|a| a.as_table()).into_iter().flat_map(|a| a.values()) {
                scripts.extend(o.get("do_configure").and_then(|s| s.as_str()));
            }
        }
        assert!(scripts.len() >= 2, "a recipe and an override at least: {scripts:?}");
        for script in scripts {
            let lines: Vec<&str> = script.lines().collect();
            assert_eq!(lines.iter().filter(|l| l.contains("no-idea")).count(), 1, "{script}");
            let at = lines.iter().position(|l| l.contains("no-idea")).unwrap();
            assert!(
                lines[..at].iter().any(|l| l.contains("/Configure")) && lines[at - 1].ends_with('\\') || lines[at].contains("/Configure"),
                "in the Configure command: {script}"
            );
            assert!(!lines[at].ends_with('\\') && lines[at].ends_with(" no-idea"), "at its end: {script}");
        }
        assert!(with_configure_option("make all\n", "no-idea").unwrap_err().to_string().contains("without a Configure command"));
    }

    #[test]
    fn a_timed_build_compiles_with_an_empty_zig_cache_and_the_users_comes_back() {
        let t = tempfile::tempdir().unwrap();
        let cache = t.path().join("toolchains/zig-cache");
        fs::create_dir_all(cache.join("o")).unwrap();
        fs::write(cache.join("o/users"), "kept").unwrap();
        {
            let _cold = ColdCompileCache::new(t.path()).unwrap();
            assert!(!cache.exists(), "the build starts cold");
            fs::create_dir_all(cache.join("o")).unwrap();
            fs::write(cache.join("o/benchs"), "thrown away").unwrap();
        }
        assert_eq!(fs::read_to_string(cache.join("o/users")).unwrap(), "kept");
        assert!(!cache.join("o/benchs").exists());
        // A bench killed while the user's cache was aside: the next puts it back first.
        let cold = ColdCompileCache::new(t.path()).unwrap();
        std::mem::forget(cold);
        drop(ColdCompileCache::new(t.path()).unwrap());
        assert_eq!(fs::read_to_string(cache.join("o/users")).unwrap(), "kept");
    }

    /// Footprint, runtime and profile measure the project's own tree: a
    /// bench without one stops at once, naming the tree and the command
    /// that makes it, before its build phases run (and before it writes a
    /// result).
    #[test]
    fn a_bench_without_the_tree_it_measures_stops_before_it_builds() {
        let t = tempfile::tempdir().unwrap();
        let loaded = Loaded::read(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../recipes-manifest.toml")).unwrap();
        let project = Project {
            root: t.path().to_path_buf(),
            manifest_path: loaded.path.clone(),
            build_dir: t.path().join("build"),
            dl_dir: t.path().join("cache/downloads"),
            sstate_dir: t.path().join("cache/sstate"),
            wheel_dir: t.path().join("cache/wheels"),
            cache_dir: t.path().join("cache"),
        };
        let o = Options {
            arch: "aarch64".into(),
            only: None,
            runs: 1,
            cold_jobs: vec![2],
            suite: "auto".into(),
            variants: vec!["default".into()],
            toolchain: None,
        };
        let e = format!("{:#}", bench(&project, &loaded, &o).unwrap_err());
        assert!(e.contains("`cargo xtask build --arch aarch64`"), "{e}");
        assert!(e.contains(&project.tree("aarch64").display().to_string()), "{e}");
        assert!(!t.path().join("deploy/bench").exists(), "it wrote results before stopping");
    }

    #[test]
    fn a_variant_is_default_or_manifest_features_joined_by_plus() {
        let loaded = Loaded::read(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../recipes-manifest.toml")).unwrap();
        assert!(variant_features(&loaded, "default").unwrap().is_empty());
        assert_eq!(variant_features(&loaded, "lto+pgo").unwrap(), ["lto", "pgo"]);
        let err = variant_features(&loaded, "lto+fast").unwrap_err().to_string();
        assert!(err.starts_with("--variants lto+fast: `fast` is not a feature of the manifest"), "{err}");
        assert!(err.contains("lto, no-pie, pgo, static-interpreter"), "{err}");
        let release = &loaded.manifest.distro.feature_sets["release"];
        assert_eq!(&variant_features(&loaded, "release").unwrap(), release, "a feature set names its features");
    }

    #[test]
    fn the_yardstick_of_another_minor_version_is_the_newest_python_of_the_suite() {
        let package = |name: &str| {
            (
                name.to_string(),
                crate::sources::debian::Package {
                    name: name.into(),
                    version: "1".into(),
                    depends: vec![],
                    filename: String::new(),
                    sha256: String::new(),
                    size: 0,
                },
            )
        };
        let index: BTreeMap<_, _> =
            ["python3.9-minimal", "python3.11-minimal", "python3.11", "python3-minimal", "libpython3.12-minimal"].into_iter().map(package).collect();
        assert_eq!(newest_python(&index).as_deref(), Some("python3.11"), "3.11 above 3.9, and only python3.X-minimal counts");
        assert_eq!(newest_python(&BTreeMap::new()), None);
    }

    /// Every interpreter runs from its board path in a root of its own,
    /// the roots side by side: ours at the prefix over Debian's files,
    /// Debian's in Debian's root alone, and nothing of ours in Debian's.
    #[test]
    fn each_interpreter_runs_from_its_board_path_in_a_root_beside_the_others() {
        let dir = tempfile::tempdir().unwrap();
        let debian = dir.path().join("debian-forky-arm64");
        fs::create_dir_all(debian.join("usr/bin")).unwrap();
        fs::write(debian.join("usr/bin/python3.14"), "debian's").unwrap();
        fs::write(debian.join(".complete"), "stamp").unwrap();
        std::os::unix::fs::symlink("usr/bin", debian.join("bin")).unwrap();
        let tree = dir.path().join("a/much/longer/build/path/sysroots/aarch64");
        fs::create_dir_all(tree.join("usr/local/bin")).unwrap();
        fs::write(tree.join("usr/local/bin/python3.14"), "ours").unwrap();
        std::os::unix::fs::symlink("python3.14", tree.join("usr/local/bin/python3")).unwrap();
        let stage = dir.path().join("boards-x");
        let ours = board_root(&stage, 0, &debian, Some(&tree)).unwrap();
        let theirs = board_root(&stage, 1, &debian, None).unwrap();
        assert_eq!((ours.parent(), theirs.parent()), (Some(stage.as_path()), Some(stage.as_path())));
        assert_eq!(fs::read_to_string(ours.join("usr/local/bin/python3")).unwrap(), "ours");
        assert_eq!(fs::read_to_string(ours.join("bin/python3.14")).unwrap(), "debian's", "Debian's root, its /usr merge too");
        assert_eq!(fs::read_to_string(theirs.join("usr/bin/python3.14")).unwrap(), "debian's");
        assert!(!theirs.join("usr/local").exists());
        assert!(!ours.join(".complete").exists(), "the cache's stamp is not part of a board");
        // Installed as on a board: a file of the tree that Debian's root
        // has with other content is refused, not written over.
        fs::create_dir_all(tree.join("usr/bin")).unwrap();
        fs::write(tree.join("usr/bin/python3.14"), "ours, elsewhere").unwrap();
        assert!(board_root(&stage, 2, &debian, Some(&tree)).is_err());
        assert_eq!(fs::read_to_string(debian.join("usr/bin/python3.14")).unwrap(), "debian's", "Debian's root is untouched");
    }

    #[test]
    fn medians_of_odd_and_even_runs() {
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&mut [4.0, 1.0, 2.0, 3.0]), 2.5);
        assert_eq!(median(&mut []), 0.0);
    }
}
