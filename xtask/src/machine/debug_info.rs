//! Debug information that names no directory of this machine. The
//! compile prefix maps (`classes::base`) keep this build's directories
//! out of what the compiler writes; what they miss is mapped afterwards,
//! as Yocto's package.bbclass does, with Debian's debugedit.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result};
use walkdir::WalkDir;

/// Where debug information kept in a package says the sources were built:
/// the directory the compile prefix maps name (`classes::base`).
pub const DEBUG_SOURCE_DIR: &str = "/usr/src/debug";

/// Debug information below `root` names no directory of this machine:
/// each ELF file that still names one of `build_paths` is
/// rewritten by `debugedit -b <path> -d /usr/src/debug`, as Yocto's
/// package.bbclass does. The compile prefix maps leave such names only in
/// what the compiler's driver builds itself: zig compiles glibc's start
/// files and `libc_nonshared.a` once into its cache, with the directory of
/// the first recipe that linked as their `DW_AT_comp_dir`
/// (ziglang/zig#23821).
pub fn map_build_paths(root: &Path, build_paths: &[PathBuf]) -> Result<usize> {
    let bases: Vec<String> = build_paths.iter().map(|p| p.display().to_string()).collect();
    let mut files = vec![];
    for e in WalkDir::new(root) {
        let e = e?;
        if !e.file_type().is_file() {
            continue;
        }
        let data = fs::read(e.path())?;
        let named: Vec<&String> = bases.iter().filter(|b| crate::base::bytes::contains(&data, b.as_bytes())).collect();
        if data.starts_with(b"\x7fELF") && !named.is_empty() {
            files.push((e.path().to_path_buf(), named));
        }
    }
    if files.is_empty() {
        return Ok(0);
    }
    crate::machine::host::ensure_tool("debugedit", "debugedit", "debug information that names this machine's build directories")?;
    for (file, named) in &files {
        for base in named {
            // debugedit pads a shorter name and cannot write a longer one.
            let dest = if base.len() >= DEBUG_SOURCE_DIR.len() { DEBUG_SOURCE_DIR } else { "/" };
            crate::base::process::checked(Command::new("debugedit").args(["-b", base, "-d", dest]).arg(file))
                .with_context(|| format!("cannot rewrite the build paths in the debug information of {}", file.display()))?;
        }
        // A file whose sections debugedit moved keeps their old bytes in a
        // gap nothing reads.
        crate::machine::elf::blank_uncovered_bytes(file)?;
    }
    Ok(files.len())
}

/// Other build directories of this machine that the ELF files below
/// `root` name: zig's compile cache serves every build directory and
/// records, for the objects it makes itself (glibc's start files), the
/// directory of the first recipe that needed them (ziglang/zig#23821), and
/// the artifact cache restores what another build directory compiled. A
/// build directory is known by its layout: `<dir>/<arch>/work/` and
/// `<dir>/native/work/` hold its recipes' work directories.
pub fn build_dirs_named(root: &Path, arch: &str) -> Result<Vec<PathBuf>> {
    let layouts = [format!("/{arch}/work/"), "/native/work/".to_string()];
    let mut found = std::collections::BTreeSet::new();
    for e in WalkDir::new(root) {
        let e = e?;
        if !e.file_type().is_file() {
            continue;
        }
        let data = fs::read(e.path())?;
        if !data.starts_with(b"\x7fELF") {
            continue;
        }
        for layout in &layouts {
            for at in memchr::memmem::find_iter(&data, layout.as_bytes()) {
                // The path runs back to the string's start.
                let start = data[..at].iter().rposition(|&b| !(b.is_ascii_graphic() && b != b'"' && b != b'\'')).map_or(0, |p| p + 1);
                let dir = String::from_utf8_lossy(&data[start..at]).into_owned();
                if dir.starts_with('/') && !dir.starts_with(DEBUG_SOURCE_DIR) {
                    found.insert(PathBuf::from(dir));
                }
            }
        }
    }
    Ok(found.into_iter().collect())
}

/// A shared library compiled by the build machine's gcc with debug
/// information in `dir` (made if missing), which it records as the
/// objects' directory, as a recipe's compile does.
#[cfg(test)]
pub fn library_compiled_in(dir: &Path) -> PathBuf {
    fs::create_dir_all(dir).unwrap();
    fs::write(dir.join("x.c"), "int x(void) { return 1; }\n").unwrap();
    let status = Command::new("gcc").args(["-g", "-shared", "-fPIC", "-o", "libx.so", "x.c"]).current_dir(dir).status().unwrap();
    assert!(status.success(), "gcc failed in {}", dir.display());
    dir.join("libx.so")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_information_names_no_build_directory_of_this_machine() {
        // A library compiled with debug information in a "recipe's build
        // directory", as zig's cached start files are (ziglang/zig#23821).
        let build = tempfile::tempdir().unwrap();
        let root = tempfile::tempdir().unwrap();
        let lib = root.path().join("usr/local/lib/libx.so");
        fs::create_dir_all(lib.parent().unwrap()).unwrap();
        fs::rename(library_compiled_in(&build.path().join("armhf/work/ncurses-6.4/build")), &lib).unwrap();
        let text = root.path().join("usr/local/share/note.txt");
        fs::create_dir_all(text.parent().unwrap()).unwrap();
        fs::write(&text, format!("built in {}\n", build.path().display())).unwrap();
        let named = |f: &Path| String::from_utf8_lossy(&fs::read(f).unwrap()).contains(&build.path().display().to_string());
        assert!(named(&lib), "the compiler recorded its directory");
        assert_eq!(map_build_paths(root.path(), &[build.path().to_path_buf()]).unwrap(), 1);
        assert!(!named(&lib), "the debug information still names the build directory");
        let info = Command::new("readelf").arg("--debug-dump=info").arg(&lib).output().unwrap();
        assert!(String::from_utf8_lossy(&info.stdout).contains("/armhf/work/ncurses-6.4/build"), "the rest of the name is kept");
        // Only ELF files are rewritten: a text file that names the build is
        // left for the tree's and the package's checks to refuse.
        assert!(named(&text));
    }

    #[test]
    fn the_build_directories_that_debug_information_names_are_found_by_their_layout() {
        let t = tempfile::tempdir().unwrap();
        let lib = t.path().join("usr/local/lib/libx.so");
        fs::create_dir_all(lib.parent().unwrap()).unwrap();
        let mut elf = b"\x7fELF\x01\x01".to_vec();
        elf.extend_from_slice(b"\0/work/other/build/armhf/work/ncurses-6.4/build\0clang");
        elf.extend_from_slice(b"\0/tmp/ci-7/build/native/work/python3-native-3.14.7\0");
        elf.extend_from_slice(b"\0/usr/src/debug/armhf/work/numpy\0/home/a/aarch64/work/x\0");
        fs::write(&lib, elf).unwrap();
        // A text file is not debug information (the checks refuse those).
        fs::write(t.path().join("usr/local/lib/notes.txt"), "/srv/b/armhf/work/x\n").unwrap();
        let found = build_dirs_named(t.path(), "armhf").unwrap();
        assert_eq!(found, [PathBuf::from("/tmp/ci-7/build"), PathBuf::from("/work/other/build")], "not the debug-source path, not another arch's layout");
    }
}
