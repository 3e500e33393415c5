//! What a run leaves in `deploy/<arch>/` and prints: the checks' table
//! and record, CPython's test reports, and the verdicts.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use anyhow::{bail, Result};

use crate::engine::project::{BuildLock, Project};

/// One check's result, as `checks.py` prints it (`CHECK {json}`).
#[derive(Debug, Clone, serde::Deserialize, serde::Serialize)]
pub struct CheckResult {
    pub name: String,
    pub ok: bool,
    pub detail: String,
}

/// The file in `deploy/<arch>/` that keeps the checks' results: the
/// tree's, or one package's, named after it as its `.sizes.txt` is, so
/// that testing the minimal profile keeps the runtime profile's record.
pub(super) fn checks_record(package: Option<&Path>, booted: bool) -> String {
    let record = if booted { "qemu-test-system-checks.json" } else { "qemu-test-checks.json" };
    match package.and_then(|p| p.file_name()).map(|n| n.to_string_lossy()) {
        Some(name) => format!("{}.{record}", crate::deploy::package::archive::stem_of(&name).unwrap_or(&name)),
        None => record.to_string(),
    }
}

/// The CPython test report in `deploy/<arch>/` (`qemu-test` for the
/// listed modules, `cpython-suite` for the whole suite, `-system` when
/// booted), and the verdict.
pub(super) fn publish(project: &Project, arch_name: &str, report: &crate::deploy::regrtest::Report, booted: bool) -> Result<()> {
    let interrupted = report.interrupted.then(|| report.modules.iter().filter(|m| m.result != "not run").count());
    let table = report.table();
    let stem = match (report.whole_suite, booted) {
        (false, false) => "qemu-test",
        (false, true) => "qemu-test-system",
        (true, false) => "cpython-suite",
        (true, true) => "cpython-suite-system",
    };
    write_report(project, arch_name, &[(format!("{stem}.json"), serde_json::to_vec_pretty(report)?), (format!("{stem}.txt"), table.clone().into_bytes())])?;
    println!("\n{table}(deploy/{arch_name}/{stem}.json, {stem}.txt)");
    let bugs = report.bugs();
    if let Some(finished) = interrupted {
        let failed = if bugs.is_empty() { String::new() } else { format!("; failed: {}", bugs.join(", ")) };
        bail!("interrupted: {finished} of {} test modules finished, the rest not run{failed}", report.modules.len());
    }
    if !bugs.is_empty() {
        let machine = if booted { "the emulated machine (qemu-system)" } else { "qemu-user" };
        bail!(
            "CPython test modules failed on {arch_name}: {}\n\
             a failure that only {machine} or the target's ABI causes belongs in distro.cpython_test_limits with its kind and reason",
            bugs.join(", ")
        );
    }
    Ok(())
}

/// Files of `deploy/<arch>/`, written under the build directory's lock.
pub(super) fn write_report(project: &Project, arch_name: &str, files: &[(String, Vec<u8>)]) -> Result<()> {
    let _lock = BuildLock::take(&project.build_dir, true)?;
    let deploy = project.deploy_dir(arch_name);
    fs::create_dir_all(&deploy)?;
    for (name, bytes) in files {
        crate::engine::tasks::atomic_write(&deploy.join(name), bytes)?;
    }
    Ok(())
}

/// The table, `deploy/<arch>/<name>`, and the verdict.
pub(super) fn finish(project: &Project, arch_name: &str, name: &str, results: &[CheckResult], script_ok: bool) -> Result<()> {
    print_table(arch_name, results);
    write_report(project, arch_name, &[(name.to_string(), serde_json::to_vec_pretty(results)?)])?;
    let failed: Vec<&str> = results.iter().filter(|r| !r.ok).map(|r| r.name.as_str()).collect();
    if !failed.is_empty() {
        bail!("{} of {} checks failed on {arch_name}: {}", failed.len(), results.len(), failed.join(", "));
    }
    if !script_ok {
        bail!("the check script did not finish cleanly");
    }
    println!("{arch_name}: all {} checks passed", results.len());
    Ok(())
}

pub(super) fn print_table(arch: &str, results: &[CheckResult]) {
    let width = results.iter().map(|r| r.name.len()).max().unwrap_or(5).max(5);
    println!("\n{:width$}  result  detail ({arch})", "check");
    println!("{}  ------  ------", "-".repeat(width));
    for r in results {
        let detail: String = r.detail.chars().take(100).collect();
        println!("{:width$}  {:6}  {detail}", r.name, if r.ok { "ok" } else { "FAILED" });
    }
    let passed = results.iter().filter(|r| r.ok).count();
    println!("\n{} passed, {} failed", passed, results.len() - passed);
    if let Some(figures) = results.iter().find(|r| r.name == "memory").and_then(|r| Memory::parse(&r.detail)) {
        println!("\n{figures}");
    }
}

/// What the booted `memory` check measured (its detail is their JSON, as
/// `checks.py` writes it): ours and the board's own python3, side by side.
#[derive(Debug, serde::Deserialize)]
pub(super) struct Memory {
    python3: Interpreter,
    #[serde(flatten)]
    rest: BTreeMap<String, serde_json::Value>,
}

#[derive(Debug, serde::Deserialize)]
struct Interpreter {
    rss_pass_kib: u64,
    rss_numpy_kib: Option<u64>,
    startup_ms: u64,
    startup_isolated_ms: u64,
}

impl Memory {
    pub(super) fn parse(detail: &str) -> Option<Memory> {
        serde_json::from_str(detail).ok()
    }

    /// The board's interpreters (`/usr/bin/python3.N`), by path.
    fn boards(&self) -> impl Iterator<Item = (&String, Interpreter)> {
        self.rest.iter().filter_map(|(k, v)| Some((k, serde_json::from_value::<Interpreter>(v.clone()).ok()?)))
    }

    fn kib(&self, key: &str) -> Option<u64> {
        self.rest.get(key)?.as_u64()
    }
}

impl std::fmt::Display for Memory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mib = |kib: u64| format!("{:.1} MiB", kib as f64 / 1024.0);
        let line = |f: &mut std::fmt::Formatter<'_>, name: &str, i: &Interpreter| {
            let numpy = i.rss_numpy_kib.map(|k| format!(", import numpy {}", mib(k))).unwrap_or_default();
            writeln!(
                f,
                "  {name:22} peak RSS of -c pass {}{numpy}; startup -c pass {} ms, -I -S -c pass {} ms",
                mib(i.rss_pass_kib),
                i.startup_ms,
                i.startup_isolated_ms
            )
        };
        writeln!(f, "measured as on a board (medians, the interpreters' runs alternating):")?;
        line(f, "python3 (ours)", &self.python3)?;
        for (path, board) in self.boards() {
            line(f, path, &board)?;
            let ratio = |ours: u64, theirs: u64| if theirs == 0 { "-".to_string() } else { format!("{:.2}", ours as f64 / theirs as f64) };
            writeln!(
                f,
                "  {:22} ours / its: peak {}, startup {} and {}",
                "",
                ratio(self.python3.rss_pass_kib, board.rss_pass_kib),
                ratio(self.python3.startup_ms, board.startup_ms),
                ratio(self.python3.startup_isolated_ms, board.startup_isolated_ms)
            )?;
        }
        if let (Some(peak), Some(total), Some(available)) = (self.kib("checks_vmhwm_kib"), self.kib("mem_total_kib"), self.kib("mem_available_kib")) {
            write!(f, "  the checks' peak RSS {}; {} of {} available after", mib(peak), mib(available), mib(total))?;
        }
        Ok(())
    }
}
