//! A profile's copy of the tree: excluded files left out, ELF files
//! stripped, byte code recompiled, everything moved to the chosen prefix.

use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};
use globset::{Glob, GlobSet, GlobSetBuilder};
use walkdir::WalkDir;

use crate::engine::image::ImageNote;
use crate::model::manifest::{Profile, Pyc, Strip};

pub struct Request<'a> {
    pub tree: &'a Path,
    pub work: &'a Path,
    pub note: &'a ImageNote,
    pub profile: &'a Profile,
    pub from_prefix: &'a str,
    pub prefix: &'a str,
    pub pyver: String,
    /// The `app` profile's cut of the stdlib and site-packages.
    pub app: Option<&'a super::app::Selection>,
    /// Directories of this build machine that debug information kept in
    /// the package (`strip = "none"`) must not name.
    pub build_paths: &'a [PathBuf],
    /// Where this machine keeps its toolchains: text files that name a
    /// tool there (`_sysconfigdata`'s `CC`, numpy's build notes) name it
    /// by its file name on the board.
    pub toolchains: &'a Path,
}

pub struct Staged {
    /// `work/root`: what goes into the archive.
    pub root: PathBuf,
    pub warnings: Vec<String>,
}

/// Files of the tree that describe the build, not the board.
pub const BUILD_NOTES: [&str; 2] = [".crosspython-rootfs.txt", crate::engine::image::IMAGE_NOTE];

pub fn stage(r: &Request) -> Result<Staged> {
    let root = r.work.join("root");
    crate::base::sysroot::remove(&root)?;
    let excluded = globs(&r.profile.exclude, r.from_prefix, &r.pyver)?;
    // The app profile: a file of a wheel whose distribution is not kept
    // (its `bin/` scripts) goes with it.
    let keep = |path: &Path| {
        let Some(sel) = r.app else { return true };
        let owner = path.strip_prefix(r.tree).ok().and_then(|rel| r.note.owners.get(&rel.display().to_string()));
        let dropped_wheel = matches!(owner, Some(crate::engine::image::Owner::Wheel(p)) if !sel.keeps_project(p));
        sel.keeps(path) && !dropped_wheel
    };
    copy_selected(r.tree, &root, &excluded, &keep)?;
    if r.app.is_some() {
        let removed = super::app::prune_unneeded_elf(&root, r.from_prefix, &format!("python{}", r.pyver))?;
        eprintln!("app profile: {} programs and libraries nothing the application loads needs were left out", removed.len());
    }
    let mut warnings = vec![];
    match r.profile.strip.unwrap_or(Strip::None) {
        Strip::None => {
            let n = crate::machine::debug_info::map_build_paths(&root, r.build_paths)?;
            if n > 0 {
                eprintln!(
                    "debug information of {n} file(s) rewritten to name {}, not this machine's build directories",
                    crate::machine::debug_info::DEBUG_SOURCE_DIR
                );
            }
        }
        mode => strip(&root, &r.note.strip, mode)?,
    }
    if r.prefix != r.from_prefix {
        warnings.extend(relocate(&root, r.from_prefix, r.prefix)?);
    }
    let n = bare_tool_names(&root, r.toolchains)?;
    if n > 0 {
        eprintln!("{n} text file(s) name the build machine's tools by their file names, as a board finds them on its PATH");
    }
    let python = r.note.build_python.as_deref().context("the tree's build note names no build python; rebuild the tree")?;
    let stdlib = root.join(r.prefix.trim_start_matches('/')).join("lib").join(format!("python{}", r.pyver));
    byte_compile(python, &root, &stdlib, r.profile)?;
    if r.profile.pyc == Some(Pyc::Zip) {
        zip_stdlib(&stdlib, &r.profile.zip_keep)?;
    }
    Ok(Staged { root, warnings })
}

/// The profile's globs with `{prefix}` and `{py}` filled in.
pub fn globs(patterns: &[String], prefix: &str, pyver: &str) -> Result<GlobSet> {
    let mut b = GlobSetBuilder::new();
    for p in patterns {
        let p = p.replace("{prefix}", prefix.trim_start_matches('/')).replace("{py}", &format!("python{pyver}"));
        b.add(Glob::new(&p).with_context(|| format!("bad exclude glob `{p}`"))?);
    }
    Ok(b.build()?)
}

/// Copy the tree without excluded files, build notes or old byte code
/// (it is compiled again for the profile).
fn copy_selected(tree: &Path, root: &Path, excluded: &GlobSet, keep: &dyn Fn(&Path) -> bool) -> Result<()> {
    let walker = WalkDir::new(tree).min_depth(1).sort_by_file_name().into_iter().filter_entry(|e| e.file_name() != "__pycache__");
    fs::create_dir_all(root)?;
    for e in walker {
        let e = e?;
        let rel = e.path().strip_prefix(tree).unwrap();
        let rel_s = rel.to_string_lossy();
        if BUILD_NOTES.iter().any(|n| rel_s == *n) || excluded.is_match(rel) || rel_s.ends_with(".pyc") || (!e.file_type().is_dir() && !keep(e.path())) {
            continue;
        }
        let dest = root.join(rel);
        let ft = e.file_type();
        if ft.is_dir() {
            fs::create_dir_all(&dest)?;
        } else if ft.is_symlink() {
            symlink(fs::read_link(e.path())?, &dest)?;
        } else {
            fs::copy(e.path(), &dest).with_context(|| format!("cannot copy {}", e.path().display()))?;
        }
    }
    remove_empty_dirs(root)?;
    Ok(())
}

fn remove_empty_dirs(root: &Path) -> Result<()> {
    for e in WalkDir::new(root).min_depth(1).contents_first(true) {
        let e = e?;
        if e.file_type().is_dir() && fs::read_dir(e.path())?.next().is_none() {
            fs::remove_dir(e.path())?;
        }
    }
    Ok(())
}

/// Strip the ELF files that have something to strip with the toolchain's
/// own `strip`. A file with nothing to strip is not rewritten: wheels from
/// PyPI come stripped, and auditwheel rewrote their libraries with
/// patchelf, whose layout GNU strip breaks ("ELF load command
/// address/offset not page-aligned" for Pillow and pyzmq; NixOS/patchelf#10).
fn strip(root: &Path, strip: &str, mode: Strip) -> Result<()> {
    let flag = match mode {
        Strip::Debug => "--strip-debug",
        _ => "--strip-unneeded",
    };
    let mut files = vec![];
    for e in WalkDir::new(root) {
        let e = e?;
        if e.file_type().is_file() && has_something_to_strip(e.path(), mode)? {
            files.push(e.path().to_path_buf());
        }
    }
    // Each file is stripped into a copy, kept only if the loader would map
    // the same segments: GNU strip shrinks the segment patchelf appends
    // (auditwheel's repair of Pillow's _imaging, with debug sections kept),
    // and the file then fails to load.
    let mut kept = vec![];
    for file in &files {
        let before = crate::machine::elf::inspect(file)?.map(|i| i.loads).unwrap_or_default();
        let tmp = file.with_extension("crosspython-strip");
        if let Err(e) = crate::base::process::checked(Command::new(strip).arg(flag).arg("-o").arg(&tmp).arg(file)) {
            let _ = fs::remove_file(&tmp);
            return Err(e.context(format!("the toolchain's strip on {}", file.display())));
        }
        let after = crate::machine::elf::inspect(&tmp)?.map(|i| i.loads).unwrap_or_default();
        if after == before {
            fs::rename(&tmp, file)?;
        } else {
            fs::remove_file(&tmp)?;
            crate::machine::elf::blank_debug_sections(file)?;
            kept.push(file.strip_prefix(root).unwrap_or(file).display().to_string());
        }
    }
    if !kept.is_empty() {
        eprintln!("strip would change how {} file(s) load; kept in place with their debug sections emptied: {}", kept.len(), kept.join(", "));
    }
    Ok(())
}

/// Debug sections (and, for `--strip-unneeded`, a symbol table).
fn has_something_to_strip(path: &Path, mode: Strip) -> Result<bool> {
    use object::{Object as _, ObjectSection as _};
    let data = fs::read(path)?;
    if !data.starts_with(b"\x7fELF") {
        return Ok(false);
    }
    let file = object::File::parse(data.as_slice()).with_context(|| format!("cannot parse the ELF file {}", path.display()))?;
    let debug = file.sections().any(|s| s.name().is_ok_and(|n| n.starts_with(".debug") || n.starts_with(".zdebug")));
    let symtab = file.section_by_name(".symtab").is_some();
    Ok(debug || (mode != Strip::Debug && symtab))
}

/// Move `root/<from>` to `root/<to>` and rewrite the text files that name
/// the prefix: scripts' `#!` lines, `_sysconfigdata`, the `config-*`
/// Makefile, pkg-config files and `*-config` scripts. ELF files find their
/// libraries through `$ORIGIN` and need nothing; the ones that still name
/// the old prefix are returned as warnings.
fn relocate(root: &Path, from: &str, to: &str) -> Result<Vec<String>> {
    let (src, dest) = (root.join(from.trim_start_matches('/')), root.join(to.trim_start_matches('/')));
    if dest.exists() {
        bail!("the tree already has {to}; choose another --prefix");
    }
    fs::create_dir_all(dest.parent().unwrap())?;
    fs::rename(&src, &dest)?;
    remove_empty_dirs(root)?;
    crate::machine::private_glibc::relocate(root, to)?;
    let mut warnings = vec![];
    for e in WalkDir::new(&dest) {
        let e = e?;
        if !e.file_type().is_file() {
            continue;
        }
        let rel = e.path().strip_prefix(root).unwrap().display().to_string();
        let bytes = fs::read(e.path())?;
        if !crate::base::bytes::contains(&bytes, from.as_bytes()) {
            continue;
        }
        if bytes.starts_with(b"\x7fELF") {
            warnings.push(format!("{rel} still names {from} (a compiled-in default path)"));
            continue;
        }
        let name = e.file_name().to_string_lossy();
        let config_file =
            name.starts_with("_sysconfigdata") || name == "Makefile" || name.ends_with(".pc") || name.ends_with("-config") || rel.contains("/bin/");
        if config_file {
            fs::write(e.path(), replace_path(&bytes, from, to))?;
        }
    }
    Ok(warnings)
}

/// In every text file below `root`, tools below `toolchains` named by
/// their file names (see `base::bytes::bare_tool_names`): sysconfig's
/// `CC` becomes `mipsel-linux-gnu-gcc`, as Debian's python3 has it,
/// rather than a path in the build machine's cache that no board has
/// (Yocto's python3 recipe strips its tool directories the same way).
/// Binary files are left as they are. Returns how many files changed.
fn bare_tool_names(root: &Path, toolchains: &Path) -> Result<usize> {
    let dir = toolchains.display().to_string().into_bytes();
    crate::base::bytes::edit_text_files(root, std::slice::from_ref(&dir), &|bytes| crate::base::bytes::bare_tool_names(bytes, &dir))
}

/// Every occurrence of the directory `from` as a whole path (not
/// `/usr/localfoo`, not `/x/usr/local`) replaced by `to`.
fn replace_path(bytes: &[u8], from: &str, to: &str) -> Vec<u8> {
    let path_byte = |b: u8| b.is_ascii_alphanumeric() || b"_.-/".contains(&b);
    let from = from.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let starts =
            bytes[i..].starts_with(from) && (i == 0 || !path_byte(bytes[i - 1])) && bytes.get(i + from.len()).is_none_or(|&b| b == b'/' || !path_byte(b));
        if starts {
            out.extend_from_slice(to.as_bytes());
            i += from.len();
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    out
}

/// Byte code from the build machine's python of the same version, in
/// unchecked-hash mode (no mtimes), naming the board's paths.
/// How many processes share the byte compilation: fixed, so that the bytes
/// do not depend on the machine's cores.
const COMPILE_SHARDS: usize = 8;

fn byte_compile(python: &Path, root: &Path, stdlib: &Path, profile: &Profile) -> Result<()> {
    let levels = profile.pyc_opt_levels.clone().unwrap_or_else(|| vec![0]);
    let sourceless = matches!(profile.pyc, Some(Pyc::Sourceless | Pyc::Zip));
    let mut sources = vec![];
    for e in WalkDir::new(stdlib).sort_by_file_name() {
        let e = e?;
        if e.file_type().is_file() && e.path().extension().is_some_and(|x| x == "py") {
            sources.push(e.path().display().to_string());
        }
    }
    // What marshal writes of a module depends on what the process compiled
    // before it (python/cpython#129724: FLAG_REF follows reference counts),
    // so `compileall -j0`, which hands files to whichever worker is free,
    // gave other bytes under other load. Fixed shards of the sorted list,
    // each compiled in order by a process of its own, give the same bytes
    // on any machine; up to as many run at once as there are cores.
    let shards: Vec<&[String]> = sources.chunks(sources.len().div_ceil(COMPILE_SHARDS).max(1)).collect();
    let lists = tempfile::tempdir()?;
    let levels = &levels;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut printed = String::new();
    let mut ok = true;
    for (w, wave) in shards.chunks(cores).enumerate() {
        let outputs = std::thread::scope(|s| {
            let runs: Vec<_> = wave
                .iter()
                .enumerate()
                .map(|(i, shard)| {
                    let list = lists.path().join(format!("shard-{w}-{i}.txt"));
                    s.spawn(move || -> Result<std::process::Output> {
                        fs::write(&list, shard.join("\n") + "\n")?;
                        let mut cmd = Command::new(python);
                        cmd.args(["-I", "-m", "compileall", "-q", "--invalidation-mode", "unchecked-hash"]);
                        cmd.arg("-s").arg(root).args(["-p", "/"]);
                        for l in levels {
                            cmd.args(["-o", &l.to_string()]);
                        }
                        if sourceless {
                            cmd.arg("-b");
                        }
                        crate::base::process::output(cmd.arg("-i").arg(&list).env("SOURCE_DATE_EPOCH", "0"))
                    })
                })
                .collect();
            runs.into_iter().map(|r| r.join().expect("a compile thread does not panic")).collect::<Result<Vec<_>>>()
        })?;
        for out in outputs {
            ok &= out.status.success();
            printed.push_str(&String::from_utf8_lossy(&out.stdout));
            printed.push_str(&String::from_utf8_lossy(&out.stderr));
        }
    }
    if !ok {
        // CPython's test suite holds files that must not compile (bad
        // encodings, syntax errors on purpose); any other failure is real.
        let failed: Vec<&str> = printed.lines().filter_map(|l| l.strip_prefix("*** Error compiling ")).collect();
        let real: Vec<&&str> = failed.iter().filter(|f| !f.contains("/test/") && !f.contains("/tests/")).collect();
        if failed.is_empty() || !real.is_empty() {
            bail!("byte-compiling {} failed:\n{printed}", stdlib.display());
        }
    }
    if sourceless {
        for e in WalkDir::new(stdlib) {
            let e = e?;
            let p = e.path();
            if e.file_type().is_file() && p.extension().is_some_and(|x| x == "py") && p.with_extension("pyc").exists() {
                fs::remove_file(p)?;
            }
        }
        // A profile may keep no site-packages at all.
        let site = stdlib.join("site-packages");
        if site.is_dir() {
            for e in WalkDir::new(&site).max_depth(1) {
                let e = e?;
                if e.file_name().to_string_lossy().ends_with(".dist-info") && e.path().join("RECORD").is_file() {
                    record_sourceless(&e.path().join("RECORD"))?;
                }
            }
        }
    }
    Ok(())
}

/// A distribution's RECORD after its sources gave way to byte code: each
/// `.py` that is gone is its `.pyc`, with that file's hash and size.
/// importlib.metadata skips files that do not exist, so with the stale
/// RECORD a one-module distribution (typing_extensions) provides no module
/// (`packages_distributions()`), and pip could not uninstall the `.pyc`.
fn record_sourceless(record: &Path) -> Result<()> {
    let site = record.parent().and_then(Path::parent).context("a RECORD outside site-packages")?;
    let text = fs::read_to_string(record).with_context(|| format!("cannot read {}", record.display()))?;
    let mut out = String::with_capacity(text.len());
    for line in text.lines() {
        let path = line.split(',').next().unwrap_or_default();
        let pyc = path.strip_suffix(".py").map(|stem| format!("{stem}.pyc"));
        match pyc.filter(|pyc| !site.join(path).exists() && site.join(pyc).is_file()) {
            Some(pyc) => {
                out.push_str(&crate::python::crosspip::record_line(&pyc, &fs::read(site.join(&pyc))?));
                out.push('\n');
            }
            None => {
                out.push_str(line);
                out.push('\n');
            }
        }
    }
    if out != text {
        fs::write(record, out)?;
    }
    Ok(())
}

/// Directories of `lib/python3.X/` that never go into the zip: C modules
/// (a shared object cannot be loaded from a zip), installed packages, the
/// build's configuration.
const NOT_ZIPPED: [&str; 3] = ["lib-dynload/**", "site-packages/**", "config-*/**"];

/// Move the sourceless stdlib into `lib/python3XY.zip` (deflated, entries
/// sorted, every time 1980-01-01: reproducible). What stays: `zip_keep`,
/// [`NOT_ZIPPED`], top-level files that are not modules, and `os.pyc`,
/// the landmark by which CPython's getpath finds its prefix.
///
/// Measured on aarch64 under qemu-user (minimum of 12 runs): 16.6 MiB
/// instead of 22.9 for interpreter, stdlib and C modules, but `-c pass`
/// 33 ms and `-I -S -c pass` 49 ms slower, and importing json, email and
/// asyncio 28% slower (zipimport reads the zip's directory in Python and
/// inflates every module): for boards short of flash, not of time.
fn zip_stdlib(stdlib: &Path, keep: &[String]) -> Result<()> {
    let mut b = GlobSetBuilder::new();
    for g in keep.iter().map(String::as_str).chain(NOT_ZIPPED) {
        b.add(Glob::new(g).with_context(|| format!("bad zip_keep glob `{g}`"))?);
    }
    let kept = b.build()?;
    let name = stdlib.file_name().context("a stdlib directory without a name")?.to_string_lossy().replace('.', "");
    let zip_path = stdlib.with_file_name(format!("{name}.zip"));
    let mut files = vec![];
    for e in WalkDir::new(stdlib).min_depth(1).sort_by_file_name() {
        let e = e?;
        let rel = e.path().strip_prefix(stdlib).unwrap();
        let top_level = rel.components().count() == 1;
        if !e.file_type().is_file() || kept.is_match(rel) || (top_level && rel.extension().is_none_or(|x| x != "pyc")) {
            continue;
        }
        files.push(rel.to_path_buf());
    }
    let options = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated).compression_level(Some(9));
    let mut w = zip::ZipWriter::new(fs::File::create(&zip_path).with_context(|| format!("cannot write {}", zip_path.display()))?);
    for rel in &files {
        w.start_file(rel.to_string_lossy(), options)?;
        std::io::copy(&mut fs::File::open(stdlib.join(rel))?, &mut w)?;
        if rel != Path::new("os.pyc") {
            fs::remove_file(stdlib.join(rel))?;
        }
    }
    w.finish()?;
    remove_empty_dirs(stdlib)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The flags word of a `.pyc` (PEP 552): bit 0 hash-based, bit 1 check
    /// the source.
    fn pyc_flags(pyc: &Path) -> u32 {
        let bytes = fs::read(pyc).unwrap_or_else(|e| panic!("{}: {e}", pyc.display()));
        u32::from_le_bytes(bytes[4..8].try_into().unwrap())
    }

    /// The board's byte code never reads its source again at import: it is
    /// unchecked-hash, whether the sources stay or not, even where the
    /// build's `SOURCE_DATE_EPOCH` would make `compileall` choose
    /// checked-hash (which hashes every imported source at each start, as
    /// the tree's byte code does).
    #[test]
    fn the_boards_byte_code_is_unchecked_hash_and_never_reads_its_source() {
        // The build machine's python3, which every build needs (host.rs).
        let python = which::which("python3").expect("python3 on the build machine");
        for (pyc, byte_code) in [(Pyc::WithSource, "__pycache__"), (Pyc::Sourceless, "")] {
            let t = tempfile::tempdir().unwrap();
            let stdlib = t.path().join("usr/local/lib/python3.14");
            fs::create_dir_all(&stdlib).unwrap();
            fs::write(stdlib.join("greeting.py"), "WORD = 'hello'\n").unwrap();
            let profile = Profile { pyc: Some(pyc), ..Profile::default() };
            byte_compile(&python, t.path(), &stdlib, &profile).unwrap();
            let compiled: Vec<PathBuf> = WalkDir::new(stdlib.join(byte_code))
                .into_iter()
                .map(|e| e.unwrap().into_path())
                .filter(|p| p.extension().is_some_and(|x| x == "pyc"))
                .collect();
            assert_eq!(compiled.len(), 1, "{pyc:?}: {compiled:?}");
            assert_eq!(pyc_flags(&compiled[0]), 0b01, "{pyc:?}: hash-based, source not checked");
            assert_eq!(stdlib.join("greeting.py").exists(), pyc == Pyc::WithSource);
        }
    }

    #[test]
    fn a_sourceless_distribution_records_its_byte_code_instead_of_the_sources_that_are_gone() {
        let t = tempfile::tempdir().unwrap();
        let site = t.path().join("site-packages");
        fs::create_dir_all(site.join("te-1.0.dist-info")).unwrap();
        fs::write(site.join("te.pyc"), b"byte code").unwrap();
        fs::write(site.join("kept.py"), b"source").unwrap();
        let record = site.join("te-1.0.dist-info/RECORD");
        fs::write(&record, "te.py,sha256=abc,99\nkept.py,sha256=def,6\nte-1.0.dist-info/RECORD,,\n").unwrap();
        record_sourceless(&record).unwrap();
        assert_eq!(
            fs::read_to_string(&record).unwrap(),
            // sha256("byte code"), urlsafe base64 without padding, as PEP 376 writes it.
            "te.pyc,sha256=V1HOxEvyohsOQFlD-ie86uCegnuJfWCABO_uq7dR7Nk,9\nkept.py,sha256=def,6\nte-1.0.dist-info/RECORD,,\n"
        );
    }

    #[test]
    fn a_zipped_stdlib_keeps_outside_what_must_stay_a_file_and_the_prefix_landmark() {
        let t = tempfile::tempdir().unwrap();
        let lib = t.path().join("usr/local/lib/python3.14t");
        for f in ["os.pyc", "json/__init__.pyc", "json/decoder.pyc", "pydoc_data/_pydoc.css", "venv/__init__.pyc", "venv/scripts/common/activate"] {
            fs::create_dir_all(lib.join(f).parent().unwrap()).unwrap();
            fs::write(lib.join(f), f).unwrap();
        }
        for f in ["LICENSE.txt", "lib-dynload/_json.so", "site-packages/yaml/__init__.py"] {
            fs::create_dir_all(lib.join(f).parent().unwrap()).unwrap();
            fs::write(lib.join(f), f).unwrap();
        }
        zip_stdlib(&lib, &["venv/**".into()]).unwrap();
        let zip_path = t.path().join("usr/local/lib/python314t.zip");
        let z = zip::ZipArchive::new(fs::File::open(&zip_path).unwrap()).unwrap();
        let names: Vec<&str> = z.file_names().collect();
        assert_eq!(names, ["json/__init__.pyc", "json/decoder.pyc", "os.pyc", "pydoc_data/_pydoc.css"]);
        for stays in ["os.pyc", "LICENSE.txt", "lib-dynload/_json.so", "site-packages/yaml/__init__.py", "venv/__init__.pyc", "venv/scripts/common/activate"] {
            assert!(lib.join(stays).is_file(), "{stays} must stay a file");
        }
        assert!(!lib.join("json").exists(), "zipped packages leave no directory behind");
        // Reproducible: the same tree gives the same bytes.
        let first = fs::read(&zip_path).unwrap();
        let again = tempfile::tempdir().unwrap();
        let lib2 = again.path().join("python3.14t");
        for f in ["json/__init__.pyc", "json/decoder.pyc", "os.pyc", "pydoc_data/_pydoc.css"] {
            fs::create_dir_all(lib2.join(f).parent().unwrap()).unwrap();
            fs::write(lib2.join(f), f).unwrap();
        }
        zip_stdlib(&lib2, &[]).unwrap();
        assert_eq!(fs::read(again.path().join("python314t.zip")).unwrap(), first);
    }

    #[test]
    fn globs_fill_in_prefix_and_python_version() {
        let set = globs(&["{prefix}/lib/{py}/test/**".into(), "**/*.a".into()], "/usr/local", "3.13").unwrap();
        assert!(set.is_match("usr/local/lib/python3.13/test/test_os.py"));
        assert!(set.is_match("usr/local/lib/libz.a"));
        assert!(!set.is_match("usr/local/lib/python3.13/os.py"));
        assert!(!set.is_match("usr/local/lib/python3.13/test"), "the directory itself stays; it is pruned when empty");
    }

    #[test]
    fn excluded_files_notes_and_old_byte_code_are_not_copied_and_empty_dirs_go() {
        let t = tempfile::tempdir().unwrap();
        let tree = t.path().join("tree");
        for f in ["usr/local/lib/a.py", "usr/local/lib/__pycache__/a.cpython-313.pyc", "usr/local/include/x.h", ".crosspython-rootfs.txt"] {
            fs::create_dir_all(tree.join(f).parent().unwrap()).unwrap();
            fs::write(tree.join(f), "x").unwrap();
        }
        symlink("a.py", tree.join("usr/local/lib/b.py")).unwrap();
        let root = t.path().join("root");
        copy_selected(&tree, &root, &globs(&["{prefix}/include/**".into()], "/usr/local", "3.13").unwrap(), &|_| true).unwrap();
        assert!(root.join("usr/local/lib/a.py").exists());
        assert_eq!(fs::read_link(root.join("usr/local/lib/b.py")).unwrap(), Path::new("a.py"));
        assert!(!root.join("usr/local/lib/__pycache__").exists());
        assert!(!root.join("usr/local/include").exists());
        assert!(!root.join(".crosspython-rootfs.txt").exists());
    }

    #[test]
    fn files_with_nothing_to_strip_are_not_rewritten() {
        let t = tempfile::tempdir().unwrap();
        // One library with debug information, one stripped already (as
        // wheels from PyPI come, rewritten by auditwheel's patchelf).
        for f in ["usr/local/lib/libz.so.1", "usr/local/lib/python3.14/site-packages/PIL/_imaging.so"] {
            fs::create_dir_all(t.path().join(f).parent().unwrap()).unwrap();
        }
        fs::write(t.path().join("x.c"), "int x(void) { return 1; }\n").unwrap();
        let gcc = |args: &[&str]| assert!(Command::new("gcc").args(args).current_dir(t.path()).status().unwrap().success());
        gcc(&["-g", "-shared", "-fPIC", "-o", "usr/local/lib/libz.so.1", "x.c"]);
        gcc(&["-s", "-shared", "-fPIC", "-o", "usr/local/lib/python3.14/site-packages/PIL/_imaging.so", "x.c"]);
        // A strip that names what it was given.
        let fake = t.path().join("strip");
        fs::write(&fake, format!("#!/bin/sh\n# {{flag}} -o {{out}} {{file}}\necho \"$4\" >> {}/stripped\ncp \"$4\" \"$3\"\n", t.path().display())).unwrap();
        fs::set_permissions(&fake, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        strip(t.path(), fake.to_str().unwrap(), Strip::Debug).unwrap();
        let stripped = fs::read_to_string(t.path().join("stripped")).unwrap();
        assert!(stripped.contains("libz.so.1") && !stripped.contains("_imaging"), "{stripped}");
    }

    #[test]
    fn a_strip_that_would_change_how_a_file_loads_is_not_kept() {
        let t = tempfile::tempdir().unwrap();
        fs::create_dir_all(t.path().join("lib")).unwrap();
        fs::write(t.path().join("x.c"), "int x(void) { return 1; }\n").unwrap();
        assert!(Command::new("gcc").args(["-g", "-shared", "-fPIC", "-o", "lib/libp.so", "x.c"]).current_dir(t.path()).status().unwrap().success());
        let before = fs::read(t.path().join("lib/libp.so")).unwrap();
        fs::copy(t.path().join("lib/libp.so"), t.path().join("x.so.before")).unwrap();
        // A strip whose output maps other segments (as GNU strip on a file
        // patchelf extended): here, another program altogether.
        let fake = t.path().join("strip");
        fs::write(&fake, "#!/bin/sh\ncp /bin/true \"$3\"\n").unwrap();
        fs::set_permissions(&fake, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        let loads = |p: &Path| crate::machine::elf::inspect(p).unwrap().unwrap().loads;
        let build_dir = t.path().display().to_string();
        let debug_strings = |p: &Path| crate::base::bytes::contains(&fs::read(p).unwrap(), build_dir.as_bytes());
        assert!(debug_strings(&t.path().join("lib/libp.so")), "gcc -g names the build directory in DWARF");
        strip(&t.path().join("lib"), fake.to_str().unwrap(), Strip::Debug).unwrap();
        let lib = t.path().join("lib/libp.so");
        let after = fs::read(&lib).unwrap();
        assert_eq!(after.len(), before.len(), "nothing moved");
        assert_eq!(loads(&lib), loads(&t.path().join("x.so.before")), "the same segments");
        assert!(!debug_strings(&lib), "its debug sections are emptied (no source or build path left)");
        assert_eq!(fs::read_dir(t.path().join("lib")).unwrap().count(), 1, "no copy left behind");
        let out = Command::new("readelf").args(["--debug-dump=info"]).arg(&lib).output().unwrap();
        assert!(!String::from_utf8_lossy(&out.stdout).contains("DW_TAG_compile_unit"), "readers see no debug information");
        let ok = Command::new("gcc")
            .args(["-o", "main", "-x", "c", "-", "-x", "none", "lib/libp.so"])
            .current_dir(t.path())
            .stdin(std::process::Stdio::piped())
            .spawn();
        let mut child = ok.unwrap();
        std::io::Write::write_all(child.stdin.as_mut().unwrap(), b"int x(void); int main(void) { return x() - 1; }\n").unwrap();
        drop(child.stdin.take());
        assert!(child.wait().unwrap().success());
        let run = Command::new(t.path().join("main")).current_dir(t.path()).status().unwrap();
        assert!(run.success(), "the library still loads and runs");
    }

    #[test]
    fn only_whole_paths_are_replaced() {
        let r = |s: &str| String::from_utf8(replace_path(s.as_bytes(), "/usr/local", "/opt/p")).unwrap();
        assert_eq!(r("prefix=\t/usr/local\nlibdir=/usr/local/lib"), "prefix=\t/opt/p\nlibdir=/opt/p/lib");
        assert_eq!(r("/usr/localfoo /x/usr/local '/usr/local'"), "/usr/localfoo /x/usr/local '/opt/p'");
    }

    #[test]
    fn relocation_moves_the_prefix_and_rewrites_scripts_and_sysconfig_but_not_other_text() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path();
        let write = |f: &str, text: &str| {
            fs::create_dir_all(root.join(f).parent().unwrap()).unwrap();
            fs::write(root.join(f), text).unwrap();
        };
        write("usr/local/bin/pip", "#!/usr/local/bin/python3.13\nimport pip\n");
        write("usr/local/lib/python3.13/_sysconfigdata__linux_x.py", "{'prefix': '/usr/local', 'LIBDIR': '/usr/local/lib'}");
        write("usr/local/lib/python3.13/notes.txt", "see /usr/local/lib\n");
        let warnings = relocate(root, "/usr/local", "/opt/python3").unwrap();
        assert!(warnings.is_empty());
        assert!(!root.join("usr").exists());
        assert_eq!(fs::read_to_string(root.join("opt/python3/bin/pip")).unwrap(), "#!/opt/python3/bin/python3.13\nimport pip\n");
        let sc = fs::read_to_string(root.join("opt/python3/lib/python3.13/_sysconfigdata__linux_x.py")).unwrap();
        assert_eq!(sc, "{'prefix': '/opt/python3', 'LIBDIR': '/opt/python3/lib'}");
        assert_eq!(fs::read_to_string(root.join("opt/python3/lib/python3.13/notes.txt")).unwrap(), "see /usr/local/lib\n");
    }

    #[test]
    fn the_board_gets_the_build_machines_tools_by_name_and_binaries_untouched() {
        let t = tempfile::tempdir().unwrap();
        let (root, tools) = (t.path().join("root"), t.path().join("cache/toolchains"));
        let cc = format!("{}/zig-0.17.1/wrappers/t/bin/mipsel-linux-gnu-gcc", tools.display());
        let write = |f: &str, bytes: &[u8]| {
            fs::create_dir_all(root.join(f).parent().unwrap()).unwrap();
            fs::write(root.join(f), bytes).unwrap();
        };
        write("usr/local/lib/python3.14/_sysconfigdata__linux_x.py", format!("{{'CC': '{cc}', 'LDSHARED': '{cc} -shared'}}").as_bytes());
        write("usr/local/lib/python3.14/site-packages/numpy/__config__.py", format!("\"commands\": r\"{cc}\",").as_bytes());
        let elf = [b"\x7fELF\0\0compiler: ".as_slice(), cc.as_bytes(), b"\0"].concat();
        write("usr/local/lib/libcrypto.so.3", &elf);
        assert_eq!(bare_tool_names(&root, &tools).unwrap(), 2);
        let read = |f: &str| fs::read_to_string(root.join(f)).unwrap();
        assert_eq!(read("usr/local/lib/python3.14/_sysconfigdata__linux_x.py"), "{'CC': 'mipsel-linux-gnu-gcc', 'LDSHARED': 'mipsel-linux-gnu-gcc -shared'}");
        assert_eq!(read("usr/local/lib/python3.14/site-packages/numpy/__config__.py"), "\"commands\": r\"mipsel-linux-gnu-gcc\",");
        assert_eq!(fs::read(root.join("usr/local/lib/libcrypto.so.3")).unwrap(), elf, "a path in an ELF file cannot change length");
    }
}
