//! The manifest's parsing and validation, as a specification.

use super::*;

#[test]
fn an_emulators_test_limit_holds_only_under_that_emulator() {
    let limit =
        |kind: &str, arches: &str| -> TestLimit { toml::from_str(&format!("tests = [\"t\"]\nkind = \"{kind}\"\nwhy = \"w\"\narches = [{arches}]\n")).unwrap() };
    let (user, booted) = (false, true);
    assert!(limit("qemu-user", "").applies_to("aarch64", user) && !limit("qemu-user", "").applies_to("aarch64", booted));
    assert!(!limit("qemu-system", "").applies_to("aarch64", user) && limit("qemu-system", "").applies_to("aarch64", booted));
    assert!(limit("emulation", "").applies_to("aarch64", user) && limit("emulation", "").applies_to("aarch64", booted));
    assert!(limit("target-abi", "\"mipsel\"").applies_to("mipsel", booted) && !limit("target-abi", "\"mipsel\"").applies_to("aarch64", booted));
    let small_board = limit("board-memory", "\"mipsel\"");
    assert!(small_board.applies_to("mipsel", booted) && !small_board.applies_to("mipsel", user) && !small_board.applies_to("aarch64", booted));
}

#[test]
fn the_whole_suite_boots_the_suite_machine_and_the_checks_the_arch_one() {
    let boot: SystemBoot = toml::from_str(
        "qemu = \"q\"\nqemu_package = \"p\"\nmachine = \"malta\"\ncpu = \"24Kf\"\nconsole = \"ttyS0\"\nmemory_mib = 256\n\
         kernel_suite = \"s\"\nkernel_package = \"k\"\nbusybox_suite = \"s\"\n\
         suite_cpu = \"P5600\"\nsuite_kernel_args = [\"ieee754=relaxed\"]\nsuite_memory_mib = 512\nsuite_swap_mib = 1024\n",
    )
    .unwrap();
    assert_eq!(boot.guest(false), GuestMachine { cpu: Some("24Kf".into()), memory_mib: 256, kernel_args: vec![], swap_mib: None });
    assert_eq!(
        boot.guest(true),
        GuestMachine { cpu: Some("P5600".into()), memory_mib: 512, kernel_args: vec!["ieee754=relaxed".into()], swap_mib: Some(1024) }
    );
    // Without suite_* values the suite boots what the checks boot.
    let plain = SystemBoot { suite_cpu: None, suite_kernel_args: vec![], suite_memory_mib: None, suite_swap_mib: None, ..boot };
    assert_eq!(plain.guest(true), plain.guest(false));
}

#[test]
fn a_boards_memory_replaces_the_arch_one_up_to_what_the_kernel_maps() {
    let boot: SystemBoot = toml::from_str(
        "qemu = \"q\"\nqemu_package = \"p\"\nmachine = \"malta\"\nconsole = \"ttyS0\"\nmemory_mib = 256\n\
         max_memory = { mib = 256, why = \"its 32-bit kernel maps no more\" }\n\
         kernel_suite = \"s\"\nkernel_package = \"k\"\nbusybox_suite = \"s\"\nsuite_memory_mib = 256\nsuite_swap_mib = 1024\n",
    )
    .unwrap();
    assert_eq!(boot.guest_with(false, None, "mipsel").unwrap(), boot.guest(false));
    let small = boot.guest_with(true, Some(128), "mipsel").unwrap();
    assert_eq!((small.memory_mib, small.swap_mib), (128, Some(1024)), "only the memory is the board's");
    let err = boot.guest_with(false, Some(512), "mipsel").unwrap_err().to_string();
    assert_eq!(err, "qemu-test --arch mipsel --system --memory-mib 512: [system.mipsel] boots at most 256 MiB on `malta`: its 32-bit kernel maps no more");
    let unbounded = SystemBoot { max_memory: None, ..boot };
    assert_eq!(unbounded.guest_with(false, Some(4096), "aarch64").unwrap().memory_mib, 4096);
}

#[test]
fn every_field_of_an_arch_entry_is_a_signature_input() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../recipes-manifest.toml");
    let doc: toml::Value = toml::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let entry = doc["arch"]["armhf"].clone();
    let base: Arch = entry.clone().try_into().unwrap();
    for key in entry.as_table().unwrap().keys() {
        let mut changed = entry.clone();
        let v = changed.get_mut(key).unwrap();
        *v = match v.clone() {
            toml::Value::String(s) => toml::Value::String(format!("{s}x")),
            toml::Value::Array(mut a) => {
                a.push(toml::Value::String("-x".into()));
                toml::Value::Array(a)
            }
            // ELF expectations are typed: the other byte order.
            toml::Value::Table(mut t) if t.contains_key("endian") => {
                t["endian"] = toml::Value::String(if t["endian"].as_str() == Some("little") { "big" } else { "little" }.into());
                t.into()
            }
            toml::Value::Table(mut t) => {
                let k = t.keys().next().unwrap().clone();
                t[&k] = match &t[&k] {
                    toml::Value::Integer(i) => toml::Value::Integer(i + 1),
                    toml::Value::Array(a) => toml::Value::Array([a.clone(), vec![toml::Value::String("-x".into())]].concat()),
                    other => toml::Value::String(format!("{other}x")),
                };
                t.into()
            }
            other => panic!("arch.armhf.{key}: no change written for {other:?}"),
        };
        let other: Arch = changed.try_into().unwrap();
        assert_ne!(other.build_inputs(), base.build_inputs(), "arch.armhf.{key} changes no signature");
    }
}

#[test]
fn requirements_files_hold_specifiers_and_refuse_pip_options() {
    let d = tempfile::tempdir().unwrap();
    let f = d.path().join("req.txt");
    std::fs::write(&f, "# board packages\nnumpy>=2  # math\n\ncffi\n").unwrap();
    assert_eq!(read_requirements(&f).unwrap(), ["numpy>=2", "cffi"]);
    std::fs::write(&f, "numpy\n--index-url http://x\n").unwrap();
    let err = read_requirements(&f).unwrap_err().to_string();
    assert!(err.contains("req.txt:2: `--index-url http://x`: pip options are not supported"), "{err}");
}

pub(crate) const MINIMAL: &str = r#"
[distro]
prefix = "/usr/local"
image = ["a"]

[arch.aarch64]
triplet = "aarch64-linux-gnu"
rust_target = "aarch64-unknown-linux-gnu"
debian_arch = "arm64"
qemu = "qemu-aarch64"
machine = "aarch64"
openssl = "linux-aarch64"
meson_cpu_family = "aarch64"
meson_cpu = "aarch64"
longdouble_format = "IEEE_QUAD_LE"
elf = { machine = "aarch64", bits = 64, endian = "little" }

[[recipe]]
name = "a"
version = "1.0"
class = "autotools"
license = "MIT"
source = { url = "https://example.org/a-1.0.tar.gz", sha256 = "0000000000000000000000000000000000000000000000000000000000000000" }
"#;

fn parse(text: &str) -> Result<Loaded> {
    Loaded::parse(Path::new("m.toml"), text.to_string())
}

fn problems(text: &str) -> Vec<String> {
    match parse(text) {
        Ok(_) => vec![],
        Err(e) => e.downcast::<Problems>().unwrap().0.iter().map(|p| p.to_string()).collect(),
    }
}

#[test]
fn a_minimal_manifest_parses() {
    let m = parse(MINIMAL).unwrap();
    assert_eq!(m.manifest.recipes[0].name.get_ref(), "a");
    assert!(m.manifest.recipes[0].build.out_of_tree, "out-of-tree builds are the default");
}

#[test]
fn an_unknown_key_is_an_error_with_its_line_and_column() {
    let text = MINIMAL.replace("license = \"MIT\"", "license = \"MIT\"\nlicence = \"MIT\"");
    let p = problems(&text);
    assert_eq!(p.len(), 1);
    assert_eq!(p[0], "m.toml:23:1: `recipe a.licence`: unknown field `licence`; did you mean `license`?");
}

#[test]
fn elf_expectations_are_checked_when_the_manifest_is_read() {
    let p = problems(&MINIMAL.replace("endian = \"little\"", "endian = \"Little\""));
    assert!(p[0].contains("unknown variant `Little`, expected `little` or `big`"), "{}", p[0]);
    let p = problems(&MINIMAL.replace("machine = \"aarch64\", bits", "machine = \"arm64\", bits"));
    assert!(p[0].contains("unknown variant `arm64`, expected one of `aarch64`, `arm`"), "{}", p[0]);
    let p = problems(&MINIMAL.replace("bits = 64", "bits = 46"));
    assert!(p[0].contains("ELF files are 32 or 64 bits, not 46"), "{}", p[0]);
    let m = parse(MINIMAL).unwrap();
    let elf = &m.manifest.arch["aarch64"].elf;
    assert_eq!(format!("{} {} {}", elf.machine, elf.bits, elf.endian), "aarch64 64 little", "shown as written");
}

#[test]
fn a_missing_sha256_is_an_error() {
    let text = MINIMAL.replace(", sha256 = \"0000000000000000000000000000000000000000000000000000000000000000\"", "");
    assert_eq!(problems(&text), ["m.toml:23:18: `recipe a.source.sha256`: every source needs a sha256"]);
}

#[test]
fn a_bad_url_scheme_is_an_error() {
    let text = MINIMAL.replace("https://example.org", "ftp://example.org");
    let p = problems(&text);
    assert_eq!(p.len(), 1);
    assert!(p[0].contains("`recipe a.source.url`: `ftp://example.org/a-1.0.tar.gz` has an unsupported scheme"), "{}", p[0]);
}

#[test]
fn an_invalid_version_is_an_error() {
    let text = MINIMAL.replace("version = \"1.0\"", "version = \"1..0\"");
    let p = problems(&text);
    assert_eq!(p.len(), 1);
    assert!(p[0].starts_with("m.toml:20:11: `recipe a.version`: invalid version `1..0`"), "{}", p[0]);
}

#[test]
fn a_recipe_defined_twice_is_an_error() {
    let recipe = &MINIMAL[MINIMAL.find("[[recipe]]").unwrap()..];
    let text = format!("{MINIMAL}\n{recipe}");
    let p = problems(&text);
    assert_eq!(p.len(), 1);
    assert!(p[0].contains("`recipe a.name`: a 1.0 is defined twice (first at line 19)"), "{}", p[0]);
}

#[test]
fn every_problem_is_reported_not_only_the_first() {
    let text = MINIMAL.replace("version = \"1.0\"", "version = \"x\"").replace("https://", "gopher://");
    assert_eq!(problems(&text).len(), 2);
}

#[test]
fn line_and_column_are_one_based() {
    assert_eq!(line_col("ab\ncd", 0), (1, 1));
    assert_eq!(line_col("ab\ncd", 4), (2, 2));
}
