//! package: the target tree as one reproducible archive: entries sorted,
//! owner root, every mtime `SOURCE_DATE_EPOCH` (default 2025-01-01), no timestamp in the gzip header; `SHA256SUMS` next
//! to it.

use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use walkdir::WalkDir;

use crate::manifest::Loaded;
use crate::project::Project;

/// Files of the tree that describe the build, not the board.
const BUILD_NOTES: [&str; 1] = [".crosspython-rootfs.txt"];

pub fn package(project: &Project, loaded: &Loaded, arch: &str) -> Result<PathBuf> {
    let tree = project.tree(arch);
    if !tree.exists() {
        bail!("{} does not exist; run `cargo xtask build --arch {arch}` first", tree.display());
    }
    let graph = crate::resolve::resolve(loaded, arch)?;
    let python = graph.nodes.iter().find(|n| n.recipe == "python3" && !n.is_native()).context("the image has no python3")?;
    audit(&tree, &[project.build_dir.clone(), crate::image::sysroots_dir(&project.build_dir)])?;
    let epoch = source_date_epoch()?;
    let deploy = project.deploy_dir(arch);
    fs::create_dir_all(&deploy)?;
    let name = format!("crosspython-{}-{arch}.tar.gz", python.version);
    let out = deploy.join(&name);
    let tmp = tempfile::NamedTempFile::new_in(&deploy)?;
    {
        let gz = flate2::GzBuilder::new().mtime(0).write(BufWriter::new(tmp.as_file()), flate2::Compression::best());
        let mut tar = tar::Builder::new(gz);
        write_entries(&mut tar, &tree, epoch)?;
        tar.into_inner()?.finish()?.flush()?;
    }
    tmp.persist(&out).with_context(|| format!("cannot write {}", out.display()))?;
    let sha = crate::fetch::sha256_file(&out)?;
    crate::tasks::atomic_write(&deploy.join("SHA256SUMS"), format!("{sha}  {name}\n").as_bytes())?;
    let size = fs::metadata(&out)?.len();
    println!("{}: {:.1} MiB, sha256 {sha}", out.display(), size as f64 / 1048576.0);
    Ok(out)
}

/// What must never reach a board: build-machine paths in any file (text or
/// binary), setuid or world-writable files, absolute symlinks.
fn audit(tree: &Path, build_paths: &[PathBuf]) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let needles: Vec<Vec<u8>> = build_paths.iter().map(|p| p.display().to_string().into_bytes()).collect();
    let mut problems = vec![];
    for e in WalkDir::new(tree).min_depth(1) {
        let e = e?;
        let rel = e.path().strip_prefix(tree).unwrap().display().to_string();
        if BUILD_NOTES.iter().any(|n| rel == *n) {
            continue;
        }
        let meta = fs::symlink_metadata(e.path())?;
        if meta.file_type().is_symlink() {
            let target = fs::read_link(e.path())?;
            if target.is_absolute() {
                problems.push(format!("{rel}: absolute symlink to {}", target.display()));
            }
            continue;
        }
        let mode = meta.permissions().mode();
        if mode & 0o6000 != 0 {
            problems.push(format!("{rel}: setuid/setgid (mode {mode:o})"));
        }
        if meta.is_file() {
            if mode & 0o002 != 0 {
                problems.push(format!("{rel}: world-writable (mode {mode:o})"));
            }
            let bytes = fs::read(e.path())?;
            if let Some(n) = needles.iter().find(|n| crate::image::contains(&bytes, n)) {
                problems.push(format!("{rel}: contains the build-machine path {}", String::from_utf8_lossy(n)));
            }
        }
    }
    if !problems.is_empty() {
        bail!("the tree {} is not fit for a board:\n  {}", tree.display(), problems.join("\n  "));
    }
    Ok(())
}

/// Every file, directory and symlink of the tree, sorted, with fixed owner
/// and time.
fn write_entries<W: Write>(tar: &mut tar::Builder<W>, tree: &Path, epoch: u64) -> Result<()> {
    for e in WalkDir::new(tree).min_depth(1).sort_by_file_name() {
        let e = e?;
        let rel = e.path().strip_prefix(tree).unwrap();
        if BUILD_NOTES.iter().any(|n| rel == Path::new(n)) {
            continue;
        }
        let meta = fs::symlink_metadata(e.path())?;
        let mut h = tar::Header::new_gnu();
        h.set_mtime(epoch);
        h.set_uid(0);
        h.set_gid(0);
        h.set_username("root")?;
        h.set_groupname("root")?;
        use std::os::unix::fs::PermissionsExt;
        // Drop group/other write: no world-writable files on the board.
        h.set_mode(meta.permissions().mode() & 0o7755);
        if meta.file_type().is_symlink() {
            h.set_entry_type(tar::EntryType::Symlink);
            h.set_size(0);
            tar.append_link(&mut h, rel, fs::read_link(e.path())?)?;
        } else if meta.is_dir() {
            h.set_entry_type(tar::EntryType::Directory);
            h.set_size(0);
            tar.append_data(&mut h, rel, std::io::empty())?;
        } else {
            h.set_entry_type(tar::EntryType::Regular);
            h.set_size(meta.len());
            tar.append_data(&mut h, rel, File::open(e.path())?)?;
        }
    }
    Ok(())
}

/// `SOURCE_DATE_EPOCH`, or a fixed default: the mtimes in the tree are
/// those of the build, so using them would make every archive different.
fn source_date_epoch() -> Result<u64> {
    match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(v) => v.parse().with_context(|| format!("SOURCE_DATE_EPOCH={v} is not a number")),
        Err(_) => Ok(DEFAULT_EPOCH),
    }
}

/// 2025-01-01T00:00:00Z.
const DEFAULT_EPOCH: u64 = 1_735_689_600;
