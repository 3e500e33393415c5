//! The `app` profile: an application-sized interpreter. Of the stdlib and
//! site-packages it keeps only what one application imports, and what the
//! interpreter imports to start, as modulefinder finds them on the build
//! side (the build python is the target's version). Everything else of the
//! tree (the interpreter, its C libraries) is the inherited profile's.
//! `qemu-test --app` runs the application from the package alone.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

/// An application and the arguments of its proof run on the target (it
/// must exit 0: `tests/apps/http_service.py --self-test`).
#[derive(Debug, Clone)]
pub struct App {
    pub file: PathBuf,
    pub args: Vec<String>,
}

/// What the `app` profile keeps of the stdlib and site-packages.
#[derive(Debug)]
pub struct Selection {
    stdlib: PathBuf,
    site: PathBuf,
    /// Module files (sources and extension modules), as tree paths.
    files: BTreeSet<PathBuf>,
    /// Directories holding a kept module: their data files stay.
    dirs: BTreeSet<PathBuf>,
    /// Top-level names in site-packages of kept modules, and the
    /// `*.dist-info` directories of their distributions.
    site_tops: BTreeSet<String>,
    pub modules: usize,
}

impl Selection {
    /// Run modulefinder (`xtask/python/app_modules.py`) with the build
    /// python over the tree's stdlib (`lib/python<ldversion>`).
    pub fn find(build_python: &Path, stdlib: &Path, app: &App) -> Result<Selection> {
        if !app.file.is_file() {
            bail!("--app {}: no such file (give the application's main .py file)", app.file.display());
        }
        let site = stdlib.join("site-packages");
        let ext_suffix = crate::python::crosspip::ext_suffix_of(stdlib).with_context(|| format!("{} holds no _sysconfigdata", stdlib.display()))?;
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("python/app_modules.py");
        let out = crate::base::process::checked(Command::new(build_python).arg(&script).arg(stdlib).arg(&site).arg(&ext_suffix).arg(&app.file))
            .with_context(|| format!("finding the modules {} imports", app.file.display()))?;
        #[derive(serde::Deserialize)]
        struct Found {
            files: Vec<PathBuf>,
        }
        let found: Found = serde_json::from_slice(&out.stdout).context("app_modules.py printed no module list")?;
        let mut sel = Selection {
            stdlib: stdlib.to_path_buf(),
            site: site.clone(),
            files: BTreeSet::new(),
            dirs: BTreeSet::new(),
            site_tops: BTreeSet::new(),
            modules: 0,
        };
        for f in found.files.into_iter().filter(|f| f.starts_with(stdlib)) {
            if let Ok(rel) = f.strip_prefix(&site) {
                if let Some(top) = rel.components().next() {
                    sel.site_tops.insert(top.as_os_str().to_string_lossy().into_owned());
                }
            }
            if let Some(d) = f.parent() {
                sel.dirs.insert(d.to_path_buf());
            }
            sel.files.insert(f);
        }
        sel.modules = sel.files.len();
        // The distributions of the kept top-level modules: their metadata
        // stays with them (importlib.metadata, pip list on the board).
        for e in fs::read_dir(&site).into_iter().flatten().flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.ends_with(".dist-info") {
                let record = fs::read_to_string(e.path().join("RECORD")).unwrap_or_default();
                let tops: BTreeSet<&str> = record.lines().filter_map(|l| l.split(',').next()?.split('/').next()).collect();
                if tops.iter().any(|t| sel.site_tops.contains(*t) || sel.site_tops.contains(t.trim_end_matches(".py"))) {
                    sel.site_tops.insert(name);
                }
            }
        }
        Ok(sel)
    }

    /// Whether the distribution of a (normalized) project name is kept.
    pub fn keeps_project(&self, project: &str) -> bool {
        self.site_tops
            .iter()
            .filter_map(|t| t.strip_suffix(".dist-info"))
            .any(|d| crate::python::crosspip::project_name(d.split('-').next().unwrap_or(d)) == project)
    }

    /// Whether a file of the tree stays in the package.
    pub fn keeps(&self, path: &Path) -> bool {
        if let Ok(rel) = path.strip_prefix(&self.site) {
            let top = rel.components().next().map(|c| c.as_os_str().to_string_lossy().into_owned()).unwrap_or_default();
            return self.site_tops.contains(&top) || self.site_tops.contains(top.trim_end_matches(".py"));
        }
        let Ok(rel) = path.strip_prefix(&self.stdlib) else { return true };
        let name = rel.to_string_lossy();
        // sysconfig imports its data by a computed name.
        if name.starts_with("_sysconfigdata") || name == "build-details.json" {
            return true;
        }
        let code = name.ends_with(".py") || name.ends_with(".so");
        if code {
            self.files.contains(path)
        } else {
            path.parent().is_some_and(|d| self.dirs.contains(d))
        }
    }
}

/// After the copy: of the ELF files, keep only the interpreter and what
/// it and the kept extension modules load (`DT_NEEDED`, followed through
/// the libraries): the C libraries' programs (`openssl`, `sqlite3`, `xz`)
/// and libraries no kept module uses go, and symlinks left dangling with
/// them. Returns the removed files, relative to `root`.
pub fn prune_unneeded_elf(root: &Path, prefix: &str, stdlib_name: &str) -> Result<Vec<String>> {
    let base = root.join(prefix.trim_start_matches('/'));
    let files = crate::machine::elf::elf_files(root)?;
    let by_name: std::collections::BTreeMap<String, usize> =
        files.iter().enumerate().map(|(i, (p, _))| (p.file_name().unwrap_or_default().to_string_lossy().into_owned(), i)).collect();
    // A library is known by its file name and by the symlinks naming it.
    let mut alias: std::collections::BTreeMap<String, usize> = by_name.clone();
    for e in walkdir::WalkDir::new(&base).into_iter().flatten().filter(|e| e.file_type().is_symlink()) {
        if let Ok(target) = fs::canonicalize(e.path()) {
            if let Some(&i) = target.file_name().and_then(|n| by_name.get(&*n.to_string_lossy())) {
                alias.insert(e.file_name().to_string_lossy().into_owned(), i);
            }
        }
    }
    let interpreter = format!("bin/{stdlib_name}");
    let stdlib = base.join("lib").join(stdlib_name);
    let mut keep: BTreeSet<usize> = BTreeSet::new();
    let mut todo: Vec<usize> = files
        .iter()
        .enumerate()
        .filter(|(_, (p, _))| p.strip_prefix(&base).is_ok_and(|r| r.to_string_lossy() == interpreter) || p.starts_with(&stdlib))
        .map(|(i, _)| i)
        .collect();
    while let Some(i) = todo.pop() {
        if keep.insert(i) {
            todo.extend(files[i].1.needed.iter().filter_map(|n| alias.get(n)).copied());
        }
    }
    let mut removed = vec![];
    for (i, (path, _)) in files.iter().enumerate() {
        if !keep.contains(&i) && path.starts_with(&base) {
            fs::remove_file(path)?;
            removed.push(path.strip_prefix(root).unwrap_or(path).display().to_string());
        }
    }
    for e in walkdir::WalkDir::new(&base).into_iter().flatten().filter(|e| e.file_type().is_symlink()) {
        if !e.path().exists() {
            fs::remove_file(e.path())?;
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_modules_found_their_packages_data_and_their_distributions_stay() {
        let stdlib = PathBuf::from("/t/usr/local/lib/python3.14");
        let site = stdlib.join("site-packages");
        let f = |p: &str| stdlib.join(p);
        let sel = Selection {
            stdlib: stdlib.clone(),
            site: site.clone(),
            files: [f("os.py"), f("json/__init__.py"), f("lib-dynload/_json.cpython-314-aarch64-linux-gnu.so"), site.join("requests/api.py")].into(),
            dirs: [stdlib.clone(), f("json"), f("lib-dynload"), site.join("requests")].into(),
            site_tops: ["requests".to_string(), "requests-2.34.2.dist-info".to_string()].into(),
            modules: 4,
        };
        assert!(sel.keeps(&f("os.py")) && sel.keeps(&f("json/__init__.py")));
        assert!(!sel.keeps(&f("json/tool.py")), "a module of a kept package that nothing imports goes");
        assert!(!sel.keeps(&f("tkinter/__init__.py")) && !sel.keeps(&f("lib-dynload/_tkinter.cpython-314-aarch64-linux-gnu.so")));
        assert!(sel.keeps(&f("_sysconfigdata__linux_aarch64-linux-gnu.py")), "sysconfig's data is imported by a computed name");
        assert!(sel.keeps(&f("LICENSE.txt")), "data beside kept modules stays");
        assert!(!sel.keeps(&f("pydoc_data/topics.txt")));
        assert!(sel.keeps(&site.join("requests/models.py")), "a kept distribution stays whole");
        assert!(sel.keeps(&site.join("requests-2.34.2.dist-info/RECORD")));
        assert!(!sel.keeps(&site.join("numpy/__init__.py")) && !sel.keeps(&site.join("numpy-2.5.5.dist-info/RECORD")));
        assert!(sel.keeps(Path::new("/t/usr/local/lib/libssl.so.3")), "outside the stdlib the profile decides");
    }
}
