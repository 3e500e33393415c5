//! The Debian mirror of this host, read from its apt configuration at run
//! time (deb822 `*.sources` files and one-line `sources.list`), so that no
//! mirror host is ever written into the project.

use std::path::Path;

/// A space-separated list of URL bases from an environment variable
/// (`CROSSPYTHON_PREMIRRORS`, `CROSSPYTHON_SSTATE_MIRRORS`, ...), without
/// trailing slashes; empty when the variable is unset.
pub fn bases_from_env(var: &str) -> Vec<String> {
    std::env::var(var).unwrap_or_default().split_whitespace().map(|s| s.trim_end_matches('/').to_string()).collect()
}

/// Base URIs of the host's Debian archive mirrors (without a trailing
/// slash), security and update archives excluded. `CROSSPYTHON_DEBIAN_MIRROR`
/// overrides them.
pub fn debian_mirrors() -> Vec<String> {
    let chosen = bases_from_env("CROSSPYTHON_DEBIAN_MIRROR");
    if !chosen.is_empty() {
        return chosen;
    }
    let mut texts = Vec::new();
    if let Ok(dir) = std::fs::read_dir("/etc/apt/sources.list.d") {
        let mut paths: Vec<_> = dir.flatten().map(|e| e.path()).collect();
        paths.sort();
        for p in paths {
            if let Some(kind) = p.extension().and_then(|e| e.to_str()) {
                if let Ok(t) = std::fs::read_to_string(&p) {
                    texts.push((kind.to_string(), t));
                }
            }
        }
    }
    if let Ok(t) = std::fs::read_to_string(Path::new("/etc/apt/sources.list")) {
        texts.push(("list".to_string(), t));
    }
    let mut uris = Vec::new();
    for (kind, text) in texts {
        let found = match kind.as_str() {
            "sources" => deb822_uris(&text),
            "list" => one_line_uris(&text),
            _ => vec![],
        };
        for u in found {
            if !uris.contains(&u) {
                uris.push(u);
            }
        }
    }
    uris
}

/// The archive a mirror line serves: the main archive, not security.
fn is_main_archive(uri: &str, suites: &[&str]) -> bool {
    let security = uri.contains("security") || suites.iter().all(|s| s.ends_with("-security"));
    (uri.starts_with("http://") || uri.starts_with("https://")) && !security
}

fn deb822_uris(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for stanza in text.split("\n\n") {
        let field = |name: &str| {
            stanza
                .lines()
                .find(|l| l.to_ascii_lowercase().starts_with(&format!("{}:", name.to_ascii_lowercase())))
                .map(|l| l.split_once(':').unwrap().1.trim().to_string())
                .unwrap_or_default()
        };
        if field("Enabled").eq_ignore_ascii_case("no") {
            continue;
        }
        let suites = field("Suites");
        let suites: Vec<&str> = suites.split_whitespace().collect();
        for uri in field("URIs").split_whitespace() {
            if is_main_archive(uri, &suites) {
                out.push(uri.trim_end_matches('/').to_string());
            }
        }
    }
    out
}

fn one_line_uris(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for line in text.lines() {
        let words: Vec<&str> = line.split_whitespace().filter(|w| !w.starts_with('[') && !w.ends_with(']')).collect();
        if let [kind, uri, suite, ..] = words.as_slice() {
            if (*kind == "deb" || *kind == "deb-src") && is_main_archive(uri, &[suite]) {
                out.push(uri.trim_end_matches('/').to_string());
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deb822_stanzas_give_the_main_archive_not_security() {
        let text = "Types: deb\nURIs: http://mirror.example/debian\nSuites: bookworm bookworm-updates\nComponents: main\n\n\
                    Types: deb\nURIs: http://mirror.example/debian-security\nSuites: bookworm-security\nComponents: main\n";
        assert_eq!(deb822_uris(text), ["http://mirror.example/debian"]);
    }

    #[test]
    fn one_line_sources_are_read_too() {
        let text = "# comment\ndeb [arch=amd64] http://mirror.example/debian/ bookworm main\ndeb http://sec.example/debian-security bookworm-security main\n";
        assert_eq!(one_line_uris(text), ["http://mirror.example/debian"]);
    }

    #[test]
    fn disabled_stanzas_are_skipped() {
        let text = "Enabled: no\nTypes: deb\nURIs: http://mirror.example/debian\nSuites: bookworm\n";
        assert!(deb822_uris(text).is_empty());
    }
}
