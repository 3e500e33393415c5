//! The one check of a target tree, wherever files are about to reach a
//! board: the image (`do_rootfs`), packages staged by `pip` to join the
//! tree, and the package (`package`, with the package's rules on top).
//! Every ELF file is parsed once: the arch's machine, class and byte
//! order; every `DT_NEEDED` present; what the board's C library must
//! provide (glibc symbol versions, `DT_RELR`); no build-machine path in
//! any file. The package's rules add a non-executable stack, RELRO, run
//! paths inside the package, symlinks that stay inside, no setuid or
//! world-writable file and no file of the board's C library.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use anyhow::Result;
use walkdir::WalkDir;

use crate::base::bytes::contains;
use crate::base::sysroot::normalize;
use crate::machine::elf::{self, ElfInfo};
use crate::model::manifest::ElfExpect;

/// What a tree must be for the boards of an arch.
pub struct TreeCheck<'a> {
    pub want: &'a ElfExpect,
    pub board: &'a BoardLibs,
    /// Libraries outside the root checked that count as present: the
    /// tree, for files staged to join it.
    pub beside: BTreeMap<String, PathBuf>,
    /// Build-machine paths no file may contain.
    pub build_paths: Vec<PathBuf>,
    /// The package's rules too.
    pub package: bool,
}

impl<'a> TreeCheck<'a> {
    pub fn new(want: &'a ElfExpect, board: &'a BoardLibs) -> TreeCheck<'a> {
        TreeCheck { want, board, beside: BTreeMap::new(), build_paths: vec![], package: false }
    }

    /// Check every file below `root`; every problem is listed in the
    /// error, which starts with `what` ("the package /x").
    pub fn run(&self, root: &Path, what: &str) -> Result<Checked> {
        let mut problems = vec![];
        let mut checked = Checked { floor: self.board.glibc, ..Checked::default() };
        let libs = tree_libraries(root);
        for (path, info) in elf::elf_files(root)? {
            let rel = path.strip_prefix(root).unwrap().display().to_string();
            checked.files += 1;
            if let Err(e) = elf::check_machine(&info, self.want) {
                problems.push(format!("{rel}: wrong target: {e}"));
            }
            problems.extend(load_address_problem(&rel, &info, self.want.lowest_load()));
            for n in info.needed.iter().filter(|n| !libs.contains_key(*n) && !self.beside.contains_key(*n) && !self.board.has(n)) {
                problems.push(format!("{rel}: needs {n}, which is neither in the tree nor the board's C library"));
            }
            problems.extend(self.board.problems(&rel, &info));
            if info.max_glibc > checked.max_glibc {
                checked.max_glibc = info.max_glibc;
                checked.max_glibc_file = rel.clone();
            }
            if self.package {
                problems.extend(self.package_elf_problems(root, &path, &rel, &info));
            }
        }
        let needles: Vec<Vec<u8>> = self.build_paths.iter().map(|p| p.display().to_string().into_bytes()).collect();
        for e in WalkDir::new(root).min_depth(1) {
            let e = e?;
            let rel = e.path().strip_prefix(root).unwrap().display().to_string();
            let meta = fs::symlink_metadata(e.path())?;
            if self.package {
                problems.extend(self.package_file_problems(root, e.path(), &rel, &meta)?);
            }
            if meta.is_file() && !needles.is_empty() {
                checked.all_files += 1;
                let bytes = fs::read(e.path())?;
                if let Some(n) = needles.iter().find(|n| contains(&bytes, n)) {
                    problems.push(format!("{rel}: contains the build-machine path {}", String::from_utf8_lossy(n)));
                }
            }
        }
        if !problems.is_empty() {
            anyhow::bail!("{what} is not fit for the board:\n  {}", problems.join("\n  "));
        }
        Ok(checked)
    }

    fn package_elf_problems(&self, root: &Path, path: &Path, rel: &str, info: &ElfInfo) -> Vec<String> {
        let mut problems = vec![];
        let loadable = info.interp.is_some() || info.soname.is_some() || !info.needed.is_empty();
        if info.exec_stack && !self.want.exec_stack {
            problems.push(format!("{rel}: executable stack (PT_GNU_STACK has PF_X)"));
        }
        if loadable && !info.relro && self.want.relro {
            problems.push(format!("{rel}: no RELRO (PT_GNU_RELRO)"));
        }
        for paths in [&info.rpath, &info.runpath].into_iter().flatten() {
            for entry in paths.split(':').filter(|e| !e.is_empty()) {
                if let Err(why) = run_path_inside(root, path, entry) {
                    problems.push(format!("{rel}: run path {entry}: {why}"));
                }
            }
        }
        problems
    }

    fn package_file_problems(&self, root: &Path, path: &Path, rel: &str, meta: &fs::Metadata) -> Result<Vec<String>> {
        let mut problems = vec![];
        if meta.file_type().is_symlink() {
            let target = fs::read_link(path)?;
            let resolved = normalize(&path.parent().unwrap().join(&target));
            if target.is_absolute() {
                problems.push(format!("{rel}: absolute symlink to {}", target.display()));
            } else if !resolved.starts_with(root) {
                problems.push(format!("{rel}: symlink {} leaves the package", target.display()));
            }
            return Ok(problems);
        }
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        let private_glibc = path.parent().is_some_and(|d| d.ends_with(crate::machine::private_glibc::DIR));
        if !meta.is_dir() && self.board.has(&name) && !private_glibc {
            problems.push(format!("{rel}: a part of glibc; the board's own C library must be used, never replaced"));
        }
        let mode = meta.permissions().mode();
        if mode & 0o6000 != 0 {
            problems.push(format!("{rel}: setuid/setgid (mode {mode:o})"));
        }
        if meta.is_file() && mode & 0o002 != 0 {
            problems.push(format!("{rel}: world-writable (mode {mode:o})"));
        }
        Ok(problems)
    }
}

/// A run path entry must be `$ORIGIN`-relative and stay inside the package.
fn run_path_inside(root: &Path, file: &Path, entry: &str) -> Result<(), String> {
    let rest = entry
        .strip_prefix("$ORIGIN")
        .or_else(|| entry.strip_prefix("${ORIGIN}"))
        .ok_or("not relative to $ORIGIN: it names a directory of the build machine or of the board's /")?;
    let dir = normalize(&file.parent().unwrap().join(rest.trim_start_matches('/')));
    if !dir.starts_with(root) {
        return Err("climbs out of the package".into());
    }
    Ok(())
}

/// What a board provides to the package: its C library's shared objects
/// (any dynamic loader too) and, for glibc, the newest symbol version the
/// package may need.
#[derive(Debug, Clone, Default)]
pub struct BoardLibs {
    pub sonames: Vec<String>,
    /// musl: names its loader resolves to itself.
    pub soname_prefixes: Vec<String>,
    pub glibc: Option<(u32, u32)>,
    /// When the board's loader skips `DT_RELR` relocations: the C library
    /// version that would apply them (for the error).
    pub relr_from: Option<String>,
}

impl BoardLibs {
    pub fn new(libc: &crate::model::manifest::Libc, kind: crate::model::manifest::LibcKind, glibc: Option<(u32, u32)>) -> BoardLibs {
        let relr = |name: &str, have: Option<Vec<u32>>| -> Option<String> {
            let since = libc.relr_since.get(name).map(|v| version_parts(v));
            match (since, have) {
                (Some(since), Some(have)) if have < since => Some(format!("{name} {}", libc.relr_since[name])),
                _ => None,
            }
        };
        match kind {
            crate::model::manifest::LibcKind::Glibc => {
                BoardLibs { sonames: libc.glibc_sonames.clone(), soname_prefixes: vec![], glibc, relr_from: relr("glibc", glibc.map(|(a, b)| vec![a, b])) }
            }
            crate::model::manifest::LibcKind::Musl => BoardLibs {
                sonames: vec![],
                soname_prefixes: libc.musl_soname_prefixes.clone(),
                glibc: None,
                relr_from: relr("musl", libc.musl_floor.as_deref().map(version_parts)),
            },
        }
    }

    /// What an ELF file needs that this board's C library may not give:
    /// glibc symbol versions above the floor, `DT_RELR` below its support.
    pub fn problems(&self, rel: &str, info: &ElfInfo) -> Vec<String> {
        let mut out = vec![];
        if let (Some(need), Some(floor)) = (info.max_glibc, self.glibc) {
            if need > floor {
                out.push(format!("{rel}: needs GLIBC_{}.{}, newer than the glibc floor {}.{}", need.0, need.1, floor.0, floor.1));
            }
        }
        if let (true, Some(since)) = (info.relr, &self.relr_from) {
            out.push(format!("{rel}: has packed relative relocations (DT_RELR), which loaders before {since} skip: it would crash on the board"));
        }
        out
    }

    pub fn has(&self, soname: &str) -> bool {
        self.sonames.iter().any(|s| s == soname)
            || self.soname_prefixes.iter().any(|p| soname.starts_with(p.as_str()))
            || soname.starts_with("ld-linux")
            || soname == "ld.so.1"
            || soname.starts_with("ld-musl-")
    }
}

/// `1.2.3` -> [1, 2, 3]
fn version_parts(v: &str) -> Vec<u32> {
    v.split('.').map(|p| p.parse().unwrap_or(0)).collect()
}

/// Names a library can be found under in the tree (file and symlink names
/// in the library directories), by directory.
pub fn tree_libraries(root: &Path) -> BTreeMap<String, PathBuf> {
    let mut libs = BTreeMap::new();
    for e in WalkDir::new(root).into_iter().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.contains(".so") && (e.file_type().is_file() || e.file_type().is_symlink()) {
            libs.entry(name).or_insert_with(|| e.path().parent().unwrap().to_path_buf());
        }
    }
    libs
}

/// The result of checking every ELF file of a tree.
#[derive(Debug, Default)]
pub struct Checked {
    /// ELF files.
    pub files: usize,
    /// Files searched for build paths.
    pub all_files: usize,
    pub max_glibc: Option<(u32, u32)>,
    pub max_glibc_file: String,
    pub floor: Option<(u32, u32)>,
}

impl Checked {
    pub fn summary(&self) -> String {
        let glibc = self.max_glibc.map(|(a, b)| format!("GLIBC_{a}.{b} (by {})", self.max_glibc_file)).unwrap_or_else(|| "none".into());
        let floor = self.floor.map(|(a, b)| format!(" (floor {a}.{b})")).unwrap_or_default();
        format!("ELF check: {} files, all for the target, every DT_NEEDED present; highest glibc symbol version needed: {glibc}{floor}\n", self.files)
    }
}

/// An executable that loads below `lowest` (see `ElfExpect::lowest_load`).
/// patchelf makes them: to give a program without a run path one, it puts
/// the grown headers in a new segment a page below the first, and with
/// MIPS's 64 KiB page and lld's first segment at 64 KiB that is address 0.
fn load_address_problem(rel: &str, info: &ElfInfo, lowest: u64) -> Option<String> {
    let low = info.loads.iter().map(|l| l.0).min()?;
    (info.fixed_address && low < lowest).then(|| {
        format!(
            "{rel}: loads at {low:#x}, below {lowest:#x}, the lowest address a board's kernel lets a program without CAP_SYS_RAWIO map \
             (vm.mmap_min_addr): exec fails for users other than root, and a program mapped at 0 reads NULL instead of crashing"
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::manifest::arch::ElfBits;
    use crate::model::manifest::{ElfMachine, Endian};

    const AARCH64: ElfExpect =
        ElfExpect { machine: ElfMachine::Aarch64, bits: ElfBits::B64, endian: Endian::Little, exec_stack: false, relro: true, lowest_load: None };

    #[test]
    fn run_paths_must_be_origin_relative_and_stay_inside() {
        let root = Path::new("/p");
        let bin = Path::new("/p/usr/local/bin/python3");
        assert!(run_path_inside(root, bin, "$ORIGIN/../lib").is_ok());
        assert!(run_path_inside(root, bin, "/usr/local/lib").is_err());
        assert!(run_path_inside(root, bin, "$ORIGIN/../../../../lib").is_err());
    }

    #[test]
    fn the_package_rules_refuse_escaping_symlinks_and_every_check_refuses_build_paths() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().join("root");
        fs::create_dir_all(root.join("lib")).unwrap();
        std::os::unix::fs::symlink("../../etc/passwd", root.join("lib/escape")).unwrap();
        fs::write(root.join("lib/notes.txt"), format!("built in {}", t.path().display())).unwrap();
        let board = BoardLibs::default();
        let mut check = TreeCheck { build_paths: vec![t.path().to_path_buf()], ..TreeCheck::new(&AARCH64, &board) };
        let err = check.run(&root, "the tree").unwrap_err().to_string();
        assert!(err.starts_with("the tree is not fit for the board:"), "{err}");
        assert!(err.contains("lib/notes.txt: contains the build-machine path"), "{err}");
        assert!(!err.contains("escape"), "symlinks are the package's rule: {err}");
        check.package = true;
        let err = check.run(&root, "the package").unwrap_err().to_string();
        assert!(err.contains("lib/escape: symlink ../../etc/passwd leaves the package"), "{err}");
    }

    #[test]
    fn a_library_beside_the_root_counts_as_present() {
        // The build machine's own programs stand in for target files:
        // their machine is wrong for aarch64 on x86_64, which is reported,
        // and their libraries are found or not as told.
        let t = tempfile::tempdir().unwrap();
        let root = t.path().join("stage");
        fs::create_dir_all(root.join("bin")).unwrap();
        let true_bin = which::which("true").unwrap();
        fs::copy(&true_bin, root.join("bin/true")).unwrap();
        let info = elf::inspect(&root.join("bin/true")).unwrap().unwrap();
        let board = BoardLibs::default();
        let mut check = TreeCheck::new(&AARCH64, &board);
        let err = check.run(&root, "the new packages").unwrap_err().to_string();
        for n in &info.needed {
            assert!(err.contains(&format!("bin/true: needs {n}, which is neither in the tree nor the board's C library")), "{err}");
        }
        check.beside = info.needed.iter().map(|n| (n.clone(), PathBuf::from("/tree/lib"))).collect();
        let err = check.run(&root, "the new packages").unwrap_err().to_string();
        assert!(!err.contains("needs"), "{err}");
    }

    #[test]
    fn an_executable_below_the_kernels_lowest_mapping_is_refused() {
        // The build machine's gcc links a fixed-address program at its
        // default (0x400000) and, told so, at 0, as patchelf left
        // python3.14 on mipsel.
        let t = tempfile::tempdir().unwrap();
        fs::write(t.path().join("p.c"), "int main(void) { return 0; }\n").unwrap();
        let link = |name: &str, extra: &[&str]| {
            let out = t.path().join(name);
            let ok = std::process::Command::new("gcc").args(["-no-pie", "-o"]).arg(&out).arg(t.path().join("p.c")).args(extra).status().unwrap();
            assert!(ok.success());
            elf::inspect(&out).unwrap().unwrap()
        };
        let usual = link("usual", &[]);
        assert!(usual.fixed_address);
        assert_eq!(load_address_problem("bin/usual", &usual, 0x8000), None);
        let at_zero = link("at-zero", &["-Wl,-Ttext-segment=0"]);
        let why = load_address_problem("usr/local/bin/python3.14", &at_zero, 0x8000).expect("refused");
        assert!(why.starts_with("usr/local/bin/python3.14: loads at 0x0, below 0x8000"), "{why}");
        // A library loads where the loader puts it: 0 is its base, not an address.
        let lib = elf::inspect(&crate::machine::debug_info::library_compiled_in(&t.path().join("lib"))).unwrap().unwrap();
        assert!(!lib.fixed_address);
        assert_eq!(load_address_problem("lib/libx.so", &lib, 0x8000), None);
    }
}
