//! The build side: a venv of the target's Python version with the
//! packaging tools, and how its commands run (logged, stoppable).

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

/// The build-side environment: the native python of the target's version
/// and a venv beside it with the packaging tools.
pub struct BuildPython {
    pub venv: PathBuf,
}

/// Packages the build venv needs, pinned so that signatures mean something.
const BUILD_TOOLS: [&str; 2] = ["installer==0.7.0", "crossenv==1.6.2"];

impl BuildPython {
    /// Create (once) the venv at `dir` from `native_python`.
    pub fn ensure(native_python: &Path, dir: &Path, log: &mut String) -> Result<BuildPython> {
        let stamp = dir.join(".crosspython-ready");
        let wanted = format!("{}\n{}\n", native_python.display(), BUILD_TOOLS.join("\n"));
        if fs::read_to_string(&stamp).ok().as_deref() == Some(wanted.as_str()) {
            return Ok(BuildPython { venv: dir.to_path_buf() });
        }
        crate::base::sysroot::remove(dir)?;
        run(Command::new(native_python).args(["-m", "venv"]).arg(dir), log).with_context(|| format!("cannot create the build venv {}", dir.display()))?;
        run(Command::new(dir.join("bin/python")).args(["-m", "pip", "install", "--quiet"]).args(BUILD_TOOLS), log)
            .context("cannot install the build tools into the build venv (is PyPI reachable?)")?;
        fs::write(&stamp, wanted)?;
        Ok(BuildPython { venv: dir.to_path_buf() })
    }

    pub(super) fn python(&self) -> PathBuf {
        self.venv.join("bin/python")
    }
}

pub(super) fn run(cmd: &mut Command, log: &mut String) -> Result<()> {
    let _ = writeln!(log, "+ {cmd:?}");
    if crate::base::process::interrupted() {
        bail!("interrupted");
    }
    let out = crate::base::process::wait_stoppable(cmd).with_context(|| format!("cannot run {cmd:?}"))?;
    let output = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    log.push_str(&output);
    if !out.status.success() {
        // What ran (`python -m pip wheel`), and what it said last; the
        // full command line and environment are in the log.
        return Err(crate::base::process::failed(cmd, out.status, &output));
    }
    Ok(())
}
