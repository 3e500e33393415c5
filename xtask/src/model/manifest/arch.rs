//! `[arch.*]`, `[libc]` and `[toolchain]`: the target machines (BitBake's
//! MACHINE), what their ELF files must look like, and the C library and
//! toolchains the package is built against.

use std::collections::BTreeMap;
use std::fmt;

use serde::Deserialize;

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
    /// The address zig's linker (lld) puts a program's first segment at,
    /// where lld's default for the arch is too low: tools that add a
    /// segment below the first (patchelf's run paths, one page below) must
    /// not reach the kernel's `vm.mmap_min_addr` (see `elf.lowest_load`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub zig_image_base: Option<u64>,
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
    /// The lowest address an executable (ET_EXEC) may load at: below the
    /// kernel's `vm.mmap_min_addr` exec fails for a user without
    /// CAP_SYS_RAWIO, and a program mapped at 0 reads NULL instead of
    /// crashing. Debian's kernels have 4096, 32768 with an LSM that
    /// enforces it (CONFIG_LSM_MMAP_MIN_ADDR): `LOWEST_LOAD` unless set
    /// (unset, it is not written: no signature changes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lowest_load: Option<u64>,
}

fn yes() -> bool {
    true
}

/// See `ElfExpect::lowest_load`.
pub const LOWEST_LOAD: u64 = 0x8000;

impl ElfExpect {
    pub fn lowest_load(&self) -> u64 {
        self.lowest_load.unwrap_or(LOWEST_LOAD)
    }
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
