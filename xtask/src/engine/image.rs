//! do_rootfs: the target tree `sysroots/<arch>/`: the image's run-time
//! packages, the toolchain's shared objects they need (found by walking
//! `DT_NEEDED` from every ELF file, the dynamic loader at its `PT_INTERP`
//! path), `$ORIGIN` run paths so that the tree works under any prefix, and
//! the ELF checks every file must pass.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use walkdir::WalkDir;

use crate::base::sysroot::normalize;
use crate::engine::tasks::{Kind, Plan};
use crate::machine::elf::{self, ElfInfo};
use crate::machine::toolchain::Toolchain;
use crate::machine::tree_check::{tree_libraries, BoardLibs, TreeCheck};

/// Bumped when the tree's layout or its build notes change.
pub const IMAGE_VERSION: &str = "image-7";

/// Where each file of the tree came from and which wheels were installed,
/// for `package`'s size report and SBOM; not part of the package.
pub const IMAGE_NOTE: &str = ".crosspython-image.json";

/// Who put a file into the tree. Written in the image note as
/// `recipe:<name>`, `wheel:<project>`, `toolchain`, `toolchain-glibc` or
/// `other`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(into = "String", from = "String")]
pub enum Owner {
    /// A recipe's `do_install`, by the `[[recipe]]` name.
    Recipe(String),
    /// A Python package's wheel, by its normalized project name.
    Wheel(String),
    /// The toolchain's run-time libraries (libstdc++, libgcc_s, ...).
    Toolchain,
    /// The private glibc of a toolchain newer than the boards' (`lib/glibc`).
    ToolchainGlibc,
    Other,
}

impl From<Owner> for String {
    fn from(o: Owner) -> String {
        match o {
            Owner::Recipe(n) => format!("recipe:{n}"),
            Owner::Wheel(n) => format!("wheel:{n}"),
            Owner::Toolchain => "toolchain".into(),
            Owner::ToolchainGlibc => "toolchain-glibc".into(),
            Owner::Other => "other".into(),
        }
    }
}

impl From<String> for Owner {
    fn from(s: String) -> Owner {
        match s.split_once(':') {
            Some(("recipe", n)) => Owner::Recipe(n.into()),
            Some(("wheel", n)) => Owner::Wheel(n.into()),
            _ if s == "toolchain" => Owner::Toolchain,
            _ if s == "toolchain-glibc" => Owner::ToolchainGlibc,
            _ => Owner::Other,
        }
    }
}

impl std::fmt::Display for Owner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&String::from(self.clone()))
    }
}

#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct ImageNote {
    /// Tree path -> who put the file there.
    pub owners: BTreeMap<String, Owner>,
    pub wheels: Vec<WheelNote>,
    /// The toolchain the tree was built with: `package` strips with its
    /// `strip` and holds the tree to its glibc.
    pub toolchain: String,
    pub strip: String,
    pub toolchain_glibc: Option<(u32, u32)>,
    /// The build machine's python of the same version (byte code).
    pub build_python: Option<PathBuf>,
    /// Recipe -> the build options (packageconfig) it was built with.
    #[serde(default)]
    pub features: BTreeMap<String, Vec<String>>,
    /// Debian packages the run-time libraries came from (`name version sha256`).
    #[serde(default)]
    pub runtime_packages: Vec<String>,
    /// The `[[recipe]]` name of the interpreter (the cpython class), whose
    /// files the size report splits into interpreter, stdlib and C modules.
    #[serde(default)]
    pub interpreter: String,
    /// The signature of the image task that assembled the tree: sibling
    /// build directories share `sysroots/`, and a tree another one wrote
    /// is not up to date here, whatever the stamps say.
    #[serde(default)]
    pub rootfs_sig: String,
}

#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct WheelNote {
    pub file: String,
    pub sha256: String,
}

impl ImageNote {
    pub fn read(tree: &Path) -> Result<ImageNote> {
        let path = tree.join(IMAGE_NOTE);
        let text = fs::read(&path).with_context(|| format!("cannot read {}; rebuild the tree with `cargo xtask build`", path.display()))?;
        serde_json::from_slice(&text).with_context(|| format!("{} is damaged; rebuild the tree", path.display()))
    }

    fn collect(plan: &Plan, rootfs_task: usize, tree: &Path, wheels: Vec<WheelNote>) -> Result<ImageNote> {
        let mut by_path: BTreeMap<String, Owner> = BTreeMap::new();
        for &t in &plan.tasks[rootfs_task].deps {
            let unit = &plan.units[plan.tasks[t].unit.expect("recipe task")];
            if unit.node.is_native() {
                continue;
            }
            let destdir = &unit.dirs.sysroot_destdir;
            for e in WalkDir::new(destdir).min_depth(1) {
                let e = e?;
                if !e.file_type().is_dir() {
                    let rel = e.path().strip_prefix(destdir).unwrap().display().to_string();
                    by_path.insert(rel, Owner::Recipe(unit.node.recipe.clone()));
                }
            }
        }
        by_path.extend(record_owners(tree)?);
        let mut owners = BTreeMap::new();
        for e in WalkDir::new(tree).min_depth(1).sort_by_file_name() {
            let e = e?;
            if e.file_type().is_dir() {
                continue;
            }
            let rel = e.path().strip_prefix(tree).unwrap().display().to_string();
            let owner = match by_path.get(&rel) {
                Some(o) => o.clone(),
                // Byte code compiled at install time belongs to its source.
                None if rel.contains("/__pycache__/") => owner_of_pyc(&rel, &by_path).unwrap_or(Owner::Other),
                None => Owner::Other,
            };
            owners.insert(rel, owner);
        }
        let features = plan.tasks[rootfs_task]
            .deps
            .iter()
            .map(|&t| &plan.units[plan.tasks[t].unit.expect("recipe task")].node)
            .filter(|n| !n.is_native() && !n.features.is_empty())
            .map(|n| (n.recipe.clone(), n.features.clone()))
            .collect();
        Ok(ImageNote { owners, wheels, features, ..Default::default() })
    }
}

/// The files a `*.dist-info/RECORD` lists, as paths below `tree` (entries
/// that climb out of it are left out).
pub fn record_files(record: &Path, tree: &Path) -> Result<Vec<PathBuf>> {
    let site = record.parent().and_then(Path::parent).context("RECORD outside a dist-info")?;
    let text = fs::read_to_string(record).with_context(|| format!("cannot read {}", record.display()))?;
    Ok(text.lines().filter_map(|l| l.split(',').next().filter(|p| !p.is_empty())).map(|p| normalize(&site.join(p))).filter(|p| p.starts_with(tree)).collect())
}

/// Tree path -> its wheel for every file a RECORD below `tree` lists.
pub fn record_owners(tree: &Path) -> Result<BTreeMap<String, Owner>> {
    let mut out = BTreeMap::new();
    for e in WalkDir::new(tree).into_iter().flatten().filter(|e| e.file_name() == "RECORD") {
        let dist = e.path().parent().unwrap().file_name().unwrap().to_string_lossy().into_owned();
        let project = crate::python::crosspip::project_name(dist.split('-').next().unwrap_or(&dist));
        for f in record_files(e.path(), tree)? {
            out.insert(f.strip_prefix(tree).unwrap().display().to_string(), Owner::Wheel(project.clone()));
        }
    }
    Ok(out)
}

/// `a/__pycache__/b.cpython-313.pyc` belongs to whoever owns `a/b.py`.
fn owner_of_pyc(rel: &str, by_path: &BTreeMap<String, Owner>) -> Option<Owner> {
    let (dir, file) = rel.rsplit_once("/__pycache__/")?;
    let stem = file.split('.').next()?;
    by_path.get(&format!("{dir}/{stem}.py")).cloned()
}

/// `sysroots/<arch>` next to the build directory.
pub fn tree_dir(build_dir: &Path, arch: &str) -> PathBuf {
    sysroots_dir(build_dir).join(arch)
}

pub fn sysroots_dir(build_dir: &Path) -> PathBuf {
    build_dir.parent().map(|p| p.join("sysroots")).unwrap_or_else(|| PathBuf::from("sysroots"))
}

/// The interpreters among the recipes a tree is assembled from.
#[derive(Default)]
struct Pythons {
    /// The build python (`python3-native`'s), which runs pip and crossenv.
    native: Option<PathBuf>,
    /// The target interpreter's `major.minor`.
    target_version: Option<String>,
    /// The target interpreter in its recipe's sysroot (crossenv's host).
    host: Option<PathBuf>,
}

/// The target recipes' sysroot destdirs copied into `tmp`; and where the
/// interpreters are.
fn stage_recipes(plan: &Plan, rootfs_task: usize, tmp: &Path) -> Result<Pythons> {
    let mut pythons = Pythons::default();
    for &t in &plan.tasks[rootfs_task].deps {
        let u = plan.tasks[t].unit.expect("rootfs depends on recipe tasks");
        let unit = &plan.units[u];
        let major_minor = unit.node.pv().major_minor();
        if unit.node.is_native() {
            if unit.node.is_interpreter() {
                pythons.native = Some(unit.dirs.sysroot_destdir.join(format!("usr/bin/python{major_minor}")));
            }
            continue;
        }
        if unit.node.is_interpreter() {
            pythons.host = Some(unit.dirs.sysroot_destdir.join(plan.prefix.trim_start_matches('/')).join(format!("bin/python{major_minor}")));
            pythons.target_version = Some(major_minor);
        }
        crate::base::sysroot::copy_tree(&unit.dirs.sysroot_destdir, tmp)?;
    }
    Ok(pythons)
}

/// Assembles the arch's tree (BitBake's do_rootfs): the target recipes'
/// files, the toolchain's run-time libraries the tree needs, the Python
/// packages, build paths scrubbed, run paths set, every ELF file checked
/// against the board's libraries, every Python package imported on the
/// target; then the tree replaces the old one in one rename.
pub fn rootfs(plan: &Plan, a: usize) -> Result<()> {
    let ab = &plan.arches[a];
    let rootfs_task = plan.tasks.iter().position(|t| t.kind == Kind::Rootfs && t.arch == Some(a)).expect("every arch has a rootfs task");
    let tree = tree_dir(&plan.build_dir, &ab.name);
    let tmp = tree.with_file_name(format!(".{}.tmp", ab.name));
    crate::base::sysroot::remove(&tmp)?;
    fs::create_dir_all(&tmp)?;
    let pythons = stage_recipes(plan, rootfs_task, &tmp)?;
    let prefix = plan.prefix.clone();
    let mut report = String::new();
    let log_path = plan.build_dir.join(&ab.name).join("image/temp/log.do_rootfs");
    fs::create_dir_all(log_path.parent().unwrap())?;
    let mut log = String::new();
    // The toolchain's run-time first: source builds of Python packages run
    // target programs under qemu (meson's checks).
    let board = BoardLibs::new(&plan.libc, ab.arch.libc, ab.toolchain.glibc);
    let mut from_toolchain = add_toolchain_libs(&tmp, &prefix, &board, &ab.toolchain, &mut report)?;
    let packages = match (&pythons.native, &pythons.target_version, &pythons.host) {
        (Some(native), Some(pyver), Some(host)) => python_packages(plan, ab, native, host, &tmp, pyver.clone(), &mut log),
        _ => Ok(vec![]),
    };
    fs::write(&log_path, &log)?;
    for warning in log.lines().filter_map(|l| l.strip_prefix("WARNING ")) {
        eprintln!("warning: {}: {warning}", ab.name);
    }
    let wheels = packages.with_context(|| format!("log: {}", log_path.display()))?;
    scrub_build_paths(plan, rootfs_task, &tmp, &mut report)?;
    from_toolchain.extend(add_toolchain_libs(&tmp, &prefix, &board, &ab.toolchain, &mut report)?);
    set_run_paths(&tmp, &prefix, &mut report)?;
    let private_glibc = match ab.toolchain.private_glibc() {
        Some(run_root) => crate::machine::private_glibc::install(&tmp, &prefix, run_root, &plan.libc.glibc_sonames, &mut report)?,
        None => vec![],
    };
    let checked = TreeCheck::new(&ab.arch.elf, &board).run(&tmp, &format!("the tree for {}", ab.name))?;
    if !wheels.is_empty() {
        let target_version = pythons.target_version.as_deref().unwrap_or_default();
        import_packages(ab, &tmp, &prefix, target_version, !private_glibc.is_empty(), &log_path)?;
    }
    report.push_str(&checked.summary());
    fs::write(tmp.join(".crosspython-rootfs.txt"), &report)?;
    let mut note = ImageNote::collect(plan, rootfs_task, &tmp, wheels)?;
    for rel in from_toolchain {
        note.owners.insert(rel, Owner::Toolchain);
    }
    for rel in private_glibc {
        note.owners.insert(rel, Owner::ToolchainGlibc);
    }
    note.toolchain = ab.toolchain.identity();
    note.strip = ab.toolchain.tool("strip");
    note.toolchain_glibc = ab.toolchain.glibc;
    if let Some(root) = &ab.toolchain.runtime_root {
        let list = fs::read_to_string(root.with_file_name("packages.txt")).unwrap_or_default();
        note.runtime_packages = list.lines().map(str::to_string).collect();
    }
    note.build_python = pythons.native;
    note.rootfs_sig = plan.tasks[rootfs_task].sig.clone();
    note.interpreter = plan.tasks[rootfs_task]
        .deps
        .iter()
        .map(|&t| &plan.units[plan.tasks[t].unit.expect("recipe task")].node)
        .find(|n| !n.is_native() && n.is_interpreter())
        .map(|n| n.recipe.clone())
        .unwrap_or_default();
    fs::write(tmp.join(IMAGE_NOTE), serde_json::to_vec_pretty(&note)?)?;
    replace_tree(&tree, &tmp, &ab.name)
}

/// Each distribution of the tree's Python packages imports on the target
/// before the tree counts; what it printed goes to the task's log.
fn import_packages(ab: &crate::engine::tasks::ArchBuild, tmp: &Path, prefix: &str, target_version: &str, private_glibc: bool, log_path: &Path) -> Result<()> {
    let base = tmp.join(prefix.trim_start_matches('/'));
    let ldversion = crate::python::crosspip::ldversion(tmp, prefix, target_version);
    let site = base.join(format!("lib/python{ldversion}/site-packages"));
    // A tree that carries the toolchain's glibc names its own loader
    // (`<prefix>/lib/glibc/ld.so.1`), found only with the tree as `/`.
    let root = match ab.toolchain.run_root.as_deref() {
        Some(run_root) if !private_glibc => run_root,
        _ => tmp,
    };
    let runner = crate::machine::runner::TargetRunner::new(&ab.arch, root);
    let mut log = String::new();
    let checked = crate::python::import_check::run(&runner, &base.join("bin/python3"), &site, &base.join("lib").display().to_string(), &ab.name, &mut log);
    std::io::Write::write_all(&mut fs::OpenOptions::new().append(true).open(log_path)?, log.as_bytes())?;
    checked.with_context(|| format!("log: {}", log_path.display()))
}

/// `tmp` becomes the arch's tree. Swapped by renames only: whenever the
/// process dies, the tree is either the old one whole, the new one whole,
/// or absent (and then the next build runs rootfs again), never a
/// half-deleted tree.
fn replace_tree(tree: &Path, tmp: &Path, arch_name: &str) -> Result<()> {
    let old = tree.with_file_name(format!(".{arch_name}.old"));
    crate::base::sysroot::remove(&old)?;
    if tree.exists() {
        fs::rename(tree, &old).with_context(|| format!("cannot move the old tree aside to {}", old.display()))?;
    }
    fs::rename(tmp, tree).with_context(|| format!("cannot move the tree into {}", tree.display()))?;
    crate::base::sysroot::remove(&old)
}

/// Text files that recorded this build's directories (`_sysconfigdata`,
/// the `config-*` Makefile, `*-config` scripts, headers) get the paths
/// they mean on the board: a recipe sysroot path is the target path
/// itself, any other work directory path becomes the debug-source path the
/// compiler's `-ffile-prefix-map` uses.
fn scrub_build_paths(plan: &Plan, rootfs_task: usize, tree: &Path, report: &mut String) -> Result<()> {
    let units: Vec<usize> = plan.tasks[rootfs_task].deps.iter().map(|&t| plan.tasks[t].unit.expect("recipe task")).collect();
    scrub_build_paths_of(plan, &units, tree, report)
}

/// As `scrub_build_paths`, for the files of `units` copied into `tree`.
pub fn scrub_build_paths_of(plan: &Plan, units: &[usize], tree: &Path, report: &mut String) -> Result<()> {
    let mut rules: Vec<(Vec<u8>, Vec<u8>)> = vec![];
    for &u in units {
        let unit = &plan.units[u];
        let d = &unit.dirs;
        let debug_src = format!("/usr/src/debug/{}/{}", unit.node.name, unit.node.version);
        rules.push((d.recipe_sysroot_native.display().to_string().into_bytes(), format!("{debug_src}/recipe-sysroot-native").into_bytes()));
        rules.push((d.recipe_sysroot.display().to_string().into_bytes(), Vec::new()));
        rules.push((d.workdir.display().to_string().into_bytes(), debug_src.into_bytes()));
    }
    // What Python packages built from source recorded (numpy's
    // __config__.py): the tree being assembled is the board's root, and
    // the crossenv stands for the build python.
    rules.push((tree.display().to_string().into_bytes(), Vec::new()));
    rules.push((plan.build_dir.display().to_string().into_bytes(), b"/usr/src/debug/build".to_vec()));
    let needles = [plan.build_dir.display().to_string().into_bytes(), tree.display().to_string().into_bytes()];
    let count = crate::base::bytes::rewrite_text_files(tree, &needles, &rules)?;
    writeln!(report, "build paths rewritten in {count} text files")?;
    Ok(())
}

/// pip, and the distro's Python packages, into the tree.
fn python_packages(
    plan: &Plan,
    ab: &crate::engine::tasks::ArchBuild,
    native: &Path,
    host: &Path,
    tree: &Path,
    pyver: String,
    log: &mut String,
) -> Result<Vec<WheelNote>> {
    use crate::python::crosspip;
    let bp = crosspip::BuildPython::ensure(native, &plan.build_dir.join("native/pip-venv"), log)?;
    let mut target = crosspip::Target::new(&ab.name, &ab.arch, tree, &plan.prefix, pyver, &ab.toolchain)?;
    target.relr_from = BoardLibs::new(&plan.libc, ab.arch.libc, ab.toolchain.glibc).relr_from;
    crosspip::install_pip(&bp, &target, log)?;
    let py = &plan.python;
    if py.requirements.is_empty() {
        return Ok(vec![]);
    }
    let mut session = crosspip::Session::new(bp, target, py, &plan.build_dir, &plan.build_dir.join(&ab.name), &ab.toolchain, host)?;
    let downloads = tempfile::tempdir()?;
    let wheels = session.wheels(&py.requirements, &py.no_binary, downloads.path(), log, &mut |_, _| Ok(()))?;
    crosspip::install_wheels(&session.bp, &session.target, &wheels, log)?;
    // Noted now: the downloads are a temporary directory.
    wheels
        .iter()
        .map(|w| Ok(WheelNote { file: w.file_name().unwrap().to_string_lossy().into_owned(), sha256: crate::sources::fetch::sha256_file(w)? }))
        .collect()
}

/// Copy the toolchain's shared objects that the tree needs and the board
/// lacks (libstdc++, libgcc_s, libatomic of a gcc toolchain) into
/// `<prefix>/lib`, following their own `DT_NEEDED`. glibc's own objects
/// and the dynamic loader are the board's: never copied, so the package
/// never replaces the board's C library. zig links its C++ runtime
/// statically, so with it nothing is copied.
fn add_toolchain_libs(root: &Path, prefix: &str, board: &BoardLibs, tc: &Toolchain, report: &mut String) -> Result<Vec<String>> {
    add_toolchain_libs_beside(root, prefix, &BTreeMap::new(), board, tc, report)
}

/// As `add_toolchain_libs`, for files staged in `root` that will join a
/// tree whose libraries are `present`.
pub fn add_toolchain_libs_beside(
    root: &Path,
    prefix: &str,
    present: &BTreeMap<String, PathBuf>,
    board: &BoardLibs,
    tc: &Toolchain,
    report: &mut String,
) -> Result<Vec<String>> {
    let mut in_tree = tree_libraries(root);
    in_tree.extend(present.iter().map(|(k, v)| (k.clone(), v.clone())));
    let mut queue: Vec<(String, String)> = vec![];
    for (path, info) in elf::elf_files(root)? {
        let rel = path.strip_prefix(root).unwrap().display().to_string();
        for n in &info.needed {
            if !in_tree.contains_key(n) && !board.has(n) {
                queue.push((n.clone(), rel.clone()));
            }
        }
    }
    let lib = root.join(prefix.trim_start_matches('/')).join("lib");
    let mut added: BTreeMap<String, String> = BTreeMap::new();
    while let Some((soname, needed_by)) = queue.pop() {
        if added.contains_key(&soname) || in_tree.contains_key(&soname) || board.has(&soname) {
            continue;
        }
        let Some(found) = tc.find_lib(&soname) else {
            bail!("{needed_by} needs {soname}, which is neither in the tree, nor glibc's, nor in the toolchain ({})", tc.cc.display());
        };
        fs::create_dir_all(&lib)?;
        let dest = lib.join(&soname);
        fs::copy(&found, &dest).with_context(|| format!("cannot copy {}", found.display()))?;
        let rel = format!("{}/lib/{soname}", prefix.trim_start_matches('/'));
        writeln!(report, "{rel}: from {} (needed by {needed_by})", found.display())?;
        added.insert(soname.clone(), rel.clone());
        if let Some(info) = elf::inspect(&dest)? {
            for n in info.needed {
                queue.push((n, rel.clone()));
            }
        }
    }
    Ok(added.into_values().collect())
}

/// Give every ELF file that needs a library of `<prefix>/lib` a run path
/// relative to itself (`$ORIGIN/../lib`), so the tree works under any
/// prefix and needs no `LD_LIBRARY_PATH`; drop the run paths that libtool
/// and readline's build record (`/usr/local/lib`) from the others.
fn set_run_paths(root: &Path, prefix: &str, report: &mut String) -> Result<()> {
    set_run_paths_beside(root, root, prefix, report)
}

/// As `set_run_paths`, for files staged in `root` that will join `tree`
/// (whose `<prefix>/lib` provides the libraries).
pub fn set_run_paths_beside(root: &Path, tree: &Path, prefix: &str, report: &mut String) -> Result<()> {
    let libdir = root.join(prefix.trim_start_matches('/')).join("lib");
    let provided: BTreeSet<String> = fs::read_dir(tree.join(prefix.trim_start_matches('/')).join("lib"))
        .map(|d| d.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default();
    let (mut set, mut removed) = (0, 0);
    for (path, info) in elf::elf_files(root)? {
        let want = info.needed.iter().any(|n| provided.contains(n)).then(|| {
            let rel = crate::base::sysroot::relative(path.parent().unwrap(), &libdir);
            if rel.as_os_str().is_empty() {
                "$ORIGIN".to_string()
            } else {
                format!("$ORIGIN/{}", rel.display())
            }
        });
        let entries = run_path(&info, want.as_deref());
        if info.rpath.is_none() && info.runpath.as_deref().unwrap_or("") == entries {
            continue;
        }
        elf::patchelf(&path, &["--remove-rpath"])?;
        if entries.is_empty() {
            removed += 1;
        } else {
            elf::patchelf(&path, &["--set-rpath", &entries])?;
            set += 1;
        }
    }
    writeln!(report, "run paths set on {set} files, removed from {removed}")?;
    Ok(())
}

/// The run path a file should have: `want` first, then the entries it has
/// that are relative to itself (a wheel's `$ORIGIN/../../numpy.libs`);
/// absolute entries name build-machine or board directories and go.
fn run_path(info: &ElfInfo, want: Option<&str>) -> String {
    let mut entries: Vec<&str> = want.into_iter().collect();
    for e in [&info.rpath, &info.runpath].into_iter().flatten().flat_map(|p| p.split(':')) {
        if e.starts_with("$ORIGIN") && !entries.contains(&e) {
            entries.push(e);
        }
    }
    entries.join(":")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packed_relative_relocations_are_refused_where_the_boards_loader_skips_them() {
        let libc = crate::model::manifest::Libc {
            musl_floor: Some("1.2.3".into()),
            relr_since: [("glibc".to_string(), "2.36".to_string()), ("musl".to_string(), "1.2.4".to_string())].into(),
            ..Default::default()
        };
        let relr = crate::machine::elf::ElfInfo { relr: true, ..Default::default() };
        let musl = BoardLibs::new(&libc, crate::model::manifest::LibcKind::Musl, None);
        assert_eq!(
            musl.problems("numpy.libs/libgcc_s.so.1", &relr),
            ["numpy.libs/libgcc_s.so.1: has packed relative relocations (DT_RELR), which loaders before musl 1.2.4 skip: it would crash on the board"]
        );
        let old_glibc = BoardLibs::new(&libc, crate::model::manifest::LibcKind::Glibc, Some((2, 28)));
        assert_eq!(old_glibc.problems("x.so", &relr).len(), 1);
        let new_glibc = BoardLibs::new(&libc, crate::model::manifest::LibcKind::Glibc, Some((2, 36)));
        assert!(new_glibc.problems("x.so", &relr).is_empty(), "glibc 2.36 applies them");
        assert!(musl.problems("y.so", &crate::machine::elf::ElfInfo::default()).is_empty());
    }

    #[test]
    fn record_files_resolve_against_site_packages_and_stay_in_the_tree() {
        let t = tempfile::tempdir().unwrap();
        let site = t.path().join("usr/local/lib/python3.13/site-packages");
        fs::create_dir_all(site.join("x-1.0.dist-info")).unwrap();
        fs::write(site.join("x-1.0.dist-info/RECORD"), "x/__init__.py,sha256=a,1\n../../../bin/x,sha256=b,2\n../../../../../../etc/passwd,,\n").unwrap();
        let files = record_files(&site.join("x-1.0.dist-info/RECORD"), t.path()).unwrap();
        assert_eq!(files, vec![site.join("x/__init__.py"), t.path().join("usr/local/bin/x")]);
    }

    #[test]
    fn run_paths_keep_origin_entries_and_drop_absolute_ones() {
        let info =
            |rpath: Option<&str>, runpath: Option<&str>| ElfInfo { rpath: rpath.map(String::from), runpath: runpath.map(String::from), ..Default::default() };
        assert_eq!(run_path(&info(Some("/usr/local/lib"), None), None), "");
        assert_eq!(run_path(&info(Some("/usr/local/lib"), None), Some("$ORIGIN/../lib")), "$ORIGIN/../lib");
        assert_eq!(run_path(&info(None, Some("$ORIGIN/../../numpy.libs")), None), "$ORIGIN/../../numpy.libs");
        assert_eq!(run_path(&info(None, Some("$ORIGIN/../lib:/opt/x")), Some("$ORIGIN/../lib")), "$ORIGIN/../lib");
    }

    #[test]
    fn relative_paths_climb_then_descend() {
        assert_eq!(crate::base::sysroot::relative(Path::new("/t/usr/local/bin"), Path::new("/t/usr/local/lib")), PathBuf::from("../lib"));
        assert_eq!(crate::base::sysroot::relative(Path::new("/t/usr/local/lib/python3.13/lib-dynload"), Path::new("/t/usr/local/lib")), PathBuf::from("../.."));
        assert_eq!(crate::base::sysroot::relative(Path::new("/t/usr/local/lib"), Path::new("/t/usr/local/lib")), PathBuf::new());
    }

    #[test]
    fn owners_are_written_as_short_strings_and_read_back() {
        let all = [Owner::Recipe("zlib".into()), Owner::Wheel("numpy".into()), Owner::Toolchain, Owner::ToolchainGlibc, Owner::Other];
        let text = serde_json::to_string(&all).unwrap();
        assert_eq!(text, r#"["recipe:zlib","wheel:numpy","toolchain","toolchain-glibc","other"]"#);
        assert_eq!(serde_json::from_str::<Vec<Owner>>(&text).unwrap(), all);
    }
}
