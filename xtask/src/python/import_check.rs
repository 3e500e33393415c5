//! No silently broken install: every top-level module of every
//! distribution in a site-packages is imported by the target interpreter
//! under qemu before the install counts (a wheel built from an sdist
//! without its compiled part, `bcrypt` as `py3-none-any`, fails here and
//! not on the board). Used by `pip` for what it stages and by the image
//! for the distro's packages.

use std::fmt::Write as _;
use std::fs;
use std::path::Path;

use anyhow::{bail, Result};

/// Import each distribution's top-level modules from `site` with `python`
/// (a target program) under `runner`; `library_path` is where the
/// libraries are until run paths are set. An error names the
/// distribution, the module and the exception.
pub fn run(runner: &crate::machine::runner::TargetRunner, python: &Path, site: &Path, library_path: &str, arch_name: &str, log: &mut String) -> Result<()> {
    let mut wanted: Vec<(String, String)> = vec![];
    let mut dists: Vec<_> = fs::read_dir(site).into_iter().flatten().flatten().collect();
    dists.sort_by_key(|e| e.file_name());
    for e in dists {
        let name = e.file_name().to_string_lossy().into_owned();
        if let Some(dist) = name.strip_suffix(".dist-info") {
            let record = fs::read_to_string(e.path().join("RECORD")).unwrap_or_default();
            wanted.extend(top_level_modules(&record).into_iter().map(|m| (dist.to_string(), m)));
        }
    }
    if wanted.is_empty() {
        return Ok(());
    }
    let script = format!(
        "import importlib, json\nfor dist, mod in {}:\n    try:\n        importlib.import_module(mod)\n    except Exception as e:\n        print(json.dumps([dist, mod, f'{{type(e).__name__}}: {{e}}']))\n",
        serde_json::to_string(&wanted)?
    );
    let mut cmd = runner.command(python, false);
    cmd.arg("-c").arg(&script).env("PYTHONPATH", site).env("LD_LIBRARY_PATH", library_path).env("PYTHONDONTWRITEBYTECODE", "1").env("LC_ALL", "C.UTF-8");
    let out = crate::base::process::output(&mut cmd)?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    writeln!(log, "import check of {} modules:\n{stdout}{}", wanted.len(), String::from_utf8_lossy(&out.stderr))?;
    if !out.status.success() {
        return Err(crate::base::process::failed(&cmd, out.status, &String::from_utf8_lossy(&out.stderr))
            .context("the target interpreter could not run the import check"));
    }
    let failed: Vec<String> = stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<(String, String, String)>(l).ok())
        .map(|(dist, module, why)| format!("{dist}: `import {module}` fails on the target: {why}"))
        .collect();
    if !failed.is_empty() {
        bail!("installed, but not importable on {arch_name}:\n  {}", failed.join("\n  "));
    }
    Ok(())
}

/// The top-level modules a wheel's RECORD installs: packages and modules
/// at the top of site-packages (`numpy`, `six`, `_cffi_backend`), not its
/// dist-info, data, byte code or scripts.
pub fn top_level_modules(record: &str) -> Vec<String> {
    let mut out: Vec<String> = vec![];
    for line in record.lines() {
        let path = line.split(',').next().unwrap_or_default();
        let mut parts = path.split('/');
        let first = parts.next().unwrap_or_default();
        let nested = parts.next().is_some();
        let module = if nested {
            (!first.ends_with(".dist-info") && !first.ends_with(".data") && first != "__pycache__" && first != "..").then(|| first.to_string())
        } else if let Some(m) = first.strip_suffix(".py") {
            Some(m.to_string())
        } else if first.ends_with(".so") {
            first.split('.').next().map(str::to_string)
        } else {
            None
        };
        if let Some(m) = module.filter(|m| !m.is_empty() && m.chars().all(|c| c.is_alphanumeric() || c == '_')) {
            if !out.contains(&m) {
                out.push(m);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_top_level_modules_of_a_wheel_come_from_its_record() {
        let record = "\
numpy/__init__.py,sha256=x,100
numpy/_core/_multiarray_umath.cpython-314-aarch64-linux-gnu.so,sha256=y,200
numpy-2.5.5.dist-info/RECORD,,
numpy.libs/libgfortran.so.5,sha256=z,300
six.py,sha256=a,10
_cffi_backend.cpython-314-aarch64-linux-gnu.so,sha256=b,20
__pycache__/six.cpython-314.pyc,,
../../../bin/f2py,sha256=c,30
demo-1.0.data/scripts/x,sha256=d,1
";
        assert_eq!(top_level_modules(record), ["numpy", "six", "_cffi_backend"], "not numpy.libs, the dist-info, byte code, scripts or data");
    }

    /// The build machine's own python under qemu-user for its own arch
    /// stands in for a target interpreter.
    #[test]
    fn a_distribution_that_does_not_import_fails_the_install_and_is_named() {
        let Ok(qemu) = which::which("qemu-x86_64").or_else(|_| which::which("qemu-x86_64-static")) else { return };
        if !cfg!(target_arch = "x86_64") {
            return;
        }
        let site = tempfile::tempdir().unwrap();
        let write = |rel: &str, text: &str| {
            let p = site.path().join(rel);
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            fs::write(p, text).unwrap();
        };
        write("good-1.0.dist-info/RECORD", "good.py,,\ngood-1.0.dist-info/RECORD,,\n");
        write("good.py", "");
        // A wheel built from an sdist without its compiled part.
        write("bcrypt-5.0.0.dist-info/RECORD", "bcrypt/__init__.py,,\n");
        write("bcrypt/__init__.py", "from . import _bcrypt\n");
        let runner = crate::machine::runner::TargetRunner { qemu: qemu.display().to_string(), cpu: None, root: "/".into() };
        // Debian's, an ELF program (a pyenv shim is a script qemu cannot run).
        let python = std::path::PathBuf::from("/usr/bin/python3");
        let mut log = String::new();
        let err = format!("{:#}", run(&runner, &python, site.path(), "", "x86_64", &mut log).unwrap_err());
        assert!(err.starts_with("installed, but not importable on x86_64:"), "{err}");
        assert!(err.contains("bcrypt-5.0.0: `import bcrypt` fails on the target: ImportError: cannot import name '_bcrypt'"), "{err}");
        assert!(!err.contains("good"), "{err}");
        fs::remove_dir_all(site.path().join("bcrypt-5.0.0.dist-info")).unwrap();
        run(&runner, &python, site.path(), "", "x86_64", &mut log).unwrap();
    }
}
