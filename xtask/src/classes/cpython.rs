//! CPython: autotools configure, then `make`, then a completeness check
//! like Yocto's `check_build_completeness.py`: an optional stdlib module
//! that configure could not build fails the build instead of going missing
//! on the board. A module the recipe does not want is switched off by name
//! in its configure arguments (`py_cv_module__tkinter=n/a`), CPython's own
//! switch, so the manifest says what the board will not have.
//!
//! After install, the PEP 739 `build-details.json` (3.14 on) is made true
//! for the target and relocatable, as python-build-standalone does: in a
//! cross build CPython writes the build python's ABI flags and extension
//! suffixes into it (python/cpython#136267), absolute paths, and a
//! platform named after configure's host triplet.

use std::path::Path;

use anyhow::{bail, Context, Result};
use serde_json::Value;

use super::base::{Builtin, Ctx, Step};
use super::{autotools, make};

/// Bumped when the steps below change what CPython's build produces.
pub const VERSION: &str = "cpython-2";

/// configure reads `Modules/Setup.local` (makesetup: the first rule for a
/// module wins), so the built-in modules are named before it runs.
pub fn configure(ctx: &Ctx) -> Result<Vec<Step>> {
    let mut steps = vec![];
    if !ctx.node.build.builtin_modules.is_empty() {
        steps.push(Step::Builtin(Builtin::WriteSetupLocal));
    }
    steps.extend(autotools::configure(ctx)?);
    Ok(steps)
}

/// `Modules/Setup.local` that links `modules` into the interpreter, each
/// with the sources of its rule in the source's `Modules/Setup.stdlib.in`
/// (`@MODULE__JSON_TRUE@_json _json.c`) and, as there, configure's
/// `MODULE_<NAME>_CFLAGS`/`_LDFLAGS`: the same module, only static, as
/// Debian's python3.X and python-build-standalone build theirs.
pub fn setup_local(setup_stdlib_in: &str, modules: &[String]) -> Result<String, String> {
    let rules: Vec<(&str, &str)> = setup_stdlib_in
        .lines()
        .filter_map(|l| {
            let rule = l.strip_prefix('@')?.split_once('@')?.1;
            Some((rule.split_whitespace().next()?, rule))
        })
        .collect();
    let mut out = String::from("# Written by crosspython from the recipe's builtin_modules.\n*static*\n");
    for m in modules {
        let Some((_, rule)) = rules.iter().find(|(name, _)| name == m) else {
            let mut known: Vec<&str> = rules.iter().map(|(n, _)| *n).collect();
            known.sort();
            return Err(format!("`{m}` has no rule in Modules/Setup.stdlib.in; modules that can be built in: {}", known.join(", ")));
        };
        out.push_str(rule);
        out.push('\n');
    }
    Ok(out)
}

pub fn compile(ctx: &Ctx) -> Result<Vec<Step>> {
    let mut steps = make::compile(ctx)?;
    steps.push(Step::Builtin(Builtin::CheckCpythonModules));
    Ok(steps)
}

pub fn install(ctx: &Ctx) -> Result<Vec<Step>> {
    let mut steps = make::install(ctx)?;
    if ctx.target.is_some() {
        steps.push(Step::Builtin(Builtin::FixBuildDetails));
    }
    Ok(steps)
}

/// `NAME=\tvalue` assignments of CPython's Makefile, unexpanded.
fn makefile_var<'a>(makefile: &'a str, name: &str) -> Option<&'a str> {
    makefile.lines().find_map(|l| l.strip_prefix(name)?.strip_prefix('=')).map(str::trim)
}

/// Rewrite `<image><prefix>/lib/python3.X*/build-details.json`: the
/// target's ABI flags and extension suffixes from the build's Makefile,
/// `base_prefix` relative to the file and every other path relative to
/// `base_prefix` (both as PEP 739 defines relative paths), and the
/// platform the board's `sysconfig.get_platform()` says: `linux-` and its
/// kernel's machine (`machine`, the arch's `platform.machine()`, as its
/// wheels are tagged). configure names every ARM `linux-arm` and MIPS
/// little-endian `linux-mipsel` (`_host_ident` in configure.ac), which no
/// board's uname says (`armv7l`, `mips`); the test suite's
/// `test_build_details.test_platform` compares the two. None when the
/// version writes no such file (before 3.14).
pub fn fix_build_details(build: &Path, image: &Path, prefix: &str, machine: &str) -> Result<Option<String>> {
    let lib = image.join(prefix.trim_start_matches('/')).join("lib");
    let Some(file) = std::fs::read_dir(&lib).into_iter().flatten().flatten().map(|e| e.path().join("build-details.json")).find(|p| p.is_file()) else {
        return Ok(None);
    };
    let makefile = std::fs::read_to_string(build.join("Makefile")).with_context(|| format!("cannot read {}/Makefile", build.display()))?;
    let var = |name: &str| makefile_var(&makefile, name).with_context(|| format!("{}/Makefile has no {name}=", build.display()));
    let (ext_suffix, shlib_suffix, abiflags) = (var("EXT_SUFFIX")?, var("SHLIB_SUFFIX")?, var("ABIFLAGS")?);
    let text = std::fs::read_to_string(&file)?;
    let mut d: Value = serde_json::from_str(&text).with_context(|| format!("{}: not JSON", file.display()))?;
    d["abi"]["flags"] = abiflags.chars().map(|c| Value::String(c.to_string())).collect();
    if d["abi"].get("extension_suffix").is_some() {
        d["abi"]["extension_suffix"] = ext_suffix.into();
    }
    d["suffixes"]["extensions"] = serde_json::json!([ext_suffix, format!(".abi3{shlib_suffix}"), shlib_suffix]);
    if d["platform"].as_str().is_some_and(|p| p.starts_with("linux-")) {
        d["platform"] = format!("linux-{machine}").into();
    }
    // The file lives in <prefix>/lib/python3.X/: base_prefix is two up.
    let base = d["base_prefix"].as_str().context("build-details.json has no base_prefix")?.to_string();
    if base != prefix {
        bail!("{}: base_prefix is {base}, the recipe's prefix is {prefix}", file.display());
    }
    d["base_prefix"] = "../..".into();
    relative_to(&mut d, &base, "base_prefix")?;
    let out = serde_json::to_string_pretty(&d)? + "\n";
    std::fs::write(&file, &out)?;
    Ok(Some(format!("{}: target ABI ({ext_suffix}), paths relative", file.display())))
}

/// Every absolute path string below `v` made relative to `base`; one
/// outside `base` (a build-machine path) is an error.
fn relative_to(v: &mut Value, base: &str, at: &str) -> Result<()> {
    match v {
        Value::String(s) if s.starts_with('/') => {
            let rel = s
                .strip_prefix(base)
                .and_then(|r| r.strip_prefix('/'))
                .with_context(|| format!("build-details.json: {at} is {s}, outside the prefix {base}"))?;
            *s = rel.to_string();
        }
        Value::Array(items) => items.iter_mut().try_for_each(|i| relative_to(i, base, at))?,
        Value::Object(map) => map.iter_mut().try_for_each(|(k, i)| relative_to(i, base, k))?,
        _ => {}
    }
    Ok(())
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

/// The modules CPython's build itself lists under "Failed to build these
/// modules:" (3.11's setup.py and later check_extension_modules.py):
/// configure found their libraries, and compiling or linking failed.
pub fn failed_to_build(compile_log: &str) -> Vec<String> {
    let mut out = vec![];
    let mut lines = compile_log.lines();
    while let Some(line) = lines.next() {
        if line.trim_end().ends_with("Failed to build these modules:") {
            for l in lines.by_ref() {
                if l.trim().is_empty() {
                    break;
                }
                out.extend(l.split_whitespace().map(str::to_string));
            }
        }
    }
    out
}

/// Fail when a module is missing (configure found no library for it), did
/// not build (`compile_log` says so), or was built but failed its import
/// check (`*_failed.so`).
pub fn check_modules(build: &Path, compile_log: &str) -> Result<String> {
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
    let broken = failed_to_build(compile_log);
    if !broken.is_empty() {
        bail!("CPython's build failed to build these modules: {} (their compile or link errors are in the log above)", broken.join(", "));
    }
    let built = states.iter().filter(|(_, s)| s == "yes").count();
    let off: Vec<&str> = states.iter().filter(|(_, s)| s != "yes").map(|(n, _)| n.as_str()).collect();
    Ok(format!("{built} optional modules built; off by the recipe or not for this platform: {}", off.join(", ")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_modules_take_their_rules_from_setup_stdlib_in() {
        let stdlib = "# comment\n@MODULE__JSON_TRUE@_json _json.c\n@MODULE_ZLIB_TRUE@zlib zlibmodule.c\n@MODULE__CTYPES_TRUE@_ctypes _ctypes/_ctypes.c _ctypes/callbacks.c\n";
        let text = setup_local(stdlib, &["zlib".into(), "_json".into()]).unwrap();
        assert_eq!(text.lines().skip(1).collect::<Vec<_>>(), ["*static*", "zlib zlibmodule.c", "_json _json.c"]);
        let err = setup_local(stdlib, &["_jsn".into()]).unwrap_err();
        assert!(err.contains("`_jsn`") && err.contains("_ctypes, _json, zlib"), "{err}");
    }

    /// What CPython 3.14.7 writes when an x86-64 build python builds for aarch64.
    const CROSS_DETAILS: &str = r#"{"schema_version": "1.0", "base_prefix": "/usr/local", "base_interpreter": "/usr/local/bin/python3.14",
      "platform": "linux-aarch64", "language": {"version": "3.14"}, "implementation": {"name": "cpython", "_multiarch": "aarch64-linux-gnu"},
      "abi": {"flags": [], "extension_suffix": ".cpython-314-aarch64-linux-gnu.so", "stable_abi_suffix": ".abi3.so"},
      "suffixes": {"source": [".py"], "extensions": [".cpython-314-x86_64-linux-gnu.so", ".abi3.so", ".so"]},
      "libpython": {"dynamic": "/usr/local/lib/libpython3.14.so.1.0", "link_extensions": false},
      "c_api": {"headers": "/usr/local/include/python3.14", "pkgconfig_path": "/usr/local/lib/pkgconfig"}}"#;

    fn image_with(details: &str, makefile: &str) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("image/usr/local/lib/python3.14t")).unwrap();
        std::fs::write(dir.path().join("image/usr/local/lib/python3.14t/build-details.json"), details).unwrap();
        std::fs::create_dir_all(dir.path().join("b")).unwrap();
        std::fs::write(dir.path().join("b/Makefile"), makefile).unwrap();
        dir
    }

    #[test]
    fn build_details_get_the_target_abi_and_paths_relative_to_where_the_file_is() {
        let dir = image_with(CROSS_DETAILS, "ABIFLAGS=\tt\nSHLIB_SUFFIX=\t.so\nEXT_SUFFIX=\t.cpython-314t-aarch64-linux-gnu.so\n");
        fix_build_details(&dir.path().join("b"), &dir.path().join("image"), "/usr/local", "aarch64").unwrap().unwrap();
        let d: Value = serde_json::from_str(&std::fs::read_to_string(dir.path().join("image/usr/local/lib/python3.14t/build-details.json")).unwrap()).unwrap();
        assert_eq!(d["abi"]["flags"], serde_json::json!(["t"]));
        assert_eq!(d["suffixes"]["extensions"], serde_json::json!([".cpython-314t-aarch64-linux-gnu.so", ".abi3.so", ".so"]));
        assert_eq!(d["base_prefix"], "../..");
        assert_eq!(d["base_interpreter"], "bin/python3.14");
        assert_eq!(d["libpython"]["dynamic"], "lib/libpython3.14.so.1.0");
        assert_eq!(d["c_api"]["headers"], "include/python3.14");
    }

    /// An armhf build says `linux-arm` (configure's name for every ARM);
    /// the board's `sysconfig.get_platform()` says `linux-armv7l`, as
    /// its wheels are tagged.
    #[test]
    fn build_details_name_the_platform_as_the_board_does() {
        let details = CROSS_DETAILS.replace("\"linux-aarch64\"", "\"linux-arm\"");
        let dir = image_with(&details, "ABIFLAGS=\nSHLIB_SUFFIX=\t.so\nEXT_SUFFIX=\t.cpython-314-arm-linux-gnueabihf.so\n");
        fix_build_details(&dir.path().join("b"), &dir.path().join("image"), "/usr/local", "armv7l").unwrap().unwrap();
        let d: Value = serde_json::from_str(&std::fs::read_to_string(dir.path().join("image/usr/local/lib/python3.14t/build-details.json")).unwrap()).unwrap();
        assert_eq!(d["platform"], "linux-armv7l");
    }

    #[test]
    fn a_build_machine_path_in_build_details_is_refused() {
        let details = CROSS_DETAILS.replace("\"/usr/local/lib/pkgconfig\"", "\"/work/build/aarch64/lib/pkgconfig\"");
        let dir = image_with(&details, "ABIFLAGS=\nSHLIB_SUFFIX=\t.so\nEXT_SUFFIX=\t.cpython-314-aarch64-linux-gnu.so\n");
        let err = fix_build_details(&dir.path().join("b"), &dir.path().join("image"), "/usr/local", "aarch64").unwrap_err().to_string();
        assert!(err.contains("pkgconfig_path is /work/build/aarch64/lib/pkgconfig, outside the prefix /usr/local"), "{err}");
    }

    const MAKEFILE: &str = "CC= cc\nMODULE__CTYPES_STATE=yes\nMODULE__TKINTER_STATE=missing\nMODULE__SCPROXY_STATE=n/a\nMODULE__GDBM_STATE=n/a\n";

    #[test]
    fn a_module_configure_could_not_build_fails_the_build_and_names_the_switch() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("Makefile"), MAKEFILE).unwrap();
        let err = check_modules(dir.path(), "").unwrap_err().to_string();
        assert!(err.contains("optional modules: _tkinter\n"), "{err}");
        assert!(err.contains("\"py_cv_module__tkinter=n/a\""), "{err}");
    }

    #[test]
    fn modules_switched_off_by_name_are_reported_not_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("Makefile"), MAKEFILE.replace("TKINTER_STATE=missing", "TKINTER_STATE=n/a")).unwrap();
        let ok = check_modules(dir.path(), "").unwrap();
        assert_eq!(ok, "1 optional modules built; off by the recipe or not for this platform: _tkinter, _scproxy, _gdbm");
    }

    #[test]
    fn a_module_the_build_failed_to_build_fails_the_build() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("Makefile"), "MODULE__CURSES_STATE=yes\n").unwrap();
        let log = "running build\nFailed to build these modules:\n_curses               _curses_panel\n\nrunning build_scripts\n";
        let err = check_modules(dir.path(), log).unwrap_err().to_string();
        assert!(err.contains("failed to build these modules: _curses, _curses_panel"), "{err}");
    }

    #[test]
    fn a_module_that_failed_its_import_check_fails_the_build() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("Makefile"), "MODULE__CTYPES_STATE=yes\n").unwrap();
        std::fs::write(dir.path().join("pybuilddir.txt"), "build/lib.linux-mips-3.14\n").unwrap();
        std::fs::create_dir_all(dir.path().join("build/lib.linux-mips-3.14")).unwrap();
        std::fs::write(dir.path().join("build/lib.linux-mips-3.14/_ctypes.cpython-314-mipsel-linux-gnu_failed.so"), "").unwrap();
        let err = check_modules(dir.path(), "").unwrap_err().to_string();
        assert!(err.contains("_ctypes.cpython-314-mipsel-linux-gnu_failed.so"), "{err}");
    }
}
