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
//!
//! `install` puts the package on a copy of the board root, then `user`
//! (qemu-user) or `booted` (a kernel under qemu-system) runs the checks
//! with the `fixtures` they need; `record` writes what they found.

mod booted;
mod fixtures;
mod install;
mod record;
#[cfg(test)]
mod tests;
mod user;

use std::path::Path;

use anyhow::{Context, Result};

use self::fixtures::Fixtures;
pub use self::user::ensure_binfmt;
use crate::engine::project::{BuildLock, Project, Target};
use crate::model::manifest::Loaded;

/// What qemu-test runs once the tree is installed over the board root.
pub enum Run<'a> {
    /// `tests/target/checks.py` (and CPython's tests with `cpython`), under
    /// qemu-user, or on a booted kernel with `system`.
    /// `resume`: an earlier report of the whole suite on the same tree to go
    /// on from (one another machine wrote, say), instead of `deploy/<arch>/`'s.
    /// `memory_mib`: a booted guest's memory, the board's RAM.
    Checks { cpython: Option<crate::deploy::regrtest::Selection>, system: bool, memory_mib: Option<u32>, minutes: Option<u64>, resume: Option<&'a Path> },
    /// One application, which must exit 0 (the `app` profile's proof),
    /// under qemu-user or, with `system`, on a booted kernel.
    App { app: &'a crate::deploy::package::App, system: bool, memory_mib: Option<u32> },
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
    let (cpython, system, memory_mib, minutes, resume, app) = match run {
        Run::Checks { cpython, system, memory_mib, minutes, resume } => (cpython, system, memory_mib, minutes, resume, None),
        Run::App { app, system, memory_mib } => (None, system, memory_mib, None, None, Some(app)),
    };
    let arch = &loaded.manifest.arch[arch_name];
    // A guest that cannot boot is refused before the board root is made.
    let boot = if system {
        let boot = loaded.manifest.system.get(arch_name).with_context(|| {
            format!(
                "{} has no [system.{arch_name}]: no kernel is known for it (the arches that boot: {})",
                loaded.path.display(),
                loaded.manifest.system.keys().cloned().collect::<Vec<_>>().join(", ")
            )
        })?;
        let whole_suite = cpython == Some(crate::deploy::regrtest::Selection::All);
        Some((boot, boot.guest_with(whole_suite, memory_mib, arch_name)?))
    } else {
        None
    };
    let board = install::onto_board(project, loaded, arch_name, target, package)?;
    drop(lock);
    if let (Some(app), Some((_, guest))) = (app, &boot) {
        return booted::app(project, loaded, arch_name, &board, app, guest);
    }
    let fixtures = Fixtures::new(loaded)?;
    let script = project.root.join("tests/target/checks.py");
    // What is tested: a later run of the whole suite on the same tree goes
    // on where this one stopped (the suite takes hours).
    let tested = match package {
        Some(archive) => crate::sources::fetch::sha256_file(archive)?,
        None => crate::engine::image::ImageNote::read(&board.source).map(|n| n.rootfs_sig).unwrap_or_default(),
    };
    let programs = programs_that_must_still_run(loaded, arch_name, target);
    if let Some((boot, guest)) = boot {
        let plan =
            cpython.map(|selection| regrtest_plan(project, loaded, arch_name, selection, &board.python, true, boot.cpus, &tested, resume)).transpose()?;
        let regrtest = plan.as_ref().map(|p| (p, tested.as_str()));
        let run = booted::GuestRun { script: &script, fixtures: fixtures.dir(), programs: &programs, regrtest, minutes, guest };
        let (mut results, report) = booted::checks(project, loaded, arch_name, &board, &run)?;
        results.extend(board.checks.iter().cloned());
        let checks = record::finish(project, arch_name, &record::checks_record(package, true), &results, true);
        if let Some(report) = report {
            record::publish(project, arch_name, &report, true)?;
        }
        return checks;
    }
    let user = user::UserRun::new(arch_name, arch, &board);
    if let Some(app) = app {
        return user.app(app);
    }
    user.checks(project, loaded, &script, fixtures.dir(), &programs, &record::checks_record(package, false))?;
    if let Some(selection) = cpython {
        let plan = regrtest_plan(project, loaded, arch_name, selection, &board.python, false, 2, &tested, resume)?;
        user.suite(project, &plan, fixtures.dir(), &tested, minutes)?;
    }
    Ok(())
}

/// The board's own programs that must still run with the package
/// installed: those of the board the run installs over, when it is one of
/// the manifest's (the arch's `test_board`, or `--board <name>`).
fn programs_that_must_still_run(loaded: &Loaded, arch_name: &str, target: &Target) -> Vec<Vec<String>> {
    match (&target.board, &target.board_name, &loaded.manifest.arch[arch_name].test_board) {
        (None, _, Some(name)) | (Some(_), Some(name), _) => loaded.manifest.board[name].programs.clone(),
        _ => vec![],
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
