use super::index::*;
use super::sdist::*;
use super::*;

fn with_target(glibc: Option<(u32, u32)>, check: impl FnOnce(&Target)) {
    with_python("3.13", glibc, check)
}

fn with_python(ldversion: &str, glibc: Option<(u32, u32)>, check: impl FnOnce(&Target)) {
    in_tree(Path::new("/t"), ldversion, glibc, check)
}

/// A target of the minimal manifest's aarch64 whose tree is `tree`.
fn in_tree(tree: &Path, ldversion: &str, glibc: Option<(u32, u32)>, check: impl FnOnce(&Target)) {
    let loaded = crate::model::manifest::Loaded::parse(Path::new("m.toml"), crate::model::manifest::tests::MINIMAL.to_string()).unwrap();
    let pyver = ldversion.trim_end_matches('t').to_string();
    let t = Target {
        name: "aarch64",
        arch: &loaded.manifest.arch["aarch64"],
        tree,
        prefix: "/usr/local",
        pyver,
        ldversion: ldversion.into(),
        glibc,
        relr_from: None,
    };
    check(&t);
}

#[test]
fn a_wheel_whose_extensions_another_interpreter_would_load_is_refused() {
    let tree = tempfile::tempdir().unwrap();
    let stdlib = tree.path().join("usr/local/lib/python3.14");
    std::fs::create_dir_all(&stdlib).unwrap();
    std::fs::write(stdlib.join("_sysconfigdata__linux_aarch64-linux-musl.py"), "build_time_vars = {'EXT_SUFFIX': '.cpython-314-aarch64-linux-musl.so',\n}\n")
        .unwrap();
    let wheel = |name: &str, members: &[&str]| {
        let path = tree.path().join(name);
        let mut w = zip::ZipWriter::new(std::fs::File::create(&path).unwrap());
        for m in members {
            w.start_file(*m, zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored)).unwrap();
        }
        w.finish().unwrap();
        path
    };
    in_tree(tree.path(), "3.14", None, |t| {
        assert_eq!(t.ext_suffix().as_deref(), Some(".cpython-314-aarch64-linux-musl.so"));
        t.check_wheel_extensions(&wheel("ok-1-cp314-cp314-linux_aarch64.whl", &["m/_a.cpython-314-aarch64-linux-musl.so", "m/_b.abi3.so", "m/__init__.py"]))
            .unwrap();
        let err = t
            .check_wheel_extensions(&wheel(
                "old-1-cp314-cp314-linux_aarch64.whl",
                &["m/_a.cpython-314-aarch64-linux-gnu.so", "m/_b.cpython-314-aarch64-linux-gnu.so"],
            ))
            .unwrap_err()
            .to_string();
        assert_eq!(err, "old-1-cp314-cp314-linux_aarch64.whl holds m/_a.cpython-314-aarch64-linux-gnu.so and 1 more, built for another interpreter: the target's python loads *.cpython-314-aarch64-linux-musl.so");
    });
}

#[test]
fn a_free_threaded_tree_is_found_by_its_stdlib_directory() {
    let tree = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(tree.path().join("usr/local/lib/python3.14")).unwrap();
    assert_eq!(ldversion(tree.path(), "/usr/local", "3.14"), "3.14");
    std::fs::create_dir_all(tree.path().join("usr/local/lib/python3.14t")).unwrap();
    assert_eq!(ldversion(tree.path(), "/usr/local", "3.14"), "3.14t");
}

#[test]
fn meson_reads_the_targets_build_details_where_the_interpreter_has_them() {
    let tree = tempfile::tempdir().unwrap();
    in_tree(tree.path(), "3.14t", None, |t| {
        assert_eq!(t.build_details(), None, "3.13 and older have none");
        let file = tree.path().join("usr/local/lib/python3.14t/build-details.json");
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(&file, "{}").unwrap();
        let setup = MesonSetup { cross_file: Path::new("/b/meson-cross.ini"), build_config: t.build_details() };
        assert_eq!(
            setup.config_settings(),
            [
                "--config-settings=setup-args=--cross-file=/b/meson-cross.ini".to_string(),
                format!("--config-settings=setup-args=-Dpython.build_config={}", file.display())
            ]
        );
    });
}

#[test]
fn a_free_threaded_target_takes_cp314t_wheels_and_never_abi3() {
    with_python("3.14t", Some((2, 28)), |t| {
        assert_eq!(t.abi_tags(), ["cp314t", "none"]);
        t.check_wheel_fits("numpy-2.3.4-cp314-cp314t-manylinux_2_27_aarch64.manylinux_2_28_aarch64.whl").unwrap();
        let err = t.check_wheel_fits("cryptography-46.0.3-cp311-abi3-manylinux_2_28_aarch64.whl").unwrap_err().to_string();
        assert!(
            err.contains("built for the ABI abi3, the target's python loads cp314t, none (a free-threaded interpreter cannot load stable-ABI modules"),
            "{err}"
        );
        assert!(t.check_wheel_fits("numpy-2.3.4-cp314-cp314-manylinux_2_28_aarch64.whl").is_err(), "a GIL build's wheel does not load either");
    });
    with_python("3.14", Some((2, 28)), |t| assert_eq!(t.abi_tags(), ["cp314", "abi3", "none"]));
}

#[test]
fn a_rust_extension_is_told_apart_by_what_its_backend_printed() {
    assert!(rust_extension("error: can't find Rust compiler\n"));
    assert!(rust_extension("💥 maturin failed"));
    assert!(!rust_extension("error: command 'gcc' failed: No such file or directory"));
    if which::which("rustup").is_ok() {
        assert_eq!(rust_std_prebuilt("mipsel-unknown-linux-gnu"), Some(false), "mipsel is tier 3");
        assert_eq!(rust_std_prebuilt("aarch64-unknown-linux-gnu"), Some(true));
    }
}

#[test]
fn an_older_major_version_than_the_newest_is_said() {
    assert_eq!(newest_on_index("pydantic (2.12.4)\nAvailable versions: 2.12.4, 2.12.3\n").as_deref(), Some("2.12.4"));
    let w = older_major("pydantic", "1.10.27", "2.12.4", "linux_mips").unwrap();
    assert!(
        w.starts_with("pydantic: pip took 1.10.27, not 2.12.4, the newest on the index: the newer releases need a package with no wheel for linux_mips"),
        "{w}"
    );
    assert_eq!(older_major("numpy", "2.5.5", "2.5.6", "linux_mips"), None, "an older minor release is pip's business");
}

#[test]
fn the_missing_library_is_read_from_what_the_build_printed() {
    let cases = [
        ("src/lxml/etree.c:96:10: fatal error: 'libxml/xmlversion.h' file not found", "libxml/xmlversion.h"),
        ("x.c:1:10: fatal error: zmq.h: No such file or directory", "zmq.h"),
        ("/usr/bin/ld: cannot find -ljpeg: No such file or directory", "jpeg"),
        ("ld.lld: error: unable to find library -lxslt", "xslt"),
        ("Package libxml-2.0 was not found in the pkg-config search path.", "libxml-2.0"),
        ("RequiredDependencyException: The headers or library files could not be found for jpeg,", "jpeg"),
        ("  Could NOT find ZeroMQ (missing: ZeroMQ_LIBRARY)", "ZeroMQ"),
        ("meson.build:12:0: ERROR: Dependency \"libzmq\" not found, tried pkgconfig", "libzmq"),
    ];
    for (line, what) in cases {
        let output = format!("building...\n{line}\nerror: command failed\n");
        assert_eq!(missing_library(&output).map(|(w, _)| w), Some(what.to_string()), "{line}");
    }
    assert_eq!(missing_library("error: expected ';' before '}' token\n"), None, "a compile error is not a missing library");
    assert_eq!(missing_library("_openssl.c:66:10: fatal error: 'Python.h' file not found\n"), None, "the interpreter's header is no recipe's");
}

#[test]
fn an_sdists_build_requirements_are_read_from_its_pyproject() {
    let dir = tempfile::tempdir().unwrap();
    let sdist = dir.path().join("pillow-13.0.0.tar.gz");
    crate::sources::unpack::tests::tar_gz(
        &sdist,
        &[
            ("pillow-13.0.0/Tests/pyproject.toml", "[build-system]\nrequires = [\"not-this\"]\n"),
            ("pillow-13.0.0/pyproject.toml", "[build-system]\nrequires = [\"setuptools>=77\", \"pybind11\"]\n"),
        ],
    );
    let text = pyproject_of(&sdist).unwrap().unwrap();
    assert!(text.contains("pybind11") && !text.contains("not-this"), "the top-level file: {text}");
}

#[test]
fn the_dependency_without_a_wheel_is_read_from_pips_refusal() {
    let out = "ERROR: Could not find a version that satisfies the requirement pydantic-core==2.41.5 (from pydantic) (from versions: none)\n\
               ERROR: No matching distribution found for pydantic-core==2.41.5\n";
    assert_eq!(missing_dependency(out).as_deref(), Some("pydantic-core==2.41.5"));
    assert_eq!(missing_dependency("Successfully downloaded x\n"), None);
    let markers = "    cryptography 50.0.2 depends on cffi>=2.0.0; platform_python_implementation != \"PyPy\"\n\nAdditionally, some \
                   packages in these conflicts have no matching distributions available for your environment:\n    cffi\n";
    assert_eq!(missing_dependency(markers).as_deref(), Some("cffi>=2.0.0"), "markers are pip's business");
    let conflict = "    pydantic 2.14.4 depends on pydantic-core==2.41.5\n    pydantic 2.0 depends on pydantic-core==2.0.1\n\nAdditionally, some packages in these conflicts have no matching \
                    distributions available for your environment:\n    pydantic-core\n\nTo fix this you could try to:\n";
    assert_eq!(missing_dependency(conflict).as_deref(), Some("pydantic-core==2.41.5"), "a range: the resolver's list, pinned as the newest candidate pins it");
}

#[test]
fn project_names_are_normalized() {
    assert_eq!(project_name("PyYAML>=6"), "pyyaml");
    assert_eq!(project_name("markupsafe"), "markupsafe");
    assert_eq!(project_name("zope.interface[test]"), "zope-interface");
    assert_eq!(project_name("/tmp/x/Broken_Pkg-0.1.tar.gz"), "broken-pkg");
    assert_eq!(project_name("PyYAML-6.0.3-cp313-cp313-linux_mips.whl"), "pyyaml");
}

#[test]
fn wheel_file_names_give_project_version_and_platforms() {
    let w = WheelFile::parse(Path::new("/c/PyYAML-6.0.3-cp313-cp313-manylinux_2_27_aarch64.manylinux_2_28_aarch64.whl")).unwrap();
    assert_eq!((w.project.as_str(), w.version.as_str()), ("pyyaml", "6.0.3"));
    assert_eq!(w.platforms, ["manylinux_2_27_aarch64", "manylinux_2_28_aarch64"]);
    assert!(WheelFile::parse(Path::new("pyyaml-6.0.3.tar.gz")).is_err());
}

#[test]
fn a_wheel_for_another_arch_is_refused_with_the_tags_that_fit() {
    with_target(Some((2, 36)), |t| {
        let err = t.check_wheel_fits("/w/numpy-2.5.5-cp313-cp313-linux_mips.whl").unwrap_err().to_string();
        assert!(err.contains("built for linux_mips, not for aarch64"), "{err}");
        assert!(err.contains("manylinux_2_36_aarch64 ... linux_aarch64"), "{err}");
        t.check_wheel_fits("numpy-2.5.5-cp313-cp313-manylinux_2_27_aarch64.manylinux_2_28_aarch64.whl").unwrap();
        t.check_wheel_fits("idna-3.10-py3-none-any.whl").unwrap();
    });
}

#[test]
fn platform_tags_are_those_pip_computes_on_the_board_up_to_the_toolchain_glibc() {
    with_target(Some((2, 19)), |t| {
        assert_eq!(t.platform_tags(), ["manylinux_2_19_aarch64", "manylinux_2_18_aarch64", "manylinux_2_17_aarch64", "manylinux2014_aarch64", "linux_aarch64"]);
    });
}

#[test]
fn a_source_builds_temporary_directories_get_the_same_names_in_every_build() {
    // As pip names them (pip-wheel-<8>/<project>_<uuid4 hex>/) and the
    // backend it starts (meson-python's .mesonpy-<8>), in two builds.
    let names = |tmp: &Path| {
        let script = "import os, subprocess, sys, tempfile, uuid\n\
                      print(tempfile.mkdtemp(prefix='pip-wheel-'), uuid.uuid4().hex)\n\
                      sys.stdout.flush()\n\
                      subprocess.run([sys.executable, '-c', 'import tempfile; print(tempfile.mkdtemp(prefix=\".mesonpy-\"))'], check=True)\n";
        let out = Command::new("python3").arg("-c").arg(script).env("TMPDIR", tmp).env("PYTHONPATH", fixed_names()).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap().replace(&tmp.display().to_string(), "<tmp>")
    };
    let (one, two) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let first = names(one.path());
    assert_eq!(first, names(two.path()), "two builds, one set of names");
    assert!(first.starts_with("<tmp>/pip-wheel-") && first.contains("\n<tmp>/.mesonpy-"), "{first}");
    // A name that exists is passed over, as tempfile always did.
    let again = names(one.path());
    assert_ne!(again, first, "the second build in one directory takes the next names");
}
