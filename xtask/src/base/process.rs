//! The build's child processes: each runs in its own process group,
//! stopped with the build on SIGINT/SIGTERM, and carries the build
//! directory in its environment, so that what a killed build left running
//! is found and stopped by the next one. Lowest floor: no crate imports.

use std::collections::BTreeSet;
use std::fs;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

/// Set when SIGINT/SIGTERM arrived: no new command starts.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// Whether the build was interrupted.
pub fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}

/// Called from the signal handler thread: mark the build interrupted and
/// stop every running command.
pub fn interrupt() {
    INTERRUPTED.store(true, Ordering::SeqCst);
    stop_children();
}

/// Process groups of running commands, stopped on SIGINT/SIGTERM.
static CHILDREN: Mutex<BTreeSet<i32>> = Mutex::new(BTreeSet::new());

/// Stop every running command (called from the signal handler thread).
pub fn stop_children() {
    for &pgid in CHILDREN.lock().unwrap().iter() {
        // SAFETY: kill has no memory-safety preconditions.
        unsafe {
            libc::kill(-pgid, libc::SIGTERM);
        }
    }
}

/// Every task command carries `CROSSPYTHON_TASK_OF=<build dir>` in its
/// environment, and its children inherit it: after a build was killed
/// (SIGKILL, a lost terminal), the next one finds what it left running.
const TASK_MARK: &str = "CROSSPYTHON_TASK_OF";
static TASK_MARK_VALUE: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// Mark this process's task commands as belonging to `build_dir`.
pub fn mark_tasks_of(build_dir: &Path) {
    let _ = TASK_MARK_VALUE.set(build_dir.display().to_string());
}

/// Kill what a killed earlier build of `build_dir` left running (its
/// `make` and compilers would go on writing into the work directories
/// the new build cleans). Called with the build lock held, so no live
/// build owns them. Returns how many processes were stopped.
pub fn kill_orphans(build_dir: &Path) -> usize {
    let want = format!("{TASK_MARK}={}", build_dir.display()).into_bytes();
    let me = std::process::id().to_string();
    let orphans = || -> Vec<i32> {
        let Ok(entries) = fs::read_dir("/proc") else { return vec![] };
        entries
            .flatten()
            .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse::<i32>().ok()))
            .filter(|pid| pid.to_string() != me)
            .filter(|pid| fs::read(format!("/proc/{pid}/environ")).is_ok_and(|env| env.split(|b| *b == 0).any(|kv| kv == want.as_slice())))
            .collect()
    };
    let found = orphans();
    for &pid in &found {
        // SAFETY: kill has no memory-safety preconditions.
        unsafe {
            libc::kill(pid, libc::SIGKILL);
        }
    }
    for _ in 0..50 {
        if orphans().is_empty() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    found.len()
}

/// Start a command in its own process group, marked as this build's and
/// registered to be stopped with it; the caller removes the group from
/// `CHILDREN` when the command has ended.
fn spawn_stoppable(cmd: &mut Command) -> std::io::Result<(std::process::Child, i32)> {
    cmd.process_group(0);
    // A shell starts a background command (`cmd &`, nohup, a CI runner's
    // script) with SIGINT ignored, and children inherit that (POSIX,
    // asynchronous lists): the SIGINT that stops a command at its time
    // limit (regrtest's JUnit XML is written on it) must reach it as it
    // would a foreground one.
    // SAFETY: signal() is async-signal-safe, allowed between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            libc::signal(libc::SIGINT, libc::SIG_DFL);
            Ok(())
        });
    }
    if let Some(v) = TASK_MARK_VALUE.get() {
        cmd.env(TASK_MARK, v);
    }
    let child = cmd.spawn()?;
    let pgid = child.id() as i32;
    CHILDREN.lock().unwrap().insert(pgid);
    Ok((child, pgid))
}

/// Run a command to completion as a stoppable child (its own process
/// group, stopped with the build on SIGINT/SIGTERM).
pub fn wait_stoppable(cmd: &mut Command) -> std::io::Result<std::process::Output> {
    let (child, pgid) = spawn_stoppable(cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).stdin(Stdio::null()))?;
    let out = child.wait_with_output();
    CHILDREN.lock().unwrap().remove(&pgid);
    out
}

/// Run a command in its own, stoppable process group, marked as this
/// build's; its output goes wherever the command says.
pub fn run_stoppable(cmd: &mut Command) -> std::io::Result<ExitStatus> {
    let (mut child, pgid) = spawn_stoppable(cmd)?;
    let status = child.wait();
    CHILDREN.lock().unwrap().remove(&pgid);
    status
}

/// As [`run_stoppable`], with a time limit: at `limit` the command gets
/// SIGINT (a program that stops cleanly on it, as regrtest does, still
/// writes its results), `again` later a second SIGINT (for what it began
/// after the first, such as regrtest's re-run of failed tests), and
/// `grace` after the first its process group SIGKILL. Returns the exit
/// status and whether the limit was reached.
pub fn run_until(cmd: &mut Command, limit: std::time::Duration, again: std::time::Duration, grace: std::time::Duration) -> std::io::Result<(ExitStatus, bool)> {
    let (mut child, pid) = spawn_stoppable(cmd)?;
    let started = std::time::Instant::now();
    let mut interrupts = 0;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        let past = started.elapsed().checked_sub(limit);
        let signal = match past {
            Some(p) if p >= grace => Some((-pid, libc::SIGKILL)),
            Some(p) if interrupts == 1 && p >= again => Some((pid, libc::SIGINT)),
            Some(_) if interrupts == 0 => Some((pid, libc::SIGINT)),
            _ => None,
        };
        if let Some((to, sig)) = signal {
            // SAFETY: kill has no memory-safety preconditions.
            unsafe { libc::kill(to, sig) };
            interrupts += usize::from(sig == libc::SIGINT);
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    };
    CHILDREN.lock().unwrap().remove(&pid);
    Ok((status, interrupts > 0))
}

/// How a command is named in messages: its program's file name and
/// first arguments (`python3 -m pip download`); the whole line is in logs.
pub fn describe(cmd: &Command) -> String {
    let program = std::path::Path::new(cmd.get_program()).file_name().unwrap_or_default().to_string_lossy().into_owned();
    let args: Vec<String> = cmd.get_args().take(3).map(|a| a.to_string_lossy().into_owned()).collect();
    if args.is_empty() {
        program
    } else {
        format!("{program} {}", args.join(" "))
    }
}

/// The last `n` non-empty lines of a command's output, for errors.
pub fn last_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// The error for a command that ran and failed: what ran, how it ended,
/// and the last lines it printed.
pub fn failed(cmd: &Command, status: ExitStatus, printed: &str) -> anyhow::Error {
    let tail = last_lines(printed, 12);
    if tail.is_empty() {
        anyhow::anyhow!("`{}` exited with {status}", describe(cmd))
    } else {
        anyhow::anyhow!("`{}` exited with {status}:\n{tail}", describe(cmd))
    }
}

/// Run a command to completion, its output captured: an error if it
/// cannot start (naming the program). Its exit status is the caller's.
pub fn output(cmd: &mut Command) -> anyhow::Result<std::process::Output> {
    cmd.stdin(Stdio::null()).output().map_err(|e| anyhow::anyhow!("cannot run `{}`: {e}", describe(cmd)))
}

/// As [`output`], and an exit other than success is an error that names
/// the command and shows the last lines it printed ([`failed`]).
pub fn checked(cmd: &mut Command) -> anyhow::Result<std::process::Output> {
    let out = output(cmd)?;
    if !out.status.success() {
        let printed = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        return Err(failed(cmd, out.status, &printed));
    }
    Ok(out)
}

/// One word for a POSIX shell, quoted where it must be.
pub fn shell_quote(s: &str) -> String {
    if !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || "/-_.=:,+@%".contains(c)) {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

/// `argv` as one POSIX shell command line.
pub fn shell_words(argv: &[String]) -> String {
    argv.iter().map(|a| shell_quote(a)).collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_command_is_named_with_its_status_and_last_lines() {
        let err = checked(Command::new("sh").args(["-c", "echo one; echo two >&2; exit 3"])).unwrap_err().to_string();
        assert_eq!(err, "`sh -c echo one; echo two >&2; exit 3` exited with exit status: 3:\none\ntwo");
        let err = checked(&mut Command::new("/nonexistent/tool")).unwrap_err().to_string();
        assert!(err.starts_with("cannot run `tool`: No such file or directory"), "{err}");
        assert_eq!(String::from_utf8(checked(Command::new("echo").arg("ok")).unwrap().stdout).unwrap(), "ok\n");
        assert_eq!(last_lines("a\n\nb\nc\n", 2), "b\nc");
    }

    #[test]
    fn a_command_past_its_time_limit_gets_sigint_then_sigkill_if_it_ignores_it() {
        use std::os::unix::process::ExitStatusExt;
        use std::time::Duration;
        let (ms, secs) = (Duration::from_millis, Duration::from_secs);
        let (status, stopped) = run_until(Command::new("sleep").arg("30"), ms(300), secs(30), secs(30)).unwrap();
        assert_eq!((status.signal(), stopped), (Some(libc::SIGINT), true));
        // A program that goes on after the first SIGINT gets a second.
        let second = "trap 'trap - INT' INT; while :; do :; done";
        let (status, _) = run_until(Command::new("sh").args(["-c", second]), ms(300), ms(300), secs(30)).unwrap();
        assert_eq!(status.signal(), Some(libc::SIGINT));
        let stubborn = "trap '' INT; sleep 30";
        let (status, stopped) = run_until(Command::new("sh").args(["-c", stubborn]), ms(300), ms(100), ms(600)).unwrap();
        assert_eq!((status.signal(), stopped), (Some(libc::SIGKILL), true));
        let (status, stopped) = run_until(&mut Command::new("true"), secs(30), secs(30), secs(30)).unwrap();
        assert!(status.success() && !stopped);
    }

    /// Started from a shell's background job (SIGINT ignored, and
    /// inherited), a command still stops at its limit on SIGINT, as
    /// regrtest must to write its report.
    #[test]
    fn a_command_started_where_sigint_is_ignored_still_gets_it_at_its_limit() {
        use std::os::unix::process::{CommandExt, ExitStatusExt};
        use std::time::Duration;
        // What a background shell does, in the child alone: the test
        // process's own disposition (shared by the tests' threads) stays.
        let mut cmd = Command::new("sleep");
        cmd.arg("30");
        // SAFETY: signal() is async-signal-safe, allowed between fork and exec.
        unsafe {
            cmd.pre_exec(|| {
                libc::signal(libc::SIGINT, libc::SIG_IGN);
                Ok(())
            });
        }
        let (status, stopped) = run_until(&mut cmd, Duration::from_millis(300), Duration::from_secs(30), Duration::from_secs(30)).unwrap();
        assert_eq!((status.signal(), stopped), (Some(libc::SIGINT), true));
    }

    #[test]
    fn processes_left_by_a_killed_build_of_this_directory_are_stopped_and_others_are_not() {
        let t = tempfile::tempdir().unwrap();
        let mut mine = Command::new("sleep").arg("60").env(TASK_MARK, t.path()).spawn().unwrap();
        let mut other = Command::new("sleep").arg("60").env(TASK_MARK, t.path().join("other")).spawn().unwrap();
        // Until the children have exec'd, /proc shows this process's environment.
        for child in [&mine, &other] {
            let environ = format!("/proc/{}/environ", child.id());
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
            while !std::fs::read(&environ).unwrap_or_default().windows(TASK_MARK.len()).any(|w| w == TASK_MARK.as_bytes()) {
                assert!(std::time::Instant::now() < deadline, "the child never exec'd");
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
        }
        assert_eq!(kill_orphans(t.path()), 1);
        assert!(mine.wait().unwrap().code().is_none(), "killed by a signal");
        assert!(other.try_wait().unwrap().is_none(), "another build directory's process keeps running");
        other.kill().unwrap();
        other.wait().unwrap();
    }
}
