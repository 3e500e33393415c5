//! Recipe versions: parsing, ordering (numeric parts compare as numbers,
//! like dpkg and BitBake) and `preferred_version` patterns with a `%` suffix.

use std::cmp::Ordering;
use std::fmt;

use anyhow::{bail, Result};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Version {
    text: String,
    parts: Vec<Part>,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Part {
    // Declared first: a letter part sorts before a number ("1.0rc1" < "1.0.1").
    Alpha(String),
    Num(u64),
}

impl Version {
    pub fn parse(text: &str) -> Result<Version> {
        let ok_char = |c: char| c.is_ascii_alphanumeric() || ".-+_~".contains(c);
        let sep = |c: char| ".-+_~".contains(c);
        if text.is_empty()
            || !text.chars().all(ok_char)
            || !text.starts_with(|c: char| c.is_ascii_digit())
            || text.ends_with(sep)
            || text.chars().zip(text.chars().skip(1)).any(|(a, b)| sep(a) && sep(b))
        {
            bail!("invalid version `{text}`: a version starts with a digit and is digits and letters separated by single `.`, `-`, `+` or `_`");
        }
        let mut parts = Vec::new();
        let mut rest = text;
        while !rest.is_empty() {
            rest = rest.trim_start_matches(sep);
            let digits = rest.chars().take_while(|c| c.is_ascii_digit()).count();
            if digits > 0 {
                let n = rest[..digits].parse().map_err(|_| anyhow::anyhow!("invalid version `{text}`: number too large"))?;
                parts.push(Part::Num(n));
                rest = &rest[digits..];
            } else {
                let letters = rest.chars().take_while(|c| c.is_ascii_alphabetic()).count();
                parts.push(Part::Alpha(rest[..letters].to_string()));
                rest = &rest[letters..];
            }
        }
        Ok(Version { text: text.to_string(), parts })
    }

    /// `major.minor` ("3.13" for "3.13.5").
    pub fn major_minor(&self) -> String {
        self.text.split('.').take(2).collect::<Vec<_>>().join(".")
    }
}

impl Ord for Version {
    fn cmp(&self, other: &Self) -> Ordering {
        self.parts.cmp(&other.parts)
    }
}

impl PartialOrd for Version {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// Does `version` match a `preferred_version` pattern? `%` at the end is a
/// wildcard for the rest of the string, as in BitBake.
pub fn matches(pattern: &str, version: &str) -> bool {
    match pattern.strip_suffix('%') {
        Some(prefix) => version.starts_with(prefix),
        None => pattern == version,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> Version {
        Version::parse(s).unwrap()
    }

    #[test]
    fn numeric_parts_compare_as_numbers() {
        assert!(v("3.10") > v("3.9"));
        assert!(v("1.0.10") > v("1.0.8"));
        assert!(v("3.13.5") > v("3.11.2"));
        assert!(v("3.5.7") > v("3.0.20"));
    }

    #[test]
    fn a_longer_version_is_newer_than_its_prefix() {
        assert!(v("1.3.1") > v("1.3"));
    }

    #[test]
    fn dated_versions_compare_by_date() {
        assert!(v("3.1-20250104") > v("3.1-20221030"));
    }

    #[test]
    fn invalid_versions_are_rejected() {
        for bad in ["", "1..0", ".1", "1.", "v1.0", "1.0 beta", "1.0/2"] {
            assert!(Version::parse(bad).is_err(), "{bad:?} must be rejected");
        }
    }

    #[test]
    fn percent_is_a_suffix_wildcard() {
        assert!(matches("3.13.%", "3.13.5"));
        assert!(!matches("3.13.%", "3.1.3"));
        assert!(matches("3.%", "3.11.2"));
        assert!(matches("3.13.5", "3.13.5"));
        assert!(!matches("3.13", "3.13.5"), "without % the match is exact");
    }

    #[test]
    fn major_minor() {
        assert_eq!(v("3.13.5").major_minor(), "3.13");
    }
}
