//! `recipes-manifest.toml`: the typed form of the file, parsing with
//! source positions, and validation of everything that can be checked
//! without resolving the dependency graph.
//!
//! Every struct denies unknown keys, so a typo is an error with a line and
//! column instead of a silently ignored setting.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::Deserialize;
use toml::Spanned;

pub use crate::model::build::Build;
use crate::model::version::Version;

/// A string with the byte range it came from in the manifest.
pub type Name = Spanned<String>;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub distro: Distro,
    #[serde(default)]
    pub host: Host,
    /// Configure answers shared by every arch (an arch's own add to them).
    #[serde(default)]
    pub config_site: BTreeMap<String, String>,
    pub arch: BTreeMap<String, Arch>,
    #[serde(rename = "recipe")]
    pub recipes: Vec<Recipe>,
    #[serde(default)]
    pub package: Package,
    /// The boards' C library: the glibc floor and what belongs to glibc.
    #[serde(default)]
    pub libc: Libc,
    /// Toolchains crosspython provides itself (`[toolchain.zig]`).
    #[serde(default)]
    pub toolchain: Toolchains,
    /// Board root filesystems assembled from Debian packages, to test on.
    #[serde(default)]
    pub board: BTreeMap<String, Board>,
    /// How `qemu-test --system` boots each arch (by arch name).
    #[serde(default)]
    pub system: BTreeMap<String, SystemBoot>,
    /// Python packages by normalized project name: the recipes they link
    /// and how `qemu-test` proves them (BitBake's python3-<name> recipes).
    #[serde(default)]
    pub python_package: BTreeMap<String, PythonPackage>,
}

/// What a Python package needs of the recipes when pip builds it from its
/// sdist, and a short real use of it. Whenever the package is installed
/// (`distro.python_packages` or `cargo xtask pip install`) its `depends`
/// are built and put into the tree; `qemu-test` runs its `check` on the
/// target when the package is there.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PythonPackage {
    /// Recipes (or provided names) whose libraries and headers the
    /// package's build links and whose libraries it loads on the board.
    #[serde(default)]
    pub depends: Vec<Name>,
    /// Python source run on the target (`python3 -c`); it fails by raising.
    pub check: Option<String>,
    /// pip's `--config-settings` for its source build (`KEY=VALUE`).
    #[serde(default)]
    pub config_settings: Vec<String>,
}

/// A booted kernel for an arch under qemu-system: the machine, and a
/// Debian kernel package by name (a metapackage is followed one level to
/// the versioned image it depends on).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SystemBoot {
    pub qemu: String,
    /// The Debian package of `qemu` (installed when missing, as root).
    pub qemu_package: String,
    pub machine: String,
    pub cpu: Option<String>,
    /// The serial console the kernel writes to (`ttyAMA0`).
    pub console: String,
    pub memory_mib: u32,
    /// Processors of the guest.
    #[serde(default = "two")]
    pub cpus: u32,
    pub kernel_suite: String,
    pub kernel_package: String,
    /// Debian's `busybox-static` of this suite gives the guest's /init its shell.
    pub busybox_suite: String,
    /// How the guest gets its root (the board root with the package).
    #[serde(default)]
    pub root: GuestRoot,
    /// For a `9p` root: the kernel modules that mount it (their
    /// dependencies are loaded first, as the modules name them).
    #[serde(default)]
    pub modules: Vec<String>,
    /// How long CPython's whole test suite may take on this guest before
    /// the guest is stopped (`qemu-test --system --cpython-tests all`).
    #[serde(default = "six_hours")]
    pub suite_minutes: u64,
    /// Memory of the guest for CPython's whole test suite, when it needs
    /// more than the checks (an initramfs root lives in memory, and the
    /// multiprocessing tests start many interpreters).
    pub suite_memory_mib: Option<u32>,
    /// regrtest's `--timeout` on this guest (seconds one test file may
    /// take), where the default is too short: CPython's own knob for slow
    /// buildbots, from which regrtest also scales `support.SHORT_TIMEOUT`
    /// (timeout / 40) and `LONG_TIMEOUT` (timeout / 4) that the tests wait
    /// on child processes with (Lib/test/libregrtest/setup.py).
    pub suite_test_timeout: Option<u32>,
    /// The CPU model for CPython's whole test suite, where the checks'
    /// one makes the hours of the suite many times longer under TCG.
    pub suite_cpu: Option<String>,
    /// Kernel command-line words that `suite_cpu` needs.
    #[serde(default)]
    pub suite_kernel_args: Vec<String>,
    /// A swap disk for CPython's whole suite, where the guest's memory is
    /// a small board's and cannot grow (the kernel needs `virtio_blk`,
    /// built in or among `modules`).
    pub suite_swap_mib: Option<u32>,
}

/// The machine one boot gets: the checks' (`cpu`, `memory_mib`) or, for
/// CPython's whole suite, the `suite_*` values where the arch sets them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuestMachine {
    pub cpu: Option<String>,
    pub memory_mib: u32,
    pub kernel_args: Vec<String>,
    pub swap_mib: Option<u32>,
}

impl SystemBoot {
    pub fn guest(&self, whole_suite: bool) -> GuestMachine {
        if whole_suite {
            GuestMachine {
                cpu: self.suite_cpu.clone().or_else(|| self.cpu.clone()),
                memory_mib: self.suite_memory_mib.unwrap_or(self.memory_mib),
                kernel_args: self.suite_kernel_args.clone(),
                swap_mib: self.suite_swap_mib,
            }
        } else {
            GuestMachine { cpu: self.cpu.clone(), memory_mib: self.memory_mib, kernel_args: vec![], swap_mib: None }
        }
    }
}

fn two() -> u32 {
    2
}

fn six_hours() -> u64 {
    360
}

/// How a booted guest gets its root filesystem.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GuestRoot {
    /// All of it in the initramfs (unpacked into the guest's memory).
    #[default]
    Initramfs,
    /// The directory itself, shared over virtio-9p: for kernels that map
    /// too little memory to unpack the tree (malta's 32-bit kernel sees
    /// 256 MiB); a small initramfs loads `modules` and switches to it.
    #[serde(rename = "9p")]
    NineP,
    /// An ext4 image of the directory on a virtio disk, as a board's root
    /// on its eMMC or SD card: for small memory, where 9p's large request
    /// buffers stall the kernel (see mipsel's entry); a small initramfs
    /// loads `modules` and switches to it.
    Disk,
}

/// The C library of the boards the package is built for.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Libc {
    /// No ELF file of the package may need a glibc symbol version newer
    /// than this (`2.28`); `build --glibc-floor` or `--board` change it.
    /// Without one, the toolchain's own glibc is the limit.
    pub glibc_floor: Option<String>,
    /// Shared objects of glibc itself: every glibc board has them, so the
    /// package never carries them (nor the dynamic loader a `PT_INTERP` names).
    #[serde(default)]
    pub glibc_sonames: Vec<String>,
    /// musl's: one `libc.so` is libc, libm, libpthread and the loader, and
    /// its loader takes any name with these prefixes for itself
    /// (`libc.so`, Alpine's `libc.musl-aarch64.so.1` in musllinux wheels).
    #[serde(default)]
    pub musl_soname_prefixes: Vec<String>,
    /// The oldest musl the musl arches' packages must run on.
    pub musl_floor: Option<String>,
    /// The first C library versions whose loader applies packed relative
    /// relocations (`DT_RELR`), by libc (`glibc`, `musl`): below them a
    /// file that has them crashes when loaded.
    #[serde(default)]
    pub relr_since: BTreeMap<String, String>,
}

impl Libc {
    pub fn floor(&self) -> Option<(u32, u32)> {
        self.glibc_floor.as_deref().and_then(parse_glibc)
    }
}

/// The requirement specifiers of a requirements file: one per line,
/// `#` comments and blank lines skipped. pip options are refused rather
/// than ignored: their meaning (an index, a constraint) would be lost.
pub fn read_requirements(path: &Path) -> Result<Vec<String>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read the requirements file {}", path.display()))?;
    let mut out = vec![];
    for (i, line) in text.lines().enumerate() {
        let line = line.split(" #").next().unwrap_or(line).trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if line.starts_with('-') {
            anyhow::bail!(
                "{}:{}: `{line}`: pip options are not supported here; list requirement specifiers only \
                 (source builds: distro.python_no_binary or --no-binary)",
                path.display(),
                i + 1
            );
        }
        out.push(line.to_string());
    }
    Ok(out)
}

/// `2.28` -> (2, 28)
pub fn parse_glibc(v: &str) -> Option<(u32, u32)> {
    let (major, minor) = v.split_once('.').unwrap_or((v, "0"));
    Some((major.parse().ok()?, minor.parse().ok()?))
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Toolchains {
    pub zig: Option<ZigToolchain>,
}

/// Zig's clang driver: one compiler for every arch that links against
/// glibc stubs of any version from 2.17 on, so the build machine's glibc
/// never leaks into the package.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct ZigToolchain {
    /// The PyPI requirement that ships it (`ziglang==0.17.1`).
    pub pypi: String,
    /// sha256 of the wheel for each build-machine architecture.
    pub wheel_sha256: BTreeMap<String, String>,
    /// GNU ld options (inside `-Wl,`) that zig's linker refuses and that
    /// change nothing it produces; the wrappers drop them.
    #[serde(default)]
    pub drop_linker_args: Vec<String>,
}

/// Debian binary packages of one suite, by name.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct DebianPackages {
    pub suite: String,
    pub packages: Vec<String>,
}

/// A board's root filesystem assembled from Debian's binary packages.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct Board {
    pub arch: String,
    pub summary: String,
    /// Debian suite (`bullseye`); the packages come from the host's apt mirror.
    pub suite: String,
    /// Debian package names; their `Depends` closure is installed too.
    pub packages: Vec<String>,
    /// The board's own programs (argv), run after the package is installed
    /// over the root: each must still exit 0.
    #[serde(default)]
    pub programs: Vec<Vec<String>>,
}

/// What `cargo xtask package` makes of the tree, by profile.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Package {
    /// The profile used when `--profile` is not given.
    pub default_profile: Option<String>,
    #[serde(default)]
    pub profile: BTreeMap<String, Profile>,
}

#[derive(Debug, Default, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    #[serde(default)]
    pub description: String,
    /// Start from another profile's settings; `exclude` adds to its list.
    pub inherits: Option<String>,
    pub strip: Option<Strip>,
    pub pyc: Option<Pyc>,
    /// Optimization levels compiled (0, 1, 2), as `python -O`/`-OO` use them.
    pub pyc_opt_levels: Option<Vec<u8>>,
    /// Globs relative to the tree root; `{prefix}` is the distro prefix
    /// without its leading `/`, `{py}` is `python3.X`.
    #[serde(default)]
    pub exclude: Vec<String>,
    /// Keep only the stdlib modules and the Python packages an application
    /// imports (`package --app <file.py>`).
    pub app: Option<bool>,
    /// With `pyc = "zip"`: stdlib files (globs relative to `lib/python3.X/`)
    /// that stay files, because they are read beside their module through
    /// `__file__` or are not modules.
    #[serde(default)]
    pub zip_keep: Vec<String>,
    /// The application `cargo xtask bench` measures this profile with
    /// (relative to the manifest).
    pub bench_app: Option<String>,
}

#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum Strip {
    /// Leave every ELF file as built.
    None,
    /// Drop debug information only (`strip --strip-debug`).
    Debug,
    /// Drop every symbol not needed to run or link (`--strip-unneeded`).
    All,
}

#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum Pyc {
    /// `.py` sources with `__pycache__/*.pyc` next to them.
    WithSource,
    /// `.pyc` in place of each `.py` (no sources, no `__pycache__`).
    Sourceless,
    /// Sourceless, and the stdlib's byte code in one deflated
    /// `lib/python3XY.zip`, which CPython puts first on `sys.path`.
    Zip,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Distro {
    /// Install prefix of everything on the target.
    pub prefix: String,
    /// Run-time roots of the image: what `rootfs` puts on the board.
    pub image: Vec<Name>,
    #[serde(default)]
    pub preferred_provider: BTreeMap<String, Name>,
    #[serde(default)]
    pub preferred_version: BTreeMap<String, Name>,
    /// pip requirement specifiers cross-installed into the target.
    #[serde(default)]
    pub python_packages: Vec<String>,
    /// A requirements file (relative to the manifest) adding to python_packages.
    pub python_requirements: Option<String>,
    /// Project names that must be built from source (pip's --no-binary).
    #[serde(default)]
    pub python_no_binary: Vec<String>,
    /// Environment of every source build of a Python package.
    #[serde(default)]
    pub python_build_env: BTreeMap<String, String>,
    /// Build options switched on in every recipe that offers them in its
    /// `packageconfig` (BitBake's DISTRO_FEATURES driving PACKAGECONFIG);
    /// `cargo xtask build --feature <f>` (or `--lto`, `--pgo`) adds to them.
    #[serde(default)]
    pub features: Vec<Name>,
    /// Named sets of features (`release`): `--feature <set>` switches on
    /// each of them.
    #[serde(default)]
    pub feature_sets: BTreeMap<String, Vec<String>>,
    /// CPython's own test modules that `qemu-test --cpython-tests` runs on the target.
    #[serde(default)]
    pub cpython_tests: Vec<String>,
    /// CPython tests that cannot pass on a target for a reason outside the
    /// build; they are left out with regrtest's `--ignore` and reported.
    #[serde(default)]
    pub cpython_test_limits: Vec<TestLimit>,
}

/// One CPython test (a regrtest id or fnmatch pattern) that cannot pass
/// under emulation or on a target's ABI, and why.
#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct TestLimit {
    /// regrtest test ids or fnmatch patterns, as `--ignore` takes them.
    pub tests: Spanned<Vec<String>>,
    pub kind: LimitKind,
    pub why: String,
    /// The arches it applies to; all when empty.
    #[serde(default)]
    pub arches: Vec<String>,
}

#[derive(Debug, Deserialize, serde::Serialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum LimitKind {
    /// qemu-user does not emulate a syscall, a /proc file or timing.
    QemuUser,
    /// The emulated machine of a booted guest (qemu-system) lacks a device.
    QemuSystem,
    /// Any emulation (qemu-user or qemu-system) runs too slowly for the
    /// test's timing; a board's CPU does not.
    Emulation,
    /// The test assumes a calling convention or layout the target does not have.
    TargetAbi,
    /// The test uses a tool of the machine it runs on (a build-machine gcc).
    TestHost,
    /// The test assumes the install is where it was built, with absolute
    /// paths; the tree is relocatable by design.
    Relocatable,
    /// The test needs more memory than a booted guest sized like a small
    /// board has (mipsel's 256 MiB); qemu-user runs in the host's.
    BoardMemory,
}

impl LimitKind {
    pub fn as_str(self) -> &'static str {
        match self {
            LimitKind::QemuUser => "qemu-user",
            LimitKind::QemuSystem => "qemu-system",
            LimitKind::Emulation => "emulation",
            LimitKind::TargetAbi => "target-abi",
            LimitKind::TestHost => "test-host",
            LimitKind::Relocatable => "relocatable",
            LimitKind::BoardMemory => "board-memory",
        }
    }
}

impl TestLimit {
    /// Whether the limit holds for `arch` when the tests run `booted`
    /// (qemu-system) or not (qemu-user): an emulator's limit holds only
    /// under that emulator.
    pub fn applies_to(&self, arch: &str, booted: bool) -> bool {
        let machine = match self.kind {
            LimitKind::QemuUser => !booted,
            LimitKind::QemuSystem | LimitKind::BoardMemory => booted,
            LimitKind::Emulation | LimitKind::TargetAbi | LimitKind::TestHost | LimitKind::Relocatable => true,
        };
        machine && (self.arches.is_empty() || self.arches.iter().any(|a| a == arch))
    }
}

/// What the build machine must have, mapped to the Debian package that
/// provides it, so that `doctor` can install it or print the apt line.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Host {
    /// command -> Debian package
    #[serde(default)]
    pub tools: BTreeMap<String, String>,
    /// Debian packages checked with dpkg (libraries the native recipes use).
    #[serde(default)]
    pub packages: Vec<String>,
}

#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct Arch {
    /// GNU triplet; also the prefix of the cross tools (`<triplet>-gcc`).
    pub triplet: String,
    /// Rust target name, used to find the compiler the way the `cc` crate
    /// does (`CC_<target>`, `CROSS_COMPILE`, `<triplet>-gcc`).
    pub rust_target: String,
    /// Debian architecture name (for `apt-get download pkg:<arch>`).
    pub debian_arch: String,
    pub qemu: String,
    /// The CPU qemu emulates (`QEMU_CPU`): a real board's core rather than
    /// qemu's "max", whose newest extensions real boards lack.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub qemu_cpu: Option<String>,
    /// What `platform.machine()` prints on the target.
    pub machine: String,
    /// OpenSSL `Configure` target.
    pub openssl: String,
    /// meson `cpu_family` / `cpu`, and the long double format for numpy.
    pub meson_cpu_family: String,
    pub meson_cpu: String,
    pub longdouble_format: String,
    pub elf: ElfExpect,
    /// Answers for autoconf tests that cannot run when cross compiling.
    #[serde(default)]
    pub config_site: BTreeMap<String, String>,
    /// Extra C flags for every target recipe of this arch.
    #[serde(default)]
    pub cflags: Vec<String>,
    /// C flags that need at least the named glibc (`"2.34" = ["-D_TIME_BITS=64"]`):
    /// used only when the glibc floor reaches it.
    #[serde(default)]
    pub cflags_from_glibc: BTreeMap<String, Vec<String>>,
    /// Zig's name of the target (`mipsel-linux-gnueabihf`), without the glibc version.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub zig_target: Option<String>,
    /// zig's `-mcpu` where its default CPU for the target is not the
    /// baseline boards of the arch share.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub zig_cpu: Option<String>,
    /// Assemble `.S`/`.s` files with Debian's `<triplet>-as` instead of
    /// clang's integrated assembler, which mis-assembles GNU-as code here.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub zig_gnu_as: bool,
    /// The oldest glibc that has this arch (the lowest possible floor).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub glibc_min: Option<String>,
    /// The board root `qemu-test` installs the package over by default.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub test_board: Option<String>,
    /// Where shared objects the package needs and boards may lack
    /// (`libstdc++.so.6`, `libgcc_s.so.1`: manylinux wheels link them)
    /// come from when the toolchain has none to give (zig): Debian
    /// packages of a suite whose builds need no glibc newer than the floor.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub runtime_libs: Option<DebianPackages>,
    /// The C library of the boards: glibc (the default, with a floor) or
    /// musl (OpenWrt, Alpine), which has no symbol versions to floor.
    #[serde(default, skip_serializing_if = "LibcKind::is_glibc")]
    pub libc: LibcKind,
    /// The triplet of Debian's `binutils-<triplet>` that handles this
    /// arch's ELF files where `triplet` names no Debian package (the musl
    /// triplets: `aarch64-linux-gnu` serves `aarch64-linux-musl`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub binutils: Option<String>,
}

/// Which C library an arch's programs are linked against.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LibcKind {
    #[default]
    Glibc,
    Musl,
}

impl LibcKind {
    pub fn is_glibc(&self) -> bool {
        *self == LibcKind::Glibc
    }
}

impl Arch {
    /// The prefix of the Debian binutils programs for this arch.
    pub fn binutils_triplet(&self) -> &str {
        self.binutils.as_deref().unwrap_or(&self.triplet)
    }

    /// Every field of the arch entry, as an input of every target task's
    /// signature: a hand-kept list missed fields that change outputs
    /// (`qemu_cpu` enters PGO's profile run, `meson_cpu` numpy's build,
    /// `elf` the rootfs checks), so nothing is left out. Unset optional
    /// fields are not written, so adding one changes no signature.
    pub fn build_inputs(&self) -> String {
        serde_json::to_string(self).expect("an arch entry serializes")
    }

    /// The arch's C flags for boards with at least glibc `floor`.
    pub fn cflags_for(&self, floor: Option<(u32, u32)>) -> Vec<String> {
        let mut out = self.cflags.clone();
        for (need, flags) in &self.cflags_from_glibc {
            let need = parse_glibc(need);
            if floor.is_none() || (need.is_some() && floor >= need) {
                out.extend(flags.iter().cloned());
            }
        }
        out
    }
}

/// ELF machines by the names of the `object` crate's `EM_*` constants;
/// a name outside the list is refused when the manifest is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ElfMachine {
    Aarch64,
    Arm,
    Mips,
    Riscv,
    #[serde(rename = "x86_64")]
    X86_64,
    I386,
    Ppc64,
    Ppc,
    S390,
    Loongarch,
}

/// ELFCLASS32 or ELFCLASS64, written as 32 or 64.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(into = "u8")]
pub enum ElfBits {
    B32,
    B64,
}

impl From<ElfBits> for u8 {
    fn from(b: ElfBits) -> u8 {
        match b {
            ElfBits::B32 => 32,
            ElfBits::B64 => 64,
        }
    }
}

impl<'de> Deserialize<'de> for ElfBits {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<ElfBits, D::Error> {
        match u8::deserialize(d)? {
            32 => Ok(ElfBits::B32),
            64 => Ok(ElfBits::B64),
            n => Err(serde::de::Error::custom(format!("ELF files are 32 or 64 bits, not {n}"))),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Endian {
    Little,
    Big,
}

/// The name as the manifest writes it.
macro_rules! serde_name {
    ($($t:ty),*) => {$(
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                match serde_json::to_value(self) {
                    Ok(serde_json::Value::String(s)) => f.write_str(&s),
                    Ok(v) => write!(f, "{v}"),
                    Err(_) => Err(fmt::Error),
                }
            }
        }
    )*};
}
serde_name!(ElfMachine, ElfBits, Endian);

#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct ElfExpect {
    pub machine: ElfMachine,
    pub bits: ElfBits,
    pub endian: Endian,
    /// The ABI's toolchain marks every object's stack executable (MIPS
    /// O32: the kernel's FPU-emulation trampolines lived on the stack), so
    /// `package` cannot demand PT_GNU_STACK without PF_X.
    #[serde(default)]
    pub exec_stack: bool,
    /// The ABI's linker makes PT_GNU_RELRO (false where it cannot).
    #[serde(default = "yes")]
    pub relro: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Class {
    /// `configure --build --host --prefix`, `make`, `make install DESTDIR=`.
    Autotools,
    /// A hand-written `configure` script that takes no --host (zlib).
    Configure,
    /// Only a Makefile (bzip2).
    Make,
    /// CPython: autotools plus the cross-build python and CONFIG_SITE.
    Cpython,
    /// CMake, configured and built by the `cmake` crate for the cross
    /// toolchain, installed with `cmake --install` into `D`.
    Cmake,
    /// Meson with a cross file of the toolchain, ninja, `meson install`.
    Meson,
}

#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct Source {
    /// `https://...`, `http://...`, `file://...`, `debian:<pool path>`, or
    /// `pypi:<name>==<version>` (a source distribution by the host's pip).
    pub url: Name,
    pub sha256: Option<Name>,
    /// Where the same bytes can also be found.
    #[serde(default)]
    pub mirrors: Vec<Name>,
    /// Leading path components to strip when unpacking (default 1).
    #[serde(default = "one")]
    pub strip_components: usize,
}

fn one() -> usize {
    1
}

/// Build fields that an arch override (`[recipe.arch.<arch>]`, with
/// `native` for the native variant) may replace or append to.
#[derive(Debug, Clone, Default, Deserialize, serde::Serialize)]
pub struct Overrides {
    pub depends: Option<Vec<Name>>,
    pub rdepends: Option<Vec<Name>>,
    #[serde(default)]
    pub configure_append: Vec<String>,
    pub packageconfig: Option<BTreeMap<String, PackageConfig>>,
    /// Fields of [`Build`] this override replaces (`env` merges key by
    /// key); checked against `Build` when the manifest is read.
    #[serde(flatten)]
    pub build: toml::Table,
}

/// One build option of a recipe (BitBake's PACKAGECONFIG): what it adds
/// to the recipe when the distro feature of the same name is on.
#[derive(Debug, Clone, Default, Deserialize, serde::Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct PackageConfig {
    /// What the option does, for `cargo xtask show`.
    pub summary: String,
    pub configure: Vec<String>,
    pub make_args: Vec<String>,
    /// make arguments for one compiler family (`gcc`, `clang`) only.
    pub make_args_for_compiler: BTreeMap<crate::model::build::Compiler, Vec<String>>,
    pub env: BTreeMap<String, String>,
    /// What the option needs of the toolchain beyond a compiler.
    pub toolchain_needs: Vec<ToolchainNeed>,
    /// CPython modules it links into the interpreter (`Build::builtin_modules`).
    pub builtin_modules: Vec<String>,
    /// The arches it is offered on, when not every one has what it needs
    /// (a compiler feature of one target); empty: all. On the others the
    /// feature is left off, and `show` says so.
    pub arches: Vec<String>,
}

impl PackageConfig {
    /// Whether the option is offered on `arch` (`arches` empty: on every one).
    pub fn offered_on(&self, arch: &str) -> bool {
        self.arches.is_empty() || self.arches.iter().any(|a| a == arch)
    }
}

/// A part of a toolchain some build options need.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ToolchainNeed {
    /// clang's PGO: compiler-rt's profile runtime and an `llvm-profdata`
    /// of the compiler's LLVM (gcc brings its own libgcov).
    ProfileRuntime,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Recipe {
    pub name: Name,
    pub version: Name,
    pub class: Class,
    pub license: String,
    #[serde(default)]
    pub summary: String,
    pub source: Source,
    /// Other tarballs of the same release with their own checksum, tried
    /// after `source` (Debian's dfsg repacks, for example).
    #[serde(default)]
    pub alternatives: Vec<Source>,
    #[serde(default)]
    pub depends: Vec<Name>,
    #[serde(default)]
    pub rdepends: Vec<Name>,
    #[serde(default)]
    pub rrecommends: Vec<Name>,
    #[serde(default)]
    pub provides: Vec<Name>,
    #[serde(default)]
    pub rprovides: Vec<Name>,
    #[serde(default)]
    pub rconflicts: Vec<Name>,
    #[serde(default)]
    pub rreplaces: Vec<Name>,
    /// Also define `<name>-native`, built for the build machine.
    #[serde(default)]
    pub native: bool,
    /// Configure arguments added when the named recipe is a direct
    /// dependency (after provider selection), like BitBake's PACKAGECONFIG.
    #[serde(default)]
    pub configure_with: BTreeMap<String, Vec<String>>,
    /// How it is built (`configure`, `env`, `do_install`, ...).
    #[serde(flatten)]
    pub build: Build,
    /// Build options, keyed by the distro feature that switches them on.
    #[serde(default)]
    pub packageconfig: BTreeMap<String, PackageConfig>,
    /// Per-arch overrides; the key `native` applies to the native variant.
    #[serde(default)]
    pub arch: BTreeMap<String, Overrides>,
    /// Keys that are no field of a recipe (serde cannot deny them through
    /// `flatten`): reported with their place when the manifest is read.
    #[serde(flatten)]
    pub unknown: BTreeMap<String, toml::Value>,
}

impl Recipe {
    /// The build options one variant offers: an override's (`[recipe.arch.<key>]`,
    /// `native` for the native variant) replace the recipe's.
    pub fn packageconfig_for(&self, override_key: &str) -> &BTreeMap<String, PackageConfig> {
        self.arch.get(override_key).and_then(|o| o.packageconfig.as_ref()).unwrap_or(&self.packageconfig)
    }
}

/// The keys of a `[[recipe]]` besides those of [`Build`], for suggestions
/// only: what is accepted is what serde reads.
const RECIPE_KEYS: [&str; 18] = [
    "name",
    "version",
    "class",
    "license",
    "summary",
    "source",
    "alternatives",
    "depends",
    "rdepends",
    "rrecommends",
    "provides",
    "rprovides",
    "rconflicts",
    "rreplaces",
    "native",
    "configure_with",
    "packageconfig",
    "arch",
];

fn did_you_mean(wanted: &str, known: &[String]) -> String {
    known.iter().map(|k| (strsim::levenshtein(wanted, k), k)).filter(|(d, _)| *d <= 2).min().map(|(_, k)| format!("; did you mean `{k}`?")).unwrap_or_default()
}

fn yes() -> bool {
    true
}

fn unknown_feature(f: &str, offered: &std::collections::BTreeSet<String>) -> String {
    let list: Vec<&str> = offered.iter().map(String::as_str).collect();
    let hint = offered
        .iter()
        .map(|o| (strsim::levenshtein(f, o), o))
        .filter(|(d, _)| *d <= 2)
        .min()
        .map(|(_, o)| format!("; did you mean `{o}`?"))
        .unwrap_or_default();
    format!("no recipe offers the feature `{f}` in its packageconfig{hint} (offered: {})", if list.is_empty() { "none".to_string() } else { list.join(", ") })
}

/// One problem found in the manifest, located in the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub file: PathBuf,
    pub line: usize,
    pub column: usize,
    pub key: String,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}: `{}`: {}", self.file.display(), self.line, self.column, self.key, self.message)
    }
}

/// All problems of one manifest, shown one per line.
#[derive(Debug)]
pub struct Problems(pub Vec<Problem>);

impl fmt::Display for Problems {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.0.len();
        writeln!(f, "{n} problem{} in the manifest:", if n == 1 { "" } else { "s" })?;
        for p in &self.0 {
            writeln!(f, "  {p}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Problems {}

/// The manifest with the text it was read from, so that positions can be
/// turned into lines and columns.
pub struct Loaded {
    pub manifest: Manifest,
    pub path: PathBuf,
    /// The text parsed: the file, with its recipe includes expanded.
    text: String,
    /// Lines of `text` back to lines of the file, when includes were expanded.
    lines: Option<crate::model::recipe_include::LineMap>,
}

impl Loaded {
    pub fn read(path: &Path) -> Result<Loaded> {
        let text = std::fs::read_to_string(path).with_context(|| format!("cannot read the manifest {}", path.display()))?;
        Loaded::parse(path, text)
    }

    /// Parse and validate; every problem found is reported, not only the first.
    pub fn parse(path: &Path, text: String) -> Result<Loaded> {
        let (text, lines) = match crate::model::recipe_include::expand(&text).with_context(|| format!("{}: recipe includes", path.display()))? {
            Some((expanded, lines)) => (expanded, Some(lines)),
            None => (text, None),
        };
        let manifest: Manifest = match toml::from_str(&text) {
            Ok(m) => m,
            Err(e) => {
                let (line, column) = e.span().map(|s| line_col(&text, s.start)).unwrap_or((0, 0));
                let line = lines.as_ref().map_or(line, |l| l.original(line));
                let key = e.span().map(|s| word_at(&text, s.start)).unwrap_or_default();
                let problem = Problem { file: path.to_path_buf(), line, column, key, message: e.message().to_string() };
                return Err(Problems(vec![problem]).into());
            }
        };
        let loaded = Loaded { manifest, path: path.to_path_buf(), text, lines };
        let problems = loaded.validate();
        if !problems.is_empty() {
            return Err(Problems(problems).into());
        }
        Ok(loaded)
    }

    /// `distro.python_packages` and the lines of `distro.python_requirements`.
    pub fn python_requirements(&self) -> Result<Vec<String>> {
        let mut out = self.manifest.distro.python_packages.clone();
        if let Some(file) = &self.manifest.distro.python_requirements {
            let path = self.path.parent().unwrap_or(Path::new(".")).join(file);
            out.extend(read_requirements(&path).with_context(|| format!("distro.python_requirements in {}", self.path.display()))?);
        }
        Ok(out)
    }

    /// pip's `--config-settings` of these requirements' projects.
    pub fn python_config_settings(&self, requirements: &[String]) -> BTreeMap<String, Vec<String>> {
        self.python_package_entries(requirements)
            .into_iter()
            .filter(|(_, p)| !p.config_settings.is_empty())
            .map(|(k, p)| (project_name(k), p.config_settings.clone()))
            .collect()
    }

    /// The `[python_package]` entries of these requirements, by project name.
    pub fn python_package_entries<'a>(&'a self, requirements: &[String]) -> Vec<(&'a str, &'a PythonPackage)> {
        let wanted: std::collections::BTreeSet<String> = requirements.iter().map(|r| project_name(r)).collect();
        self.manifest.python_package.iter().filter(|(k, _)| wanted.contains(&project_name(k))).map(|(k, p)| (k.as_str(), p)).collect()
    }

    /// Every feature some recipe's `packageconfig` (or an override's) offers.
    pub fn features_offered(&self) -> std::collections::BTreeSet<String> {
        let mut out = std::collections::BTreeSet::new();
        for r in &self.manifest.recipes {
            out.extend(r.packageconfig.keys().cloned());
            for o in r.arch.values() {
                out.extend(o.packageconfig.iter().flat_map(|p| p.keys().cloned()));
            }
        }
        out
    }

    /// Switch features on from the command line (`build --feature`), as if
    /// `distro.features` listed them.
    pub fn enable_features(&mut self, features: &[String]) -> Result<()> {
        let offered = self.features_offered();
        // (feature, the set it came from)
        let mut wanted: Vec<(&String, Option<&String>)> = vec![];
        for f in features {
            match self.manifest.distro.feature_sets.get(f) {
                Some(set) => wanted.extend(set.iter().map(|m| (m, Some(f)))),
                None => wanted.push((f, None)),
            }
        }
        let mut enabled = vec![];
        for (f, set) in wanted {
            if !offered.contains(f) {
                let (asked, hint) = match set {
                    Some(set) => (format!("--feature {set} (distro.feature_sets.{set} in {})", self.path.display()), String::new()),
                    None => {
                        let near = self.manifest.distro.feature_sets.keys().find(|s| strsim::levenshtein(f, s) <= 2);
                        (format!("--feature {f}"), near.map(|s| format!("; did you mean the feature set `{s}`?")).unwrap_or_default())
                    }
                };
                anyhow::bail!("{asked}: {}{hint}", unknown_feature(f, &offered));
            }
            enabled.push(f.clone());
        }
        for f in &enabled {
            if !self.manifest.distro.features.iter().any(|d| d.get_ref() == f) {
                self.manifest.distro.features.push(Spanned::new(0..0, f.clone()));
            }
        }
        Ok(())
    }

    /// Line and column in the manifest file of an offset into the parsed text.
    pub fn line_col(&self, offset: usize) -> (usize, usize) {
        let (line, column) = line_col(&self.text, offset);
        (self.lines.as_ref().map_or(line, |l| l.original(line)), column)
    }

    /// A problem located at the span of `at`.
    pub fn problem<T>(&self, at: &Spanned<T>, key: &str, message: impl Into<String>) -> Problem {
        let (line, column) = self.line_col(at.span().start);
        Problem { file: self.path.clone(), line, column, key: key.to_string(), message: message.into() }
    }

    /// A problem located at a key of the `i`th `[[recipe]]` (`["arch",
    /// "native", "configur"]`), or at the recipe when the key has no place.
    fn problem_at_key(&self, i: usize, path: &[&str], key: &str, message: impl Into<String>) -> Problem {
        let offset = (|| {
            let doc = toml_edit::ImDocument::parse(self.text.as_str()).ok()?;
            let mut table: &dyn toml_edit::TableLike = doc.get("recipe")?.as_array_of_tables()?.get(i)?;
            let (last, parents) = path.split_last()?;
            for p in parents {
                table = table.get(p)?.as_table_like()?;
            }
            table.key(last)?.span().map(|s| s.start)
        })();
        let (line, column) = self.line_col(offset.unwrap_or_else(|| self.manifest.recipes[i].name.span().start));
        Problem { file: self.path.clone(), line, column, key: key.to_string(), message: message.into() }
    }

    /// A problem located where `[key]`'s table starts (for fields read
    /// without a span).
    pub fn problem_at_start(&self, key: &str, message: impl Into<String>) -> Problem {
        let table = key.rsplit_once('.').map_or(key, |(t, _)| t);
        let offset = self.text.find(&format!("[{table}]")).unwrap_or(0);
        let (line, column) = self.line_col(offset);
        Problem { file: self.path.clone(), line, column, key: key.to_string(), message: message.into() }
    }

    /// Checks of single fields: versions, checksums, URL schemes, duplicates.
    fn validate(&self) -> Vec<Problem> {
        let m = &self.manifest;
        let mut problems = Vec::new();
        let mut seen: BTreeMap<(String, String), &Name> = BTreeMap::new();
        for (i, r) in m.recipes.iter().enumerate() {
            let key = |k: &str| format!("recipe {}.{k}", r.name.get_ref());
            if !valid_name(r.name.get_ref()) {
                problems.push(self.problem(&r.name, &key("name"), "a recipe name is lowercase letters, digits, `-`, `_`, `+` and `.`"));
            }
            if let Err(e) = Version::parse(r.version.get_ref()) {
                problems.push(self.problem(&r.version, &key("version"), e.to_string()));
            }
            let id = (r.name.get_ref().clone(), r.version.get_ref().clone());
            if let Some(first) = seen.get(&id) {
                let (line, _) = self.line_col(first.span().start);
                problems.push(self.problem(&r.name, &key("name"), format!("{} {} is defined twice (first at line {line})", id.0, id.1)));
            } else {
                seen.insert(id, &r.name);
            }
            for (i, s) in std::iter::once(&r.source).chain(&r.alternatives).enumerate() {
                let field = if i == 0 { key("source") } else { key(&format!("alternatives[{}]", i - 1)) };
                problems.extend(self.check_source(s, &field));
            }
            for arch in r.arch.keys() {
                if arch != "native" && !m.arch.contains_key(arch) {
                    problems.push(self.problem(
                        &r.name,
                        &key(&format!("arch.{arch}")),
                        format!("override for unknown arch `{arch}`; known: native, {}", m.arch.keys().cloned().collect::<Vec<_>>().join(", ")),
                    ));
                }
            }
            for k in r.unknown.keys() {
                let known: Vec<String> = RECIPE_KEYS.iter().map(|k| k.to_string()).chain(Build::fields()).collect();
                let hint = did_you_mean(k, &known);
                problems.push(self.problem_at_key(i, &[k], &key(k), format!("unknown field `{k}`{hint}")));
            }
            for (arch, o) in &r.arch {
                if let Err(e) = r.build.overlay(&o.build) {
                    let at = ["arch", arch.as_str(), e.field.as_str()];
                    problems.push(self.problem_at_key(i, &at, &key(&at.join(".")), e.message));
                }
            }
            if r.arch.contains_key("native") && !r.native {
                problems.push(self.problem(&r.name, &key("arch.native"), "a `native` override needs `native = true`"));
            }
        }
        for (name, pattern) in &m.distro.preferred_version {
            let p = pattern.get_ref();
            let stem = p.strip_suffix('%').unwrap_or(p);
            if stem.contains('%') || (!stem.is_empty() && Version::parse(stem.trim_end_matches('.')).is_err()) {
                problems.push(self.problem(
                    pattern,
                    &format!("distro.preferred_version.{name}"),
                    format!("`{p}` is not a version; `%` may only end it, as in \"3.13.%\""),
                ));
            }
        }
        for (name, p) in &m.package.profile {
            if let Some(parent) = &p.inherits {
                if !m.package.profile.contains_key(parent) {
                    problems.push(self.problem_at_start(
                        &format!("package.profile.{name}.inherits"),
                        format!("no profile `{parent}`; known: {}", m.package.profile.keys().cloned().collect::<Vec<_>>().join(", ")),
                    ));
                }
            }
            for g in &p.exclude {
                if let Err(e) = globset::Glob::new(g) {
                    problems.push(self.problem_at_start(&format!("package.profile.{name}.exclude"), format!("`{g}` is not a glob: {e}")));
                }
            }
        }
        if let Some(d) = &m.package.default_profile {
            if !m.package.profile.contains_key(d) {
                problems.push(self.problem_at_start("package.default_profile", format!("no profile `{d}`")));
            }
        }
        let offered = self.features_offered();
        for f in &m.distro.features {
            if !offered.contains(f.get_ref()) {
                problems.push(self.problem(f, "distro.features", unknown_feature(f.get_ref(), &offered)));
            }
        }
        if let Some(f) = m.libc.glibc_floor.as_deref().filter(|f| parse_glibc(f).is_none()) {
            problems.push(self.problem_at_start("libc.glibc_floor", format!("`{f}` is not a glibc version such as 2.28")));
        }
        for (name, a) in &m.arch {
            if let Some(b) = a.test_board.as_ref().filter(|b| !m.board.contains_key(*b)) {
                problems.push(self.problem_at_start(
                    &format!("arch.{name}.test_board"),
                    format!("no board `{b}`; known: {}", m.board.keys().cloned().collect::<Vec<_>>().join(", ")),
                ));
            }
            for v in a.glibc_min.iter().chain(a.cflags_from_glibc.keys()) {
                if parse_glibc(v).is_none() {
                    problems.push(self.problem_at_start(&format!("arch.{name}.glibc_min"), format!("`{v}` is not a glibc version such as 2.28")));
                }
            }
        }
        for (name, b) in &m.board {
            if !m.arch.contains_key(&b.arch) {
                problems.push(self.problem_at_start(
                    &format!("board.{name}.arch"),
                    format!("unknown arch `{}`; known: {}", b.arch, m.arch.keys().cloned().collect::<Vec<_>>().join(", ")),
                ));
            }
        }
        if let Some(z) = &m.toolchain.zig {
            for sha in z.wheel_sha256.values().filter(|s| !is_sha256(s)) {
                problems.push(self.problem_at_start("toolchain.zig.wheel_sha256", format!("`{sha}`: a sha256 is 64 lowercase hex digits")));
            }
        }
        for (i, limit) in m.distro.cpython_test_limits.iter().enumerate() {
            for arch in limit.arches.iter().filter(|a| !m.arch.contains_key(*a)) {
                problems.push(self.problem(
                    &limit.tests,
                    &format!("distro.cpython_test_limits[{i}].arches"),
                    format!("unknown arch `{arch}`; known: {}", m.arch.keys().cloned().collect::<Vec<_>>().join(", ")),
                ));
            }
            if limit.why.trim().is_empty() {
                problems.push(self.problem(&limit.tests, &format!("distro.cpython_test_limits[{i}].why"), "say why the test cannot pass"));
            }
        }
        problems
    }

    fn check_source(&self, s: &Source, key: &str) -> Vec<Problem> {
        let mut problems = Vec::new();
        for (i, url) in std::iter::once(&s.url).chain(&s.mirrors).enumerate() {
            let field = if i == 0 { format!("{key}.url") } else { format!("{key}.mirrors[{}]", i - 1) };
            if !valid_url(url.get_ref()) {
                problems.push(self.problem(
                    url,
                    &field,
                    format!("`{}` has an unsupported scheme; use https://, http://, file://, debian:<pool path> or pypi:<name>==<version>", url.get_ref()),
                ));
            }
        }
        match &s.sha256 {
            None => problems.push(self.problem(&s.url, &format!("{key}.sha256"), "every source needs a sha256")),
            Some(h) if !is_sha256(h.get_ref()) => problems.push(self.problem(h, &format!("{key}.sha256"), "a sha256 is 64 lowercase hex digits")),
            Some(_) => {}
        }
        problems
    }
}

pub fn valid_name(name: &str) -> bool {
    !name.is_empty() && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "-_+./".contains(c))
}

fn valid_url(url: &str) -> bool {
    ["https://", "http://", "file://", "debian:", "pypi:"].iter().any(|s| url.starts_with(s) && url.len() > s.len())
}

fn is_sha256(s: &str) -> bool {
    s.len() == 64 && s.chars().all(|c| matches!(c, '0'..='9' | 'a'..='f'))
}

/// 1-based line and column of a byte offset.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rfind('\n').map_or(before.len(), |nl| before.len() - nl - 1) + 1;
    (line, column)
}

fn word_at(text: &str, offset: usize) -> String {
    text[offset.min(text.len())..].chars().take_while(|c| c.is_alphanumeric() || "_-.\"".contains(*c)).collect::<String>().trim_matches('"').to_string()
}

/// The normalized project name of a requirement specifier (PEP 503), or
/// of a wheel or sdist file (`dir/PyYAML-6.0.tar.gz`).
pub fn project_name(requirement: &str) -> String {
    let requirement = match requirement.rsplit_once('/') {
        Some((_, file)) => file.split('-').next().unwrap_or(file),
        None if requirement.ends_with(".whl") || requirement.ends_with(".tar.gz") || requirement.ends_with(".zip") => {
            requirement.split('-').next().unwrap_or(requirement)
        }
        None => requirement,
    };
    let end = requirement.find(|c: char| !(c.is_ascii_alphanumeric() || "-_.".contains(c))).unwrap_or(requirement.len());
    requirement[..end].to_ascii_lowercase().replace(['_', '.'], "-")
}

#[cfg(test)]
pub(crate) mod tests {

    #[test]
    fn an_emulators_test_limit_holds_only_under_that_emulator() {
        let limit = |kind: &str, arches: &str| -> TestLimit {
            toml::from_str(&format!("tests = [\"t\"]\nkind = \"{kind}\"\nwhy = \"w\"\narches = [{arches}]\n")).unwrap()
        };
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

    use super::*;

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
}
