//! What is in a package: the file list, the size report by component and
//! an SPDX 2.3 SBOM of every recipe and Python package in it.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use anyhow::Result;
use serde_json::{json, Value};
use walkdir::WalkDir;

use crate::engine::image::{ImageNote, Owner};
use crate::model::manifest::Loaded;
use crate::model::resolve::Graph;

/// `size mode path` per file, `-> target` for symlinks, sorted; with the
/// total bytes and the number of files.
pub fn file_list(root: &Path) -> Result<(String, u64, usize)> {
    let mut out = String::new();
    let (mut total, mut count) = (0, 0);
    for e in WalkDir::new(root).min_depth(1).sort_by_file_name() {
        let e = e?;
        let rel = e.path().strip_prefix(root).unwrap().display();
        let meta = fs::symlink_metadata(e.path())?;
        if meta.file_type().is_symlink() {
            writeln!(out, "{:>10} {:04o} {rel} -> {}", 0, 0o777, fs::read_link(e.path())?.display())?;
        } else if meta.is_file() {
            writeln!(out, "{:>10} {:04o} {rel}", meta.len(), meta.permissions().mode() & 0o7777)?;
            total += meta.len();
            count += 1;
        }
    }
    Ok((out, total, count))
}

/// Who a file of the package came from, by its path in the tree the
/// build note describes.
pub struct Owners<'a> {
    note: &'a ImageNote,
    from_prefix: String,
    prefix: String,
}

impl<'a> Owners<'a> {
    pub fn new(note: &'a ImageNote, from_prefix: &str, prefix: &str) -> Owners<'a> {
        Owners { note, from_prefix: from_prefix.trim_start_matches('/').into(), prefix: prefix.trim_start_matches('/').into() }
    }

    pub fn of(&self, rel: &str) -> &Owner {
        let in_tree = match rel.strip_prefix(&self.prefix) {
            Some(rest) if rest.is_empty() || rest.starts_with('/') => format!("{}{rest}", self.from_prefix),
            _ => rel.to_string(),
        };
        let source = match in_tree.rsplit_once("/__pycache__/") {
            // a/__pycache__/b.cpython-313.opt-1.pyc comes from a/b.py
            Some((dir, file)) => format!("{dir}/{}.py", file.split('.').next().unwrap_or(file)),
            // sourceless a/b.pyc comes from a/b.py
            None => match in_tree.strip_suffix(".pyc") {
                Some(stem) => format!("{stem}.py"),
                None => in_tree,
            },
        };
        self.note.owners.get(&source).unwrap_or(&Owner::Other)
    }
}

/// The component a file counts toward in the size report.
fn component(owner: &Owner, interpreter: &str, rel: &str, prefix: &str) -> String {
    let p = prefix.trim_start_matches('/');
    match owner {
        Owner::Recipe(name) if name == interpreter => {
            let file = rel.rsplit('/').next().unwrap_or(rel);
            if rel.starts_with(&format!("{p}/bin/")) || file.starts_with("libpython") {
                "interpreter (python3, libpython)".into()
            } else if rel.contains("/lib-dynload/") {
                "stdlib C modules (lib-dynload)".into()
            } else if rel.starts_with(&format!("{p}/include/")) {
                "headers".into()
            } else {
                "stdlib".into()
            }
        }
        Owner::Recipe(name) => format!("C library: {name}"),
        Owner::Wheel(name) => format!("site-packages: {name}"),
        Owner::Toolchain => "toolchain run-time".into(),
        Owner::ToolchainGlibc => "glibc (private, from the toolchain)".into(),
        // The `zip` byte code profile's stdlib, made while staging.
        Owner::Other if is_stdlib_zip(rel, p) => "stdlib".into(),
        Owner::Other => "other".into(),
    }
}

/// `<prefix>/lib/python3XY.zip`, where CPython looks for a zipped stdlib.
fn is_stdlib_zip(rel: &str, prefix: &str) -> bool {
    rel.strip_prefix(prefix).and_then(|r| r.strip_prefix("/lib/python3")).is_some_and(|r| r.ends_with(".zip") && !r.contains('/'))
}

/// The size report as text, and the bytes of each component.
/// What `sizes` measured: the text, the bytes of each component and of
/// each stdlib module or package.
pub struct Sizes {
    pub text: String,
    pub components: BTreeMap<String, u64>,
    pub stdlib_modules: BTreeMap<String, u64>,
}

pub fn sizes(root: &Path, note: &ImageNote, from_prefix: &str, prefix: &str, archives: &[(String, u64)]) -> Result<Sizes> {
    let owners = Owners::new(note, from_prefix, prefix);
    let mut by: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    let mut stdlib_by: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    let mut total = (0, 0);
    for e in WalkDir::new(root).min_depth(1) {
        let e = e?;
        if !e.file_type().is_file() {
            continue;
        }
        let rel = e.path().strip_prefix(root).unwrap().display().to_string();
        let size = e.metadata()?.len();
        // Trees from before the note named it: CPython's recipe name.
        let interpreter = if note.interpreter.is_empty() { "python3" } else { note.interpreter.as_str() };
        let name = component(owners.of(&rel), interpreter, &rel, prefix);
        if name == "stdlib" {
            let m = stdlib_by.entry(stdlib_module(&rel)).or_default();
            m.0 += 1;
            m.1 += size;
        }
        let c = by.entry(name).or_default();
        c.0 += 1;
        c.1 += size;
        total.0 += 1;
        total.1 += size;
    }
    let components = by.iter().map(|(k, v)| (k.clone(), v.1)).collect();
    let mut rows: Vec<_> = by.into_iter().collect();
    rows.sort_by(|a, b| b.1 .1.cmp(&a.1 .1).then(a.0.cmp(&b.0)));
    let mut out = String::new();
    writeln!(out, "{:44} {:>7} {:>10}", "component", "files", "KiB")?;
    for (name, (files, bytes)) in &rows {
        writeln!(out, "{name:44} {files:>7} {:>10.1}", *bytes as f64 / 1024.0)?;
    }
    writeln!(out, "{:44} {:>7} {:>10.1}", "total (unpacked)", total.0, total.1 as f64 / 1024.0)?;
    for (name, size) in archives {
        writeln!(out, "{:44} {:>7} {:>10.1}", name, "", *size as f64 / 1024.0)?;
    }
    // Where the stdlib's bytes go: its largest modules and packages, then the rest.
    let stdlib_modules = stdlib_by.iter().map(|(k, v)| (k.clone(), v.1)).collect();
    let mut modules: Vec<_> = stdlib_by.into_iter().collect();
    modules.sort_by(|a, b| b.1 .1.cmp(&a.1 .1).then(a.0.cmp(&b.0)));
    if !modules.is_empty() {
        writeln!(out, "\n{:44} {:>7} {:>10}", "stdlib by module (largest 20)", "files", "KiB")?;
        for (name, (files, bytes)) in modules.iter().take(20) {
            writeln!(out, "{name:44} {files:>7} {:>10.1}", *bytes as f64 / 1024.0)?;
        }
        let rest = &modules[modules.len().min(20)..];
        if !rest.is_empty() {
            let (files, bytes) = rest.iter().fold((0, 0), |a, (_, (f, b))| (a.0 + f, a.1 + b));
            writeln!(out, "{:44} {files:>7} {:>10.1}", format!("the other {} modules", rest.len()), bytes as f64 / 1024.0)?;
        }
    }
    Ok(Sizes { text: out, components, stdlib_modules })
}

/// The stdlib module or package a file of `lib/python3.X/` belongs to
/// (`email` for `email/_parseaddr.pyc`, `os` for `__pycache__/os.*.pyc`).
fn stdlib_module(rel: &str) -> String {
    let Some((_, inside)) = rel.split_once("/lib/python3.").and_then(|(_, r)| r.split_once('/')) else {
        // lib/python314.zip, the compact profile's stdlib
        return rel.rsplit('/').next().unwrap_or(rel).to_string();
    };
    let first = inside.split('/').next().unwrap_or(inside);
    let file = if first == "__pycache__" { inside.rsplit('/').next().unwrap_or(inside) } else { first };
    file.split('.').next().unwrap_or(file).to_string()
}

/// An installed Python distribution, from its `*.dist-info/METADATA`.
struct Dist {
    name: String,
    version: String,
    license: Option<String>,
}

fn dists(root: &Path) -> Result<Vec<Dist>> {
    let mut out = vec![];
    for e in WalkDir::new(root).sort_by_file_name().into_iter().flatten() {
        if e.file_name() != "METADATA" || e.path().parent().is_none_or(|p| p.extension().is_none_or(|x| x != "dist-info")) {
            continue;
        }
        let text = fs::read_to_string(e.path())?;
        let field = |k: &str| text.lines().take_while(|l| !l.is_empty()).find_map(|l| l.strip_prefix(k)).map(|v| v.trim().to_string());
        let (Some(name), Some(version)) = (field("Name:"), field("Version:")) else { continue };
        // An SPDX expression when the metadata gives one; free text is not.
        let license = field("License-Expression:").or_else(|| field("License:").filter(|l| !l.is_empty() && l.len() < 40 && !l.contains(char::is_whitespace)));
        out.push(Dist { name, version, license });
    }
    Ok(out)
}

fn spdx_id(kind: &str, name: &str) -> String {
    let clean: String = name.chars().map(|c| if c.is_ascii_alphanumeric() || c == '.' || c == '-' { c } else { '-' }).collect();
    format!("SPDXRef-{kind}-{clean}")
}

/// An SPDX 2.3 document: the package, the recipes in it (run time) or used
/// to build it (build time), the toolchain run-time and every Python
/// distribution, with versions, licenses, sources and sha256.
pub fn sbom(loaded: &Loaded, graph: &Graph, root: &Path, note: &ImageNote, name: &str, epoch: u64) -> Result<Value> {
    let mut doc = Spdx::new(name);
    doc.recipes(graph);
    doc.toolchain_copies(note);
    doc.python_distributions(root, note)?;
    // The namespace must be unique per document: derive it from the content.
    let content = serde_json::to_vec(&(&doc.packages, &doc.relationships))?;
    let digest = crate::sources::fetch::sha256_bytes(&content);
    Ok(json!({
        "spdxVersion": "SPDX-2.3",
        "dataLicense": "CC0-1.0",
        "SPDXID": "SPDXRef-DOCUMENT",
        "name": name,
        "documentNamespace": format!("https://spdx.org/spdxdocs/{name}-{}", &digest[..16]),
        "creationInfo": {
            "created": iso8601(epoch),
            "creators": [format!("Tool: crosspython ({})", loaded.path.file_name().unwrap_or_default().to_string_lossy())],
        },
        "packages": doc.packages,
        "relationships": doc.relationships,
    }))
}

/// An SPDX document's packages and relationships as they are added, the
/// first package the one the document describes (`top`).
struct Spdx {
    top: String,
    packages: Vec<Value>,
    relationships: Vec<Value>,
}

impl Spdx {
    fn new(name: &str) -> Spdx {
        let top = spdx_id("Package", name);
        let packages = vec![json!({
            "SPDXID": top,
            "name": name,
            "downloadLocation": "NOASSERTION",
            "filesAnalyzed": false,
            "primaryPackagePurpose": "OPERATING-SYSTEM",
        })];
        let relationships = vec![json!({"spdxElementId": "SPDXRef-DOCUMENT", "relationshipType": "DESCRIBES", "relatedSpdxElement": top})];
        Spdx { top, packages, relationships }
    }

    /// A package the top package contains.
    fn contained(&mut self, id: String, package: Value) {
        self.packages.push(package);
        self.relationships.push(json!({"spdxElementId": self.top, "relationshipType": "CONTAINS", "relatedSpdxElement": id}));
    }

    /// Every recipe of the graph: contained when it is in the run-time
    /// set, else a build tool (native) or build dependency of the package.
    fn recipes(&mut self, graph: &Graph) {
        for (i, node) in graph.nodes.iter().enumerate() {
            let id = spdx_id("Recipe", &node.name);
            let source = node.sources.first();
            let mut p = json!({
                "SPDXID": id,
                "name": node.name,
                "versionInfo": node.version,
                "downloadLocation": source.map(|s| s.url.get_ref().clone()).unwrap_or_else(|| "NOASSERTION".into()),
                "licenseDeclared": node.license,
                "licenseConcluded": "NOASSERTION",
                "copyrightText": "NOASSERTION",
                "filesAnalyzed": false,
                "summary": node.summary,
            });
            if let Some(sha) = source.and_then(|s| s.sha256.as_ref()) {
                p["checksums"] = json!([{"algorithm": "SHA256", "checksumValue": sha.get_ref()}]);
            }
            if graph.runtime.contains(&i) {
                self.contained(id, p);
                continue;
            }
            let kind = if node.is_native() { "BUILD_TOOL_OF" } else { "BUILD_DEPENDENCY_OF" };
            self.packages.push(p);
            self.relationships.push(json!({"spdxElementId": id, "relationshipType": kind, "relatedSpdxElement": self.top}));
        }
    }

    /// What the package carries of the toolchain's own: shared objects of
    /// a gcc toolchain (libstdc++, libgcc_s) the board lacks (zig links
    /// its C++ run-time statically, so usually none), and a gcc
    /// toolchain's glibc, carried privately for older boards.
    fn toolchain_copies(&mut self, note: &ImageNote) {
        if note.owners.values().any(|o| *o == Owner::Toolchain) {
            let id = spdx_id("Package", "toolchain-runtime");
            let p = json!({
                "SPDXID": id,
                "name": "run-time libraries (libgcc, libstdc++)",
                "versionInfo": "NOASSERTION",
                "downloadLocation": "NOASSERTION",
                "licenseDeclared": "GPL-3.0-or-later WITH GCC-exception-3.1",
                "licenseConcluded": "NOASSERTION",
                "copyrightText": "NOASSERTION",
                "filesAnalyzed": false,
                "comment": if note.runtime_packages.is_empty() {
                    format!("copied from the cross toolchain {}", note.toolchain)
                } else {
                    format!("from Debian packages (name version sha256): {}", note.runtime_packages.join("; "))
                },
            });
            self.contained(id, p);
        }
        if note.owners.values().any(|o| *o == Owner::ToolchainGlibc) {
            let id = spdx_id("Package", "toolchain-glibc");
            let p = json!({
                "SPDXID": id,
                "name": "glibc (private copy under the prefix)",
                "versionInfo": note.toolchain_glibc.map(|(a, b)| format!("{a}.{b}")).unwrap_or_else(|| "NOASSERTION".into()),
                "downloadLocation": "NOASSERTION",
                "licenseDeclared": "LGPL-2.1-or-later",
                "licenseConcluded": "NOASSERTION",
                "copyrightText": "NOASSERTION",
                "filesAnalyzed": false,
                "comment": format!("copied from the cross toolchain {}", note.toolchain),
            });
            self.contained(id, p);
        }
    }

    /// Every Python distribution installed under `root`, with its purl,
    /// and the wheel it came from with that wheel's sha256.
    fn python_distributions(&mut self, root: &Path, note: &ImageNote) -> Result<()> {
        for d in dists(root)? {
            let id = spdx_id("PyPI", &d.name);
            let norm = d.name.to_ascii_lowercase().replace(['-', '.'], "_");
            let wheel = note.wheels.iter().find(|w| w.file.to_ascii_lowercase().starts_with(&format!("{norm}-{}-", d.version)));
            let mut p = json!({
                "SPDXID": id,
                "name": d.name,
                "versionInfo": d.version,
                "downloadLocation": "NOASSERTION",
                "licenseDeclared": d.license.clone().unwrap_or_else(|| "NOASSERTION".into()),
                "licenseConcluded": "NOASSERTION",
                "copyrightText": "NOASSERTION",
                "filesAnalyzed": false,
                "externalRefs": [{
                    "referenceCategory": "PACKAGE-MANAGER",
                    "referenceType": "purl",
                    "referenceLocator": format!("pkg:pypi/{}@{}", d.name.to_ascii_lowercase(), d.version),
                }],
            });
            if let Some(w) = wheel {
                p["packageFileName"] = json!(w.file);
                p["checksums"] = json!([{"algorithm": "SHA256", "checksumValue": w.sha256}]);
            }
            self.contained(id, p);
        }
        Ok(())
    }
}

/// `SOURCE_DATE_EPOCH` as `YYYY-MM-DDThh:mm:ssZ`, as SPDX wants it.
fn iso8601(epoch: u64) -> String {
    humantime::format_rfc3339_seconds(std::time::UNIX_EPOCH + std::time::Duration::from_secs(epoch)).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_zipped_stdlib_counts_as_stdlib() {
        let note = ImageNote::default();
        let o = Owners::new(&note, "/usr/local", "/usr/local");
        let rel = "usr/local/lib/python314.zip";
        assert_eq!(component(o.of(rel), "python3", rel, "/usr/local"), "stdlib");
        assert_eq!(component(o.of("usr/local/lib/x/python314.zip"), "python3", "usr/local/lib/x/python314.zip", "/usr/local"), "other");
    }

    #[test]
    fn stdlib_files_count_toward_their_top_level_module_or_package() {
        assert_eq!(stdlib_module("usr/local/lib/python3.14/email/_parseaddr.pyc"), "email");
        assert_eq!(stdlib_module("usr/local/lib/python3.14/__pycache__/os.cpython-314.pyc"), "os");
        assert_eq!(stdlib_module("usr/local/lib/python3.14/os.py"), "os");
        assert_eq!(stdlib_module("usr/local/lib/python3.14/LICENSE.txt"), "LICENSE");
        assert_eq!(stdlib_module("usr/local/lib/python314.zip"), "python314.zip");
    }

    #[test]
    fn epochs_print_as_utc_dates() {
        assert_eq!(iso8601(0), "1970-01-01T00:00:00Z");
        assert_eq!(iso8601(1_735_689_600), "2025-01-01T00:00:00Z");
        assert_eq!(iso8601(951_825_600 + 3661), "2000-02-29T13:01:01Z");
    }

    #[test]
    fn owners_follow_relocation_and_byte_code_back_to_the_source() {
        let mut note = ImageNote::default();
        note.owners.insert("usr/local/lib/python3.13/os.py".into(), Owner::Recipe("python3".into()));
        note.owners.insert("usr/local/lib/libz.so.1".into(), Owner::Recipe("zlib".into()));
        let o = Owners::new(&note, "/usr/local", "/opt/py");
        assert_eq!(o.of("opt/py/lib/libz.so.1"), &Owner::Recipe("zlib".into()));
        assert_eq!(o.of("opt/py/lib/python3.13/__pycache__/os.cpython-313.pyc"), &Owner::Recipe("python3".into()));
        assert_eq!(o.of("opt/py/lib/python3.13/os.pyc"), &Owner::Recipe("python3".into()));
        assert_eq!(o.of("etc/unknown"), &Owner::Other);
    }

    #[test]
    fn files_count_toward_components() {
        assert_eq!(component(&Owner::Recipe("python3".into()), "python3", "usr/local/bin/python3.13", "/usr/local"), "interpreter (python3, libpython)");
        assert_eq!(
            component(&Owner::Recipe("python3".into()), "python3", "usr/local/lib/libpython3.13.so.1.0", "/usr/local"),
            "interpreter (python3, libpython)"
        );
        assert_eq!(
            component(&Owner::Recipe("python3".into()), "python3", "usr/local/lib/python3.13/lib-dynload/_ssl.so", "/usr/local"),
            "stdlib C modules (lib-dynload)"
        );
        assert_eq!(component(&Owner::Recipe("openssl".into()), "python3", "usr/local/lib/libssl.so.3", "/usr/local"), "C library: openssl");
        assert_eq!(component(&Owner::Wheel("numpy".into()), "python3", "x", "/usr/local"), "site-packages: numpy");
        assert_eq!(component(&Owner::Toolchain, "python3", "usr/local/lib/libstdc++.so.6", "/usr/local"), "toolchain run-time");
    }

    #[test]
    fn the_sbom_names_each_recipe_by_its_relation_and_each_python_distribution_by_its_wheel() {
        let loaded = Loaded::read(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../recipes-manifest.toml")).unwrap();
        let graph = crate::model::resolve::resolve(&loaded, "armhf").unwrap();
        let root = tempfile::tempdir().unwrap();
        let dist_info = root.path().join("usr/local/lib/python3.14/site-packages/PyYAML-6.0.4.dist-info");
        fs::create_dir_all(&dist_info).unwrap();
        fs::write(dist_info.join("METADATA"), "Metadata-Version: 2.1\nName: PyYAML\nVersion: 6.0.4\nLicense: MIT\n\nbody: License: GPL\n").unwrap();
        let mut note = ImageNote::default();
        note.wheels.push(crate::engine::image::WheelNote { file: "pyyaml-6.0.4-cp314-cp314-linux_armv7l.whl".into(), sha256: "ab12".into() });
        let doc = sbom(&loaded, &graph, root.path(), &note, "crosspython-3.14.7-armhf", 1_735_689_600).unwrap();

        let relation = |id: &str| -> Vec<(String, String, String)> {
            let rel = doc["relationships"].as_array().unwrap().iter();
            let text = |v: &Value| v.as_str().unwrap().to_string();
            rel.filter(|r| r["spdxElementId"] == id || r["relatedSpdxElement"] == id)
                .map(|r| (text(&r["spdxElementId"]), text(&r["relationshipType"]), text(&r["relatedSpdxElement"])))
                .collect()
        };
        let top = "SPDXRef-Package-crosspython-3.14.7-armhf";
        assert_eq!(relation(top)[0], ("SPDXRef-DOCUMENT".into(), "DESCRIBES".into(), top.into()));
        // The interpreter is in the package; its build python builds it.
        assert_eq!(relation("SPDXRef-Recipe-python3"), [(top.into(), "CONTAINS".into(), "SPDXRef-Recipe-python3".into())]);
        assert_eq!(relation("SPDXRef-Recipe-python3-native"), [("SPDXRef-Recipe-python3-native".into(), "BUILD_TOOL_OF".into(), top.into())]);
        let package = |id: &str| doc["packages"].as_array().unwrap().iter().find(|p| p["SPDXID"] == id).unwrap().clone();
        let python3 = package("SPDXRef-Recipe-python3");
        assert_eq!(python3["versionInfo"], "3.14.7");
        assert_eq!(python3["checksums"][0]["algorithm"], "SHA256", "the source's sha256 from the manifest");
        // A distribution found by its METADATA (the header only), with the wheel it came from.
        let yaml = package("SPDXRef-PyPI-PyYAML");
        assert_eq!((yaml["versionInfo"].as_str(), yaml["licenseDeclared"].as_str()), (Some("6.0.4"), Some("MIT")));
        assert_eq!(yaml["externalRefs"][0]["referenceLocator"], "pkg:pypi/pyyaml@6.0.4");
        assert_eq!(
            (yaml["packageFileName"].as_str(), yaml["checksums"][0]["checksumValue"].as_str()),
            (Some("pyyaml-6.0.4-cp314-cp314-linux_armv7l.whl"), Some("ab12"))
        );
        // No toolchain files in the note: no toolchain package.
        assert!(doc["packages"].as_array().unwrap().iter().all(|p| !p["SPDXID"].as_str().unwrap().contains("toolchain")));
        assert_eq!(doc["creationInfo"]["created"], "2025-01-01T00:00:00Z");
        // The same inputs, the same document (its namespace is its content's).
        assert_eq!(doc, sbom(&loaded, &graph, root.path(), &note, "crosspython-3.14.7-armhf", 1_735_689_600).unwrap());
    }
}
