//! The cross toolchain of an arch: which compiler, its binutils, its
//! identity (for task signatures), the newest glibc its output may need
//! and where its shared objects live.
//!
//! Chosen, in order: `--toolchain <dir or prefix>` (or
//! `CROSSPYTHON_TOOLCHAIN`), `CROSS_COMPILE=<prefix>`, then zig for the
//! glibc floor when the manifest has `[toolchain.zig]` (the default), and
//! otherwise (or with `--toolchain debian-gcc`) whatever the `cc` crate
//! picks for the arch's Rust target, which honours `CC_<target>` and falls
//! back to Debian's `<triplet>-gcc`.

pub mod zig;

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use xshell::{cmd, Shell};

use crate::model::manifest::{Arch, ToolchainNeed, ZigToolchain};

/// Where toolchains this project fetches live (zig, its wrappers and
/// compile cache): `<cache root>/toolchains`.
pub fn toolchains_dir(cache: &Path) -> PathBuf {
    cache.join("toolchains")
}

/// What decides the toolchain of an arch.
#[derive(Clone, Copy)]
pub struct Choice<'a> {
    /// `--toolchain` (or `CROSSPYTHON_TOOLCHAIN`).
    pub explicit: Option<&'a str>,
    /// The manifest's `[toolchain.zig]`.
    pub zig: Option<&'a ZigToolchain>,
    /// The cache root (`~/.cache/crosspython`), where zig is unpacked.
    pub cache: &'a Path,
    /// The glibc floor of the boards.
    pub glibc_floor: Option<(u32, u32)>,
    /// What the build's options need beyond a compiler.
    pub needs: &'a std::collections::BTreeSet<ToolchainNeed>,
}

/// `--toolchain debian-gcc`: Debian's cross gcc with its own glibc, as
/// before zig was the default.
pub const DEBIAN_GCC: &str = "debian-gcc";

#[derive(Debug, Clone)]
pub struct Toolchain {
    /// The C compiler, by full path.
    pub cc: PathBuf,
    /// Arguments that belong to the compiler (`--target=`, `--sysroot=` for clang).
    pub cc_args: Vec<String>,
    /// Prefix of the binutils (`/usr/bin/aarch64-linux-gnu-`), or `llvm-`.
    pub tool_prefix: String,
    /// First line of `--version`.
    pub version: String,
    /// `-dumpmachine`.
    pub machine: String,
    /// The directory that stands for `/` when the target's programs run
    /// under qemu-user (`QEMU_LD_PREFIX`): where the toolchain's dynamic
    /// loader and libc are (for zig, which has none: the arch's test board).
    pub run_root: Option<PathBuf>,
    /// The newest glibc the output may need: the floor zig links against,
    /// or the glibc of the toolchain's own `libc.so.6`.
    pub glibc: Option<(u32, u32)>,
    /// Zig's target (`aarch64-linux-gnu.2.28`) when the toolchain is zig.
    pub zig_target: Option<String>,
    /// Where zig's output finds shared objects it does not make itself
    /// (the arch's `runtime_libs`: libstdc++, libgcc_s from Debian).
    pub runtime_root: Option<PathBuf>,
    /// The library directories of `runtime_root`, searched by `find_lib`.
    pub runtime_lib_dirs: Vec<PathBuf>,
    /// The glibc floor of the boards: a toolchain whose own glibc is newer
    /// ships it privately (see `private_glibc`).
    pub glibc_floor: Option<(u32, u32)>,
    /// clang's PGO tools when the build needs them and zig lacks them.
    pub profile: Option<zig::ProfileTools>,
}

impl Toolchain {
    pub fn find(arch: &Arch, choice: Choice) -> Result<Toolchain> {
        let explicit = choice.explicit.map(str::to_string).or_else(|| std::env::var("CROSSPYTHON_TOOLCHAIN").ok());
        // A musl arch needs no floor: musl has no symbol versions.
        let has_floor = choice.glibc_floor.is_some() || !arch.libc.is_glibc();
        let use_zig = match (&explicit, choice.zig, has_floor, &arch.zig_target) {
            (Some(e), ..) => e == "zig",
            (None, Some(_), true, Some(_)) => std::env::var_os("CROSS_COMPILE").is_none(),
            _ => false,
        };
        let mut zig_target = None;
        let mut profile = None;
        let (cc, cc_args) = if use_zig {
            let Some(spec) = choice.zig else {
                bail!("--toolchain zig needs [toolchain.zig] in the manifest");
            };
            let zig = zig::ensure(spec, choice.cache)?;
            zig_target = Some(zig::target(arch, choice.glibc_floor)?);
            let crt = zig::compiler_rt_for_boards(&zig, arch, choice.glibc_floor)?;
            if choice.needs.contains(&ToolchainNeed::ProfileRuntime) {
                profile = Some(
                    zig::profile_tools(&zig, arch, choice.glibc_floor)
                        .context("a build option needs clang's profile runtime (packageconfig toolchain_needs)")?,
                );
            }
            let runtime = profile.as_ref().map(|p: &zig::ProfileTools| p.runtime.as_path());
            (zig::wrappers(&zig, spec, arch, choice.glibc_floor, Some(&crt), runtime)?.join(format!("{}-gcc", arch.triplet)), vec![])
        } else if let Some(choice) = explicit.filter(|e| e != DEBIAN_GCC) {
            from_choice(&choice, &arch.triplet)?
        } else if let Ok(prefix) = std::env::var("CROSS_COMPILE") {
            (PathBuf::from(format!("{prefix}gcc")), vec![])
        } else {
            let tool = cc::Build::new()
                .target(&arch.rust_target)
                .host(&crate::machine::build_sys::rust_target())
                .opt_level(2)
                .cargo_metadata(false)
                .cargo_warnings(false)
                .try_get_compiler()
                .with_context(|| format!("no C compiler for {}", arch.rust_target))?;
            let args = tool.args().iter().map(|a| a.to_string_lossy().into_owned()).filter(|a| !is_default_flag(a)).collect();
            (tool.path().to_path_buf(), args)
        };
        let cc = which::which(&cc).map_err(|_| {
            anyhow::anyhow!(
                "the C compiler `{}` for {} is not installed (install Debian's gcc-{}, or pass --toolchain <dir or prefix>)",
                cc.display(),
                arch.triplet,
                arch.triplet
            )
        })?;
        let sh = Shell::new()?;
        let args = &cc_args;
        let version = cmd!(sh, "{cc} {args...} --version").quiet().read()?.lines().next().unwrap_or_default().to_string();
        let machine = cmd!(sh, "{cc} {args...} -dumpmachine").quiet().read()?.trim().to_string();
        let tool_prefix = binutils_prefix(&cc, &arch.triplet);
        let mut tc = Toolchain {
            cc,
            cc_args,
            tool_prefix,
            version,
            machine,
            run_root: None,
            glibc: choice.glibc_floor,
            zig_target,
            runtime_root: None,
            runtime_lib_dirs: vec![],
            glibc_floor: choice.glibc_floor,
            profile,
        };
        if tc.zig_target.is_none() {
            tc.run_root = tc.find_run_root();
            tc.glibc = tc.find_lib("libc.so.6").map(|l| crate::machine::elf::glibc_defined(&l)).transpose()?.flatten();
        }
        Ok(tc)
    }

    /// glibc's `libc.so.6` is itself a program: its `PT_INTERP` names the
    /// dynamic loader, and the directory the loader's path hangs from is
    /// the root (`/usr/aarch64-linux-gnu`, or a clang `--sysroot`).
    fn find_run_root(&self) -> Option<PathBuf> {
        let libc = self.find_lib("libc.so.6")?.canonicalize().ok()?;
        let interp = crate::machine::elf::inspect(&libc).ok()??.interp?;
        libc.ancestors().skip(1).find(|dir| dir.join(interp.trim_start_matches('/')).exists()).map(Path::to_path_buf)
    }

    /// The root of the toolchain's own glibc when the tree must carry it:
    /// a gcc toolchain (not zig) whose glibc is newer than the boards'.
    pub fn private_glibc(&self) -> Option<&Path> {
        let newer = matches!((self.glibc, self.glibc_floor), (Some(have), Some(floor)) if have > floor);
        (self.zig_target.is_none() && newer).then_some(self.run_root.as_deref()).flatten()
    }

    /// Everything about the compiler that can change what it produces.
    pub fn identity(&self) -> String {
        // The wrapper's text (its dropped linker options, the compiler-rt
        // for boards it names, whose name changes with how it is made) is
        // part of zig's identity.
        let wrapper = || std::fs::read(&self.cc).map(|t| crate::sources::fetch::sha256_bytes(&t)).unwrap_or_default();
        let zig = self.zig_target.as_deref().map(|t| format!(" | zig -target {t} wrapper {}", wrapper())).unwrap_or_default();
        let private = match (self.private_glibc(), self.glibc_floor) {
            (Some(_), Some(f)) => format!(" | private glibc for boards from {}.{}", f.0, f.1),
            _ => String::new(),
        };
        format!("{} {} | {} | {}{zig}{private}", self.cc.display(), self.cc_args.join(" "), self.version, self.machine)
    }

    /// The C flags of `arch` for what this toolchain targets.
    pub fn arch_cflags(&self, arch: &Arch) -> Vec<String> {
        arch.cflags_for(self.glibc)
    }

    /// The compiler command line for `CC`.
    pub fn cc_command(&self, launcher: Option<&str>) -> String {
        let mut words: Vec<String> = launcher.into_iter().map(str::to_string).collect();
        words.push(self.cc.display().to_string());
        words.extend(self.cc_args.iter().cloned());
        words.join(" ")
    }

    /// The compiler family: zig's and any clang are clang (by `--version`,
    /// as a `gcc`-named wrapper of clang says so), the rest gcc.
    pub fn compiler(&self) -> crate::model::build::Compiler {
        use crate::model::build::Compiler;
        if self.zig_target.is_some() || self.version.contains("clang") {
            Compiler::Clang
        } else {
            Compiler::Gcc
        }
    }

    /// A binutils program (`ar`, `strip`, ...).
    pub fn tool(&self, name: &str) -> String {
        format!("{}{name}", self.tool_prefix)
    }

    /// A meson cross file (meson-python packages such as numpy, the meson
    /// class): the cross tools, the target's pkg-config, qemu as the
    /// exe_wrapper over `exe_root` (with the arch's CPU), the CPU family and
    /// the long double format that meson cannot probe on a foreign machine.
    pub fn meson_cross_file(&self, arch: &Arch, exe_root: Option<&Path>, path: &Path) -> Result<()> {
        use std::fmt::Write as _;
        let list = |words: Vec<String>| format!("[{}]", words.iter().map(|w| format!("'{w}'")).collect::<Vec<_>>().join(", "));
        let mut cc = vec![self.cc.display().to_string()];
        cc.extend(self.cc_args.iter().cloned());
        let cxx_path = self.tool("g++");
        let mut text = String::from("# Written by crosspython.\n[binaries]\n");
        writeln!(text, "c = {}", list(cc))?;
        if which::which(&cxx_path).is_ok() {
            writeln!(text, "cpp = {}", list(vec![cxx_path]))?;
        }
        for (k, tool) in [("ar", "ar"), ("strip", "strip"), ("nm", "nm"), ("objcopy", "objcopy")] {
            writeln!(text, "{k} = '{}'", self.tool(tool))?;
        }
        writeln!(text, "pkg-config = 'pkg-config'")?;
        if let Some(root) = exe_root {
            writeln!(text, "exe_wrapper = {}", list(crate::machine::runner::TargetRunner::new(arch, root).exe_wrapper()))?;
        }
        writeln!(text, "\n[properties]\nneeds_exe_wrapper = true\nlongdouble_format = '{}'", arch.longdouble_format)?;
        writeln!(
            text,
            "\n[host_machine]\nsystem = 'linux'\ncpu_family = '{}'\ncpu = '{}'\nendian = '{}'",
            arch.meson_cpu_family, arch.meson_cpu, arch.elf.endian
        )?;
        std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))?;
        Ok(())
    }

    /// Where the toolchain keeps a shared object the target needs at run
    /// time (`libc.so.6`), as the compiler's own search finds it.
    pub fn find_lib(&self, soname: &str) -> Option<PathBuf> {
        // zig's C library is stubs for linking (the board has the real
        // one); other run-time libraries come from the runtime root.
        if self.zig_target.is_some() {
            return self.runtime_lib_dirs.iter().map(|d| d.join(soname)).find(|p| p.exists()).and_then(|p| p.canonicalize().ok());
        }
        let sh = Shell::new().ok()?;
        let (cc, args) = (&self.cc, &self.cc_args);
        let out = cmd!(sh, "{cc} {args...} -print-file-name={soname}").quiet().read().ok()?;
        let p = PathBuf::from(out.trim());
        // gcc echoes the bare name back when it does not find the file.
        (p.is_absolute() && p.exists()).then_some(p)
    }
}

/// `--toolchain` takes a directory (with `bin/<triplet>-gcc` or `bin/*-gcc`),
/// a prefix such as `/opt/sdk/bin/aarch64-poky-linux-`, or a compiler
/// command with its arguments (`clang --sysroot=/opt/sysroot`); clang gets
/// `--target=<triplet>` unless the command names one.
fn from_choice(choice: &str, triplet: &str) -> Result<(PathBuf, Vec<String>)> {
    let mut words = choice.split_whitespace();
    let first = words.next().with_context(|| "--toolchain is empty".to_string())?;
    let mut args: Vec<String> = words.map(str::to_string).collect();
    let cc = compiler_of(first, triplet)?;
    let is_clang = cc.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("clang"));
    if is_clang && !args.iter().any(|a| a.starts_with("--target") || a == "-target") {
        args.insert(0, format!("--target={triplet}"));
    }
    Ok((cc, args))
}

fn compiler_of(choice: &str, triplet: &str) -> Result<PathBuf> {
    let path = Path::new(choice);
    if path.is_dir() {
        let bin = if path.join("bin").is_dir() { path.join("bin") } else { path.to_path_buf() };
        let wanted = bin.join(format!("{triplet}-gcc"));
        if wanted.exists() {
            return Ok(wanted);
        }
        let mut gccs: Vec<PathBuf> = std::fs::read_dir(&bin)?
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.ends_with("-gcc")))
            .collect();
        gccs.sort();
        match gccs.as_slice() {
            [one] => Ok(one.clone()),
            [] => bail!("--toolchain {choice}: no `*-gcc` in {}", bin.display()),
            many => bail!(
                "--toolchain {choice}: several compilers ({}); pass the prefix instead, e.g. {}",
                many.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", "),
                many[0].display().to_string().trim_end_matches("gcc")
            ),
        }
    } else if choice.ends_with('-') {
        Ok(PathBuf::from(format!("{choice}gcc")))
    } else {
        Ok(path.to_path_buf())
    }
}

/// Binutils that go with `cc`: the same prefix for `<prefix>gcc`, the
/// triplet's for other compilers when they are installed, else LLVM's.
fn binutils_prefix(cc: &Path, triplet: &str) -> String {
    let s = cc.display().to_string();
    if let Some(prefix) = s.strip_suffix("gcc") {
        if prefix.ends_with('-') {
            return prefix.to_string();
        }
    }
    match which::which(format!("{triplet}-ar")) {
        Ok(p) => p.display().to_string().trim_end_matches("ar").to_string(),
        Err(_) => "llvm-".to_string(),
    }
}

/// Flags the `cc` crate adds for Rust builds; recipes set their own.
fn is_default_flag(a: &str) -> bool {
    a.starts_with("-O") || a.starts_with("-W") || a.starts_with("-g") || ["-ffunction-sections", "-fdata-sections", "-fPIC"].contains(&a)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_prefix_choice_names_its_gcc() {
        assert_eq!(
            from_choice("/opt/sdk/bin/aarch64-poky-linux-", "aarch64-linux-gnu").unwrap(),
            (PathBuf::from("/opt/sdk/bin/aarch64-poky-linux-gcc"), vec![])
        );
    }

    #[test]
    fn a_directory_choice_finds_the_triplet_gcc_in_bin() {
        let t = tempfile::tempdir().unwrap();
        std::fs::create_dir(t.path().join("bin")).unwrap();
        std::fs::write(t.path().join("bin/aarch64-linux-gnu-gcc"), "").unwrap();
        std::fs::write(t.path().join("bin/aarch64-linux-gnu-ar"), "").unwrap();
        assert_eq!(from_choice(t.path().to_str().unwrap(), "aarch64-linux-gnu").unwrap().0, t.path().join("bin/aarch64-linux-gnu-gcc"));
    }

    #[test]
    fn a_compiler_command_keeps_its_arguments_and_clang_gets_the_target() {
        assert_eq!(
            from_choice("clang --sysroot=/opt/sysroot", "mipsel-linux-gnu").unwrap(),
            (PathBuf::from("clang"), vec!["--target=mipsel-linux-gnu".to_string(), "--sysroot=/opt/sysroot".to_string()])
        );
        assert_eq!(from_choice("clang-14 --target=arm-linux-gnueabihf", "x").unwrap().1, vec!["--target=arm-linux-gnueabihf".to_string()]);
    }

    #[test]
    fn binutils_follow_a_gcc_prefix() {
        assert_eq!(binutils_prefix(Path::new("/opt/x/bin/mipsel-buildroot-linux-gnu-gcc"), "mipsel-linux-gnu"), "/opt/x/bin/mipsel-buildroot-linux-gnu-");
    }

    #[test]
    fn the_compiler_family_comes_from_zig_or_the_version_line() {
        use crate::model::build::Compiler;
        let tc = |version: &str, zig: bool| Toolchain {
            cc: PathBuf::from("/usr/bin/mipsel-linux-gnu-gcc"),
            cc_args: vec![],
            tool_prefix: String::new(),
            version: version.into(),
            machine: "mipsel-linux-gnu".into(),
            run_root: None,
            glibc: None,
            zig_target: zig.then(|| "mipsel-linux-gnu.2.28".into()),
            runtime_root: None,
            runtime_lib_dirs: vec![],
            glibc_floor: None,
            profile: None,
        };
        assert_eq!(tc("mipsel-linux-gnu-gcc (Debian 12.2.0-14) 12.2.0", false).compiler(), Compiler::Gcc);
        assert_eq!(tc("Debian clang version 14.0.6", false).compiler(), Compiler::Clang, "a gcc-named clang is clang");
        assert_eq!(tc("0.17.1", true).compiler(), Compiler::Clang, "zig's wrapper");
    }
}
