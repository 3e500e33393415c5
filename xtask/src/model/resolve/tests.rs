//! The dependency semantics, after BitBake, one rule per test.

use std::path::Path;

use super::*;
use crate::model::manifest::tests::MINIMAL;

/// The minimal manifest's header (distro + one arch) with `image` and
/// extra distro lines, followed by the given recipes.
fn manifest(image: &str, distro_extra: &str, recipes: &str) -> String {
    let head = &MINIMAL[..MINIMAL.find("[[recipe]]").unwrap()];
    let head = head.replace("image = [\"a\"]", &format!("image = [{image}]\n{distro_extra}"));
    format!("{head}\n{recipes}")
}

/// A recipe block; `extra` lines go into the table.
fn recipe(name: &str, version: &str, extra: &str) -> String {
    format!(
        "[[recipe]]\nname = \"{name}\"\nversion = \"{version}\"\nclass = \"autotools\"\nlicense = \"MIT\"\n\
         source = {{ url = \"https://example.org/{name}-{version}.tar.gz\", sha256 = \"{}\" }}\n{extra}\n\n",
        "0".repeat(64)
    )
}

fn graph(text: &str) -> Result<Graph> {
    let loaded = Loaded::parse(Path::new("m.toml"), text.to_string())?;
    resolve(&loaded, "aarch64")
}

fn errors(text: &str) -> Vec<String> {
    match graph(text) {
        Ok(_) => panic!("expected the manifest to be rejected"),
        Err(e) => e.downcast::<Problems>().expect("a manifest problem").0.iter().map(|p| p.to_string()).collect(),
    }
}

fn names(g: &Graph) -> Vec<String> {
    g.nodes.iter().map(|n| format!("{} {}", n.name, n.version)).collect()
}

#[test]
fn build_order_puts_depends_first() {
    let text = manifest("\"app\"", "", &(recipe("app", "1", "depends = [\"lib\"]\nrdepends = [\"lib\"]") + &recipe("lib", "1", "")));
    assert_eq!(names(&graph(&text).unwrap()), ["lib 1", "app 1"]);
}

#[test]
fn a_python_packages_recipes_join_the_image_only_when_the_package_is_installed() {
    let recipes = recipe("python3", "3.14.7", "") + &recipe("libxml2", "2.15.4", "provides = [\"libxml-2.0\"]");
    let table = "\n[python_package.lxml]\ndepends = [\"libxml-2.0\"]\n";
    let runtime = |g: &Graph| -> Vec<String> { g.runtime.iter().map(|&i| g.nodes[i].name.clone()).collect() };
    let without = graph(&(manifest("\"python3\"", "", &recipes) + table)).unwrap();
    assert_eq!(runtime(&without), ["python3"]);
    let with = graph(&(manifest("\"python3\"", "python_packages = [\"LXML>=5\"]", &recipes) + table)).unwrap();
    assert_eq!(runtime(&with), ["libxml2", "python3"], "the requirement's project name picks the table");
    let unknown = errors(&(manifest("\"python3\"", "python_packages = [\"lxml\"]", &recipes) + "\n[python_package.lxml]\ndepends = [\"libxslt\"]\n"));
    assert!(unknown.iter().any(|e| e.contains("python_package.lxml.depends") && e.contains("libxslt")), "{unknown:?}");
}

#[test]
fn a_build_only_dependency_is_not_in_the_runtime_set() {
    let text = manifest("\"app\"", "", &(recipe("app", "1", "depends = [\"tool\"]") + &recipe("tool", "1", "")));
    let g = graph(&text).unwrap();
    let runtime: Vec<&str> = g.runtime.iter().map(|&i| g.nodes[i].name.as_str()).collect();
    assert_eq!(runtime, ["app"]);
    assert_eq!(g.nodes.len(), 2, "the build-time dependency is still built");
}

#[test]
fn a_missing_rdepends_provider_is_an_error_but_rrecommends_only_warns() {
    let text = manifest("\"app\"", "", &recipe("app", "1", "rrecommends = [\"docs\"]"));
    let g = graph(&text).unwrap();
    assert_eq!(g.warnings, ["recipe app: rrecommends `docs` has no provider; going on without it"]);

    let text = manifest("\"app\"", "", &recipe("app", "1", "rdepends = [\"docs\"]"));
    assert_eq!(errors(&text), ["m.toml:26:13: `recipe app.rdepends`: nothing provides `docs`"]);
}

#[test]
fn provides_is_an_alias_usable_in_depends() {
    let text = manifest("\"app\"", "", &(recipe("app", "1", "depends = [\"libz\"]") + &recipe("zlib", "1.3", "provides = [\"libz\"]")));
    assert_eq!(names(&graph(&text).unwrap()), ["zlib 1.3", "app 1"]);
}

#[test]
fn an_unknown_name_gets_a_did_you_mean() {
    let text = manifest("\"app\"", "", &(recipe("app", "1", "depends = [\"zlb\"]") + &recipe("zlib", "1.3", "")));
    assert_eq!(errors(&text), ["m.toml:26:12: `recipe app.depends`: nothing provides `zlb`; did you mean `zlib`?"]);
}

#[test]
fn a_virtual_with_two_providers_needs_a_preferred_provider() {
    let recipes = recipe("app", "1", "depends = [\"virtual/readline\"]")
        + &recipe("readline", "8.2", "provides = [\"virtual/readline\"]")
        + &recipe("libedit", "3.1", "provides = [\"virtual/readline\"]");
    let err = errors(&manifest("\"app\"", "", &recipes));
    assert_eq!(
        err,
        ["m.toml:26:12: `recipe app.depends`: `virtual/readline` has 2 providers (libedit, readline); \
          choose one in [distro]: preferred_provider.\"virtual/readline\" = \"libedit\""]
    );

    for choice in ["readline", "libedit"] {
        let pref = format!("preferred_provider = {{ \"virtual/readline\" = \"{choice}\" }}");
        let g = graph(&manifest("\"app\"", &pref, &recipes)).unwrap();
        assert_eq!(g.nodes[0].name, choice, "the preferred provider is built, the other is not");
        assert_eq!(g.nodes.len(), 2);
    }
}

#[test]
fn a_preferred_provider_that_does_not_provide_is_an_error() {
    let recipes = recipe("app", "1", "depends = [\"virtual/ssl\"]") + &recipe("openssl", "3", "provides = [\"virtual/ssl\"]");
    let pref = "preferred_provider = { \"virtual/ssl\" = \"libressl\" }";
    let err = errors(&manifest("\"app\"", pref, &recipes));
    assert_eq!(err.len(), 1);
    assert!(err[0].contains("preferred_provider for `virtual/ssl` is `libressl`, which does not provide it; providers: openssl"), "{}", err[0]);
}

#[test]
fn the_highest_version_wins_without_a_preference() {
    let recipes = recipe("app", "1", "depends = [\"py\"]") + &recipe("py", "3.9.1", "") + &recipe("py", "3.10.0", "");
    assert_eq!(names(&graph(&manifest("\"app\"", "", &recipes)).unwrap()), ["py 3.10.0", "app 1"]);
}

#[test]
fn preferred_version_selects_with_a_percent_wildcard() {
    let recipes = recipe("app", "1", "depends = [\"py\"]") + &recipe("py", "3.11.2", "") + &recipe("py", "3.13.5", "");
    let g = graph(&manifest("\"app\"", "preferred_version = { py = \"3.11.%\" }", &recipes)).unwrap();
    assert_eq!(names(&g), ["py 3.11.2", "app 1"]);
}

#[test]
fn a_preferred_version_that_matches_nothing_lists_the_versions() {
    let recipes = recipe("app", "1", "depends = [\"py\"]") + &recipe("py", "3.11.2", "") + &recipe("py", "3.13.5", "");
    let err = errors(&manifest("\"app\"", "preferred_version = { py = \"3.12.%\" }", &recipes));
    assert_eq!(err, ["m.toml:5:28: `distro.preferred_version.py`: `3.12.%` matches no version of py; there are: 3.11.2, 3.13.5"]);
}

#[test]
fn a_cycle_is_printed_whole() {
    let recipes = recipe("a", "1", "depends = [\"b\"]") + &recipe("b", "1", "depends = [\"c\"]") + &recipe("c", "1", "depends = [\"a\"]");
    let err = errors(&manifest("\"a\"", "", &recipes));
    assert_eq!(err.len(), 1);
    assert!(err[0].ends_with("dependency cycle: a -> b -> c -> a"), "{}", err[0]);
}

#[test]
fn native_true_makes_a_native_variant_whose_depends_are_native() {
    let recipes = recipe("app", "1", "depends = [\"py-native\"]")
        + &recipe("py", "3.13.5", "native = true\ndepends = [\"zlib\"]")
        + &recipe("zlib", "1.3", "native = true");
    let g = graph(&manifest("\"app\"", "", &recipes)).unwrap();
    assert_eq!(names(&g), ["zlib-native 1.3", "py-native 3.13.5", "app 1"]);
    assert!(g.nodes.iter().take(2).all(|n| n.variant == Variant::Native));
}

#[test]
fn the_native_variant_follows_the_recipe_version_preference() {
    let recipes = recipe("app", "1", "depends = [\"py-native\", \"py\"]") + &recipe("py", "3.11.2", "native = true") + &recipe("py", "3.13.5", "native = true");
    let g = graph(&manifest("\"app\"", "preferred_version = { py = \"3.11.%\" }", &recipes)).unwrap();
    assert!(names(&g).contains(&"py-native 3.11.2".to_string()));
    assert!(names(&g).contains(&"py 3.11.2".to_string()));
}

#[test]
fn arch_overrides_replace_and_append() {
    let extra = "configure = [\"--a\"]\n[recipe.arch.aarch64]\nconfigure_append = [\"--b\"]\nmake_args = [\"V=1\"]";
    let g = graph(&manifest("\"app\"", "", &recipe("app", "1", extra))).unwrap();
    assert_eq!(g.nodes[0].build.configure, ["--a", "--b"]);
    assert_eq!(g.nodes[0].build.make_args, ["V=1"]);
    assert!(g.nodes[0].origin["make_args"].contains("[recipe.arch.aarch64]"));
}

#[test]
fn an_override_for_an_unknown_arch_is_an_error() {
    let extra = "[recipe.arch.mips64]\nconfigure_append = [\"--b\"]";
    let err = errors(&manifest("\"app\"", "", &recipe("app", "1", extra)));
    assert_eq!(err.len(), 1);
    assert!(err[0].contains("override for unknown arch `mips64`; known: native, aarch64"), "{}", err[0]);
}

#[test]
fn rconflicts_between_two_image_packages_is_an_error_naming_both() {
    let recipes = recipe("app", "1", "rdepends = [\"ssl-a\", \"ssl-b\"]") + &recipe("ssl-a", "1", "rconflicts = [\"ssl-b\"]") + &recipe("ssl-b", "1", "");
    let err = errors(&manifest("\"app\"", "", &recipes));
    assert_eq!(err.len(), 1);
    assert!(err[0].contains("ssl-a conflicts with ssl-b, and both are in the image"), "{}", err[0]);
}

#[test]
fn rreplaces_drops_the_replaced_package_from_the_image() {
    let recipes =
        recipe("app", "1", "rdepends = [\"new\", \"old\"]") + &recipe("new", "2", "rreplaces = [\"old\"]\nrconflicts = [\"old\"]") + &recipe("old", "1", "");
    let g = graph(&manifest("\"app\"", "", &recipes)).unwrap();
    let mut runtime: Vec<&str> = g.runtime.iter().map(|&i| g.nodes[i].name.as_str()).collect();
    runtime.sort();
    assert_eq!(runtime, ["app", "new"]);
}

#[test]
fn rprovides_satisfies_rdepends() {
    let recipes = recipe("app", "1", "rdepends = [\"python3-pip\"]") + &recipe("python3", "3.13.5", "rprovides = [\"python3-pip\"]");
    let g = graph(&manifest("\"app\"", "", &recipes)).unwrap();
    assert_eq!(g.runtime.len(), 2);
}

#[test]
fn why_gives_the_chain_that_pulls_a_recipe_in() {
    let recipes = recipe("app", "1", "depends = [\"ssl\"]") + &recipe("ssl", "3", "depends = [\"zlib\"]") + &recipe("zlib", "1.3", "");
    let g = graph(&manifest("\"app\"", "", &recipes)).unwrap();
    let path: Vec<&str> = g.why(g.index("zlib").unwrap(), false).unwrap().iter().map(|&i| g.nodes[i].name.as_str()).collect();
    assert_eq!(path, ["app", "ssl", "zlib"]);
}

#[test]
fn configure_with_follows_the_chosen_provider() {
    let recipes = recipe(
        "app",
        "1",
        "depends = [\"virtual/readline\"]\nconfigure_with = { readline = [\"--with-readline=readline\"], libedit = [\"--with-readline=editline\"] }",
    ) + &recipe("readline", "8.2", "provides = [\"virtual/readline\"]")
        + &recipe("libedit", "3.1", "provides = [\"virtual/readline\"]");
    for (choice, arg) in [("readline", "--with-readline=readline"), ("libedit", "--with-readline=editline")] {
        let pref = format!("preferred_provider = {{ \"virtual/readline\" = \"{choice}\" }}");
        let g = graph(&manifest("\"app\"", &pref, &recipes)).unwrap();
        assert_eq!(g.nodes[g.index("app").unwrap()].build.configure, [arg]);
    }
}

/// `app` offers `lto` (configure) and `pgo` (make, env) to its target
/// variant; its native variant offers nothing.
fn app_with_options() -> String {
    recipe(
        "app",
        "1",
        "native = true\nconfigure = [\"--shared\"]\n\
         [recipe.packageconfig.lto]\nconfigure = [\"--with-lto\"]\n\
         [recipe.packageconfig.pgo]\nconfigure = [\"--enable-optimizations\"]\nmake_args = [\"RUNSHARED=${TARGET_RUN_ENV}\"]\nenv = { PROFILE = \"1\" }\n\
         [recipe.arch.native]\npackageconfig = {}",
    )
}

#[test]
fn a_distro_feature_switches_on_the_recipe_option_of_its_name() {
    let g = graph(&manifest("\"app\"", "features = [\"lto\"]", &app_with_options())).unwrap();
    let app = &g.nodes[g.index("app").unwrap()];
    assert_eq!(app.build.configure, ["--shared", "--with-lto"]);
    assert_eq!(app.features, ["lto"]);
    assert!(app.build.make_args.is_empty() && app.build.env.is_empty(), "pgo stays off");
    assert!(app.origin["configure"].ends_with("+ packageconfig.lto (distro feature `lto`)"), "{}", app.origin["configure"]);
    assert!(!app.runs_target_programs());
}

#[test]
fn without_features_a_recipe_builds_as_written() {
    let g = graph(&manifest("\"app\"", "", &app_with_options())).unwrap();
    let app = &g.nodes[g.index("app").unwrap()];
    assert_eq!(app.build.configure, ["--shared"]);
    assert!(app.features.is_empty());
}

#[test]
fn command_line_features_add_to_the_distro_and_an_override_can_offer_none() {
    let mut loaded = Loaded::parse(Path::new("m.toml"), manifest("\"app\" , \"app-native\"", "", &app_with_options())).unwrap();
    loaded.enable_features(&["pgo".to_string()]).unwrap();
    let g = resolve(&loaded, "aarch64").unwrap();
    let app = &g.nodes[g.index("app").unwrap()];
    assert_eq!(app.build.configure, ["--shared", "--enable-optimizations"]);
    assert_eq!(app.build.make_args, ["RUNSHARED=${TARGET_RUN_ENV}"]);
    assert_eq!(app.build.env["PROFILE"], "1");
    assert!(app.runs_target_programs(), "pgo runs the target's programs during the build");
    let native = &g.nodes[g.index("app-native").unwrap()];
    assert_eq!(native.build.configure, ["--shared"], "the native override offers no options");
}

#[test]
fn a_feature_set_switches_on_each_of_its_features_and_names_itself_when_one_is_unknown() {
    let mut loaded =
        Loaded::parse(Path::new("m.toml"), manifest("\"app\"", "feature_sets = { release = [\"lto\", \"pgo\"], typo = [\"ltoo\"] }", &app_with_options()))
            .unwrap();
    loaded.enable_features(&["release".to_string()]).unwrap();
    let g = resolve(&loaded, "aarch64").unwrap();
    assert_eq!(g.nodes[g.index("app").unwrap()].features, ["lto", "pgo"]);
    let err = loaded.enable_features(&["typo".to_string()]).unwrap_err().to_string();
    assert!(err.starts_with("--feature typo (distro.feature_sets.typo in m.toml): no recipe offers the feature `ltoo`"), "{err}");
    let err = loaded.enable_features(&["relase".to_string()]).unwrap_err().to_string();
    assert!(err.ends_with("did you mean the feature set `release`?"), "{err}");
}

#[test]
fn an_unknown_feature_is_an_error_that_lists_the_offered_ones() {
    let errs = errors(&manifest("\"app\"", "features = [\"ltoo\"]", &app_with_options()));
    assert_eq!(errs, ["m.toml:5:13: `distro.features`: no recipe offers the feature `ltoo` in its packageconfig; did you mean `lto`? (offered: lto, pgo)"]);
    let mut loaded = Loaded::parse(Path::new("m.toml"), manifest("\"app\"", "", &app_with_options())).unwrap();
    let err = loaded.enable_features(&["static".to_string()]).unwrap_err().to_string();
    assert_eq!(err, "--feature static: no recipe offers the feature `static` in its packageconfig (offered: lto, pgo)");
}

#[test]
fn an_options_make_arguments_for_one_compiler_family_are_kept_by_family() {
    let app = |family: &str| {
        recipe("app", "1", &format!("[recipe.packageconfig.lto]\nconfigure = [\"--with-lto\"]\nmake_args_for_compiler = {{ {family} = [\"LDFLAGS_NODIST=-flto=${{PARALLEL_JOBS}}\"] }}"))
    };
    let g = graph(&manifest("\"app\"", "features = [\"lto\"]", &app("gcc"))).unwrap();
    let node = &g.nodes[g.index("app").unwrap()];
    let gcc = node.build.make_args_with(crate::model::build::Compiler::Gcc).collect::<Vec<_>>();
    assert_eq!(gcc, ["LDFLAGS_NODIST=-flto=${PARALLEL_JOBS}"]);
    assert_eq!(node.build.make_args_with(crate::model::build::Compiler::Clang).count(), 0);
    assert!(node.build.mentions("${PARALLEL_JOBS}"), "the task takes the build's free job tokens for it");
    let g = graph(&manifest("\"app\"", "", &app("gcc"))).unwrap();
    assert!(g.nodes[g.index("app").unwrap()].build.make_args_for_compiler.is_empty(), "the option is off");
    let errs = errors(&manifest("\"app\"", "features = [\"lto\"]", &app("icc")));
    assert_eq!(errs, ["m.toml:28:28: `icc`: unknown variant `icc`, expected `gcc` or `clang`"], "a family it does not know is an error at its place");
}

#[test]
fn an_option_offered_on_some_arches_stays_off_on_the_others() {
    let app =
        |arches: &str| recipe("app", "1", &format!("[recipe.packageconfig.tail-call-interp]\nconfigure = [\"--with-tail-call-interp\"]\narches = [{arches}]"));
    let configure = |arches: &str| {
        let g = graph(&manifest("\"app\"", "features = [\"tail-call-interp\"]", &app(arches))).unwrap();
        let node = &g.nodes[g.index("app").unwrap()];
        (node.build.configure.clone(), node.features.clone())
    };
    assert_eq!(configure("\"aarch64\""), (vec!["--with-tail-call-interp".to_string()], vec!["tail-call-interp".to_string()]));
    assert_eq!(configure("\"riscv64\""), (vec![], vec![]), "the feature is on, the arch (aarch64) is not offered it");
    assert_eq!(configure(""), (vec!["--with-tail-call-interp".to_string()], vec!["tail-call-interp".to_string()]), "no list: every arch");
}
