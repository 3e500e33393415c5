//! Byte strings: finding and replacing the build machine's paths in files.

use std::fs;
use std::path::Path;

use anyhow::Result;
use walkdir::WalkDir;

/// Whether `needle` occurs in `hay` (an empty needle never does).
pub fn contains(hay: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && memchr::memmem::find(hay, needle).is_some()
}

/// `hay` with every `from` replaced by `to`, left to right.
pub fn replace_all(hay: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    if from.is_empty() {
        return hay.to_vec();
    }
    let mut out = Vec::with_capacity(hay.len());
    let mut last = 0;
    for at in memchr::memmem::find_iter(hay, from) {
        out.extend_from_slice(&hay[last..at]);
        out.extend_from_slice(to);
        last = at + from.len();
    }
    out.extend_from_slice(&hay[last..]);
    out
}

/// `hay` with every path below `dir` cut to its file name
/// (`<dir>/wrappers/x/bin/mipsel-linux-gnu-gcc -shared` becomes
/// `mipsel-linux-gnu-gcc -shared`): the build machine's tools as a board
/// names them, found on its PATH. A path runs to the first byte that
/// cannot be in one (space, quote, comma, `=`...); `dir` itself must be
/// followed by `/`, so that `<dir>x` is not taken for it.
pub fn bare_tool_names(hay: &[u8], dir: &[u8]) -> Vec<u8> {
    let path_byte = |b: u8| b.is_ascii_alphanumeric() || b"_.-+/".contains(&b);
    if dir.is_empty() {
        return hay.to_vec();
    }
    let mut out = Vec::with_capacity(hay.len());
    let mut i = 0;
    while let Some(at) = memchr::memmem::find(&hay[i..], dir).map(|at| i + at) {
        let after = at + dir.len();
        if hay.get(after) != Some(&b'/') {
            out.extend_from_slice(&hay[i..after]);
            i = after;
            continue;
        }
        let end = hay[after..].iter().position(|&b| !path_byte(b)).map_or(hay.len(), |n| after + n);
        let name_start = hay[at..end].iter().rposition(|&b| b == b'/').map_or(at, |n| at + n + 1);
        out.extend_from_slice(&hay[i..at]);
        out.extend_from_slice(&hay[name_start..end]);
        i = end;
    }
    out.extend_from_slice(&hay[i..]);
    out
}

/// Whether a file's bytes are binary: a NUL in the first 8000 bytes
/// (git's rule). Binary files are never edited for paths: a path of
/// another length inside an ELF file, a `.pyc`'s marshal data or a static
/// archive would corrupt it.
fn is_binary(bytes: &[u8]) -> bool {
    bytes[..bytes.len().min(8000)].contains(&0)
}

/// A file's bytes with each rule (from -> to) applied in order, when they
/// are text that holds one of `needles`; `None` for binary files and for
/// text that holds none.
pub fn rewritten_text(bytes: &[u8], needles: &[Vec<u8>], rules: &[(Vec<u8>, Vec<u8>)]) -> Option<Vec<u8>> {
    is_text_with(bytes, needles).then(|| apply_rules(bytes, rules))
}

/// Whether `bytes` are text that holds one of `needles`: what may be edited.
fn is_text_with(bytes: &[u8], needles: &[Vec<u8>]) -> bool {
    !is_binary(bytes) && needles.iter().any(|n| contains(bytes, n))
}

/// `bytes` with each rule (from -> to) applied in order.
fn apply_rules(bytes: &[u8], rules: &[(Vec<u8>, Vec<u8>)]) -> Vec<u8> {
    rules.iter().fold(bytes.to_vec(), |text, (from, to)| replace_all(&text, from, to))
}

/// In every text file below `root` (at most 16 MiB) that holds one of
/// `needles`, apply `rules` (from -> to) in order; returns how many files
/// changed. Permissions are kept: the file is rewritten in place.
///
/// Binary files (`base::bytes::is_binary`) are never edited.
pub fn rewrite_text_files(root: &Path, needles: &[Vec<u8>], rules: &[(Vec<u8>, Vec<u8>)]) -> Result<usize> {
    edit_text_files(root, needles, &|bytes| apply_rules(bytes, rules))
}

/// As `rewrite_text_files`, with `edit` making each such file's new text.
pub fn edit_text_files(root: &Path, needles: &[Vec<u8>], edit: &dyn Fn(&[u8]) -> Vec<u8>) -> Result<usize> {
    let mut count = 0;
    for e in WalkDir::new(root) {
        let e = e?;
        if !e.file_type().is_file() || e.metadata()?.len() > 16 << 20 {
            continue;
        }
        let bytes = fs::read(e.path())?;
        if !is_text_with(&bytes, needles) {
            continue;
        }
        fs::write(e.path(), edit(&bytes))?;
        remove_cached_byte_code(e.path())?;
        count += 1;
    }
    Ok(count)
}

/// The byte code `__pycache__` holds for a rewritten `.py` file still has
/// the old text's constants (crossenv compares `_sysconfigdata`'s two forms
/// and refuses a mismatch); Python compiles the source again when needed.
fn remove_cached_byte_code(source: &Path) -> Result<()> {
    let (Some(dir), Some(stem)) = (source.parent(), source.file_name().and_then(|n| n.to_str()).and_then(|n| n.strip_suffix(".py"))) else {
        return Ok(());
    };
    let Ok(entries) = fs::read_dir(dir.join("__pycache__")) else { return Ok(()) };
    for e in entries.flatten() {
        let name = e.file_name();
        let name = name.to_string_lossy();
        if name.strip_prefix(stem).and_then(|rest| rest.strip_prefix('.')).is_some_and(|rest| rest.ends_with(".pyc")) {
            fs::remove_file(e.path())?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tools_below_a_directory_are_named_by_their_file_names() {
        let dir = b"/home/u/.cache/crosspython/toolchains";
        let cc = b"'CC': '/home/u/.cache/crosspython/toolchains/zig-0.17.1/wrappers/t/bin/mipsel-linux-gnu-gcc', \
                   'LDSHARED': '/home/u/.cache/crosspython/toolchains/zig-0.17.1/wrappers/t/bin/mipsel-linux-gnu-gcc -shared -L/usr/local/lib'";
        assert_eq!(
            bare_tool_names(cc, dir),
            b"'CC': 'mipsel-linux-gnu-gcc', \
                   'LDSHARED': 'mipsel-linux-gnu-gcc -shared -L/usr/local/lib'"
        );
        assert_eq!(bare_tool_names(b"CXX=/home/u/.cache/crosspython/toolchains/b/x-g++\n", dir), b"CXX=x-g++\n", "to the end of the path");
        assert_eq!(bare_tool_names(b"/home/u/.cache/crosspython/toolchains-old/x-gcc", dir), b"/home/u/.cache/crosspython/toolchains-old/x-gcc");
        assert_eq!(bare_tool_names(b"-L/usr/local/lib", dir), b"-L/usr/local/lib", "other paths are kept");
    }

    #[test]
    fn replaces_every_occurrence_and_finds_none_of_nothing() {
        assert_eq!(replace_all(b"/b/x:/b/y", b"/b", b"/usr"), b"/usr/x:/usr/y");
        assert_eq!(replace_all(b"aaa", b"aa", b"b"), b"ba", "left to right, without overlaps");
        assert!(contains(b"in /tmp/build/x", b"/tmp/build"));
        assert!(!contains(b"anything", b""));
    }
}
