//! Boards: the root filesystems the package is installed on.
//!
//! A board root is either the user's (`--board <dir>`: a board's root
//! filesystem or SDK sysroot) or one of the manifest's `[board.<name>]`,
//! assembled from Debian's binary packages by name (the `Depends` closure,
//! from the host's apt mirror, `InRelease` signature and every checksum
//! checked) and cached. What matters about a board is its C library: glibc
//! and its version, musl, or uClibc, and for which machine.
//!
//! Paths inside a board root are resolved the way the board's kernel would
//! resolve them: a symlink (`lib -> usr/lib`, or `lib -> /usr/lib`) is
//! followed inside the root, never out of it.

use std::fmt;
use std::fs;
use std::path::{Component, Path, PathBuf};

use anyhow::{bail, Context, Result};

use crate::model::manifest::{Arch, Board, LibcKind};
use crate::sources::fetch::Fetcher;

/// Library directories of a root, multiarch ones included, as the dynamic
/// loader of a Debian system searches them.
pub fn library_dirs(root: &Path) -> Vec<PathBuf> {
    let mut out = vec![];
    for dir in LIB_DIRS {
        let Ok(abs) = resolve_in_root(root, Path::new(dir)) else { continue };
        if !abs.is_dir() {
            continue;
        }
        if let Ok(entries) = fs::read_dir(&abs) {
            for e in entries.flatten() {
                if e.file_name().to_string_lossy().contains("-linux-") && e.path().is_dir() {
                    out.push(e.path());
                }
            }
        }
        out.push(abs);
    }
    out
}

/// The C library a board root holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BoardLibc {
    /// glibc: the highest `GLIBC_x.y` its `libc.so.6` defines, and where it is.
    Glibc { version: (u32, u32), libc: PathBuf },
    /// musl: its dynamic loader (`lib/ld-musl-aarch64.so.1`), and its
    /// release when the loader names one (`[1, 2, 3]`).
    Musl { loader: PathBuf, version: Option<Vec<u32>> },
    /// uClibc-ng: its dynamic loader.
    Uclibc { loader: PathBuf },
}

impl fmt::Display for BoardLibc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BoardLibc::Glibc { version, libc } => write!(f, "glibc {}.{} ({})", version.0, version.1, libc.display()),
            BoardLibc::Musl { loader, version: Some(v) } => write!(f, "musl {} ({})", dotted(v), loader.display()),
            BoardLibc::Musl { loader, version: None } => write!(f, "musl of unknown release ({})", loader.display()),
            BoardLibc::Uclibc { loader } => write!(f, "uClibc ({})", loader.display()),
        }
    }
}

/// Library directories of a board, multiarch and merged-/usr layouts included.
const LIB_DIRS: [&str; 4] = ["lib", "usr/lib", "lib64", "lib32"];

/// Read a board root's C library, and check it is built for `arch`.
pub fn libc_of(root: &Path, arch: &Arch) -> Result<BoardLibc> {
    if !root.is_dir() {
        bail!("board root {}: not a directory", root.display());
    }
    let mut candidates: Vec<PathBuf> = vec![];
    for dir in LIB_DIRS {
        let Ok(abs) = resolve_in_root(root, Path::new(dir)) else { continue };
        let Ok(entries) = fs::read_dir(&abs) else { continue };
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name == "libc.so.6" || name.starts_with("ld-musl-") || name.starts_with("ld-uClibc") {
                candidates.push(Path::new(dir).join(&name));
            } else if e.path().is_dir() && name.contains("-linux-") {
                // Debian's multiarch directory (lib/aarch64-linux-gnu).
                if resolve_in_root(root, &Path::new(dir).join(&name).join("libc.so.6")).is_ok_and(|p| p.exists()) {
                    candidates.push(Path::new(dir).join(&name).join("libc.so.6"));
                }
            }
        }
    }
    candidates.sort();
    candidates.dedup();
    let machine = crate::machine::elf::machine_number(arch.elf.machine);
    let mut wrong = vec![];
    for rel in &candidates {
        let abs = resolve_in_root(root, rel)?;
        let Some(info) = crate::machine::elf::inspect(&abs).ok().flatten() else { continue };
        if info.machine != machine || info.bits != u8::from(arch.elf.bits) {
            wrong.push(format!("{} (ELF machine {}, {}-bit)", rel.display(), info.machine, info.bits));
            continue;
        }
        let name = rel.file_name().unwrap().to_string_lossy();
        if name.starts_with("ld-musl-") {
            return Ok(BoardLibc::Musl { loader: rel.clone(), version: musl_release(&fs::read(&abs)?) });
        }
        if name.starts_with("ld-uClibc") {
            return Ok(BoardLibc::Uclibc { loader: rel.clone() });
        }
        // The release says it ("... release version 2.31."); the newest
        // symbol version it defines can be older (2.31 added none).
        let released = release_version(&fs::read(&abs)?);
        if let Some(version) = released.or(crate::machine::elf::glibc_defined(&abs)?) {
            return Ok(BoardLibc::Glibc { version, libc: rel.clone() });
        }
    }
    if !wrong.is_empty() {
        bail!("board root {} is not for {} ({}): its C library is {}", root.display(), arch.triplet, arch.elf.machine, wrong.join(", "));
    }
    bail!(
        "board root {}: no C library found (looked for libc.so.6, ld-musl-*.so.1 and ld-uClibc* in {}); an unknown libc cannot be served",
        root.display(),
        LIB_DIRS.join(", ")
    )
}

/// `2.31` from glibc's banner (`GNU C Library ... release version 2.31.`).
fn release_version(libc: &[u8]) -> Option<(u32, u32)> {
    let needle = b"release version ";
    let at = libc.windows(needle.len()).position(|w| w == needle)? + needle.len();
    let text: String = libc[at..].iter().take(12).take_while(|b| b.is_ascii_digit() || **b == b'.').map(|&b| b as char).collect();
    crate::model::manifest::parse_glibc(text.trim_end_matches('.'))
}

/// musl's release (`1.2.3`): the loader keeps it as a string of its own
/// (`__libc_version`, printed by `ld-musl-*.so.1 --version`); no other
/// string of musl's is three dotted numbers alone.
fn musl_release(loader: &[u8]) -> Option<Vec<u32>> {
    let mut found = loader.split(|&b| b == 0).filter_map(|s| {
        let s = std::str::from_utf8(s).ok()?;
        let parts: Vec<u32> = s.split('.').map(|p| p.parse().ok()).collect::<Option<_>>()?;
        (parts.len() == 3 && !s.starts_with('0')).then_some(parts)
    });
    let first = found.next()?;
    found.next().is_none().then_some(first)
}

fn dotted(v: &[u32]) -> String {
    v.iter().map(u32::to_string).collect::<Vec<_>>().join(".")
}

/// The shared objects of the board's C library: for glibc, the files
/// beside its `libc.so.6` named in `glibc_sonames` and its loaders; for
/// musl, the one object its loader is.
pub fn libc_objects(root: &Path, libc: &BoardLibc, glibc_sonames: &[String]) -> Vec<PathBuf> {
    match libc {
        BoardLibc::Glibc { libc, .. } => {
            let dir = root.join(libc).parent().map(Path::to_path_buf).unwrap_or_default();
            let mut out: Vec<PathBuf> = glibc_sonames.iter().map(|s| dir.join(s)).filter(|p| p.exists()).collect();
            for d in library_dirs(root) {
                for e in fs::read_dir(&d).into_iter().flatten().flatten() {
                    let name = e.file_name().to_string_lossy().into_owned();
                    if name.starts_with("ld-linux") || name == "ld.so.1" {
                        out.push(e.path());
                    }
                }
            }
            out
        }
        BoardLibc::Musl { loader, .. } | BoardLibc::Uclibc { loader } => resolve_in_root(root, loader).map(|p| vec![p]).unwrap_or_default(),
    }
}

/// Symbols the files of `tree` need that neither the tree's own libraries
/// nor the board's C library define: each would stop the loader ("symbol
/// not found") or a lazy call, on this board. Listed as (file, symbols).
pub fn unresolved_symbols(tree: &Path, board_libs: &[PathBuf]) -> Result<Vec<(String, Vec<String>)>> {
    let mut defined = std::collections::BTreeSet::new();
    for lib in board_libs {
        defined.extend(crate::machine::elf::dynamic_symbols(lib)?.defined);
    }
    let mut needs = vec![];
    for e in walkdir::WalkDir::new(tree).into_iter().flatten().filter(|e| e.file_type().is_file()) {
        if crate::machine::elf::inspect(e.path()).ok().flatten().is_none() {
            continue;
        }
        let syms = crate::machine::elf::dynamic_symbols(e.path())?;
        defined.extend(syms.defined);
        needs.push((e.path().strip_prefix(tree).unwrap_or(e.path()).display().to_string(), syms.needed));
    }
    let mut out = vec![];
    for (file, needed) in needs {
        let missing: Vec<String> = needed.into_iter().filter(|s| !defined.contains(s)).collect();
        if !missing.is_empty() {
            out.push((file, missing));
        }
    }
    out.sort();
    Ok(out)
}

/// Can a build for `floor` (glibc) or the manifest's musl floor run on
/// this board? Refused before any build.
pub fn check_serves(board: &Path, libc: &BoardLibc, floor: Option<(u32, u32)>, musl_floor: Option<&str>, arch: &Arch) -> Result<()> {
    match (libc, arch.libc) {
        (BoardLibc::Musl { version, .. }, LibcKind::Musl) => {
            let floor: Option<Vec<u32>> = musl_floor.map(|f| f.split('.').filter_map(|p| p.parse().ok()).collect());
            if let (Some(have), Some(floor)) = (version, floor) {
                if *have < floor {
                    bail!(
                        "board {} runs {libc}, older than musl {} that the musl arches build for: its loader would refuse \
                         symbols musl added since (preadv2 came in 1.2.3, DT_RELR in 1.2.4). Update the board's musl",
                        board.display(),
                        dotted(&floor)
                    );
                }
            }
            Ok(())
        }
        (BoardLibc::Glibc { .. }, LibcKind::Musl) => {
            bail!("board {} runs {libc}, and this arch ({}) builds for musl: build the glibc arch of this CPU for it", board.display(), arch.triplet)
        }
        (BoardLibc::Musl { .. }, LibcKind::Glibc) => {
            bail!(
                "board {} runs {libc}; a glibc build ({}) does not start there: build the musl arch of this CPU (`--arch <arch>-musl`)",
                board.display(),
                arch.triplet
            )
        }
        (BoardLibc::Glibc { version, .. }, LibcKind::Glibc) => {
            if let Some(min) = arch.glibc_min.as_deref().and_then(crate::model::manifest::parse_glibc) {
                if *version < min {
                    bail!("board {}: glibc {}.{} is older than any glibc for {} ({}.{})", board.display(), version.0, version.1, arch.triplet, min.0, min.1);
                }
            }
            if let Some(f) = floor.filter(|f| f > version) {
                bail!(
                    "board {} has glibc {}.{}, older than the glibc floor {}.{} of this build: its programs would not start there. \
                     Build with --glibc-floor {}.{} (or pass --board to pick the floor from the board)",
                    board.display(),
                    version.0,
                    version.1,
                    f.0,
                    f.1,
                    version.0,
                    version.1
                );
            }
            Ok(())
        }
        (BoardLibc::Uclibc { .. }, _) => {
            bail!("board {} runs {libc}; crosspython builds for glibc and musl boards (uClibc-ng is not supported yet)", board.display())
        }
    }
}

/// `rel` inside `root` as the board would see it: every symlink met on the
/// way is followed inside the root (an absolute target starts again at the
/// root), and `..` never climbs above it. The last component may be absent.
pub fn resolve_in_root(root: &Path, rel: &Path) -> Result<PathBuf> {
    let mut parts: Vec<std::ffi::OsString> = vec![];
    let mut pending: Vec<std::ffi::OsString> = rel.components().rev().filter_map(component_name).collect();
    let mut hops = 0;
    while let Some(part) = pending.pop() {
        if part == ".." {
            parts.pop();
            continue;
        }
        let here: PathBuf = parts.iter().collect::<PathBuf>().join(&part);
        let abs = root.join(&here);
        match fs::symlink_metadata(&abs) {
            Ok(m) if m.file_type().is_symlink() => {
                hops += 1;
                if hops > 40 {
                    bail!("{}: too many levels of symbolic links inside {}", rel.display(), root.display());
                }
                let target = fs::read_link(&abs)?;
                if target.is_absolute() {
                    parts.clear();
                }
                pending.extend(target.components().rev().filter_map(component_name));
            }
            _ => parts.push(part),
        }
    }
    Ok(root.join(parts.iter().collect::<PathBuf>()))
}

fn component_name(c: Component) -> Option<std::ffi::OsString> {
    match c {
        Component::Normal(n) => Some(n.to_os_string()),
        Component::ParentDir => Some("..".into()),
        _ => None,
    }
}

/// The root of a manifest board: assembled from Debian packages on first
/// use into `<cache>/boards/<name>/root`, with `packages.txt` listing what
/// went in (name, version, sha256).
pub fn debian_root(fetcher: &Fetcher, cache: &Path, name: &str, board: &Board, arch: &Arch) -> Result<PathBuf> {
    let what = crate::model::manifest::DebianPackages { suite: board.suite.clone(), packages: board.packages.clone() };
    debian_packages_root(fetcher, cache, name, &board.summary, &what, arch)
}

/// The packages (and their `Depends` closure) unpacked into one root,
/// cached in `<cache>/boards/<name>-<key>/root`.
pub fn debian_packages_root(
    fetcher: &Fetcher,
    cache: &Path,
    name: &str,
    summary: &str,
    what: &crate::model::manifest::DebianPackages,
    arch: &Arch,
) -> Result<PathBuf> {
    let board = what;
    // "py3compile": roots assembled before the byte code step are not reused.
    let key = crate::sources::fetch::sha256_bytes(format!("{} {} {:?} py3compile", board.suite, arch.debian_arch, board.packages).as_bytes());
    let dir = cache.join("boards").join(format!("{name}-{}", &key[..12]));
    let root = dir.join("root");
    if dir.join("packages.txt").is_file() {
        return Ok(root);
    }
    eprintln!("crosspython: assembling {name} ({summary}) from Debian {} {}", board.suite, arch.debian_arch);
    let index = crate::sources::debian::index(fetcher, &board.suite, &arch.debian_arch).with_context(|| format!("board {name}"))?;
    let roots: Vec<&str> = board.packages.iter().map(String::as_str).collect();
    let closure = crate::sources::debian::closure(&index, &roots).with_context(|| format!("board {name}: Debian {} {}", board.suite, arch.debian_arch))?;
    fs::create_dir_all(cache.join("boards"))?;
    let tmp = tempfile::Builder::new().prefix(&format!(".{name}-")).tempdir_in(cache.join("boards"))?;
    let troot = tmp.path().join("root");
    fs::create_dir_all(&troot)?;
    let mut list = String::new();
    for p in &closure {
        let deb = crate::sources::debian::fetch(fetcher, p)?;
        crate::sources::debian::extract(&deb, &troot).with_context(|| format!("board {name}: cannot unpack {}", deb.display()))?;
        list.push_str(&format!("{} {} {}\n", p.name, p.version, p.sha256));
    }
    merge_usr(&troot)?;
    byte_compile_pythons(&troot, arch).with_context(|| format!("board {name}"))?;
    fs::write(tmp.path().join("packages.txt"), list)?;
    let _ = crate::base::sysroot::remove(&dir);
    let kept = tmp.keep();
    fs::rename(&kept, &dir).with_context(|| format!("cannot move the board root into {}", dir.display()))?;
    Ok(root)
}

/// py3compile's work with what `python3.X-minimal` has: py_compile, not
/// compileall (it needs pathlib, and pathlib ntpath, which 3.9's minimal
/// package lacks, nor concurrent.futures for -j). A file that does not
/// compile (Debian ships test files of bad syntax on purpose) is skipped,
/// as py3compile skips it; so is a symbolic link (Debian's point into
/// `/etc`, which is the build machine's here). Arguments: the root, the
/// directory.
const PY3COMPILE: &str = "import os, sys, py_compile
root, top = sys.argv[1:3]
for d, _, files in os.walk(top):
    for f in files:
        p = os.path.join(d, f)
        if f.endswith('.py') and not os.path.islink(p):
            try:
                py_compile.compile(p, dfile='/' + os.path.relpath(p, root), doraise=True)
            except py_compile.PyCompileError:
                pass
";

/// What Debian's postinst does for each `python3.X` (py3compile): its
/// packages ship no byte code, an installed board has it. Without it, the
/// board's own python compiled its stdlib at every start, and startup and
/// memory compared with ours said nothing. Runs the board's python under
/// qemu-user.
fn byte_compile_pythons(root: &Path, arch: &Arch) -> Result<()> {
    let Ok(entries) = fs::read_dir(root.join("usr/lib")) else { return Ok(()) };
    let mut versions: Vec<String> = entries.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).filter(|n| n.starts_with("python3.")).collect();
    versions.sort();
    for v in versions {
        let python = root.join("usr/bin").join(&v);
        if !python.is_file() {
            continue;
        }
        let mut cmd = crate::machine::runner::TargetRunner::new(arch, root).command(&python, false);
        cmd.args(["-I", "-c", PY3COMPILE]).arg(root).arg(root.join("usr/lib").join(&v));
        let out = crate::base::process::output(&mut cmd)?;
        if !out.status.success() {
            bail!("byte-compiling {v}'s stdlib under {} failed: {}", arch.qemu, crate::base::process::last_lines(&String::from_utf8_lossy(&out.stderr), 5));
        }
    }
    Ok(())
}

/// What Debian's `usrmerge` (or trixie's base-files) does: `/lib`, `/bin`,
/// `/sbin` become links into `/usr` where the packages only filled `/usr`,
/// so a `PT_INTERP` of `/lib/ld-linux-...` finds its loader.
fn merge_usr(root: &Path) -> Result<()> {
    for d in ["bin", "sbin", "lib", "lib64"] {
        let top = root.join(d);
        if top.symlink_metadata().is_err() && root.join("usr").join(d).is_dir() {
            std::os::unix::fs::symlink(format!("usr/{d}"), &top)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn symlinks_resolve_inside_the_root_and_never_out_of_it() {
        let t = tempfile::tempdir().unwrap();
        let r = t.path();
        fs::create_dir_all(r.join("usr/lib")).unwrap();
        symlink("usr/lib", r.join("lib")).unwrap();
        symlink("/usr/lib", r.join("abs")).unwrap();
        symlink("../../../../../etc", r.join("usr/lib/up")).unwrap();
        assert_eq!(resolve_in_root(r, Path::new("lib/libc.so.6")).unwrap(), r.join("usr/lib/libc.so.6"));
        assert_eq!(resolve_in_root(r, Path::new("abs/x")).unwrap(), r.join("usr/lib/x"), "an absolute link starts again at the root");
        assert_eq!(resolve_in_root(r, Path::new("usr/lib/up/passwd")).unwrap(), r.join("etc/passwd"), "`..` stops at the root");
        assert_eq!(resolve_in_root(r, Path::new("../../x")).unwrap(), r.join("x"));
    }

    #[test]
    fn glibc_names_its_release_in_its_banner() {
        assert_eq!(release_version(b"\0GNU C Library (Debian GLIBC 2.31-13+deb11u11) stable release version 2.31.\nCopyright"), Some((2, 31)));
        assert_eq!(release_version(b"no banner"), None);
    }

    #[test]
    fn a_symlink_loop_is_an_error() {
        let t = tempfile::tempdir().unwrap();
        symlink("b", t.path().join("a")).unwrap();
        symlink("a", t.path().join("b")).unwrap();
        assert!(resolve_in_root(t.path(), Path::new("a/x")).is_err());
    }

    #[test]
    fn a_root_without_a_c_library_is_refused_by_name() {
        let t = tempfile::tempdir().unwrap();
        fs::create_dir_all(t.path().join("lib")).unwrap();
        let loaded = crate::model::manifest::Loaded::read(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../recipes-manifest.toml")).unwrap();
        let err = libc_of(t.path(), &loaded.manifest.arch["aarch64"]).unwrap_err().to_string();
        assert!(err.contains("no C library found"), "{err}");
    }

    #[test]
    fn the_glibc_floor_is_checked_against_the_board() {
        let loaded = crate::model::manifest::Loaded::read(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../recipes-manifest.toml")).unwrap();
        let arch = &loaded.manifest.arch["aarch64"];
        let glibc = |v| BoardLibc::Glibc { version: v, libc: "lib/libc.so.6".into() };
        assert!(check_serves(Path::new("/b"), &glibc((2, 31)), Some((2, 28)), None, arch).is_ok());
        let err = check_serves(Path::new("/b"), &glibc((2, 24)), Some((2, 28)), None, arch).unwrap_err().to_string();
        assert!(err.contains("older than the glibc floor 2.28") && err.contains("--glibc-floor 2.24"), "{err}");
        let err = check_serves(Path::new("/b"), &glibc((2, 12)), Some((2, 12)), None, arch).unwrap_err().to_string();
        assert!(err.contains("older than any glibc for aarch64-linux-gnu (2.17)"), "{err}");
        let err = check_serves(Path::new("/b"), &musl(Some(vec![1, 2, 3])), Some((2, 28)), None, arch).unwrap_err().to_string();
        assert!(err.contains("runs musl") && err.contains("--arch <arch>-musl"), "{err}");
    }

    #[test]
    fn a_symbol_neither_the_tree_nor_the_board_defines_is_listed_with_its_file() {
        let t = tempfile::tempdir().unwrap();
        let cc = |args: &[&str]| assert!(std::process::Command::new("cc").args(args).current_dir(t.path()).status().unwrap().success());
        fs::write(t.path().join("board.c"), "int on_board(void) { return 1; }\n").unwrap();
        fs::write(t.path().join("lib.c"), "int on_board(void); int newer_than_board(void);\nint in_tree(void) { return on_board() + newer_than_board(); }\n")
            .unwrap();
        fs::create_dir_all(t.path().join("tree/lib")).unwrap();
        cc(&["-shared", "-fPIC", "-o", "libboard.so", "board.c"]);
        cc(&["-shared", "-fPIC", "-o", "tree/lib/libtree.so", "lib.c"]);
        let missing = unresolved_symbols(&t.path().join("tree"), &[t.path().join("libboard.so")]).unwrap();
        assert_eq!(missing, [("lib/libtree.so".to_string(), vec!["newer_than_board".to_string()])]);
    }

    fn musl(version: Option<Vec<u32>>) -> BoardLibc {
        BoardLibc::Musl { loader: "lib/ld-musl-aarch64.so.1".into(), version }
    }

    #[test]
    fn musl_names_its_release_in_a_string_of_its_own() {
        let loader = b"\x7fELF\0musl libc (aarch64)\0%.*s/etc/ld-musl-aarch64.path\x001.2.3\0Version %s\0";
        assert_eq!(musl_release(loader), Some(vec![1, 2, 3]));
        assert_eq!(musl_release(b"\x001.2.3\x001.2.4\0"), None, "two candidates: unknown, not a guess");
        assert_eq!(musl_release(b"\x002.31\0"), None);
    }

    #[test]
    fn a_musl_build_serves_musl_boards_only() {
        let loaded = crate::model::manifest::Loaded::read(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../recipes-manifest.toml")).unwrap();
        let arch = &loaded.manifest.arch["aarch64-musl"];
        assert!(check_serves(Path::new("/b"), &musl(Some(vec![1, 2, 3])), None, Some("1.2.3"), arch).is_ok());
        assert!(check_serves(Path::new("/b"), &musl(None), None, Some("1.2.3"), arch).is_ok(), "an unknown release is given the benefit of the doubt");
        let err = check_serves(Path::new("/b"), &musl(Some(vec![1, 2, 2])), None, Some("1.2.3"), arch).unwrap_err().to_string();
        assert!(err.contains("runs musl 1.2.2") && err.contains("older than musl 1.2.3"), "{err}");
        let err =
            check_serves(Path::new("/b"), &BoardLibc::Glibc { version: (2, 36), libc: "lib/libc.so.6".into() }, None, None, arch).unwrap_err().to_string();
        assert!(err.contains("runs glibc 2.36") && err.contains("builds for musl"), "{err}");
    }
}
