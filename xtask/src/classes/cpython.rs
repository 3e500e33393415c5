//! CPython: autotools configure, then `make`, then a completeness check
//! like Yocto's `check_build_completeness.py`: an optional stdlib module
//! that configure could not build fails the build instead of going missing
//! on the board. A module the recipe does not want is switched off by name
//! in its configure arguments (`py_cv_module__tkinter=n/a`), CPython's own
//! switch, so the manifest says what the board will not have.

use std::path::Path;

use anyhow::{bail, Context, Result};

use super::{make, Ctx, Step, Verify};

pub fn compile(ctx: &Ctx) -> Result<Vec<Step>> {
    let mut steps = make::compile(ctx)?;
    steps.push(Step::Verify(Verify::CpythonModules));
    Ok(steps)
}

/// The state configure gave each stdlib module (`MODULE__CTYPES_STATE=yes`
/// in the Makefile), as (module, state): yes, missing, disabled or n/a.
pub fn module_states(makefile: &str) -> Vec<(String, String)> {
    makefile
        .lines()
        .filter_map(|l| l.strip_prefix("MODULE_")?.split_once("_STATE="))
        .map(|(name, state)| (name.to_ascii_lowercase(), state.trim().to_string()))
        .collect()
}

/// Fail when a module is missing (configure found no library for it) or
/// was built but failed its import check (`*_failed.so`).
pub fn check_modules(build: &Path) -> Result<String> {
    let makefile = build.join("Makefile");
    let text = std::fs::read_to_string(&makefile).with_context(|| format!("cannot read {}", makefile.display()))?;
    let states = module_states(&text);
    if states.is_empty() {
        bail!("{}: no MODULE_*_STATE lines; is this CPython 3.11 or later?", makefile.display());
    }
    let missing: Vec<&str> = states.iter().filter(|(_, s)| s == "missing").map(|(n, _)| n.as_str()).collect();
    let mut failed = vec![];
    if let Ok(dir) = std::fs::read_to_string(build.join("pybuilddir.txt")) {
        for e in std::fs::read_dir(build.join(dir.trim())).into_iter().flatten().flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.contains("_failed.") {
                failed.push(name);
            }
        }
    }
    if !missing.is_empty() {
        let switches: Vec<String> = missing.iter().map(|m| format!("\"py_cv_module_{m}=n/a\"")).collect();
        bail!(
            "CPython's configure found no way to build these optional modules: {}\n\
             Give each what it needs (a recipe in `depends`), or switch it off in the recipe's `configure`: {}",
            missing.join(", "),
            switches.join(", ")
        );
    }
    if !failed.is_empty() {
        bail!("these modules were built but failed CPython's import check: {}", failed.join(", "));
    }
    let built = states.iter().filter(|(_, s)| s == "yes").count();
    let off: Vec<&str> = states.iter().filter(|(_, s)| s != "yes").map(|(n, _)| n.as_str()).collect();
    Ok(format!("{built} optional modules built; off by the recipe or not for this platform: {}", off.join(", ")))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAKEFILE: &str = "CC= cc\nMODULE__CTYPES_STATE=yes\nMODULE__TKINTER_STATE=missing\nMODULE__SCPROXY_STATE=n/a\nMODULE__GDBM_STATE=n/a\n";

    #[test]
    fn a_module_configure_could_not_build_fails_the_build_and_names_the_switch() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("Makefile"), MAKEFILE).unwrap();
        let err = check_modules(dir.path()).unwrap_err().to_string();
        assert!(err.contains("optional modules: _tkinter\n"), "{err}");
        assert!(err.contains("\"py_cv_module__tkinter=n/a\""), "{err}");
    }

    #[test]
    fn modules_switched_off_by_name_are_reported_not_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("Makefile"), MAKEFILE.replace("TKINTER_STATE=missing", "TKINTER_STATE=n/a")).unwrap();
        let ok = check_modules(dir.path()).unwrap();
        assert_eq!(ok, "1 optional modules built; off by the recipe or not for this platform: _tkinter, _scproxy, _gdbm");
    }

    #[test]
    fn a_module_that_failed_its_import_check_fails_the_build() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("Makefile"), "MODULE__CTYPES_STATE=yes\n").unwrap();
        std::fs::write(dir.path().join("pybuilddir.txt"), "build/lib.linux-mips-3.14\n").unwrap();
        std::fs::create_dir_all(dir.path().join("build/lib.linux-mips-3.14")).unwrap();
        std::fs::write(dir.path().join("build/lib.linux-mips-3.14/_ctypes.cpython-314-mipsel-linux-gnu_failed.so"), "").unwrap();
        let err = check_modules(dir.path()).unwrap_err().to_string();
        assert!(err.contains("_ctypes.cpython-314-mipsel-linux-gnu_failed.so"), "{err}");
    }
}
