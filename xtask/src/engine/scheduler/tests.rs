//! The task engine on small recipes built from tarballs the tests make,
//! with the build machine's own compiler as the "cross" toolchain of an
//! arch called `host`: rebuild behaviour, sysroot isolation, the artifact
//! cache and resuming after a failure.

use std::fs;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::*;
use crate::engine::project::Project;
use crate::engine::sstate::Sstate;
use crate::model::manifest::Loaded;

struct Fixture {
    dir: tempfile::TempDir,
}

const ARCH: &str = r#"
[arch.host]
triplet = "x86_64-linux-gnu"
rust_target = "x86_64-unknown-linux-gnu"
debian_arch = "amd64"
qemu = "true"
machine = "x86_64"
openssl = "linux-x86_64"
meson_cpu_family = "x86_64"
meson_cpu = "x86_64"
longdouble_format = "INTEL_80_BITS_LE"
elf = { machine = "x86_64", bits = 64, endian = "little" }
"#;

impl Fixture {
    fn new() -> Fixture {
        let f = Fixture { dir: tempfile::tempdir().unwrap() };
        f.tarball("liba", &[("a.h", "int a(void);\n"), ("a.c", "int a(void) { return 42; }\n")]);
        f.tarball("app", &[("main.c", "#include <a.h>\n#include <stdio.h>\nint main(void) { printf(\"%d\\n\", a()); return 0; }\n")]);
        f
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// `<name>-1.0.tar.gz` with one top directory, in the fixture's upstream dir.
    fn tarball(&self, name: &str, files: &[(&str, &str)]) {
        let up = self.path().join("upstream");
        fs::create_dir_all(&up).unwrap();
        let enc = flate2::write::GzEncoder::new(fs::File::create(up.join(format!("{name}-1.0.tar.gz"))).unwrap(), flate2::Compression::fast());
        let mut b = tar::Builder::new(enc);
        for (file, content) in files {
            let mut h = tar::Header::new_gnu();
            h.set_size(content.len() as u64);
            h.set_mode(0o644);
            h.set_cksum();
            b.append_data(&mut h, format!("{name}-1.0/{file}"), content.as_bytes()).unwrap();
        }
        b.into_inner().unwrap().finish().unwrap();
    }

    fn recipe(&self, name: &str, extra: &str) -> String {
        let file = self.path().join(format!("upstream/{name}-1.0.tar.gz"));
        let sha = hex::encode(Sha256::digest(fs::read(&file).unwrap()));
        format!(
            "[[recipe]]\nname = \"{name}\"\nversion = \"1.0\"\nclass = \"make\"\nlicense = \"MIT\"\nout_of_tree = false\n\
             source = {{ url = \"file://{}\", sha256 = \"{sha}\" }}\n{extra}\n\n",
            file.display()
        )
    }

    fn liba(&self) -> String {
        self.recipe(
            "liba",
            r#"do_compile = '$CC $CFLAGS -fPIC -shared -Wl,-soname,liba.so.1 -o liba.so.1 a.c'
do_install = '''
install -D -m 0644 a.h "$D$prefix/include/a.h"
install -D -m 0755 liba.so.1 "$D$prefix/lib/liba.so.1"
ln -sf liba.so.1 "$D$prefix/lib/liba.so"
'''"#,
        )
    }

    fn app(&self, depends: &str, cflags: &str) -> String {
        self.recipe(
            "app",
            &format!(
                "depends = [{depends}]\nrdepends = [{depends}]\n\
                 do_compile = '$CC $CPPFLAGS $CFLAGS {cflags} main.c $LDFLAGS -la -o app'\n\
                 do_install = 'install -D -m 0755 app \"$D$prefix/bin/app\"'"
            ),
        )
    }

    fn manifest(&self, recipes: &str) -> Loaded {
        let text = format!("[distro]\nprefix = \"/usr/local\"\nimage = [\"app\"]\n{ARCH}\n{recipes}");
        Loaded::parse(&self.path().join("recipes-manifest.toml"), text).unwrap()
    }

    fn project(&self, build: &str) -> Project {
        let root = self.path().join(build);
        Project {
            root: root.clone(),
            manifest_path: root.join("recipes-manifest.toml"),
            build_dir: root.join("build"),
            dl_dir: self.path().join("cache/downloads"),
            sstate_dir: self.path().join("cache/sstate"),
            wheel_dir: self.path().join("cache/wheels"),
            cache_dir: self.path().join("cache"),
        }
    }

    /// Build `recipes` in the build directory `build`.
    fn build(&self, build: &str, recipes: &str) -> Result<Stats> {
        self.build_with(build, recipes, &[])
    }

    fn build_with(&self, build: &str, recipes: &str, rebuild: &[&str]) -> Result<Stats> {
        self.build_project(self.project(build), recipes, rebuild)
    }

    fn build_project(&self, project: Project, recipes: &str, rebuild: &[&str]) -> Result<Stats> {
        self.build_only(project, recipes, rebuild, &[])
    }

    fn build_only(&self, project: Project, recipes: &str, rebuild: &[&str], only: &[&str]) -> Result<Stats> {
        self.build_loaded(project, &self.manifest(recipes), rebuild, only)
    }

    fn build_loaded(&self, project: Project, loaded: &Loaded, rebuild: &[&str], only: &[&str]) -> Result<Stats> {
        let plan = project.plan(loaded, &["host".to_string()], &Default::default())?;
        let worker = crate::engine::work::Worker {
            fetcher: crate::sources::fetch::Fetcher::new(project.dl_dir.clone()),
            patches_dir: project.root.join("patches"),
            prefix: "/usr/local".into(),
            build_sys: crate::machine::build_sys::triplet()?,
            launcher: None,
            tail_lines: 40,
        };
        run(
            &plan,
            &worker,
            &Sstate::new(project.sstate_dir.clone()),
            &Options { jobs: 2, explain: false, rebuild: rebuild.iter().map(|r| r.to_string()).collect(), only: only.iter().map(|r| r.to_string()).collect() },
        )
    }

    fn tree(&self, build: &str) -> PathBuf {
        self.project(build).tree("host")
    }
}

fn ran(stats: &Stats, what: &str) -> Vec<String> {
    stats.task_secs.keys().filter(|k| k.contains(what)).cloned().collect()
}

#[test]
fn a_recipe_builds_against_its_declared_dependency_and_the_tree_runs() {
    let f = Fixture::new();
    let stats = f.build("b", &(f.liba() + &f.app("\"liba\"", ""))).unwrap();
    assert_eq!(stats.tasks_run, stats.tasks_total, "a cold build runs every task");
    let out = std::process::Command::new(f.tree("b").join("usr/local/bin/app")).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "42\n", "the app finds liba through its $ORIGIN run path");
    let info = crate::machine::elf::inspect(&f.tree("b").join("usr/local/bin/app")).unwrap().unwrap();
    assert_eq!(info.runpath.as_deref(), Some("$ORIGIN/../lib"));
}

#[test]
fn a_build_of_some_recipes_runs_them_and_what_they_need_and_assembles_no_tree() {
    let f = Fixture::new();
    let stats = f.build_only(f.project("b"), &(f.liba() + &f.app("\"liba\"", "")), &[], &["liba"]).unwrap();
    assert!(!ran(&stats, "liba").is_empty(), "liba is built");
    assert!(ran(&stats, "app").is_empty(), "app is not asked for: {:?}", ran(&stats, "app"));
    assert!(ran(&stats, "rootfs").is_empty() && !f.tree("b").exists(), "no tree is assembled");
    let stats = f.build_only(f.project("b"), &(f.liba() + &f.app("\"liba\"", "")), &[], &["app"]).unwrap();
    assert!(ran(&stats, "liba").is_empty(), "liba is up to date: {:?}", ran(&stats, "liba"));
    assert!(!ran(&stats, "app").is_empty() && !f.tree("b").exists());
    let e = f.build_only(f.project("b"), &(f.liba() + &f.app("\"liba\"", "")), &[], &["libz"]).unwrap_err();
    assert!(format!("{e:#}").contains("libz: no such recipe in this build"), "{e:#}");
}

#[test]
fn a_second_build_with_nothing_changed_runs_no_task() {
    let f = Fixture::new();
    let recipes = f.liba() + &f.app("\"liba\"", "");
    f.build("b", &recipes).unwrap();
    let again = f.build("b", &recipes).unwrap();
    assert_eq!(again.tasks_run, 0, "ran: {:?}", again.task_secs.keys());
}

#[test]
fn changing_a_recipe_reruns_that_recipe_and_its_dependents_only() {
    let f = Fixture::new();
    f.build("b", &(f.liba() + &f.app("\"liba\"", ""))).unwrap();
    let stats = f.build("b", &(f.liba() + &f.app("\"liba\"", "-DCHANGED"))).unwrap();
    assert!(ran(&stats, "liba").is_empty(), "liba must not rebuild: {:?}", ran(&stats, "liba"));
    assert!(ran(&stats, "app 1.0 (host): do_compile").len() == 1);
    assert!(ran(&stats, "do_rootfs").len() == 1, "the image depends on app");
    assert!(ran(&stats, "do_fetch").is_empty(), "the source did not change");
}

#[test]
fn an_undeclared_dependency_is_not_in_the_recipe_sysroot_and_the_build_fails() {
    let f = Fixture::new();
    // app uses liba's header and library but declares no dependency; liba
    // is built (the image wants it) but must stay invisible to app.
    let recipes = f.liba() + &f.app("", "").replace("rdepends = []", "rdepends = [\"liba\"]");
    let err = format!("{:#}", f.build("b", &recipes).unwrap_err());
    assert!(err.contains("app 1.0 (host): do_compile failed"), "{err}");
    assert!(err.contains("a.h"), "the log tail shows the missing header: {err}");
    let sysroot = f.project("b").build_dir.join("host/work/app-1.0/recipe-sysroot");
    assert!(sysroot.exists() && !sysroot.join("usr/local/include/a.h").exists());
}

#[test]
fn a_fresh_build_directory_restores_from_the_artifact_cache() {
    let f = Fixture::new();
    let recipes = f.liba() + &f.app("\"liba\"", "");
    f.build("first", &recipes).unwrap();
    let stats = f.build("second", &recipes).unwrap();
    assert_eq!(stats.restored_from_sstate.len(), 2, "{:?}", stats.restored_from_sstate);
    assert!(ran(&stats, "do_compile").is_empty(), "nothing is compiled again: {:?}", stats.task_secs.keys());
    let out = std::process::Command::new(f.tree("second").join("usr/local/bin/app")).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "42\n");
}

#[test]
fn a_failed_build_leaves_no_stamp_and_the_next_run_resumes_where_it_stopped() {
    let f = Fixture::new();
    let flag = f.path().join("compile-may-succeed");
    let flaky = f.liba().replace("do_compile = '", &format!("do_compile = 'test -e {} && ", flag.display()));
    let recipes = flaky + &f.app("\"liba\"", "");
    assert!(f.build("b", &recipes).is_err());
    fs::write(&flag, "").unwrap();
    let stats = f.build("b", &recipes).unwrap();
    // A compile that did not finish is redone from configure (see
    // a_compile_that_did_not_finish_is_redone_from_configure); what came
    // before configure had finished and stays done.
    for done in ["do_fetch", "do_unpack", "do_patch"] {
        assert!(ran(&stats, &format!("liba 1.0 (host): {done}")).is_empty(), "{done} had finished: {:?}", stats.task_secs.keys());
    }
    assert_eq!(ran(&stats, "liba 1.0 (host): do_configure").len(), 1);
    assert_eq!(ran(&stats, "liba 1.0 (host): do_compile").len(), 1);
    let out = std::process::Command::new(f.tree("b").join("usr/local/bin/app")).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "42\n", "the resumed build ends with a working tree");
}

#[test]
fn rebuild_runs_one_recipe_again_though_nothing_changed() {
    let f = Fixture::new();
    let recipes = f.liba() + &f.app("\"liba\"", "");
    f.build("b", &recipes).unwrap();
    let stats = f.build_with("b", &recipes, &["liba"]).unwrap();
    assert_eq!(ran(&stats, "liba 1.0 (host): do_compile").len(), 1, "ran: {:?}", stats.task_secs.keys());
    assert!(stats.restored_from_sstate.is_empty(), "not restored from the cache: {:?}", stats.restored_from_sstate);
    assert!(ran(&stats, "app 1.0").is_empty(), "app's inputs did not change: {:?}", stats.task_secs.keys());
    assert_eq!(ran(&stats, "do_rootfs").len(), 1, "the image takes the rebuilt liba");
    let err = f.build_with("b", &recipes, &["libz"]).unwrap_err().to_string();
    assert!(err.contains("--rebuild libz: no such recipe in this build; there are: app, liba"), "{err}");
}

#[test]
fn durations_read_as_minutes_past_a_minute() {
    assert_eq!(human(0.25), "0.2s");
    assert_eq!(human(754.0), "12m34s");
}

#[test]
fn a_patch_series_applies_all_or_nothing() {
    let f = Fixture::new();
    let dir = f.path().join("b/patches/liba/1.0");
    fs::create_dir_all(&dir).unwrap();
    let good = "--- a/a.c\n+++ b/a.c\n@@ -1 +1 @@\n-int a(void) { return 42; }\n+int a(void) { return 43; }\n";
    let bad = "--- a/a.h\n+++ b/a.h\n@@ -1 +1 @@\n-int nothing_like_this(void);\n+int b(void);\n";
    fs::write(dir.join("0001-good.patch"), good).unwrap();
    fs::write(dir.join("0002-bad.patch"), bad).unwrap();
    let err = format!("{:#}", f.build("b", &(f.liba() + &f.app("\"liba\"", ""))).unwrap_err());
    assert!(err.contains("0002-bad.patch does not apply"), "{err}");
    let src = f.path().join("b/build/host/work/liba-1.0/src/a.c");
    assert_eq!(fs::read_to_string(&src).unwrap(), "int a(void) { return 42; }\n", "the good patch was taken back");
    // Fixed series: the build resumes from the patched source and the tree runs the patched code.
    fs::write(dir.join("0002-bad.patch"), bad.replace("nothing_like_this", "a")).unwrap();
    f.build("b", &(f.liba() + &f.app("\"liba\"", ""))).unwrap();
    assert_eq!(fs::read_to_string(&src).unwrap(), "int a(void) { return 43; }\n");
    // A patch added later applies with the others to pristine sources,
    // not over the source the last series left.
    fs::write(dir.join("0003-more.patch"), "--- a/a.c\n+++ b/a.c\n@@ -1 +1 @@\n-int a(void) { return 43; }\n+int a(void) { return 44; }\n").unwrap();
    f.build("b", &(f.liba() + &f.app("\"liba\"", ""))).unwrap();
    assert_eq!(fs::read_to_string(&src).unwrap(), "int a(void) { return 44; }\n");
}

/// A build option's patches (`patches/<recipe>/<version>/<option>/`) apply
/// only when the option is on, as BitBake's `SRC_URI:append` under
/// `bb.utils.contains('PACKAGECONFIG', ...)`: with it off the patch task
/// keeps its signature and the source its code.
#[test]
fn a_build_options_patches_apply_only_when_it_is_on() {
    let f = Fixture::new();
    let dir = f.path().join("b/patches/liba/1.0/fast");
    fs::create_dir_all(&dir).unwrap();
    fs::write(dir.join("0001-fast.patch"), "--- a/a.c\n+++ b/a.c\n@@ -1 +1 @@\n-int a(void) { return 42; }\n+int a(void) { return 43; }\n").unwrap();
    let recipes = format!("{}[recipe.packageconfig.fast]\nsummary = \"a faster a\"\n\n{}", f.liba(), f.app("\"liba\"", ""));
    let loaded = |features: &str| {
        let text = format!("[distro]\nprefix = \"/usr/local\"\nimage = [\"app\"]\nfeatures = [{features}]\n{ARCH}\n{recipes}");
        Loaded::parse(&f.path().join("recipes-manifest.toml"), text).unwrap()
    };
    let patch_sig = |loaded: &Loaded| {
        let target = crate::engine::project::Target { toolchain: Some("gcc".into()), ..Default::default() };
        let plan = f.project("b").plan(loaded, &["host".to_string()], &target).unwrap();
        (0..plan.tasks.len()).find(|&t| plan.label(t) == "liba 1.0 (host): do_patch").map(|t| plan.tasks[t].sig.clone()).unwrap()
    };
    let (off, on) = (loaded(""), loaded("\"fast\""));
    let src = f.path().join("b/build/host/work/liba-1.0/src/a.c");
    f.build_loaded(f.project("b"), &off, &[], &[]).unwrap();
    assert_eq!(fs::read_to_string(&src).unwrap(), "int a(void) { return 42; }\n", "off: not applied");
    assert_ne!(patch_sig(&off), patch_sig(&on), "the option's patch is an input of the patch task when on");
    f.build_loaded(f.project("b"), &on, &[], &[]).unwrap();
    assert_eq!(fs::read_to_string(&src).unwrap(), "int a(void) { return 43; }\n", "on: applied");
    fs::remove_dir_all(&dir).unwrap();
    assert_eq!(patch_sig(&off), patch_sig(&loaded("")), "with the option off, its directory is no input");
}

/// A change to any one field of an arch entry reruns exactly the tasks
/// that build for that arch: configure on, the image, and the recipe
/// sysroot of a recipe that has one (app's holds liba); never the sources'
/// tasks, nor liba's empty sysroot. Fields are changed as written in the
/// manifest, so a field the signature forgets fails here.
#[test]
fn each_arch_field_reruns_exactly_the_arch_tasks() {
    let f = Fixture::new();
    let recipes = format!("{}{}", f.liba(), f.app("\"liba\"", ""));
    let sigs = |arch: &toml::Value| -> BTreeMap<String, String> {
        let arch_text = toml::to_string(&toml::Value::Table(
            [("arch".to_string(), toml::Value::Table([("host".to_string(), arch.clone())].into_iter().collect()))].into_iter().collect(),
        ))
        .unwrap();
        let text = format!("[distro]\nprefix = \"/usr/local\"\nimage = [\"app\"]\n{arch_text}\n{recipes}");
        let loaded = Loaded::parse(&f.path().join("recipes-manifest.toml"), text).unwrap();
        // gcc by name: the toolchain does not follow the fields changed here.
        let target = crate::engine::project::Target { toolchain: Some("gcc".into()), ..Default::default() };
        let plan = f.project("b").plan(&loaded, &["host".to_string()], &target).unwrap();
        (0..plan.tasks.len()).map(|t| (plan.label(t), plan.tasks[t].sig.clone())).collect()
    };
    let entry: toml::Value = toml::from_str::<toml::Value>(ARCH).unwrap()["arch"]["host"].clone();
    let base = sigs(&entry);
    let arch_tasks = [
        "app 1.0 (host): do_compile",
        "app 1.0 (host): do_configure",
        "app 1.0 (host): do_install",
        "app 1.0 (host): do_populate_sysroot",
        "app 1.0 (host): do_prepare_recipe_sysroot",
        "image (host): do_rootfs",
        "liba 1.0 (host): do_compile",
        "liba 1.0 (host): do_configure",
        "liba 1.0 (host): do_install",
        "liba 1.0 (host): do_populate_sysroot",
    ];
    for key in entry.as_table().unwrap().keys() {
        let mut changed = entry.clone();
        let v = changed.get_mut(key).unwrap();
        *v = match v.clone() {
            toml::Value::String(s) => toml::Value::String(format!("{s}x")),
            // ELF expectations are typed: the other byte order.
            toml::Value::Table(mut t) if t.contains_key("endian") => {
                t["endian"] = toml::Value::String(if t["endian"].as_str() == Some("little") { "big" } else { "little" }.into());
                t.into()
            }
            toml::Value::Table(mut t) => {
                let k = t.keys().next().unwrap().clone();
                t[&k] = toml::Value::String(format!("{}x", t[&k].as_str().unwrap()));
                t.into()
            }
            other => panic!("arch.host.{key}: no change written for {other:?}"),
        };
        let after = sigs(&changed);
        let rerun: Vec<&str> = base.keys().filter(|k| base[*k] != after[*k]).map(String::as_str).collect();
        assert_eq!(rerun, arch_tasks, "arch.host.{key}");
    }
}

/// Sibling build directories share `sysroots/`: a tree another build
/// directory wrote is not this one's, however its stamps look, and is
/// assembled again.
#[test]
fn a_tree_a_sibling_build_directory_replaced_is_assembled_again() {
    let f = Fixture::new();
    let sibling = |name: &str| {
        let mut p = f.project("shared");
        p.build_dir = p.root.join(name);
        p
    };
    let mine = f.liba() + &f.app("\"liba\"", "");
    let theirs = f.liba() + &f.app("\"liba\"", "-DTHEIRS");
    f.build_project(sibling("b1"), &mine, &[]).unwrap();
    f.build_project(sibling("b2"), &theirs, &[]).unwrap();
    let again = f.build_project(sibling("b1"), &mine, &[]).unwrap();
    assert_eq!(ran(&again, "do_rootfs").len(), 1, "ran: {:?}", again.task_secs.keys());
    assert_eq!(again.tasks_run, 1, "only the image: {:?}", again.task_secs.keys());
    let tree = sibling("b1").tree("host");
    let note = crate::engine::image::ImageNote::read(&tree).unwrap();
    let plan = sibling("b1").plan(&f.manifest(&mine), &["host".to_string()], &Default::default()).unwrap();
    let rootfs = plan.tasks.iter().find(|t| t.kind == crate::engine::tasks::Kind::Rootfs).unwrap();
    assert_eq!(note.rootfs_sig, rootfs.sig, "the tree names the image task that made it");
}

/// Every build field of a recipe (the one list in `model::build`) is an
/// input of its tasks from configure on, whether the recipe or an
/// override sets it; the sources' tasks do not move.
#[test]
fn each_build_field_reruns_the_recipe_from_configure() {
    let f = Fixture::new();
    let sigs = |override_text: &str| -> BTreeMap<String, String> {
        let recipes = format!("{}{}\n{}", f.app("\"liba\"", ""), override_text, f.liba());
        let target = crate::engine::project::Target { toolchain: Some("gcc".into()), ..Default::default() };
        let plan = f.project("b").plan(&f.manifest(&recipes), &["host".to_string()], &target).unwrap();
        (0..plan.tasks.len()).map(|t| (plan.label(t), plan.tasks[t].sig.clone())).collect()
    };
    let base = sigs("");
    let app = f.manifest(&(f.app("\"liba\"", "") + &f.liba())).manifest.recipes.into_iter().find(|r| r.name.get_ref() == "app").unwrap();
    // Fields left out when empty (builtin_modules, make_args_for_compiler) are written too.
    let written = serde_json::to_value(crate::model::manifest::Build {
        builtin_modules: vec!["x".into()],
        make_args_for_compiler: BTreeMap::from([(crate::model::build::Compiler::Gcc, vec!["x".into()])]),
        ..app.build
    })
    .unwrap();
    for field in crate::model::manifest::Build::fields() {
        let value = match &written[&field] {
            serde_json::Value::Bool(b) => (!b).to_string(),
            serde_json::Value::Array(_) => "[\"--x\"]".to_string(),
            serde_json::Value::Object(m) if m.values().any(|v| v.is_array()) => "{ gcc = [\"--x\"] }".to_string(),
            serde_json::Value::Object(_) => "{ X = \"1\" }".to_string(),
            _ => "\"true\"".to_string(),
        };
        let after = sigs(&format!("[recipe.arch.host]\n{field} = {value}\n"));
        let changed = |task: &str| base[task] != after[task];
        assert!(changed("app 1.0 (host): do_configure"), "{field} is not a signature input");
        assert!(changed("app 1.0 (host): do_install"), "{field}");
        assert!(!changed("app 1.0 (host): do_fetch") && !changed("app 1.0 (host): do_unpack"), "{field} moved the sources");
        assert!(!changed("liba 1.0 (host): do_configure"), "{field} of app moved liba");
    }
}

/// A recipe that says `${PARALLEL_JOBS}` (CPython's PGO profile run) gets
/// the build's free job tokens for its task; any other gets its one.
#[test]
fn a_task_that_asks_for_parallel_jobs_gets_the_free_job_tokens() {
    let f = Fixture::new();
    let recipe =
        |script: &str| f.recipe("app", &format!("do_compile = '{script} > jobs.txt'\ndo_install = 'install -D -m 0644 jobs.txt \"$D$prefix/share/jobs.txt\"'"));
    f.build("b", &recipe("echo ${PARALLEL_JOBS}")).unwrap();
    let jobs = fs::read_to_string(f.tree("b").join("usr/local/share/jobs.txt")).unwrap();
    assert_eq!(jobs.trim(), "2", "the build's two tokens: its own and the one free");
    f.build("c", &recipe("echo $PARALLEL_JOBS")).unwrap();
    let jobs = fs::read_to_string(f.tree("c").join("usr/local/share/jobs.txt")).unwrap();
    assert_eq!(jobs.trim(), "1", "a recipe that does not ask runs with its own token");
}

/// The tokens such a task holds are its make's too: the compiles around
/// the profile run (two whole builds of CPython) run as many at once.
#[test]
fn the_make_of_a_task_that_holds_parallel_jobs_runs_that_many_jobs() {
    let f = Fixture::new();
    // Two targets that each wait up to 5 s for the other to start.
    let wait = "\ttouch $@.started; for i in $$(seq 100); do if [ -f a.started ] && [ -f b.started ]; then echo together > $@; exit 0; fi; sleep 0.05; done; echo alone > $@\n";
    f.tarball("par", &[("Makefile", &format!("all: a b\na b:\n{wait}"))]);
    let recipe = f.recipe(
        "par",
        "do_compile = 'make && echo ${PARALLEL_JOBS} > jobs && cat a b >> jobs'\ndo_install = 'install -D -m 0644 jobs \"$D$prefix/share/jobs\"'",
    );
    let text = format!("[distro]\nprefix = \"/usr/local\"\nimage = [\"par\"]\n{ARCH}\n{recipe}");
    let loaded = Loaded::parse(&f.path().join("recipes-manifest.toml"), text).unwrap();
    f.build_loaded(f.project("b"), &loaded, &[], &[]).unwrap();
    let jobs = fs::read_to_string(f.tree("b").join("usr/local/share/jobs")).unwrap();
    assert_eq!(jobs, "2\ntogether\ntogether\n", "make ran a and b at once, on the two tokens the task holds");
}

/// A compile that does not finish (killed: make could not delete its
/// half-written objects) is redone from configure, which starts the build
/// directory afresh; a finished one is not.
#[test]
fn a_compile_that_did_not_finish_is_redone_from_configure() {
    let f = Fixture::new();
    let allow = f.path().join("allow-compile");
    let recipes = f.recipe(
        "app",
        &format!(
            "do_configure = 'echo run >> \"$WORKDIR/configured\"'\n\
             do_compile = 'test -f {} && echo built > out.txt'\n\
             do_install = 'install -D -m 0644 out.txt \"$D$prefix/share/out.txt\"'",
            allow.display()
        ),
    );
    assert!(f.build("b", &recipes).is_err(), "the first compile stops before it finishes");
    fs::write(&allow, "").unwrap();
    let second = f.build("b", &recipes).unwrap();
    assert_eq!(ran(&second, "do_configure"), ["app 1.0 (host): do_configure"], "configure runs again: {:?}", second.task_secs.keys());
    let configured = fs::read_to_string(f.project("b").build_dir.join("host/work/app-1.0/configured")).unwrap();
    assert_eq!(configured.lines().count(), 2);
    let third = f.build("b", &recipes).unwrap();
    assert_eq!(third.tasks_run, 0, "a finished compile left configure's stamp: {:?}", third.task_secs.keys());
}

/// A build system with a configure script of its own (OpenSSL's
/// `Configure`) gets the recipe's `configure` list, arch additions
/// included, as `$EXTRA_OECONF`; the task's run file, run again by hand,
/// does what the task did.
#[test]
fn a_script_gets_the_configure_list_and_its_run_file_repeats_it() {
    let f = Fixture::new();
    let recipes = f.recipe(
        "app",
        "configure = [\"shared\", \"--prefix=${prefix}\"]\n\
         do_configure = 'for a in $EXTRA_OECONF; do echo \"$a\"; done > \"$WORKDIR/args\"'\n\
         do_compile = 'true'\n\
         do_install = 'install -D -m 0644 \"$WORKDIR/args\" \"$D$prefix/share/args\"'",
    );
    f.build("b", &recipes).unwrap();
    let work = f.project("b").build_dir.join("host/work/app-1.0");
    let args = fs::read_to_string(work.join("args")).unwrap();
    assert_eq!(args, "shared\n--prefix=/usr/local\n", "each option of the list, its variables expanded");
    fs::remove_file(work.join("args")).unwrap();
    let run = std::process::Command::new("sh").arg(work.join("temp/run.do_configure")).status().unwrap();
    assert!(run.success());
    assert_eq!(fs::read_to_string(work.join("args")).unwrap(), args, "the run file exports what the script saw");
}
