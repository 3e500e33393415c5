//! The package on the board: a copy of the board root with the tree (or a
//! package) installed over it as the README tells users to, proven to have
//! changed none of the board's files, and checked against the board's C
//! library before anything runs.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use super::record::CheckResult;
use crate::engine::project::{Project, Target};
use crate::machine::board::BoardLibc;
use crate::model::manifest::{Arch, Loaded};

/// The board root with the package installed, in a directory removed
/// when this is dropped.
pub(super) struct OnBoard {
    pub(super) work: tempfile::TempDir,
    /// The copy of the board root, the package installed over it.
    pub(super) tree: PathBuf,
    /// What was installed: the built tree, or the package unpacked.
    pub(super) source: PathBuf,
    /// The package's interpreter in `tree`.
    pub(super) python: PathBuf,
    pub(super) board_libc: BoardLibc,
    /// What the package needs of the board's C library.
    pub(super) needs: String,
    /// The board's side as checks: `board-libc`, `board-symbols`.
    pub(super) checks: Vec<CheckResult>,
}

/// Copy the board root, install `package` (or the built tree) over the
/// copy, and check what the board must give the package.
pub(super) fn onto_board(project: &Project, loaded: &Loaded, arch_name: &str, target: &Target, package: Option<&Path>) -> Result<OnBoard> {
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
    let needs = board_needs(arch, &checked);
    let libc = CheckResult { name: "board-libc".into(), ok: true, detail: format!("{needs}; the board has {board_libc}") };
    Ok(OnBoard { work, tree, source, python, board_libc, needs, checks: vec![libc, symbols] })
}

/// What the package needs of the board's C library, for the table.
pub(super) fn board_needs(arch: &Arch, checked: &crate::machine::tree_check::Checked) -> String {
    match (arch.libc, checked.max_glibc) {
        (crate::model::manifest::LibcKind::Musl, _) => "a musl build: the board's musl loader is its C library".to_string(),
        (_, Some((a, b))) => format!("highest glibc symbol version needed GLIBC_{a}.{b} (by {})", checked.max_glibc_file),
        (_, None) => "no glibc symbol version needed".to_string(),
    }
}

/// Every entry below `root`: its kind, mode and content digest (symlinks by target).
pub(super) fn snapshot(root: &Path) -> Result<BTreeMap<PathBuf, String>> {
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
pub(super) fn changed_files(before: &BTreeMap<PathBuf, String>, after: &BTreeMap<PathBuf, String>) -> Vec<String> {
    before
        .iter()
        .filter_map(|(p, was)| match after.get(p) {
            None => Some(format!("{}: removed", p.display())),
            Some(now) if now != was => Some(format!("{}: {was} -> {now}", p.display())),
            _ => None,
        })
        .collect()
}
