//! The checks on a booted kernel of the arch (`qemu-test --system`): the
//! board root with the package as the guest's root, `/init` running the
//! checks, the board's programs and CPython's tests, and the results read
//! back from the serial console.

use std::fs;
use std::path::Path;
use std::time::Instant;

use anyhow::{bail, Context, Result};

use super::fixtures::PACKAGE_CHECKS;
use super::install::OnBoard;
use super::record::CheckResult;
use crate::deploy::package::App;
use crate::deploy::regrtest::{Plan, Report, Selection};
use crate::deploy::system::{self, Ended, GuestRegrtest, Kernel};
use crate::engine::project::Project;
use crate::model::manifest::{Arch, GuestMachine, GuestRoot, Loaded, SystemBoot};

/// What `/init` runs after booting: the check script (with the TLS
/// certificates and package checks of `fixtures`), the board's own
/// programs, and CPython's tests (`regrtest`, for the tree `tested`).
pub(super) struct GuestRun<'a> {
    pub(super) script: &'a Path,
    pub(super) fixtures: &'a Path,
    pub(super) programs: &'a [Vec<String>],
    pub(super) regrtest: Option<(&'a Plan<'a>, &'a str)>,
    pub(super) minutes: Option<u64>,
    /// The machine booted (the whole suite's, or the checks'; the board's
    /// memory with `--memory-mib`).
    pub(super) guest: GuestMachine,
}

impl GuestRun<'_> {
    /// The seconds the guest gives CPython's tests: `--minutes`, else the
    /// arch's `suite_minutes` for the whole suite, else half an hour.
    fn test_seconds(&self, boot: &SystemBoot) -> u64 {
        match (self.regrtest, self.minutes) {
            (None, _) => 0,
            (Some(_), Some(m)) => m * 60,
            (Some((p, _)), None) if p.selection == Selection::All => boot.suite_minutes * 60,
            (Some(_), None) => 1800,
        }
    }
}

/// The checks and the board's programs on a booted kernel of the arch:
/// the board root with the package (`board.tree`) as the guest's root.
pub(super) fn checks(project: &Project, loaded: &Loaded, arch_name: &str, board: &OnBoard, run: &GuestRun) -> Result<(Vec<CheckResult>, Option<Report>)> {
    let arch = &loaded.manifest.arch[arch_name];
    let boot = &loaded.manifest.system[arch_name];
    let tests = run.test_seconds(boot);
    let guest_regrtest = run.regrtest.map(|(plan, _)| GuestRegrtest {
        list_suite: plan.lists_suite(),
        args: plan.args(""),
        seconds: Some(tests),
        swap: run.guest.swap_mib.map(|_| system::swap_device(boot.root)),
    });
    let init = system::init_script(&guest_env(loaded, arch)?, run.programs, guest_regrtest.as_ref());
    let mut files = vec![("checks.py".to_string(), run.script.to_path_buf())];
    files.extend(["cert.pem", "key.pem", PACKAGE_CHECKS].map(|f| (f.to_string(), run.fixtures.join(f))));
    // The guest stops the tests at `tests` itself (and their re-run after);
    // the host's limit, half an hour more for boot, checks and the XML, is
    // for a guest that hangs.
    let limit = 1800 + if tests > 0 { system::regrtest_stop_seconds(tests) } else { 0 };
    let (console, powered_off) = boot_guest(project, loaded, arch_name, board, &run.guest, &files, &init, limit)?;
    match (console.ended, run.regrtest) {
        (Ended::Interrupted, None) => bail!("interrupted before the guest finished its checks (console: {})", console.path.display()),
        (Ended::TimeLimit, None) => bail!("the guest did not power off within {limit} s (console: {})", console.path.display()),
        _ => {}
    }
    let read = Console::read(&console.text)?;
    let booted = read.reached_init(&console.text)?;
    let mut results = vec![booted_result(boot, booted, powered_off)];
    results.extend(read.results.iter().cloned());
    let report = match run.regrtest {
        None => None,
        Some((plan, tested)) => {
            let how = SuiteEnd { ended: console.ended, limit, test_minutes: tests / 60, path: &console.path };
            let (report, unfinished) = suite_report(plan, tested, &read, &console.text, &how)?;
            results.extend(unfinished);
            Some(report)
        }
    };
    Ok((results, report))
}

/// An application on a booted kernel (`qemu-test --system --app`), alone
/// on the board root with the package: it must exit 0 within half an
/// hour; its time and peak RSS are what a board would see.
pub(super) fn app(project: &Project, loaded: &Loaded, arch_name: &str, board: &OnBoard, app: &App, guest: &GuestMachine) -> Result<()> {
    let boot = &loaded.manifest.system[arch_name];
    let name = app.file.file_name().context("--app names no file")?.to_string_lossy().into_owned();
    let in_guest = format!("app/{name}");
    let env = [("PATH", "/usr/local/bin:/usr/bin:/bin".to_string()), ("HOME", "/tmp".into()), ("LC_ALL", "C.UTF-8".into())];
    let init = system::app_init_script(&env, &format!("/{}/{in_guest}", system::GUEST_DIR), &app.args);
    let limit = 1800;
    let (console, powered_off) = boot_guest(project, loaded, arch_name, board, guest, &[(in_guest, app.file.clone())], &init, limit)?;
    let read = Console::read(&console.text)?;
    let log = console.path.display();
    let booted = read.reached_init(&console.text)?;
    let Some(code) = &read.app_exit else {
        let why = match console.ended {
            Ended::Interrupted => "interrupted".to_string(),
            Ended::TimeLimit => format!("it did not end within {limit} s"),
            Ended::PoweredOff => "the guest powered off first".to_string(),
        };
        bail!("{} did not finish on the booted {arch_name} guest: {why} (console: {log})", app.file.display());
    };
    if code != "0" {
        bail!(
            "{} failed on the booted {arch_name} guest (exit {code}): a module it needs was left out of the package, or it failed; its output:\n{}\n(console: {log})",
            app.file.display(),
            read.app_output.join("\n")
        );
    }
    let (kernel, _) = booted.rsplit_once(' ').unwrap_or((booted, ""));
    let peak = read.app_peak_rss_kib().map_or("?".to_string(), |k| format!("{:.1} MiB", k as f64 / 1024.0));
    println!(
        "{arch_name}: {} ran on a booted kernel (Linux {kernel}, {} -M {}, {} MiB) in {}; peak RSS {peak}; powered off after {powered_off} s",
        app.file.display(),
        boot.qemu,
        boot.machine,
        guest.memory_mib,
        read.app_elapsed.as_deref().unwrap_or("?"),
    );
    Ok(())
}

/// Boot the arch's kernel with the board root and the package
/// (`board.tree`) as its root, `files` (name, source) in the guest's own
/// directory and `init` as `/init`; stopped after `limit` seconds. The
/// console, and the seconds to power-off.
#[allow(clippy::too_many_arguments)]
fn boot_guest(
    project: &Project,
    loaded: &Loaded,
    arch_name: &str,
    board: &OnBoard,
    guest: &GuestMachine,
    files: &[(String, std::path::PathBuf)],
    init: &str,
    limit: u64,
) -> Result<(system::Console, u64)> {
    let (tree, work) = (board.tree.as_path(), board.work.path());
    let arch = &loaded.manifest.arch[arch_name];
    let boot = &loaded.manifest.system[arch_name];
    crate::machine::host::ensure_tool(&boot.qemu, &boot.qemu_package, &format!("qemu-test --arch {arch_name} --system"))?;
    let fetcher = crate::sources::fetch::Fetcher::new(project.dl_dir.clone());
    let kernel = system::kernel(&fetcher, &project.cache_dir, boot, arch)?;
    let busybox = system::busybox(&fetcher, &project.cache_dir, boot, arch)?;
    stage_guest_files(tree, &busybox, files)?;
    let init_file = tree.join("init");
    fs::write(&init_file, init)?;
    fs::set_permissions(&init_file, std::os::unix::fs::PermissionsExt::from_mode(0o755))?;
    let initrd = work.join("initrd.gz");
    let how = make_initrd(boot, guest, &kernel, &busybox, tree, &initrd)?;
    let cpu = guest.cpu.as_deref().map_or(String::new(), |c| format!(" -cpu {c}"));
    eprintln!("booting {} under {} (-M {}{cpu}) with the board root and the package {how} ...", kernel.vmlinuz.display(), boot.qemu, boot.machine);
    let started = Instant::now();
    // Kept like a task's log: hours of a test suite are read afterwards.
    let log = project.build_dir.join(arch_name).join("qemu-system").join("log.console");
    eprintln!("console: {}", log.display());
    let console = system::run(boot, guest, &kernel.vmlinuz, &initrd, Some(tree), std::time::Duration::from_secs(limit), &log)?;
    Ok((console, started.elapsed().as_secs()))
}

/// The guest's own directory (busybox, and `files`: the check script and
/// its fixtures, or an app), which must not replace anything of the board's.
fn stage_guest_files(tree: &Path, busybox: &Path, files: &[(String, std::path::PathBuf)]) -> Result<()> {
    let guest = tree.join(system::GUEST_DIR);
    if guest.exists() || tree.join("init").exists() {
        bail!("the board root already has /{} or /init; the guest's own files would replace them", system::GUEST_DIR);
    }
    fs::create_dir_all(&guest)?;
    fs::copy(busybox, guest.join("busybox"))?;
    for (name, source) in files {
        let to = guest.join(name);
        fs::create_dir_all(to.parent().unwrap_or(&guest))?;
        fs::copy(source, &to).with_context(|| format!("cannot copy {} into the guest", source.display()))?;
    }
    Ok(())
}

/// The environment `/init` gives the checks.
fn guest_env(loaded: &Loaded, arch: &Arch) -> Result<Vec<(&'static str, String)>> {
    let g = |f: &str| format!("/{}/{f}", system::GUEST_DIR);
    Ok(vec![
        ("PATH", "/usr/local/bin:/usr/bin:/bin".into()),
        ("HOME", "/tmp".into()),
        ("LC_ALL", "C.UTF-8".into()),
        ("PYTHONDONTWRITEBYTECODE", "1".into()),
        ("CROSSPYTHON_MACHINE", arch.machine.clone()),
        // A real kernel starts target children itself.
        ("CROSSPYTHON_CHILDREN", "1".into()),
        ("CROSSPYTHON_BOOTED", "1".into()),
        // The console is a terminal: no colour codes in what is read back.
        ("PYTHON_COLORS", "0".into()),
        ("NO_COLOR", "1".into()),
        ("CROSSPYTHON_TLS_CERT", g("cert.pem")),
        ("CROSSPYTHON_TLS_KEY", g("key.pem")),
        ("CROSSPYTHON_PACKAGES", loaded.python_requirements()?.join(" ")),
        ("CROSSPYTHON_PACKAGE_CHECKS", g(PACKAGE_CHECKS)),
    ])
}

/// The guest's initramfs, and how the root reaches the guest: the whole
/// tree as the initramfs, or a small one that mounts it (9p, a disk).
fn make_initrd(boot: &SystemBoot, guest: &GuestMachine, kernel: &Kernel, busybox: &Path, tree: &Path, initrd: &Path) -> Result<String> {
    Ok(match boot.root {
        GuestRoot::Initramfs => {
            system::initramfs(tree, initrd)?;
            format!("as its initramfs ({:.0} MiB)", fs::metadata(initrd)?.len() as f64 / 1048576.0)
        }
        GuestRoot::NineP | GuestRoot::Disk => {
            system::stage1_initramfs(busybox, &kernel.modules, boot.root, initrd)?;
            let how = if boot.root == GuestRoot::NineP { "over virtio-9p" } else { "on an ext4 virtio disk" };
            format!("{how}, {} MiB of memory", guest.memory_mib)
        }
    })
}

/// The first check: the kernel booted, and how long it took.
/// `booted` is `/init`'s `<release> <machine> <uptime>`: the seconds from
/// the kernel's start to the checks.
fn booted_result(boot: &SystemBoot, booted: &str, powered_off: u64) -> CheckResult {
    let (kernel, uptime) = booted.rsplit_once(' ').unwrap_or((booted, "?"));
    CheckResult {
        name: "booted".into(),
        ok: true,
        detail: format!(
            "Linux {kernel} under {} -M {}: the checks began {uptime} s after the kernel started; powered off after {powered_off} s",
            boot.qemu, boot.machine
        ),
    }
}

/// How the guest's run ended, for the suite's report.
pub(super) struct SuiteEnd<'a> {
    pub(super) ended: Ended,
    /// The host's limit, seconds.
    pub(super) limit: u64,
    /// The guest's own limit for the tests.
    pub(super) test_minutes: u64,
    /// The console's log.
    pub(super) path: &'a Path,
}

/// CPython's tests as the console reported them, and a failed
/// `cpython-tests-finished` check when test files were left.
pub(super) fn suite_report(plan: &Plan, tested: &str, read: &Console, text: &str, end: &SuiteEnd) -> Result<(Report, Option<CheckResult>)> {
    // Stopped at the time limit: what finished is reported from the
    // progress lines, the rest is `not run` (a bug until it runs).
    // regrtest itself killed (137: the OOM killer) writes no XML either.
    if read.regrtest_exit.is_none() || read.junit.is_empty() {
        let why = match (&read.regrtest_exit, end.ended) {
            (Some(code), _) => format!("regrtest ended with exit status {code} and wrote no JUnit XML (137: it was killed, as the OOM killer does)"),
            (None, Ended::PoweredOff) => "the guest powered off before regrtest finished".to_string(),
            (None, Ended::Interrupted) => "interrupted: the guest was stopped".to_string(),
            (None, Ended::TimeLimit) => "the guest was stopped at the time limit".to_string(),
        };
        eprintln!("{why}; the report has the test files that finished (console: {})", end.path.display());
        let unfinished = CheckResult { name: "cpython-tests-finished".into(), ok: false, detail: format!("{why} (time limit {} s)", end.limit) };
        let mut report = plan.report(tested, &read.suite, text, "")?;
        report.interrupted = end.ended == Ended::Interrupted;
        return Ok((report, Some(unfinished)));
    }
    let xml = guest_junit(&read.junit).with_context(|| format!("regrtest's JUnit XML from the guest's console ({})", end.path.display()))?;
    let report = plan.report(tested, &read.suite, text, &xml)?;
    let left = report.modules.iter().filter(|m| m.result == "not run").count();
    if left == 0 {
        return Ok((report, None));
    }
    // 130: the guest stopped regrtest at the time limit (SIGINT).
    let why = match read.regrtest_exit.as_deref() {
        Some("130") => format!("regrtest was stopped at the {} min limit", end.test_minutes),
        code => format!("regrtest ended (exit {})", code.unwrap_or("?")),
    };
    let resumes = if report.whole_suite { "; the next run on this tree resumes" } else { "" };
    let why = format!("{why}: {left} test files not run{resumes}");
    eprintln!("{why}");
    Ok((report, Some(CheckResult { name: "cpython-tests-finished".into(), ok: false, detail: why })))
}

/// What `/init` printed on the serial console, line by line: each line a
/// guest's report starts with a word (`CHECK {json}`, `BOOTED <release>`,
/// `PROGRAM <exit> <argv>` before the program's first line, `SUITE`,
/// `JUNIT`, and the exit codes); the kernel's own lines are not read.
#[derive(Debug, Default)]
pub(super) struct Console {
    pub(super) results: Vec<CheckResult>,
    /// `<release> <machine> <uptime>` once `/init` ran.
    pub(super) booted: Option<String>,
    /// The test files regrtest listed (the whole suite's plan).
    pub(super) suite: Vec<String>,
    /// regrtest's JUnit XML, gzipped and base64-encoded.
    pub(super) junit: String,
    pub(super) regrtest_exit: Option<String>,
    /// An app's exit status (`qemu-test --system --app`), what it printed,
    /// its peak RSS and elapsed time as busybox's `time -v` says them.
    pub(super) app_exit: Option<String>,
    pub(super) app_output: Vec<String>,
    pub(super) app_max_rss: Option<u64>,
    pub(super) app_page_size: Option<u64>,
    pub(super) app_elapsed: Option<String>,
}

impl Console {
    pub(super) fn read(text: &str) -> Result<Console> {
        let mut c = Console::default();
        let mut lines = text.lines().map(|l| l.trim_end_matches('\r')).peekable();
        while let Some(line) = lines.next() {
            // The one kernel line read: with a root bigger than the guest's
            // memory the kernel unpacks what fits and boots on, and the
            // checks then fail on files that are missing.
            if let Some(at) = line.find("Initramfs unpacking failed") {
                c.results.push(CheckResult {
                    name: "initramfs".into(),
                    ok: false,
                    detail: format!(
                        "the kernel could not unpack the whole root (`{}`): the board root and the tree do not fit in the guest's memory; \
                         give the arch's [system] more `memory_mib`, or `root = \"disk\"`",
                        &line[at..]
                    ),
                });
            } else if let Some(json) = line.strip_prefix("CHECK ") {
                c.results.push(serde_json::from_str(json).with_context(|| format!("bad check line: {line}"))?);
            } else if let Some(code) = line.strip_prefix("CHECKS-EXIT ") {
                if code != "0" {
                    let after = c.results.last().map_or("before the first check".to_string(), |r: &CheckResult| format!("after `{}`", r.name));
                    let why = if code == "139" { "a segmentation fault" } else { "an error" };
                    c.results.push(CheckResult {
                        name: "checks-finished".into(),
                        ok: false,
                        detail: format!("the check script ended with {why} (exit {code}) {after}"),
                    });
                }
            } else if let Some(kernel) = line.strip_prefix("BOOTED ") {
                c.booted = Some(kernel.to_string());
            } else if let Some(rest) = line.strip_prefix("PROGRAM ") {
                let (code, argv) = rest.split_once(' ').unwrap_or((rest, ""));
                let first = lines.peek().map(|l| l.to_string()).unwrap_or_default();
                let name = Path::new(argv.split_whitespace().next().unwrap_or_default()).file_name().unwrap_or_default().to_string_lossy().into_owned();
                c.results.push(CheckResult { name: format!("board-program {name}"), ok: code == "0", detail: format!("{argv} -> {first}") });
            } else if let Some(module) = line.strip_prefix("SUITE ") {
                c.suite.push(module.trim().to_string());
            } else if let Some(chunk) = line.strip_prefix("JUNIT ") {
                c.junit.push_str(chunk.trim());
            } else if let Some(code) = line.strip_prefix("REGRTEST-EXIT ") {
                c.regrtest_exit = Some(code.trim().to_string());
            } else if let Some(code) = line.strip_prefix("APP-EXIT ") {
                c.app_exit = Some(code.trim().to_string());
            } else if let Some(printed) = line.strip_prefix("APP | ") {
                c.app_output.push(printed.to_string());
            } else if let Some(rss) = line.strip_prefix("APP-MAXRSS ") {
                c.app_max_rss = rss.trim().parse().ok();
            } else if let Some(bytes) = line.strip_prefix("APP-PAGE-SIZE ") {
                c.app_page_size = bytes.trim().parse().ok();
            } else if let Some(elapsed) = line.strip_prefix("APP-ELAPSED ") {
                c.app_elapsed = Some(elapsed.trim().to_string());
            }
        }
        Ok(c)
    }

    /// `/init`'s `BOOTED` line; a guest that never printed it is an error
    /// with the console's last lines (`text`), where the kernel said why.
    pub(super) fn reached_init(&self, text: &str) -> Result<&str> {
        self.booted.as_deref().with_context(|| format!("the guest never reached /init; console:\n{}", crate::base::process::last_lines(text, 30)))
    }

    /// The app's peak RSS in KiB. busybox's `time -v` takes `ru_maxrss`
    /// for pages and multiplies by the page size over 1024
    /// (miscutils/time.c, `ptok(pagesize, ru_maxrss)`), but Linux gives it
    /// in KiB already (getrusage(2)): 4 times too much on 4 KiB pages, the
    /// bug GNU time 1.7 had and 1.8 fixed. Undone with the page size it
    /// printed.
    pub(super) fn app_peak_rss_kib(&self) -> Option<u64> {
        Some(self.app_max_rss? * 1024 / self.app_page_size.filter(|&p| p >= 1024)?)
    }
}

/// The JUnit XML a guest printed gzipped and base64-encoded.
pub(super) fn guest_junit(base64_text: &str) -> Result<String> {
    use base64::Engine as _;
    if base64_text.is_empty() {
        bail!("the guest printed no JUnit XML (regrtest wrote none)");
    }
    let gz = base64::engine::general_purpose::STANDARD.decode(base64_text).context("its base64 is broken")?;
    let mut xml = String::new();
    std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(gz.as_slice()), &mut xml).context("its gzip is broken")?;
    Ok(xml)
}
