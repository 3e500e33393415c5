//! qemu-test: install the target tree (or a package) over a board root,
//! as a user installs it on a board, run it there under qemu-user and
//! report what works; then run the board's own programs to show the
//! install left the board working.
//!
//! The board root is the arch's `test_board` (assembled from Debian
//! packages) or `--board <dir>`; it is copied first, so the cached root
//! and the user's directory are never changed. Installing must leave every
//! file of the board byte for byte as it was.
//!
//! Child processes of the target interpreter (`subprocess`,
//! `multiprocessing` spawn, `sys.executable`) need the kernel to start
//! target binaries through qemu: qemu-user is registered with binfmt_misc
//! from Debian's own `/usr/lib/binfmt.d/qemu-*.conf`, and the root is
//! passed in `QEMU_LD_PREFIX` so that children inherit it.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};

use crate::engine::project::{BuildLock, Project, Target};
use crate::model::manifest::{Arch, GuestRoot, Loaded};

#[derive(Debug, serde::Deserialize, serde::Serialize)]
pub struct CheckResult {
    pub name: String,
    pub ok: bool,
    pub detail: String,
}

/// What qemu-test runs once the tree is installed over the board root.
pub enum Run<'a> {
    /// `tests/target/checks.py` (and CPython's tests with `cpython`), under
    /// qemu-user, or on a booted kernel with `system`.
    /// `resume`: an earlier report of the whole suite on the same tree to go
    /// on from (one another machine wrote, say), instead of `deploy/<arch>/`'s.
    Checks { cpython: Option<crate::deploy::regrtest::Selection>, system: bool, minutes: Option<u64>, resume: Option<&'a Path> },
    /// One application, which must exit 0 (the `app` profile's proof).
    App(&'a crate::deploy::package::App),
}

/// The lock of the runs of one arch and kind (qemu-user, booted), held
/// throughout a run: two would write one log and one record. Taken before
/// the build directory's lock, which a run lets go of and takes again.
pub fn run_lock(project: &Project, arch_name: &str, system: bool, wait: bool) -> Result<BuildLock> {
    let kind = if system { "qemu-system" } else { "qemu-user" };
    BuildLock::take_named(&project.build_dir.join(arch_name).join(kind), &format!("{arch_name}'s {kind} test run"), wait)
}

/// `lock` is the build directory's: let go once the tree is copied over
/// the board root, so that hours of tests do not hold up builds; the
/// reports are written under it again.
pub fn test(project: &Project, loaded: &Loaded, arch_name: &str, target: &Target, package: Option<&Path>, run: Run, lock: BuildLock) -> Result<()> {
    let (cpython, system, minutes, resume, app) = match run {
        Run::Checks { cpython, system, minutes, resume } => (cpython, system, minutes, resume, None),
        Run::App(app) => (None, false, None, None, Some(app)),
    };
    let arch = &loaded.manifest.arch[arch_name];
    let board_root = project.board_root(loaded, arch_name, target)?;
    let board_libc = crate::machine::board::libc_of(&board_root, arch)?;
    eprintln!("board root: {} ({board_libc})", board_root.display());
    let work = tempfile::Builder::new().prefix("crosspython-board-").tempdir()?;
    let tree = work.path().join("root");
    crate::base::sysroot::copy_tree(&board_root, &tree).with_context(|| format!("cannot copy the board root {}", board_root.display()))?;
    let before = snapshot(&tree)?;
    let source = match package {
        Some(archive) => {
            let unpacked = work.path().join("package");
            crate::sources::unpack::unpack(archive, &unpacked, 0).with_context(|| format!("cannot unpack the package {}", archive.display()))?;
            unpacked
        }
        None => {
            let t = project.tree(arch_name);
            if !t.join(crate::engine::image::IMAGE_NOTE).exists() {
                bail!("{} holds no built tree; run `cargo xtask build --arch {arch_name}` first", t.display());
            }
            t
        }
    };
    crate::deploy::package::install_over(&source, &tree, false).context("installing over the board root")?;
    let changed = changed_files(&before, &snapshot(&tree)?);
    if !changed.is_empty() {
        bail!("installing changed {} file(s) the board already had:\n  {}", changed.len(), changed.join("\n  "));
    }
    eprintln!(
        "installed {} over a copy of the board root: every file the board had is unchanged",
        package.map_or("the tree".into(), |p| p.display().to_string())
    );
    let prefix = &loaded.manifest.distro.prefix;
    let mut python = tree.join(prefix.trim_start_matches('/')).join("bin/python3");
    if package.is_some() && !python.exists() {
        // A package made with `--prefix`: its interpreter is wherever bin/python3 is.
        if let Some(found) = walkdir::WalkDir::new(&source).max_depth(5).into_iter().flatten().find(|e| e.path().ends_with("bin/python3")) {
            python = tree.join(found.path().strip_prefix(&source).unwrap());
        }
    }
    if !python.exists() {
        bail!("{} does not exist; run `cargo xtask build --arch {arch_name}` first", python.display());
    }
    let mut board_glibc = match &board_libc {
        crate::machine::board::BoardLibc::Glibc { version, .. } => Some(*version),
        _ => None,
    };
    // A tree that carries its own glibc (a gcc toolchain newer than the
    // board) needs the board's for nothing.
    let python_prefix = python.parent().and_then(Path::parent).and_then(|p| p.strip_prefix(&tree).ok()).map(|p| format!("/{}", p.display()));
    if let Some((libc, version)) = python_prefix.as_deref().map(|p| crate::machine::private_glibc::carried(&tree, p)).transpose()?.flatten() {
        eprintln!("the package carries its own glibc {}.{} ({})", version.0, version.1, libc.strip_prefix(&tree).unwrap_or(&libc).display());
        board_glibc = board_glibc.max(Some(version));
    }
    let board = crate::machine::tree_check::BoardLibs::new(&loaded.manifest.libc, arch.libc, board_glibc);
    let checked = crate::machine::tree_check::TreeCheck::new(&arch.elf, &board).run(&source, &format!("{}", source.display()))?;
    eprint!("{}", checked.summary());
    // Symbol versions say nothing of unversioned symbols (musl has none):
    // every symbol must be defined by the package or this board's C library.
    let board_objects = crate::machine::board::libc_objects(&board_root, &board_libc, &loaded.manifest.libc.glibc_sonames);
    let unresolved = crate::machine::board::unresolved_symbols(&source, &board_objects)?;
    let symbols = CheckResult {
        name: "board-symbols".into(),
        ok: unresolved.is_empty(),
        detail: if unresolved.is_empty() {
            format!("every symbol the package needs is in it or in the board's C library ({} objects)", board_objects.len())
        } else {
            let list: Vec<String> = unresolved.iter().take(4).map(|(f, s)| format!("{f}: {}", s.join(" "))).collect();
            format!(
                "not on this board: {}{}",
                list.join("; "),
                if unresolved.len() > 4 { format!("; and {} more files", unresolved.len() - 4) } else { String::new() }
            )
        },
    };
    if let Ok(note) = crate::engine::image::ImageNote::read(&source) {
        for (recipe, features) in &note.features {
            eprintln!("{recipe} built with: {}", features.join(", "));
        }
    }

    drop(lock);
    let certs = tempfile::tempdir()?;
    make_test_certificate(certs.path())?;
    write_package_checks(loaded, &certs.path().join(PACKAGE_CHECKS))?;
    let script = project.root.join("tests/target/checks.py");
    // What is tested: a later run of the whole suite on the same tree goes
    // on where this one stopped (the suite takes hours).
    let tested = match package {
        Some(archive) => crate::sources::fetch::sha256_file(archive)?,
        None => crate::engine::image::ImageNote::read(&source).map(|n| n.rootfs_sig).unwrap_or_default(),
    };
    if system {
        let programs = match (&target.board, &target.board_name, &arch.test_board) {
            (None, _, Some(name)) | (Some(_), Some(name), _) => loaded.manifest.board[name].programs.clone(),
            _ => vec![],
        };
        let boot = loaded.manifest.system.get(arch_name).with_context(|| {
            format!(
                "{} has no [system.{arch_name}]: no kernel is known for it (the arches that boot: {})",
                loaded.path.display(),
                loaded.manifest.system.keys().cloned().collect::<Vec<_>>().join(", ")
            )
        })?;
        let plan = cpython.map(|selection| regrtest_plan(project, loaded, arch_name, selection, &python, true, boot.cpus, &tested, resume)).transpose()?;
        let (mut results, report) = booted_checks(
            project,
            loaded,
            arch_name,
            &tree,
            work.path(),
            &script,
            certs.path(),
            &programs,
            plan.as_ref().map(|p| (p, tested.as_str())),
            minutes,
        )?;
        let needs = board_needs(arch, &checked);
        results.push(CheckResult { name: "board-libc".into(), ok: true, detail: format!("{needs}; the board has {board_libc}") });
        results.push(symbols);
        let checks = finish(project, arch_name, &checks_record(package, true), &results, true);
        if let Some(report) = report {
            publish(project, arch_name, &report, true)?;
        }
        return checks;
    }
    let binfmt = ensure_binfmt(arch);
    if let Err(why) = &binfmt {
        eprintln!("note: child processes of the target interpreter cannot start: {why}");
    }
    let runner = crate::machine::runner::TargetRunner::new(arch, &tree);
    if let Some(app) = app {
        return run_app(&runner, &tree, &python, app, binfmt.is_ok(), arch_name);
    }
    let mut cmd = runner.command(&python, binfmt.is_ok());
    // -I ignores PYTHON* variables, so -B says it again.
    cmd.arg("-I").arg("-B").arg(&script);
    cmd.env("PATH", "/usr/bin:/bin")
        .env("HOME", certs.path())
        .env("LC_ALL", "C.UTF-8")
        // Testing must not change the tree: no __pycache__ written into it.
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env("CROSSPYTHON_MACHINE", &arch.machine)
        .env("CROSSPYTHON_CHILDREN", if binfmt.is_ok() { "1" } else { "0" })
        .env("CROSSPYTHON_TLS_CERT", certs.path().join("cert.pem"))
        .env("CROSSPYTHON_TLS_KEY", certs.path().join("key.pem"))
        .env("CROSSPYTHON_PACKAGES", loaded.python_requirements()?.join(" "))
        .env("CROSSPYTHON_PACKAGE_CHECKS", certs.path().join(PACKAGE_CHECKS))
        .stdin(Stdio::null())
        .stderr(Stdio::inherit());
    eprintln!("running {} under {} ...", script.display(), arch.qemu);
    let out = crate::base::process::output(&mut cmd)?;
    let mut results: Vec<CheckResult> = vec![];
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        match line.strip_prefix("CHECK ") {
            Some(json) => results.push(serde_json::from_str(json).with_context(|| format!("bad check line: {line}"))?),
            None => eprintln!("  | {line}"),
        }
    }
    let from_script = results.len();
    // The board's side: its C library serves the package, and its own
    // programs still run with the package installed.
    let needs = board_needs(arch, &checked);
    results.push(CheckResult { name: "board-libc".into(), ok: true, detail: format!("{needs}; the board has {board_libc}") });
    results.push(symbols);
    if target.board.is_none() || target.board_name.is_some() {
        if let Some(name) = target.board_name.as_ref().or(arch.test_board.as_ref()) {
            results.extend(board_programs(arch, &tree, &loaded.manifest.board[name].programs, binfmt.is_ok())?);
        }
    }
    let name = checks_record(package, false);
    if !out.status.success() && from_script == 0 {
        bail!("the target interpreter failed to run ({}); nothing was checked", out.status);
    }
    finish(project, arch_name, &name, &results, out.status.success())?;
    println!("{arch_name}: {needs}; the board has {board_libc}");
    if let Some(selection) = cpython {
        let env: Vec<(&str, String)> = vec![
            ("PATH", "/usr/bin:/bin".into()),
            ("HOME", certs.path().display().to_string()),
            ("LC_ALL", "C.UTF-8".into()),
            // No PYTHONDONTWRITEBYTECODE: the tests' own children must write
            // byte code (test_compileall's hardlink tests check that they do),
            // and the tree under test is a copy on the board root.
        ];
        let env: Vec<(&str, String)> = env.into_iter().chain(runner.env()).collect();
        let plan = regrtest_plan(project, loaded, arch_name, selection, &python, false, 2, &tested, resume)?;
        let log = project.build_dir.join(arch_name).join("qemu-user").join("log.regrtest");
        let limit = minutes.map(|m| std::time::Duration::from_secs(m * 60));
        let report = crate::deploy::regrtest::run(&plan, &python, &env, &tested, limit, &log)?;
        publish(project, arch_name, &report, false)?;
        let left = report.modules.iter().filter(|m| m.result == "not run").count();
        if left > 0 {
            bail!("{left} CPython test files were not run on {arch_name} (log: {}); the next run on this tree resumes", log.display());
        }
    }
    Ok(())
}

/// The file in `deploy/<arch>/` that keeps the checks' results: the
/// tree's, or one package's, named after it as its `.sizes.txt` is, so
/// that testing the minimal profile keeps the runtime profile's record.
fn checks_record(package: Option<&Path>, booted: bool) -> String {
    let record = if booted { "qemu-test-system-checks.json" } else { "qemu-test-checks.json" };
    match package.and_then(|p| p.file_name()).map(|n| n.to_string_lossy()) {
        Some(name) => format!("{}.{record}", crate::deploy::package::archive::stem_of(&name).unwrap_or(&name)),
        None => record.to_string(),
    }
}

/// CPython's tests for this run; the whole suite goes on from the earlier
/// report of the same tree (`deploy/<arch>/cpython-suite[-system].json`,
/// else the project's `tests/results/<arch>/`), or from `resume`, a report
/// kept elsewhere: on a machine that starts empty, a suite of many hours
/// is finished over several runs only so.
#[allow(clippy::too_many_arguments)]
fn regrtest_plan<'a>(
    project: &Project,
    loaded: &'a Loaded,
    arch_name: &str,
    selection: crate::deploy::regrtest::Selection,
    python: &Path,
    booted: bool,
    workers: u32,
    tested: &str,
    resume: Option<&Path>,
) -> Result<crate::deploy::regrtest::Plan<'a>> {
    let suite = crate::deploy::regrtest::test_suite_of(python);
    let mut plan = crate::deploy::regrtest::Plan::new(loaded, arch_name, selection, booted, suite.as_deref(), workers);
    // Else this machine's report first, then the one the project keeps
    // (`tests/results/<arch>/`): whichever is of this tree goes on.
    let name = if booted { "cpython-suite-system.json" } else { "cpython-suite.json" };
    let resumed = match resume {
        Some(file) => plan.resume_from(file, tested).map(|_| Some(file.to_path_buf()))?,
        None => [project.deploy_dir(arch_name).join(name), project.root.join("tests/results").join(arch_name).join(name)]
            .into_iter()
            .find(|earlier| crate::deploy::regrtest::Report::read(earlier).ok().and_then(|r| plan.resume(r, tested)).is_some()),
    };
    if let Some(file) = resumed {
        eprintln!("resuming {}: {} test files were not run or failed on this tree ({} finished)", file.display(), plan.modules.len(), plan.finished.len());
    }
    Ok(plan)
}

/// The CPython test report in `deploy/<arch>/` (`qemu-test` for the
/// listed modules, `cpython-suite` for the whole suite, `-system` when
/// booted), and the verdict.
fn publish(project: &Project, arch_name: &str, report: &crate::deploy::regrtest::Report, booted: bool) -> Result<()> {
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
fn write_report(project: &Project, arch_name: &str, files: &[(String, Vec<u8>)]) -> Result<()> {
    let _lock = BuildLock::take(&project.build_dir, true)?;
    let deploy = project.deploy_dir(arch_name);
    fs::create_dir_all(&deploy)?;
    for (name, bytes) in files {
        crate::engine::tasks::atomic_write(&deploy.join(name), bytes)?;
    }
    Ok(())
}

/// What the package needs of the board's C library, for the table.
fn board_needs(arch: &Arch, checked: &crate::machine::tree_check::Checked) -> String {
    match (arch.libc, checked.max_glibc) {
        (crate::model::manifest::LibcKind::Musl, _) => "a musl build: the board's musl loader is its C library".to_string(),
        (_, Some((a, b))) => format!("highest glibc symbol version needed GLIBC_{a}.{b} (by {})", checked.max_glibc_file),
        (_, None) => "no glibc symbol version needed".to_string(),
    }
}

/// The table, `deploy/<arch>/<name>`, and the verdict.
fn finish(project: &Project, arch_name: &str, name: &str, results: &[CheckResult], script_ok: bool) -> Result<()> {
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

/// The checks and the board's programs on a booted kernel of the arch:
/// the board root with the package (`tree`) as the initramfs.
#[allow(clippy::too_many_arguments)]
fn booted_checks(
    project: &Project,
    loaded: &Loaded,
    arch_name: &str,
    tree: &Path,
    work: &Path,
    script: &Path,
    certs: &Path,
    programs: &[Vec<String>],
    regrtest: Option<(&crate::deploy::regrtest::Plan, &str)>,
    minutes: Option<u64>,
) -> Result<(Vec<CheckResult>, Option<crate::deploy::regrtest::Report>)> {
    use crate::deploy::system;
    let arch = &loaded.manifest.arch[arch_name];
    let boot = &loaded.manifest.system[arch_name];
    crate::machine::host::ensure_tool(&boot.qemu, &boot.qemu_package, &format!("qemu-test --arch {arch_name} --system"))?;
    let fetcher = crate::sources::fetch::Fetcher::new(project.dl_dir.clone());
    let kernel = system::kernel(&fetcher, &project.cache_dir, boot, arch)?;
    let busybox = system::busybox(&fetcher, &project.cache_dir, boot, arch)?;
    let guest = tree.join(system::GUEST_DIR);
    if guest.exists() || tree.join("init").exists() {
        bail!("the board root already has /{} or /init; the guest's own files would replace them", system::GUEST_DIR);
    }
    fs::create_dir_all(&guest)?;
    fs::copy(&busybox, guest.join("busybox"))?;
    fs::copy(script, guest.join("checks.py"))?;
    for f in ["cert.pem", "key.pem", PACKAGE_CHECKS] {
        fs::copy(certs.join(f), guest.join(f))?;
    }
    let g = |f: &str| format!("/{}/{f}", system::GUEST_DIR);
    let env: Vec<(&str, String)> = vec![
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
    ];
    let init = tree.join("init");
    let tests = match (regrtest, minutes) {
        (None, _) => 0,
        (Some(_), Some(m)) => m * 60,
        (Some((p, _)), None) if p.selection == crate::deploy::regrtest::Selection::All => boot.suite_minutes * 60,
        (Some(_), None) => 1800,
    };
    let whole_suite = regrtest.is_some_and(|(p, _)| p.selection == crate::deploy::regrtest::Selection::All);
    let guest = boot.guest(whole_suite);
    let guest_regrtest = regrtest.map(|(plan, _)| system::GuestRegrtest {
        list_suite: plan.lists_suite(),
        args: plan.args(""),
        seconds: Some(tests),
        swap: guest.swap_mib.map(|_| system::swap_device(boot.root)),
    });
    fs::write(&init, system::init_script(&env, programs, guest_regrtest.as_ref()))?;
    fs::set_permissions(&init, std::os::unix::fs::PermissionsExt::from_mode(0o755))?;
    let initrd = work.join("initrd.gz");
    let how = match boot.root {
        GuestRoot::Initramfs => {
            system::initramfs(tree, &initrd)?;
            format!("as its initramfs ({:.0} MiB)", fs::metadata(&initrd)?.len() as f64 / 1048576.0)
        }
        GuestRoot::NineP | GuestRoot::Disk => {
            system::stage1_initramfs(&busybox, &kernel.modules, boot.root, &initrd)?;
            let how = if boot.root == GuestRoot::NineP { "over virtio-9p" } else { "on an ext4 virtio disk" };
            format!("{how}, {} MiB of memory", guest.memory_mib)
        }
    };
    let cpu = guest.cpu.as_deref().map_or(String::new(), |c| format!(" -cpu {c}"));
    eprintln!("booting {} under {} (-M {}{cpu}) with the board root and the package {how} ...", kernel.vmlinuz.display(), boot.qemu, boot.machine);
    let started = std::time::Instant::now();
    // The guest stops the tests at `tests` itself (and their re-run after);
    // the host's limit, half an hour more for boot, checks and the XML, is
    // for a guest that hangs.
    let limit = 1800 + if tests > 0 { system::regrtest_stop_seconds(tests) } else { 0 };
    // Kept like a task's log: hours of a test suite are read afterwards.
    let log = project.build_dir.join(arch_name).join("qemu-system").join("log.console");
    eprintln!("console: {}", log.display());
    let run = system::run(boot, &guest, &kernel.vmlinuz, &initrd, Some(tree), std::time::Duration::from_secs(limit), &log)?;
    match (run.ended, regrtest) {
        (system::Ended::Interrupted, None) => bail!("interrupted before the guest finished its checks (console: {})", run.path.display()),
        (system::Ended::TimeLimit, None) => bail!("the guest did not power off within {limit} s (console: {})", run.path.display()),
        _ => {}
    }
    let console = run.text;
    let powered_off = started.elapsed().as_secs();
    let mut results: Vec<CheckResult> = vec![];
    let mut booted = None;
    let (mut suite, mut junit, mut regrtest_exit) = (vec![], String::new(), None);
    let mut lines = console.lines().map(|l| l.trim_end_matches('\r')).peekable();
    while let Some(line) = lines.next() {
        if let Some(json) = line.strip_prefix("CHECK ") {
            results.push(serde_json::from_str(json).with_context(|| format!("bad check line: {line}"))?);
        } else if let Some(code) = line.strip_prefix("CHECKS-EXIT ") {
            if code != "0" {
                let after = results.last().map_or("before the first check".to_string(), |r: &CheckResult| format!("after `{}`", r.name));
                let why = if code == "139" { "a segmentation fault" } else { "an error" };
                results.push(CheckResult {
                    name: "checks-finished".into(),
                    ok: false,
                    detail: format!("the check script ended with {why} (exit {code}) {after}"),
                });
            }
        } else if let Some(kernel) = line.strip_prefix("BOOTED ") {
            booted = Some(kernel.to_string());
        } else if let Some(rest) = line.strip_prefix("PROGRAM ") {
            let (code, argv) = rest.split_once(' ').unwrap_or((rest, ""));
            let first = lines.peek().map(|l| l.to_string()).unwrap_or_default();
            let name = Path::new(argv.split_whitespace().next().unwrap_or_default()).file_name().unwrap_or_default().to_string_lossy().into_owned();
            results.push(CheckResult { name: format!("board-program {name}"), ok: code == "0", detail: format!("{argv} -> {first}") });
        } else if let Some(module) = line.strip_prefix("SUITE ") {
            suite.push(module.trim().to_string());
        } else if let Some(chunk) = line.strip_prefix("JUNIT ") {
            junit.push_str(chunk.trim());
        } else if let Some(code) = line.strip_prefix("REGRTEST-EXIT ") {
            regrtest_exit = Some(code.trim().to_string());
        }
    }
    let Some(kernel_release) = booted else {
        bail!("the guest never reached /init; console:\n{}", crate::base::process::last_lines(&console, 30));
    };
    // `<release> <machine> <uptime>`: the seconds from the kernel's start to /init's checks.
    let (kernel, uptime) = kernel_release.rsplit_once(' ').unwrap_or((&kernel_release, "?"));
    results.insert(
        0,
        CheckResult {
            name: "booted".into(),
            ok: true,
            detail: format!(
                "Linux {kernel} under {} -M {}: the checks began {uptime} s after the kernel started; powered off after {powered_off} s",
                boot.qemu, boot.machine
            ),
        },
    );
    let report = match regrtest {
        None => None,
        // Stopped at the time limit: what finished is reported from the
        // progress lines, the rest is `not run` (a bug until it runs).
        // regrtest itself killed (137: the OOM killer) writes no XML either.
        Some((plan, tested)) if regrtest_exit.is_none() || junit.is_empty() => {
            let why = match (&regrtest_exit, run.ended) {
                (Some(code), _) => format!("regrtest ended with exit status {code} and wrote no JUnit XML (137: it was killed, as the OOM killer does)"),
                (None, system::Ended::PoweredOff) => "the guest powered off before regrtest finished".to_string(),
                (None, system::Ended::Interrupted) => "interrupted: the guest was stopped".to_string(),
                (None, system::Ended::TimeLimit) => "the guest was stopped at the time limit".to_string(),
            };
            eprintln!("{why}; the report has the test files that finished (console: {})", run.path.display());
            results.push(CheckResult { name: "cpython-tests-finished".into(), ok: false, detail: format!("{why} (time limit {limit} s)") });
            let mut report = plan.report(tested, &suite, &console, "")?;
            report.interrupted = run.ended == system::Ended::Interrupted;
            Some(report)
        }
        Some((plan, tested)) => {
            let xml = guest_junit(&junit).with_context(|| format!("regrtest's JUnit XML from the guest's console ({})", run.path.display()))?;
            let report = plan.report(tested, &suite, &console, &xml)?;
            // 130: the guest stopped regrtest at the time limit (SIGINT).
            let left = report.modules.iter().filter(|m| m.result == "not run").count();
            if left > 0 {
                let why = match regrtest_exit.as_deref() {
                    Some("130") => format!("regrtest was stopped at the {} min limit", tests / 60),
                    code => format!("regrtest ended (exit {})", code.unwrap_or("?")),
                };
                let resumes = if report.whole_suite { "; the next run on this tree resumes" } else { "" };
                let why = format!("{why}: {left} test files not run{resumes}");
                eprintln!("{why}");
                results.push(CheckResult { name: "cpython-tests-finished".into(), ok: false, detail: why });
            }
            Some(report)
        }
    };
    Ok((results, report))
}

/// The JUnit XML a guest printed gzipped and base64-encoded.
fn guest_junit(base64_text: &str) -> Result<String> {
    use base64::Engine as _;
    if base64_text.is_empty() {
        bail!("the guest printed no JUnit XML (regrtest wrote none)");
    }
    let gz = base64::engine::general_purpose::STANDARD.decode(base64_text).context("its base64 is broken")?;
    let mut xml = String::new();
    std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(gz.as_slice()), &mut xml).context("its gzip is broken")?;
    Ok(xml)
}

/// The board's own programs, run after the install: each must still work.
fn board_programs(arch: &Arch, root: &Path, programs: &[Vec<String>], binfmt: bool) -> Result<Vec<CheckResult>> {
    let mut results = vec![];
    for argv in programs {
        let Some((prog, args)) = argv.split_first() else { continue };
        let path = crate::machine::board::resolve_in_root(root, Path::new(prog.trim_start_matches('/')))?;
        let out = crate::machine::runner::TargetRunner::new(arch, root)
            .command(&path, binfmt)
            .args(args)
            .env("PATH", "/usr/bin:/bin")
            .env("LC_ALL", "C")
            .stdin(Stdio::null())
            .output()
            .with_context(|| format!("cannot run the board's {prog}"))?;
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        let first = text.lines().next().unwrap_or_default().to_string();
        results.push(CheckResult {
            name: format!("board-program {}", Path::new(prog).file_name().unwrap_or_default().to_string_lossy()),
            ok: out.status.success(),
            detail: if out.status.success() {
                format!("{} -> {first}", argv.join(" "))
            } else {
                format!("{} ({}): {}", argv.join(" "), out.status, text.trim())
            },
        });
    }
    Ok(results)
}

/// Every entry below `root`: its kind, mode and content digest (symlinks by target).
fn snapshot(root: &Path) -> Result<BTreeMap<PathBuf, String>> {
    use std::os::unix::fs::PermissionsExt;
    let mut out = BTreeMap::new();
    for e in walkdir::WalkDir::new(root).min_depth(1) {
        let e = e?;
        let rel = e.path().strip_prefix(root).unwrap().to_path_buf();
        let meta = e.path().symlink_metadata()?;
        let what = if meta.file_type().is_symlink() {
            format!("symlink {}", fs::read_link(e.path())?.display())
        } else if meta.is_dir() {
            "directory".to_string()
        } else {
            format!("file {:o} {}", meta.permissions().mode(), crate::sources::fetch::sha256_file(e.path())?)
        };
        out.insert(rel, what);
    }
    Ok(out)
}

/// Entries of `before` that are gone or different in `after`.
fn changed_files(before: &BTreeMap<PathBuf, String>, after: &BTreeMap<PathBuf, String>) -> Vec<String> {
    before
        .iter()
        .filter_map(|(p, was)| match after.get(p) {
            None => Some(format!("{}: removed", p.display())),
            Some(now) if now != was => Some(format!("{}: {was} -> {now}", p.display())),
            _ => None,
        })
        .collect()
}

fn print_table(arch: &str, results: &[CheckResult]) {
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
struct Memory {
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
    fn parse(detail: &str) -> Option<Memory> {
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

/// Run an application from the installed tree alone (copied into the
/// board root, as a user would put it there): it passes when it exits 0.
fn run_app(
    runner: &crate::machine::runner::TargetRunner,
    tree: &Path,
    python: &Path,
    app: &crate::deploy::package::App,
    binfmt: bool,
    arch_name: &str,
) -> Result<()> {
    let name = app.file.file_name().context("--app names no file")?;
    let dir = tree.join("opt/crosspython-app");
    fs::create_dir_all(&dir)?;
    fs::copy(&app.file, dir.join(name)).with_context(|| format!("cannot copy {}", app.file.display()))?;
    let mut cmd = runner.command(python, binfmt);
    cmd.arg("-B").arg(dir.join(name)).args(&app.args).env("PATH", "/usr/bin:/bin").env("HOME", "/tmp").env("LC_ALL", "C.UTF-8").stdin(Stdio::null());
    eprintln!("running {} {} under {} from the installed tree alone ...", app.file.display(), app.args.join(" "), runner.qemu);
    let started = std::time::Instant::now();
    let out = crate::base::process::output(&mut cmd)?;
    let printed = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    for line in printed.lines() {
        eprintln!("  | {line}");
    }
    if !out.status.success() {
        return Err(crate::base::process::failed(&cmd, out.status, &printed)
            .context(format!("{} does not run from the package on {arch_name}: a module it needs was left out, or it failed", app.file.display())));
    }
    println!("{arch_name}: {} ran from the installed tree alone in {:.1} s", app.file.display(), started.elapsed().as_secs_f64());
    Ok(())
}

/// The manifest's `[python_package.<project>] check`s, for checks.py: it
/// runs those of the packages installed.
const PACKAGE_CHECKS: &str = "package-checks.json";

fn write_package_checks(loaded: &Loaded, path: &Path) -> Result<()> {
    let checks: BTreeMap<String, &str> =
        loaded.manifest.python_package.iter().filter_map(|(project, p)| Some((crate::model::manifest::project_name(project), p.check.as_deref()?))).collect();
    fs::write(path, serde_json::to_vec_pretty(&checks)?).with_context(|| format!("cannot write {}", path.display()))
}

/// A self-signed certificate for `localhost`, made with the host's openssl,
/// for the TLS handshake check.
fn make_test_certificate(dir: &Path) -> Result<()> {
    crate::base::process::checked(
        Command::new("openssl")
            .args(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=localhost"])
            .args(["-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"])
            .arg("-keyout")
            .arg(dir.join("key.pem"))
            .arg("-out")
            .arg(dir.join("cert.pem")),
    )
    .context("a test certificate from the host's openssl (Debian package openssl)")?;
    Ok(())
}

const BINFMT: &str = "/proc/sys/fs/binfmt_misc";

/// Make sure the kernel runs the arch's binaries through qemu: mount
/// binfmt_misc if needed and register Debian's entry for the qemu binary.
pub fn ensure_binfmt(arch: &Arch) -> Result<(), String> {
    let dir = Path::new(BINFMT);
    if !dir.join("register").exists() {
        let status = Command::new("mount").args(["-t", "binfmt_misc", "binfmt_misc", BINFMT]).stderr(Stdio::null()).status();
        if !dir.join("register").exists() {
            return Err(format!("binfmt_misc is not mounted at {BINFMT} and mounting it failed ({status:?}); run as root, or mount it"));
        }
    }
    let entry = dir.join(&arch.qemu);
    if let Ok(text) = fs::read_to_string(&entry) {
        if text.starts_with("enabled") {
            return Ok(());
        }
        return Err(format!("{} is registered but disabled: echo 1 > {}", arch.qemu, entry.display()));
    }
    let conf = Path::new("/usr/lib/binfmt.d").join(format!("{}.conf", arch.qemu));
    let line = fs::read_to_string(&conf).map_err(|_| format!("{} is missing; install Debian's qemu-user-binfmt", conf.display()))?;
    let mut register =
        fs::OpenOptions::new().write(true).open(dir.join("register")).map_err(|e| format!("cannot open {BINFMT}/register: {e} (root needed)"))?;
    register.write_all(line.trim().as_bytes()).map_err(|e| format!("registering {} failed: {e}", arch.qemu))?;
    if entry.exists() {
        Ok(())
    } else {
        Err(format!("registering {} did not take", arch.qemu))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_booted_memory_figures_read_side_by_side_with_the_boards_python() {
        // As mipsel's runtime package measured them on malta (session 17).
        let detail = r#"{"/usr/bin/python3.11": {"rss_numpy_kib": null, "rss_pass_kib": 7492, "startup_isolated_ms": 800, "startup_ms": 1048}, "checks_vmhwm_kib": 45748, "mem_available_kib": 201064, "mem_total_kib": 244228, "python3": {"rss_numpy_kib": 19628, "rss_pass_kib": 8856, "startup_isolated_ms": 1487, "startup_ms": 2624}}"#;
        let text = Memory::parse(detail).unwrap().to_string();
        let lines: Vec<&str> = text.lines().map(str::trim).collect();
        assert_eq!(lines[1], "python3 (ours)         peak RSS of -c pass 8.6 MiB, import numpy 19.2 MiB; startup -c pass 2624 ms, -I -S -c pass 1487 ms");
        assert_eq!(lines[2], "/usr/bin/python3.11    peak RSS of -c pass 7.3 MiB; startup -c pass 1048 ms, -I -S -c pass 800 ms");
        assert_eq!(lines[3], "ours / its: peak 1.18, startup 2.50 and 1.86");
        assert_eq!(lines[4], "the checks' peak RSS 44.7 MiB; 196.4 MiB of 238.5 MiB available after");
        // Under qemu-user the check measures nothing, and nothing is printed.
        assert!(Memory::parse("measured on a booted kernel only (qemu-test --system)").is_none());
    }

    #[test]
    fn each_package_tested_keeps_its_own_checks_record_beside_the_trees() {
        assert_eq!(checks_record(None, false), "qemu-test-checks.json");
        assert_eq!(checks_record(None, true), "qemu-test-system-checks.json");
        let minimal = Path::new("/x/crosspython-3.14.7-aarch64-minimal.tar.zst");
        let runtime = Path::new("deploy/aarch64/crosspython-3.14.7-aarch64.tar.gz");
        assert_eq!(checks_record(Some(minimal), true), "crosspython-3.14.7-aarch64-minimal.qemu-test-system-checks.json");
        assert_eq!(checks_record(Some(runtime), false), "crosspython-3.14.7-aarch64.qemu-test-checks.json");
        // An archive of another name keeps it whole.
        assert_eq!(checks_record(Some(Path::new("board-image.tar.xz")), true), "board-image.tar.xz.qemu-test-system-checks.json");
    }

    #[test]
    fn the_guests_junit_xml_comes_back_from_gzip_and_base64_or_says_what_broke() {
        use base64::Engine as _;
        let mut gz = flate2::write::GzEncoder::new(vec![], flate2::Compression::fast());
        std::io::Write::write_all(&mut gz, b"<testsuites/>").unwrap();
        let text = base64::engine::general_purpose::STANDARD.encode(gz.finish().unwrap());
        assert_eq!(guest_junit(&text).unwrap(), "<testsuites/>");
        assert_eq!(guest_junit("").unwrap_err().to_string(), "the guest printed no JUnit XML (regrtest wrote none)");
        assert_eq!(guest_junit("not base64!").unwrap_err().to_string(), "its base64 is broken");
        assert_eq!(guest_junit("aGVsbG8=").unwrap_err().to_string(), "its gzip is broken");
    }
}
