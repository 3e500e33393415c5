//! CPython's own test suite on the target: `python -m test` under qemu-user,
//! read back from regrtest's JUnit XML so that every module is reported with
//! its counts, the tests that failed and why tests were skipped.
//!
//! Tests that cannot pass for a reason outside the build (qemu-user lacks a
//! feature, the test assumes another ABI) are listed in the manifest's
//! `distro.cpython_test_limits`, left out with `--ignore` and reported with
//! their reason; every other failure fails `qemu-test`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use crate::model::manifest::{Loaded, TestLimit};

#[derive(Debug, Serialize, Deserialize)]
pub struct Report {
    pub arch: String,
    pub command: String,
    /// The whole suite (`--cpython-tests all`), not the manifest's list.
    pub whole_suite: bool,
    /// What was tested (the tree's image signature, or the package's
    /// sha256): a later run resumes this report only for the same tree.
    #[serde(default)]
    pub tree: String,
    pub modules: Vec<ModuleResult>,
    /// Stopped by the user (Ctrl-C) before every module ran: the modules
    /// `not run` are the user's, not failures.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub interrupted: bool,
}

/// One test module of regrtest on the target.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ModuleResult {
    pub module: String,
    /// passed, failed, skipped, or regrtest's word for what else happened
    /// (`timed out`, `crashed`), or `not run`.
    pub result: String,
    /// regrtest's own words about the module (a skip reason, failure counts).
    pub detail: String,
    pub tests: u32,
    pub skipped: u32,
    /// Why tests were skipped, with how many for each reason.
    pub skip_reasons: BTreeMap<String, u32>,
    pub failed: Vec<FailedCase>,
    /// Tests left out because they cannot pass on this target, with why.
    pub excluded: Vec<Excluded>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct FailedCase {
    pub test: String,
    /// `failure` (an assertion) or `error` (an exception).
    pub kind: String,
    pub message: String,
    /// What regrtest's `--rerun` of the test in a fresh process gave:
    /// `passed` (the failure does not repeat) or `failed` (it does).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rerun: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Excluded {
    pub test: String,
    pub kind: String,
    pub why: String,
}

/// Module verdicts that are not failures. `flaky`: failed, then passed
/// when regrtest re-ran its failed tests alone in a fresh process, which
/// CPython's own CI (`--fast-ci`, `--slow-ci`) counts as a success.
/// ("run no tests": the word of reports written before it was read as 3.14 writes it.)
const FINE: [&str; 6] = ["passed", "skipped", "env changed", "ran no tests", "run no tests", "flaky"];

impl Report {
    /// A report written by an earlier run (`deploy/<arch>/cpython-suite*.json`).
    pub fn read(file: &Path) -> Result<Report> {
        let text = std::fs::read(file).with_context(|| format!("cannot read the report to resume, {}", file.display()))?;
        serde_json::from_slice(&text).with_context(|| format!("{} is not a report of CPython's tests (deploy/<arch>/cpython-suite*.json)", file.display()))
    }

    /// Modules that failed for a reason not listed as a limit: build bugs.
    /// A module that passed but changed its environment, or whose every test
    /// was left out (`ran no tests`), is reported, not a bug.
    /// In the whole suite, a module `not run` is the unfinished rest of a
    /// stopped guest: the `cpython-tests-finished` check reports that, and
    /// the next run on the same tree resumes with it. In an interrupted
    /// run it is what the user stopped.
    pub fn bugs(&self) -> Vec<&str> {
        let stopped = self.whole_suite || self.interrupted;
        self.modules.iter().filter(|m| !(FINE.contains(&m.result.as_str()) || stopped && m.result == "not run")).map(|m| m.module.as_str()).collect()
    }

    pub fn table(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "CPython tests on {} ({})", self.arch, self.command);
        let _ = writeln!(out, "{:22} {:8} {:>6} {:>7} {:>6} {:>8}  detail", "module", "result", "tests", "skipped", "failed", "excluded");
        for m in &self.modules {
            let _ = writeln!(out, "{:22} {:8} {:>6} {:>7} {:>6} {:>8}  {}", m.module, m.result, m.tests, m.skipped, m.failed.len(), m.excluded.len(), m.detail);
        }
        let count = |r: &str| self.modules.iter().filter(|m| m.result == r).count();
        let _ = writeln!(
            out,
            "{} modules: {} passed, {} failed, {} flaky, {} skipped, {} env changed, {} ran no tests, {} not run; {} tests run, {} skipped, {} excluded",
            self.modules.len(),
            count("passed"),
            self.bugs().len(),
            count("flaky"),
            count("skipped"),
            count("env changed"),
            count("ran no tests"),
            count("not run"),
            self.modules.iter().map(|m| m.tests).sum::<u32>(),
            self.modules.iter().map(|m| m.skipped).sum::<u32>(),
            self.modules.iter().map(|m| m.excluded.len()).sum::<usize>(),
        );
        for m in &self.modules {
            for f in &m.failed {
                let rerun = f.rerun.as_deref().map_or(String::new(), |r| format!(", {r} when re-run"));
                let _ = writeln!(out, "  FAILED {} ({}{rerun}): {}", f.test, f.kind, f.message);
            }
            for e in &m.excluded {
                let _ = writeln!(out, "  excluded {} [{}]: {}", e.test, e.kind, e.why);
            }
        }
        out
    }
}

/// Which of CPython's tests run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Selection {
    /// The modules of the manifest's `distro.cpython_tests`.
    Listed,
    /// The whole suite, as `python -m test` runs it (`--list-tests` names it).
    All,
}

/// One regrtest run on one arch: what it runs and what it leaves out.
pub struct Plan<'a> {
    pub arch: String,
    pub selection: Selection,
    /// The listed modules this version has (none for the whole suite).
    pub modules: Vec<String>,
    /// The listed modules this version has not (test_zstd before 3.14).
    pub absent: Vec<String>,
    /// `python3.X` of the suite, for the absent modules' detail.
    pub version: String,
    pub limits: Vec<&'a TestLimit>,
    pub workers: u32,
    /// Seconds regrtest gives one test file before it kills its worker.
    pub timeout: u32,
    /// Test files an earlier run of the whole suite on the same tree
    /// finished: this run runs the rest (`modules`) and reports both.
    pub finished: Vec<ModuleResult>,
}

/// regrtest's `--timeout` unless the guest's `[system.<arch>]` says
/// otherwise: 30 minutes, which also gives the tests a `SHORT_TIMEOUT` of
/// 45 s and a `LONG_TIMEOUT` of 7.5 minutes.
const DEFAULT_TIMEOUT: u32 = 1800;

impl<'a> Plan<'a> {
    /// `suite` is the tree's `lib/python3.X/test`; `booted` says whether
    /// the tests run on a booted kernel (qemu-system) or under qemu-user,
    /// whose limits then hold.
    pub fn new(loaded: &'a Loaded, arch: &str, selection: Selection, booted: bool, suite: Option<&Path>, workers: u32) -> Plan<'a> {
        let d = &loaded.manifest.distro;
        let limits = d.cpython_test_limits.iter().filter(|l| l.applies_to(arch, booted)).collect();
        let (modules, absent) = match selection {
            // One list serves every CPython the manifest offers: a module this
            // version does not have is reported, not run.
            Selection::Listed => {
                d.cpython_tests.iter().cloned().partition(|m| suite.is_none_or(|dir| dir.join(m).is_dir() || dir.join(format!("{m}.py")).is_file()))
            }
            Selection::All => (vec![], vec![]),
        };
        let version = suite.and_then(|d| d.parent()?.file_name()).map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let timeout = booted.then(|| loaded.manifest.system.get(arch)).flatten().and_then(|s| s.suite_test_timeout).unwrap_or(DEFAULT_TIMEOUT);
        Plan { arch: arch.to_string(), selection, modules, absent, version, limits, workers, timeout, finished: vec![] }
    }

    /// Go on from an earlier report of the whole suite on the same arch and tree:
    /// its test files that were not run, and those that failed (a limit or
    /// a test environment fixed since then shows at once), are this run's.
    /// Returns how many, or None when `earlier` is not this run's to resume
    /// (another arch or tree, or nothing left: the suite runs again whole).
    pub fn resume(&mut self, earlier: Report, tree: &str) -> Option<usize> {
        if self.selection != Selection::All || !earlier.whole_suite || earlier.arch != self.arch || earlier.tree != tree || tree.is_empty() {
            return None;
        }
        let (left, finished): (Vec<ModuleResult>, Vec<ModuleResult>) =
            earlier.modules.into_iter().partition(|m| m.result == "not run" || !FINE.contains(&m.result.as_str()));
        if left.is_empty() {
            return None;
        }
        self.modules = left.into_iter().map(|m| m.module).collect();
        self.finished = finished;
        Some(self.modules.len())
    }

    /// [`Plan::resume`] from a report the user names (`--resume-from`):
    /// one that cannot be resumed here is an error, not a silent new start.
    pub fn resume_from(&mut self, file: &Path, tree: &str) -> Result<usize> {
        let earlier = Report::read(file)?;
        let (its_arch, its_tree) = (earlier.arch.clone(), earlier.tree.clone());
        match self.resume(earlier, tree) {
            Some(left) => Ok(left),
            None if its_arch != self.arch || its_tree != tree => bail!(
                "{} cannot be resumed here: it reports {its_arch}'s tree {its_tree}, this run tests {}'s tree {tree}\n\
                 (a report goes on only on the tree it was run on: build the same commit with the same options)",
                file.display(),
                self.arch
            ),
            None => bail!("{} cannot be resumed: it is not of the whole suite, or nothing in it is left to run", file.display()),
        }
    }

    /// Whether regrtest must name the suite itself (`--list-tests`): the
    /// whole suite, not resumed.
    pub fn lists_suite(&self) -> bool {
        self.selection == Selection::All && self.modules.is_empty()
    }

    /// regrtest's arguments after `python3 -B -m test`.
    pub fn args(&self, junit: &str) -> Vec<String> {
        // -W: a failing test's output is shown, a passing one's is not.
        // --rerun: failed tests run again, alone, in a fresh process, as
        // CPython's CI runs them; a failure that does not repeat is flaky.
        let mut args = vec![format!("-j{}", self.workers), "--timeout".into(), self.timeout.to_string(), "-W".into(), "--rerun".into()];
        args.extend(["--junit-xml".to_string(), junit.to_string()]);
        for pattern in self.limits.iter().flat_map(|l| l.tests.get_ref()) {
            args.extend(["--ignore".to_string(), pattern.clone()]);
        }
        args.extend(self.modules.iter().cloned());
        args
    }

    /// The run in a line, for the report.
    pub fn command(&self) -> String {
        let what = match self.selection {
            Selection::Listed => self.modules.join(" "),
            Selection::All if self.finished.is_empty() => "(the whole suite)".into(),
            Selection::All => format!("(the whole suite: {} test files here, {} in earlier runs)", self.modules.len(), self.finished.len()),
        };
        format!("python3 -m test -j{} {what} (+{} --ignore)", self.workers, self.limits.iter().map(|l| l.tests.get_ref().len()).sum::<usize>())
    }

    /// The report of a finished run: `suite` is what `--list-tests` named
    /// (the whole suite), `progress` regrtest's output, `junit_xml` its file.
    pub fn report(&self, tree: &str, suite: &[String], progress: &str, junit_xml: &str) -> Result<Report> {
        let wanted: &[String] = if self.lists_suite() { suite } else { &self.modules };
        if wanted.is_empty() {
            bail!("regrtest named no test to run (`--list-tests` printed nothing)");
        }
        let mut modules = classify(wanted, progress, junit_xml, &self.limits)?;
        modules.extend(self.absent.iter().map(|m| absent_module(m, &self.version)));
        if !self.finished.is_empty() {
            modules.extend(self.finished.iter().cloned());
            modules.sort_by(|a, b| a.module.cmp(&b.module));
        }
        Ok(Report {
            arch: self.arch.clone(),
            command: self.command(),
            whole_suite: self.selection == Selection::All,
            tree: tree.to_string(),
            modules,
            interrupted: false,
        })
    }
}

/// Run `plan` with the target interpreter under qemu-user (the
/// environment carries qemu's settings) and classify every module. Its
/// output goes to `log` as it comes; at `limit` regrtest gets SIGINT, stops
/// its workers and still writes its XML: the rest is `not run`.
pub fn run(plan: &Plan, python: &Path, env: &[(&str, String)], tree: &str, limit: Option<Duration>, log: &Path) -> Result<Report> {
    let scratch = tempfile::Builder::new().prefix("crosspython-regrtest-").tempdir()?;
    let junit = scratch.path().join("junit.xml");
    let python_cmd = |args: &[String]| {
        let mut cmd = Command::new(python);
        cmd.args(["-B", "-m", "test"]).args(args).current_dir(scratch.path()).env_clear().envs(env.iter().map(|(k, v)| (*k, v.as_str()))).stdin(Stdio::null());
        cmd
    };
    let suite = if plan.lists_suite() {
        let out = crate::base::process::output(&mut python_cmd(&["--list-tests".to_string()]))?;
        String::from_utf8_lossy(&out.stdout).lines().map(str::trim).filter(|l| l.starts_with("test")).map(String::from).collect()
    } else {
        vec![]
    };
    eprintln!("running CPython's tests on the target: {} (log: {}) ...", plan.command(), log.display());
    std::fs::create_dir_all(log.parent().unwrap_or(Path::new(".")))?;
    let file = std::fs::File::create(log).with_context(|| format!("cannot write {}", log.display()))?;
    let mut cmd = python_cmd(&plan.args(&junit.display().to_string()));
    cmd.stdout(file.try_clone()?).stderr(file);
    // A day stands for no limit. After the SIGINT, regrtest stops its
    // workers and re-runs what failed; a second SIGINT a minute later stops
    // that re-run, so the XML is written (the next run runs the failed
    // files again); SIGKILL after ten minutes.
    let (status, stopped) =
        crate::base::process::run_until(&mut cmd, limit.unwrap_or(Duration::from_secs(86400)), Duration::from_secs(60), Duration::from_secs(600))
            .with_context(|| format!("cannot run {}", python.display()))?;
    let progress = std::fs::read(log).map(|b| String::from_utf8_lossy(&b).into_owned()).unwrap_or_default();
    if stopped {
        eprintln!("regrtest was stopped at the time limit ({status}); the files that finished are reported");
    }
    let xml = std::fs::read_to_string(&junit).unwrap_or_default();
    plan.report(tree, &suite, &progress, &xml).with_context(|| format!("cannot read regrtest's JUnit XML {}", junit.display()))
}

/// `lib/python3.X/test` next to the interpreter's `bin/`, if there is one.
pub fn test_suite_of(python: &Path) -> Option<std::path::PathBuf> {
    let lib = python.parent()?.parent()?.join("lib");
    std::fs::read_dir(&lib).ok()?.flatten().map(|e| e.path().join("test")).find(|t| t.join("libregrtest").is_dir())
}

fn absent_module(module: &str, version: &str) -> ModuleResult {
    ModuleResult {
        module: module.to_string(),
        result: "skipped".into(),
        detail: format!("not in {version}'s test suite"),
        tests: 0,
        skipped: 0,
        skip_reasons: BTreeMap::new(),
        failed: vec![],
        excluded: vec![],
    }
}

/// `line` without the terminal's colour codes (`ESC [ ... m`), which
/// regrtest writes when its output is a terminal, as a guest's console is.
fn strip_colors(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut rest = line;
    while let Some(at) = rest.find('\x1b') {
        out.push_str(&rest[..at]);
        rest = &rest[at + 1..];
        if let Some(after) = rest.strip_prefix('[') {
            rest = after.find(|c: char| c.is_ascii_alphabetic()).map_or("", |end| &after[end + 1..]);
        }
    }
    out.push_str(rest);
    out
}

/// Merge regrtest's progress lines (the module verdicts) with its JUnit XML
/// (the test cases) and the limits that applied.
fn classify(wanted: &[String], progress: &str, junit_xml: &str, limits: &[&TestLimit]) -> Result<Vec<ModuleResult>> {
    let files = TestFiles(wanted);
    let mut modules: Vec<ModuleResult> = wanted
        .iter()
        .map(|m| ModuleResult {
            module: m.clone(),
            result: "not run".into(),
            detail: "no result line from regrtest".into(),
            tests: 0,
            skipped: 0,
            skip_reasons: BTreeMap::new(),
            failed: vec![],
            excluded: vec![],
        })
        .collect();
    read_verdicts(&files, progress, &mut modules);
    if !junit_xml.is_empty() {
        read_test_cases(&files, junit_xml, &mut modules)?;
    }
    for l in limits {
        for pattern in l.tests.get_ref() {
            let excluded = Excluded { test: pattern.clone(), kind: l.kind.as_str().to_string(), why: l.why.clone() };
            if let Some(i) = files.of_test(pattern) {
                modules[i].excluded.push(excluded);
            }
        }
    }
    Ok(modules)
}

/// The test files of a run, in the report's order.
struct TestFiles<'a>(&'a [String]);

impl TestFiles<'_> {
    fn index(&self, name: &str) -> Option<usize> {
        self.0.iter().position(|w| w == name)
    }

    /// A test id (`test.test_os.FileTests.test_b`) belongs to its module, or
    /// to the file of a package regrtest splits (`test.test_asyncio.test_locks`).
    fn of_test(&self, id: &str) -> Option<usize> {
        let parts: Vec<&str> = id.splitn(4, '.').collect();
        (parts.len() > 2).then(|| self.index(&parts[..3].join("."))).flatten().or_else(|| parts.get(1).and_then(|m| self.index(m)))
    }
}

/// Each file's verdict from regrtest's progress lines; after "Re-running
/// 2 failed tests in verbose mode", the verdicts are the re-run's.
fn read_verdicts(files: &TestFiles, progress: &str, modules: &mut [ModuleResult]) {
    let mut rerun = false;
    for line in progress.lines() {
        let line = &strip_colors(line);
        if line.contains("Re-running ") && line.contains(" failed tests in verbose mode") {
            rerun = true;
            continue;
        }
        // "0:00:12 load avg: 0.86 [ 2/17] test_bz2 passed",
        // "[ 3/17/1] test_os failed (1 failure) in 50.1 sec -- running (1): test_x (42 sec)"
        let Some((_, rest)) = line.split_once("] ") else { continue };
        let rest = rest.split(" -- running").next().unwrap_or(rest);
        let Some((module, outcome)) = rest.split_once(' ') else { continue };
        let Some(i) = files.index(module) else { continue };
        // "failed (env changed)": the test passed but left a thread, a child
        // or a file behind; regrtest itself does not count it as failed.
        // Older regrtest wrote "run no tests", 3.14's "ran no tests".
        let result = ["passed", "skipped", "ran no tests", "run no tests", "failed (env changed)", "failed"]
            .into_iter()
            .find(|w| outcome.starts_with(w))
            .map(|w| if w == "run no tests" { "ran no tests" } else { w })
            .map(|w| w.strip_prefix("failed (").map_or(w, |w| w.trim_end_matches(')')))
            .map(String::from)
            .unwrap_or_else(|| outcome.split(" (").next().unwrap_or(outcome).trim().to_string());
        let m = &mut modules[i];
        match (rerun, result.as_str()) {
            // Stopped at the time limit (SIGINT) while it ran: the next run has it.
            (false, "interrupted") => (m.result, m.detail) = ("not run".into(), "interrupted at the time limit".into()),
            (true, "interrupted") => m.detail = format!("{}; re-run interrupted at the time limit", m.detail),
            (true, "passed") if m.result != "env changed" => {
                m.result = "flaky".into();
                m.detail = format!("{}; passed when re-run", m.detail);
            }
            (true, "passed") => m.detail = format!("{}; passed when re-run", m.detail),
            (true, _) => {
                m.result = result;
                m.detail = format!("{}; re-run: {}", m.detail, outcome.trim());
            }
            (false, _) => (m.result, m.detail) = (result, outcome.trim().to_string()),
        }
    }
}

/// The test cases of regrtest's JUnit XML, counted into their files: run,
/// skipped (with the reasons), failed; a case met again is its re-run, and
/// says what became of the failure.
fn read_test_cases(files: &TestFiles, junit_xml: &str, modules: &mut [ModuleResult]) -> Result<()> {
    let doc = roxmltree::Document::parse(junit_xml)?;
    let mut seen = std::collections::HashSet::new();
    for case in doc.descendants().filter(|n| n.has_tag_name("testcase")) {
        let id = case.attribute("name").unwrap_or_default();
        let Some(i) = files.of_test(id) else { continue };
        let m = &mut modules[i];
        if !seen.insert(id) {
            let failed = case.children().any(|c| c.has_tag_name("failure") || c.has_tag_name("error"));
            if let Some(f) = m.failed.iter_mut().find(|f| f.test == id) {
                f.rerun = Some(if failed { "failed" } else { "passed" }.into());
            }
            continue;
        }
        m.tests += 1;
        for child in case.children().filter(|c| c.is_element()) {
            match child.tag_name().name() {
                "skipped" => {
                    m.skipped += 1;
                    let reason: String = child.text().unwrap_or("").lines().next().unwrap_or("").chars().take(120).collect();
                    *m.skip_reasons.entry(reason).or_default() += 1;
                }
                kind @ ("failure" | "error") => {
                    let message = child.attribute("message").unwrap_or("").trim();
                    // The last line of a formatted exception says what it was.
                    let message = message.lines().last().unwrap_or("").chars().take(200).collect();
                    m.failed.push(FailedCase { test: id.to_string(), kind: kind.to_string(), message, rerun: None });
                }
                _ => {}
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const PROGRESS: &str = "\
0:00:00 load avg: 0.50 Run 3 tests in parallel using 2 worker processes
0:00:12 load avg: 0.86 [1/3] test_bz2 passed
0:00:50 load avg: 2.37 [2/3/1] test_os failed (1 failure) in 49.9 sec -- running (1): test_socket (42.5 sec)
0:01:50 load avg: 2.37 [3/3/1] test_socket skipped (resource denied)
";

    const JUNIT: &str = r#"<testsuites tests="4" errors="0" failures="1">
<testsuite tests="1"><testcase name="test.test_bz2.BZ2FileTest.testRead" status="run" result="completed" time="0.1"/></testsuite>
<testsuite tests="3">
<testcase name="test.test_os.TimerfdTests.test_a" status="run" result="completed"><failure type="AssertionError" message="Traceback (most recent call last):&#10;AssertionError: 0.998 != 1 within 3 places">tb</failure></testcase>
<testcase name="test.test_os.FileTests.test_b" status="run" result="completed"><skipped>requires os.mkfifo()</skipped></testcase>
<testcase name="test.test_os.FileTests.test_c" status="run" result="completed"><skipped>requires os.mkfifo()</skipped></testcase>
</testsuite></testsuites>"#;

    fn limit(test: &str) -> TestLimit {
        let text = format!("tests = [\"{test}\"]\nkind = \"qemu-user\"\nwhy = \"no emulation\"\n");
        toml::from_str(&text).unwrap()
    }

    fn wanted() -> Vec<String> {
        ["test_bz2", "test_os", "test_socket", "test_zlib"].map(String::from).to_vec()
    }

    #[test]
    fn the_test_suite_is_found_next_to_the_interpreter_so_absent_modules_are_reported_not_run() {
        let tree = tempfile::tempdir().unwrap();
        let suite = tree.path().join("usr/local/lib/python3.13/test");
        std::fs::create_dir_all(suite.join("libregrtest")).unwrap();
        std::fs::create_dir_all(tree.path().join("usr/local/bin")).unwrap();
        assert_eq!(test_suite_of(&tree.path().join("usr/local/bin/python3")), Some(suite));
        let m = absent_module("test_zstd", "python3.13");
        assert_eq!((m.result.as_str(), m.detail.as_str()), ("skipped", "not in python3.13's test suite"));
    }

    #[test]
    fn module_verdicts_come_from_the_progress_lines_without_the_running_suffix() {
        let m = classify(&wanted(), PROGRESS, "", &[]).unwrap();
        assert_eq!(m[0].result, "passed");
        assert_eq!(m[1].result, "failed");
        assert_eq!(m[1].detail, "failed (1 failure) in 49.9 sec");
        assert_eq!(m[2].result, "skipped");
        assert_eq!(m[2].detail, "skipped (resource denied)");
    }

    #[test]
    fn a_module_without_a_result_line_is_not_run_and_counts_as_a_bug() {
        let m = classify(&wanted(), PROGRESS, "", &[]).unwrap();
        assert_eq!(m[3].result, "not run");
        let mut report = Report { arch: "x".into(), command: String::new(), whole_suite: false, tree: String::new(), modules: m, interrupted: false };
        assert_eq!(report.bugs(), vec!["test_os", "test_zlib"]);
        report.interrupted = true;
        assert_eq!(report.bugs(), vec!["test_os"], "what a user stopped (Ctrl-C) is not run, not failed");
        report.interrupted = false;
        report.whole_suite = true;
        assert_eq!(report.bugs(), vec!["test_os"], "the rest of a stopped whole suite is left to the next run");
        assert!(report.table().contains("1 failed, 0 flaky, 1 skipped, 0 env changed, 0 ran no tests, 1 not run"), "{}", report.table());
    }

    #[test]
    fn a_module_whose_every_test_is_left_out_ran_no_tests_and_is_not_a_bug() {
        let modules = ["test_bz2", "test_zlib"].map(String::from).to_vec();
        // 3.14's regrtest, then older regrtest's wording.
        let progress = "0:01:36 load avg: 5.62 [ 1/2] test_bz2 ran no tests -- running (1): test_zlib (1 min)\n\
                        0:01:40 load avg: 5.62 [ 2/2] test_zlib run no tests\n";
        let m = classify(&modules, progress, "", &[]).unwrap();
        assert_eq!((m[0].result.as_str(), m[1].result.as_str()), ("ran no tests", "ran no tests"));
        let report = Report { arch: "x".into(), command: String::new(), whole_suite: true, tree: String::new(), modules: m, interrupted: false };
        assert!(report.bugs().is_empty(), "{:?}", report.bugs());
        assert!(report.table().contains("0 failed, 0 flaky, 0 skipped, 0 env changed, 2 ran no tests"), "{}", report.table());
    }

    #[test]
    fn test_cases_are_counted_per_module_with_skip_reasons_and_failure_messages() {
        let m = classify(&wanted(), PROGRESS, JUNIT, &[]).unwrap();
        assert_eq!((m[0].tests, m[0].skipped), (1, 0));
        assert_eq!((m[1].tests, m[1].skipped), (3, 2));
        assert_eq!(m[1].skip_reasons.get("requires os.mkfifo()"), Some(&2));
        assert_eq!(
            m[1].failed,
            vec![FailedCase {
                test: "test.test_os.TimerfdTests.test_a".into(),
                kind: "failure".into(),
                message: "AssertionError: 0.998 != 1 within 3 places".into(),
                rerun: None,
            }]
        );
    }

    #[test]
    fn limits_are_reported_under_their_module_with_the_reason() {
        let l = limit("test.test_os.TimerfdTests.*");
        let m = classify(&wanted(), PROGRESS, JUNIT, &[&l]).unwrap();
        assert_eq!(m[1].excluded, vec![Excluded { test: "test.test_os.TimerfdTests.*".into(), kind: "qemu-user".into(), why: "no emulation".into() }]);
        assert!(m[0].excluded.is_empty());
    }

    #[test]
    fn colour_codes_of_a_terminal_do_not_hide_a_verdict() {
        let progress = "0:00:06 load avg: 0.96 [ 1/19] \x1b[32mtest_zlib passed\x1b[0m\n0:00:40 [ 2/19/1] \x1b[31mtest_os failed (2 errors)\x1b[0m\n";
        let m = classify(&wanted(), progress, "", &[]).unwrap();
        assert_eq!((m[3].result.as_str(), m[1].result.as_str(), m[1].detail.as_str()), ("passed", "failed", "failed (2 errors)"));
    }

    #[test]
    fn split_packages_have_a_verdict_per_file_and_env_changed_is_no_failure() {
        let wanted: Vec<String> = ["test.test_asyncio.test_locks", "test_os"].map(String::from).to_vec();
        let progress = "[1/2] test.test_asyncio.test_locks passed\n[2/2] test_os failed (env changed)\n";
        let junit = r#"<testsuites><testsuite><testcase name="test.test_asyncio.test_locks.LockTests.test_repr" status="run"/>
<testcase name="test.test_os.FileTests.test_a" status="run"/></testsuite></testsuites>"#;
        let m = classify(&wanted, progress, junit, &[]).unwrap();
        assert_eq!((m[0].result.as_str(), m[0].tests), ("passed", 1));
        assert_eq!((m[1].result.as_str(), m[1].tests), ("env changed", 1));
        let report = Report { arch: "x".into(), command: String::new(), whole_suite: true, tree: String::new(), modules: m, interrupted: false };
        assert!(report.bugs().is_empty());
    }

    /// A guest the manifest calls slow gets regrtest's longer timeout, and
    /// with it the tests' longer waits for their children; qemu-user and
    /// the other guests keep the default.
    #[test]
    fn a_slow_guest_gets_a_longer_timeout_from_its_system_section() {
        let mut loaded = Loaded::read(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../recipes-manifest.toml")).unwrap();
        let timeout = |loaded: &Loaded, arch: &str, booted: bool| {
            let args = Plan::new(loaded, arch, Selection::All, booted, None, 2).args("/tmp/j.xml");
            let at = args.iter().position(|a| a == "--timeout").unwrap();
            args[at + 1].clone()
        };
        loaded.manifest.system.get_mut("armhf").unwrap().suite_test_timeout = Some(3600);
        loaded.manifest.system.get_mut("aarch64").unwrap().suite_test_timeout = None;
        assert_eq!(timeout(&loaded, "armhf", true), "3600");
        assert_eq!(timeout(&loaded, "armhf", false), DEFAULT_TIMEOUT.to_string(), "under qemu-user the system section does not apply");
        assert_eq!(timeout(&loaded, "aarch64", true), DEFAULT_TIMEOUT.to_string());
    }

    fn plan_of_the_whole_suite(manifest: &Loaded) -> Plan<'_> {
        Plan::new(manifest, "aarch64", Selection::All, true, None, 2)
    }

    #[test]
    fn a_stopped_run_of_the_whole_suite_is_resumed_on_the_same_tree_only() {
        let loaded = Loaded::read(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../recipes-manifest.toml")).unwrap();
        let suite: Vec<String> = ["test_bz2", "test_os", "test_zlib"].map(String::from).to_vec();
        // The guest was stopped while test_os ran: no JUnit XML, progress only.
        let first = plan_of_the_whole_suite(&loaded).report("sig-1", &suite, "[1/3] test_bz2 passed\n", "").unwrap();
        let results: Vec<&str> = first.modules.iter().map(|m| m.result.as_str()).collect();
        assert_eq!(results, ["passed", "not run", "not run"], "what did not run is not passed");
        assert!(first.bugs().is_empty(), "nor failed: the cpython-tests-finished check fails the run, and the next one resumes");
        let text = serde_json::to_vec(&first).unwrap();

        let mut other_tree = plan_of_the_whole_suite(&loaded);
        assert_eq!(other_tree.resume(serde_json::from_slice(&text).unwrap(), "sig-2"), None, "another tree starts over");
        assert!(other_tree.lists_suite());

        let mut next = plan_of_the_whole_suite(&loaded);
        assert_eq!(next.resume(serde_json::from_slice(&text).unwrap(), "sig-1"), Some(2));
        assert!(!next.lists_suite(), "the files left are named, the suite is not listed again");
        assert!(next.args("/tmp/j.xml").ends_with(&["test_os".to_string(), "test_zlib".to_string()]));
        let second = next.report("sig-1", &[], "[1/2] test_os passed\n[2/2] test_zlib failed (1 failure)\n", "").unwrap();
        let results: Vec<(&str, &str)> = second.modules.iter().map(|m| (m.module.as_str(), m.result.as_str())).collect();
        assert_eq!(results, [("test_bz2", "passed"), ("test_os", "passed"), ("test_zlib", "failed")]);
        let text = serde_json::to_vec(&second).unwrap();

        let mut third = plan_of_the_whole_suite(&loaded);
        assert_eq!(third.resume(serde_json::from_slice(&text).unwrap(), "sig-1"), Some(1), "what failed runs again");
        assert_eq!(third.modules, ["test_zlib"]);
        let done = third.report("sig-1", &[], "[1/1] test_zlib passed\n", "").unwrap();
        assert!(done.bugs().is_empty());
        let text = serde_json::to_vec(&done).unwrap();
        assert_eq!(plan_of_the_whole_suite(&loaded).resume(serde_json::from_slice(&text).unwrap(), "sig-1"), None, "a finished suite runs again whole");
    }

    #[test]
    fn a_report_named_to_resume_goes_on_on_its_own_tree_and_is_refused_on_another() {
        let loaded = Loaded::read(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../recipes-manifest.toml")).unwrap();
        let suite: Vec<String> = ["test_bz2", "test_os"].map(String::from).to_vec();
        let kept = tempfile::tempdir().unwrap();
        let report = kept.path().join("cpython-suite-system.json");
        let first = plan_of_the_whole_suite(&loaded).report("sig-1", &suite, "[1/2] test_bz2 passed\n", "").unwrap();
        std::fs::write(&report, serde_json::to_vec(&first).unwrap()).unwrap();

        let mut same = plan_of_the_whole_suite(&loaded);
        assert_eq!(same.resume_from(&report, "sig-1").unwrap(), 1);
        assert_eq!(same.modules, ["test_os"]);

        let refused = plan_of_the_whole_suite(&loaded).resume_from(&report, "sig-2").unwrap_err().to_string();
        assert!(refused.contains("cannot be resumed here") && refused.contains("sig-1") && refused.contains("sig-2"), "{refused}");
        let other_arch = Plan::new(&loaded, "riscv64", Selection::All, true, None, 2).resume_from(&report, "sig-1").unwrap_err().to_string();
        assert!(other_arch.contains("aarch64's tree sig-1") && other_arch.contains("riscv64's"), "{other_arch}");

        let done = plan_of_the_whole_suite(&loaded).report("sig-1", &suite, "[1/2] test_bz2 passed\n[2/2] test_os passed\n", "").unwrap();
        std::fs::write(&report, serde_json::to_vec(&done).unwrap()).unwrap();
        let finished = plan_of_the_whole_suite(&loaded).resume_from(&report, "sig-1").unwrap_err().to_string();
        assert!(finished.contains("nothing in it is left to run"), "{finished}");

        std::fs::write(&report, b"{}").unwrap();
        let broken = format!("{:#}", plan_of_the_whole_suite(&loaded).resume_from(&report, "sig-1").unwrap_err());
        assert!(broken.contains("is not a report of CPython's tests"), "{broken}");
        let absent = format!("{:#}", plan_of_the_whole_suite(&loaded).resume_from(&kept.path().join("none.json"), "sig-1").unwrap_err());
        assert!(absent.contains("cannot read the report to resume"), "{absent}");
    }

    #[test]
    fn a_failure_that_does_not_repeat_when_re_run_is_flaky_and_one_that_does_is_a_failure() {
        assert!(plan_of_the_whole_suite(&Loaded::read(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../recipes-manifest.toml")).unwrap())
            .args("j")
            .contains(&"--rerun".to_string()));
        let wanted: Vec<String> = ["test_os", "test_zlib", "test_bz2"].map(String::from).to_vec();
        let progress = "\
[1/3/1] test_os failed (1 failure) in 50.1 sec
[2/3/2] test_zlib failed (1 error)
[3/3/2] test_bz2 passed
== Tests result: FAILURE ==
0:02:00 load avg: 1.00 Re-running 2 failed tests in verbose mode in subprocesses
test_a (test.test_os.TimerfdTests.test_a) ... ok
0:02:30 load avg: 1.00 [1/2] test_os passed
0:02:40 load avg: 1.00 [2/2/1] test_zlib failed (1 error)
";
        let junit = r#"<testsuites>
<testsuite><testcase name="test.test_os.TimerfdTests.test_a"><failure message="AssertionError: 0.998 != 1">tb</failure></testcase>
<testcase name="test.test_os.TimerfdTests.test_b"/></testsuite>
<testsuite><testcase name="test.test_zlib.T.test_c"><error message="OSError: x">tb</error></testcase></testsuite>
<testsuite><testcase name="test.test_os.TimerfdTests.test_a"/></testsuite>
<testsuite><testcase name="test.test_zlib.T.test_c"><error message="OSError: x">tb</error></testcase></testsuite>
</testsuites>"#;
        let m = classify(&wanted, progress, junit, &[]).unwrap();
        assert_eq!((m[0].result.as_str(), m[0].detail.as_str()), ("flaky", "failed (1 failure) in 50.1 sec; passed when re-run"));
        assert_eq!(m[0].tests, 2, "a re-run is not counted as more tests");
        assert_eq!(m[0].failed[0].rerun.as_deref(), Some("passed"));
        assert_eq!((m[1].result.as_str(), m[1].detail.as_str()), ("failed", "failed (1 error); re-run: failed (1 error)"));
        assert_eq!(m[1].failed[0].rerun.as_deref(), Some("failed"));
        assert_eq!(m[2].result, "passed");
        let report = Report { arch: "x".into(), command: String::new(), whole_suite: true, tree: String::new(), modules: m, interrupted: false };
        assert_eq!(report.bugs(), vec!["test_zlib"]);
        assert!(report.table().contains("FAILED test.test_os.TimerfdTests.test_a (failure, passed when re-run): AssertionError"), "{}", report.table());
    }

    #[test]
    fn a_test_file_interrupted_at_the_time_limit_is_left_for_the_next_run() {
        let m = classify(&wanted(), "[1/4] test_bz2 passed\n[2/4] test_os interrupted\n", "", &[]).unwrap();
        assert_eq!((m[1].result.as_str(), m[1].detail.as_str()), ("not run", "interrupted at the time limit"));
        let stopped_rerun = "[1/4/1] test_os failed (1 failure)\nRe-running 1 failed tests in verbose mode in subprocesses\n[1/1] test_os interrupted\n";
        let m = classify(&wanted(), stopped_rerun, "", &[]).unwrap();
        assert_eq!((m[1].result.as_str(), m[1].detail.as_str()), ("failed", "failed (1 failure); re-run interrupted at the time limit"));
    }

    #[test]
    fn a_broken_junit_file_is_an_error_not_an_empty_report() {
        assert!(classify(&wanted(), PROGRESS, "<testsuites><testsuite>", &[]).is_err());
    }
}
