//! Byte strings: finding and replacing the build machine's paths in files.

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_every_occurrence_and_finds_none_of_nothing() {
        assert_eq!(replace_all(b"/b/x:/b/y", b"/b", b"/usr"), b"/usr/x:/usr/y");
        assert_eq!(replace_all(b"aaa", b"aa", b"b"), b"ba", "left to right, without overlaps");
        assert!(contains(b"in /tmp/build/x", b"/tmp/build"));
        assert!(!contains(b"anything", b""));
    }
}
