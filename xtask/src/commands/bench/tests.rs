use std::collections::BTreeMap;
use std::path::Path;

use super::build::*;
use super::debian::*;
use super::options::*;
use super::plan::*;
use super::runtime::*;
use super::*;

/// The build phase's OpenSSL change is one more option of every openssl
/// recipe of the real manifest, at the end of the list its Configure
/// command gets.
#[test]
fn the_openssl_change_adds_an_option_to_every_configure_command() {
    let manifest = fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../recipes-manifest.toml")).unwrap();
    let changed: toml::Table = toml::from_str(&openssl_changed(&manifest).unwrap()).unwrap();
    let openssl: Vec<_> = changed["recipe"].as_array().unwrap().iter().filter(|r| r["name"].as_str() == Some("openssl")).collect();
    assert!(openssl.len() >= 2, "both LTS lines: {openssl:?}");
    for r in openssl {
        let configure = r["configure"].as_array().unwrap();
        assert_eq!(configure.last().and_then(|o| o.as_str()), Some("no-idea"), "{configure:?}");
        assert_eq!(configure.iter().filter(|o| o.as_str() == Some("no-idea")).count(), 1);
        let script = r["do_configure"].as_str().unwrap();
        assert!(script.contains("/Configure") && script.contains("$EXTRA_OECONF"), "the list reaches Configure: {script}");
    }
    let none = openssl_changed("[distro]\nprefix = \"/usr\"\n[[recipe]]\nname = \"zlib\"\n").unwrap_err().to_string();
    assert!(none.contains("no openssl recipe"), "{none}");
}

#[test]
fn a_timed_build_compiles_with_an_empty_zig_cache_and_the_users_comes_back() {
    let t = tempfile::tempdir().unwrap();
    let cache = t.path().join("toolchains/zig-cache");
    fs::create_dir_all(cache.join("o")).unwrap();
    fs::write(cache.join("o/users"), "kept").unwrap();
    {
        let _cold = ColdCompileCache::new(t.path()).unwrap();
        assert!(!cache.exists(), "the build starts cold");
        fs::create_dir_all(cache.join("o")).unwrap();
        fs::write(cache.join("o/benchs"), "thrown away").unwrap();
    }
    assert_eq!(fs::read_to_string(cache.join("o/users")).unwrap(), "kept");
    assert!(!cache.join("o/benchs").exists());
    // A bench killed while the user's cache was aside: the next puts it back first.
    let cold = ColdCompileCache::new(t.path()).unwrap();
    std::mem::forget(cold);
    drop(ColdCompileCache::new(t.path()).unwrap());
    assert_eq!(fs::read_to_string(cache.join("o/users")).unwrap(), "kept");
}

/// Footprint, runtime and profile measure the project's own tree: a
/// bench without one stops at once, naming the tree and the command
/// that makes it, before its build phases run (and before it writes a
/// result).
#[test]
fn a_bench_without_the_tree_it_measures_stops_before_it_builds() {
    let t = tempfile::tempdir().unwrap();
    let loaded = Loaded::read(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../recipes-manifest.toml")).unwrap();
    let project = Project {
        root: t.path().to_path_buf(),
        manifest_path: loaded.path.clone(),
        build_dir: t.path().join("build"),
        dl_dir: t.path().join("cache/downloads"),
        sstate_dir: t.path().join("cache/sstate"),
        wheel_dir: t.path().join("cache/wheels"),
        cache_dir: t.path().join("cache"),
    };
    let o =
        Options { arch: "aarch64".into(), only: None, runs: 1, cold_jobs: vec![2], suite: "auto".into(), variants: vec!["default".into()], toolchain: None };
    let e = format!("{:#}", bench(&project, &loaded, &o).unwrap_err());
    assert!(e.contains("`cargo xtask build --arch aarch64`"), "{e}");
    assert!(e.contains(&project.tree("aarch64").display().to_string()), "{e}");
    assert!(!t.path().join("deploy/bench").exists(), "it wrote results before stopping");
}

#[test]
fn a_variant_is_default_or_manifest_features_joined_by_plus() {
    let loaded = Loaded::read(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../recipes-manifest.toml")).unwrap();
    assert!(variant_features(&loaded, "default").unwrap().is_empty());
    assert_eq!(variant_features(&loaded, "lto+pgo").unwrap(), ["lto", "pgo"]);
    let err = variant_features(&loaded, "lto+fast").unwrap_err().to_string();
    assert!(err.starts_with("--variants lto+fast: `fast` is not a feature of the manifest"), "{err}");
    assert!(err.contains("lto, no-pie, pgo, static-interpreter"), "{err}");
    let release = &loaded.manifest.distro.feature_sets["release"];
    assert_eq!(&variant_features(&loaded, "release").unwrap(), release, "a feature set names its features");
}

#[test]
fn the_yardstick_of_another_minor_version_is_the_newest_python_of_the_suite() {
    let package = |name: &str| {
        (
            name.to_string(),
            crate::sources::debian::Package {
                name: name.into(),
                version: "1".into(),
                depends: vec![],
                filename: String::new(),
                sha256: String::new(),
                size: 0,
            },
        )
    };
    let index: BTreeMap<_, _> =
        ["python3.9-minimal", "python3.11-minimal", "python3.11", "python3-minimal", "libpython3.12-minimal"].into_iter().map(package).collect();
    assert_eq!(newest_python(&index).as_deref(), Some("python3.11"), "3.11 above 3.9, and only python3.X-minimal counts");
    assert_eq!(newest_python(&BTreeMap::new()), None);
}

/// Every interpreter runs from its board path in a root of its own,
/// the roots side by side: ours at the prefix over Debian's files,
/// Debian's in Debian's root alone, and nothing of ours in Debian's.
#[test]
fn each_interpreter_runs_from_its_board_path_in_a_root_beside_the_others() {
    let dir = tempfile::tempdir().unwrap();
    let debian = dir.path().join("debian-forky-arm64");
    fs::create_dir_all(debian.join("usr/bin")).unwrap();
    fs::write(debian.join("usr/bin/python3.14"), "debian's").unwrap();
    fs::write(debian.join(".complete"), "stamp").unwrap();
    std::os::unix::fs::symlink("usr/bin", debian.join("bin")).unwrap();
    let tree = dir.path().join("a/much/longer/build/path/sysroots/aarch64");
    fs::create_dir_all(tree.join("usr/local/bin")).unwrap();
    fs::write(tree.join("usr/local/bin/python3.14"), "ours").unwrap();
    std::os::unix::fs::symlink("python3.14", tree.join("usr/local/bin/python3")).unwrap();
    let stage = dir.path().join("boards-x");
    let ours = board_root(&stage, 0, &debian, Some(&tree)).unwrap();
    let theirs = board_root(&stage, 1, &debian, None).unwrap();
    assert_eq!((ours.parent(), theirs.parent()), (Some(stage.as_path()), Some(stage.as_path())));
    assert_eq!(fs::read_to_string(ours.join("usr/local/bin/python3")).unwrap(), "ours");
    assert_eq!(fs::read_to_string(ours.join("bin/python3.14")).unwrap(), "debian's", "Debian's root, its /usr merge too");
    assert_eq!(fs::read_to_string(theirs.join("usr/bin/python3.14")).unwrap(), "debian's");
    assert!(!theirs.join("usr/local").exists());
    assert!(!ours.join(".complete").exists(), "the cache's stamp is not part of a board");
    // Installed as on a board: a file of the tree that Debian's root
    // has with other content is refused, not written over.
    fs::create_dir_all(tree.join("usr/bin")).unwrap();
    fs::write(tree.join("usr/bin/python3.14"), "ours, elsewhere").unwrap();
    assert!(board_root(&stage, 2, &debian, Some(&tree)).is_err());
    assert_eq!(fs::read_to_string(debian.join("usr/bin/python3.14")).unwrap(), "debian's", "Debian's root is untouched");
}

#[test]
fn medians_of_odd_and_even_runs() {
    assert_eq!(median(&mut [3.0, 1.0, 2.0]), 2.0);
    assert_eq!(median(&mut [4.0, 1.0, 2.0, 3.0]), 2.5);
    assert_eq!(median(&mut []), 0.0);
}
