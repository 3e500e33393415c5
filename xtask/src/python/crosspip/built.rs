//! What a wheel built here must not keep: the directories of the build
//! that made it. The built-wheel cache serves every build directory of
//! the machine (sibling builds, CI's clones), and rootfs scrubs only its
//! own directories out of the tree: numpy's `__config__.py` built in one
//! directory carried that directory's paths into the trees of the others,
//! and its extension modules' debug information too.

use std::collections::BTreeMap;
use std::fs;
use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::base::bytes::rewritten_text;

/// This build's directories, and what each becomes in a built wheel.
pub struct BuildPaths {
    /// In text files (from -> to, in order), as rootfs rewrites the tree:
    /// the tree being assembled is the board's root (`-I<tree>/usr/include`
    /// becomes `-I/usr/include`), the build directory the debug-source path.
    pub text: Vec<(Vec<u8>, Vec<u8>)>,
    /// In ELF files' debug information (`machine::debug_info`), with the
    /// other build directories it names (zig's compile cache serves them
    /// all) found by their layout for `arch`.
    pub debug: Vec<PathBuf>,
    pub arch: String,
}

impl BuildPaths {
    pub fn new(build_dir: &Path, tree: &Path, arch: &str) -> BuildPaths {
        let bytes = |p: &Path| p.display().to_string().into_bytes();
        BuildPaths {
            text: vec![(bytes(tree), vec![]), (bytes(build_dir), b"/usr/src/debug/build".to_vec())],
            debug: vec![build_dir.to_path_buf(), tree.to_path_buf()],
            arch: arch.to_string(),
        }
    }
}

/// One member of a wheel, as read.
struct Member {
    name: String,
    bytes: Vec<u8>,
    options: zip::write::SimpleFileOptions,
}

/// Rewrites `wheel` in place so that no member names one of `paths`'
/// directories, with RECORD's hashes and sizes for the members changed;
/// returns how many changed (0: the file is left as it was).
pub fn keep_build_paths_out(wheel: &Path, paths: &BuildPaths) -> Result<usize> {
    let mut members = read_members(wheel)?;
    let needles: Vec<Vec<u8>> = paths.text.iter().map(|(from, _)| from.clone()).collect();
    let mut changed: BTreeMap<String, usize> = BTreeMap::new();
    for (i, m) in members.iter_mut().enumerate() {
        if let Some(text) = rewritten_text(&m.bytes, &needles, &paths.text) {
            m.bytes = text;
            changed.insert(m.name.clone(), i);
        }
    }
    // ELF members go through debugedit on disk.
    let work = tempfile::tempdir()?;
    let mut elf = vec![];
    for (i, m) in members.iter().enumerate() {
        if m.bytes.starts_with(b"\x7fELF") {
            let file = work.path().join(i.to_string());
            fs::write(&file, &m.bytes)?;
            elf.push((i, file));
        }
    }
    let mut bases = paths.debug.clone();
    bases.extend(crate::machine::debug_info::build_dirs_named(work.path(), &paths.arch)?);
    if crate::machine::debug_info::map_build_paths(work.path(), &bases)? > 0 {
        for (i, file) in elf {
            let bytes = fs::read(&file)?;
            if bytes != members[i].bytes {
                members[i].bytes = bytes;
                changed.insert(members[i].name.clone(), i);
            }
        }
    }
    if changed.is_empty() {
        return Ok(0);
    }
    let record = members.iter().position(|m| m.name.ends_with(".dist-info/RECORD")).with_context(|| format!("{} has no RECORD", wheel.display()))?;
    let text = String::from_utf8(members[record].bytes.clone()).with_context(|| format!("the RECORD of {} is not UTF-8", wheel.display()))?;
    members[record].bytes = record_with(&text, &changed, &members).into_bytes();
    write_members(wheel, &members)?;
    Ok(changed.len())
}

fn read_members(wheel: &Path) -> Result<Vec<Member>> {
    let mut zip = zip::ZipArchive::new(fs::File::open(wheel)?).with_context(|| format!("{} is not a zip file", wheel.display()))?;
    let mut members = vec![];
    for i in 0..zip.len() {
        let mut f = zip.by_index(i)?;
        let mut bytes = vec![];
        f.read_to_end(&mut bytes).with_context(|| format!("cannot read {} in {}", f.name(), wheel.display()))?;
        let options = zip::write::SimpleFileOptions::default()
            .compression_method(f.compression())
            .last_modified_time(f.last_modified().unwrap_or_default())
            .unix_permissions(f.unix_mode().unwrap_or(0o644));
        members.push(Member { name: f.name().to_string(), bytes, options });
    }
    Ok(members)
}

/// The wheel written again beside itself, then renamed over it: a process
/// killed meanwhile leaves the old wheel whole.
fn write_members(wheel: &Path, members: &[Member]) -> Result<()> {
    let tmp = wheel.with_extension("whl.tmp");
    let mut w = zip::ZipWriter::new(fs::File::create(&tmp).with_context(|| format!("cannot write {}", tmp.display()))?);
    for m in members {
        if m.name.ends_with('/') {
            w.add_directory(m.name.as_str(), m.options)?;
        } else {
            w.start_file(m.name.as_str(), m.options)?;
            w.write_all(&m.bytes)?;
        }
    }
    w.finish()?;
    fs::rename(&tmp, wheel).with_context(|| format!("cannot replace {}", wheel.display()))
}

/// A wheel's RECORD line for a file (PEP 376, PEP 427): its path, the
/// urlsafe base64 of its sha256 without padding, its size.
pub fn record_line(path: &str, bytes: &[u8]) -> String {
    use base64::Engine as _;
    use sha2::Digest as _;
    let digest = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(bytes));
    format!("{path},sha256={digest},{}", bytes.len())
}

/// RECORD with the lines of the `changed` members (name -> index) hashed again.
fn record_with(record: &str, changed: &BTreeMap<String, usize>, members: &[Member]) -> String {
    let mut out = String::with_capacity(record.len());
    for line in record.lines() {
        let path = line.rsplitn(3, ',').nth(2).unwrap_or(line);
        match changed.get(path) {
            Some(&i) => out.push_str(&record_line(path, &members[i].bytes)),
            None => out.push_str(line),
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::base::bytes::contains;
    use crate::machine::debug_info::library_compiled_in;

    /// A wheel with a config file naming the build's directories, a
    /// library compiled with debug information in the build directory, one
    /// in another build's, and a module that names nothing.
    fn built_wheel(t: &Path) -> (PathBuf, BuildPaths) {
        let build = t.join("b/build");
        let tree = t.join("b/sysroots/.armhf.tmp");
        let lib = library_compiled_in(&build.join("armhf/work/zstd-1.5.7/build"));
        // One compiled in another build directory: zig's compile cache
        // gives its objects the directory of the build that made them.
        let foreign = library_compiled_in(&t.join("other/build/armhf/work/ncurses-6.4/build"));
        let config = format!(
            "args = '-I{0}/usr/local/include -ffile-prefix-map={1}=/usr/src/debug'\npython = '{1}/armhf/crossenv/cross/bin/python3.14'\n",
            tree.display(),
            build.display()
        );
        let files: Vec<(&str, Vec<u8>)> = vec![
            ("pkg/__init__.py", b"X = 1\n".to_vec()),
            ("pkg/__config__.py", config.into_bytes()),
            ("pkg/_x.so", fs::read(&lib).unwrap()),
            ("pkg/_y.so", fs::read(&foreign).unwrap()),
        ];
        let mut record = String::new();
        let wheel = t.join("pkg-1.0-cp314-cp314-linux_armv7l.whl");
        let mut w = zip::ZipWriter::new(fs::File::create(&wheel).unwrap());
        let options = zip::write::SimpleFileOptions::default();
        for (name, bytes) in &files {
            w.start_file(*name, options).unwrap();
            w.write_all(bytes).unwrap();
            record.push_str(&format!("{name},sha256=old,{}\n", bytes.len()));
        }
        record.push_str("pkg-1.0.dist-info/RECORD,,\n");
        w.start_file("pkg-1.0.dist-info/RECORD", options).unwrap();
        w.write_all(record.as_bytes()).unwrap();
        w.finish().unwrap();
        (wheel, BuildPaths::new(&build, &tree, "armhf"))
    }

    #[test]
    fn a_built_wheel_names_no_directory_of_the_build_and_its_record_matches() {
        let t = tempfile::tempdir().unwrap();
        let (wheel, paths) = built_wheel(t.path());
        assert_eq!(keep_build_paths_out(&wheel, &paths).unwrap(), 3, "the config file and the two libraries");
        let members: BTreeMap<String, Vec<u8>> = read_members(&wheel).unwrap().into_iter().map(|m| (m.name, m.bytes)).collect();
        for (name, bytes) in &members {
            assert!(!contains(bytes, t.path().display().to_string().as_bytes()), "{name} still names the build");
        }
        assert_eq!(
            String::from_utf8_lossy(&members["pkg/__config__.py"]),
            "args = '-I/usr/local/include -ffile-prefix-map=/usr/src/debug/build=/usr/src/debug'\npython = '/usr/src/debug/build/armhf/crossenv/cross/bin/python3.14'\n",
            "as rootfs rewrites the tree"
        );
        // RECORD: the changed members hashed again (as pip checks them on
        // install), the others as they were.
        let record = String::from_utf8_lossy(&members["pkg-1.0.dist-info/RECORD"]).into_owned();
        let line = |name: &str| record.lines().find(|l| l.starts_with(&format!("{name},"))).unwrap().to_string();
        assert_eq!(line("pkg/__init__.py"), "pkg/__init__.py,sha256=old,6");
        let config = &members["pkg/__config__.py"];
        use base64::Engine as _;
        use sha2::Digest as _;
        let digest = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(config));
        assert_eq!(line("pkg/__config__.py"), format!("pkg/__config__.py,sha256={digest},{}", config.len()));
        assert!(!line("pkg/_x.so").contains("sha256=old"));
        // A second pass finds nothing and leaves the file alone.
        let before = fs::read(&wheel).unwrap();
        assert_eq!(keep_build_paths_out(&wheel, &paths).unwrap(), 0);
        assert_eq!(fs::read(&wheel).unwrap(), before);
    }
}
