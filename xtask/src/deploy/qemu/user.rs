//! The checks under qemu-user, over the board root with the package: the
//! kernel starts the target's children through binfmt_misc and
//! `QEMU_LD_PREFIX` names the root, so that children inherit it.

use std::fs;
use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};

use super::install::OnBoard;
use super::record::{self, CheckResult};
use crate::engine::project::Project;
use crate::machine::runner::TargetRunner;
use crate::model::manifest::{Arch, Loaded};

/// One qemu-user run over the board root with the package.
pub(super) struct UserRun<'a> {
    arch_name: &'a str,
    arch: &'a Arch,
    board: &'a OnBoard,
    runner: TargetRunner,
    /// Whether the kernel starts target programs through qemu (binfmt_misc):
    /// without it the target interpreter's children cannot start.
    children: bool,
}

impl<'a> UserRun<'a> {
    pub(super) fn new(arch_name: &'a str, arch: &'a Arch, board: &'a OnBoard) -> UserRun<'a> {
        let binfmt = ensure_binfmt(arch);
        if let Err(why) = &binfmt {
            eprintln!("note: child processes of the target interpreter cannot start: {why}");
        }
        UserRun { arch_name, arch, board, runner: TargetRunner::new(arch, &board.tree), children: binfmt.is_ok() }
    }

    /// `tests/target/checks.py`, then the board's side and its own
    /// programs, recorded as `record_name` in `deploy/<arch>/`.
    pub(super) fn checks(&self, project: &Project, loaded: &Loaded, script: &Path, fixtures: &Path, programs: &[Vec<String>], record_name: &str) -> Result<()> {
        let (arch, arch_name, board) = (self.arch, self.arch_name, self.board);
        let mut cmd = self.runner.command(&board.python, self.children);
        // -I ignores PYTHON* variables, so -B says it again.
        cmd.arg("-I").arg("-B").arg(script);
        cmd.env("PATH", "/usr/bin:/bin")
            .env("HOME", fixtures)
            .env("LC_ALL", "C.UTF-8")
            // Testing must not change the tree: no __pycache__ written into it.
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .env("CROSSPYTHON_MACHINE", &arch.machine)
            .env("CROSSPYTHON_CHILDREN", if self.children { "1" } else { "0" })
            .env("CROSSPYTHON_TLS_CERT", fixtures.join("cert.pem"))
            .env("CROSSPYTHON_TLS_KEY", fixtures.join("key.pem"))
            .env("CROSSPYTHON_PACKAGES", loaded.python_requirements()?.join(" "))
            .env("CROSSPYTHON_PACKAGE_CHECKS", fixtures.join(super::fixtures::PACKAGE_CHECKS))
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
        results.extend(board.checks.iter().cloned());
        results.extend(run_board_programs(arch, &board.tree, programs, self.children)?);
        if !out.status.success() && from_script == 0 {
            bail!("the target interpreter failed to run ({}); nothing was checked", out.status);
        }
        record::finish(project, arch_name, record_name, &results, out.status.success())?;
        println!("{arch_name}: {}; the board has {}", board.needs, board.board_libc);
        Ok(())
    }

    /// CPython's tests of `plan`, stopped after `minutes`; the report goes
    /// to `deploy/<arch>/`.
    pub(super) fn suite(&self, project: &Project, plan: &crate::deploy::regrtest::Plan, fixtures: &Path, tested: &str, minutes: Option<u64>) -> Result<()> {
        let arch_name = self.arch_name;
        let env: Vec<(&str, String)> = vec![
            ("PATH", "/usr/bin:/bin".into()),
            ("HOME", fixtures.display().to_string()),
            ("LC_ALL", "C.UTF-8".into()),
            // No PYTHONDONTWRITEBYTECODE: the tests' own children must write
            // byte code (test_compileall's hardlink tests check that they do),
            // and the tree under test is a copy on the board root.
        ];
        let env: Vec<(&str, String)> = env.into_iter().chain(self.runner.env()).collect();
        let log = project.build_dir.join(arch_name).join("qemu-user").join("log.regrtest");
        let limit = minutes.map(|m| std::time::Duration::from_secs(m * 60));
        let report = crate::deploy::regrtest::run(plan, &self.board.python, &env, tested, limit, &log)?;
        record::publish(project, arch_name, &report, false)?;
        let left = report.modules.iter().filter(|m| m.result == "not run").count();
        if left > 0 {
            bail!("{left} CPython test files were not run on {arch_name} (log: {}); the next run on this tree resumes", log.display());
        }
        Ok(())
    }

    /// Run an application from the installed tree alone (copied into the
    /// board root, as a user would put it there): it passes when it exits 0.
    pub(super) fn app(&self, app: &crate::deploy::package::App) -> Result<()> {
        let (runner, tree, python, binfmt, arch_name) = (&self.runner, &self.board.tree, &self.board.python, self.children, self.arch_name);
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
}

/// The board's own programs, run after the install: each must still work.
fn run_board_programs(arch: &Arch, root: &Path, programs: &[Vec<String>], binfmt: bool) -> Result<Vec<CheckResult>> {
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
