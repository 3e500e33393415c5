//! Zig's C/C++ compiler as a GNU-style cross toolchain for a glibc floor.
//!
//! `zig cc -target aarch64-linux-gnu.2.28` compiles with clang and links
//! against stub libraries of glibc 2.28, whatever glibc the build machine
//! has; C++ gets a static libc++ and compiler-rt, so the board needs no
//! libstdc++ or libgcc_s. Build systems expect `<triplet>-gcc`, `-ar`,
//! `-strip` ..., so each (arch, floor) gets a directory of small wrapper
//! scripts; `strip`, `objcopy`, `nm`, `readelf` and `objdump` are Debian's
//! `binutils-<triplet>`, which read any ELF file of the arch.
//!
//! Zig comes from PyPI (the `ziglang` wheel, the way portable-python and
//! cargo-zigbuild users get it), fetched by the host's pip from its
//! configured index, checked against the manifest's sha256 and unpacked
//! into the cache once.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::base::process::checked;
use crate::model::manifest::{Arch, LibcKind, ZigToolchain};

/// The unpacked zig of `spec` in `cache` (`<cache>/toolchains/zig-<version>`),
/// fetched and checked first if it is not there.
pub fn ensure(spec: &ZigToolchain, cache: &Path) -> Result<PathBuf> {
    let version =
        spec.pypi.split_once("==").map(|(_, v)| v).with_context(|| format!("toolchain.zig.pypi `{}` must pin a version (ziglang==X.Y.Z)", spec.pypi))?;
    let dir = super::toolchains_dir(cache).join(format!("zig-{version}"));
    let zig = dir.join("ziglang/zig");
    if zig.is_file() {
        return Ok(zig);
    }
    let host = std::env::consts::ARCH;
    let Some(want) = spec.wheel_sha256.get(host) else {
        bail!("toolchain.zig has no wheel_sha256 for a {host} build machine (it has: {})", spec.wheel_sha256.keys().cloned().collect::<Vec<_>>().join(", "));
    };
    fs::create_dir_all(dir.parent().unwrap())?;
    let dl = tempfile::Builder::new().prefix(".zig-download-").tempdir_in(dir.parent().unwrap())?;
    eprintln!("crosspython: fetching {} (the zig C/C++ cross compiler) with pip", spec.pypi);
    checked(
        Command::new("python3")
            .args(["-m", "pip", "download", "--quiet", "--no-deps", "--only-binary", ":all:", "--platform"])
            .arg(format!("manylinux_2_12_{host}"))
            .arg("--dest")
            .arg(dl.path())
            .arg(&spec.pypi),
    )
    .with_context(|| format!("pip could not download {} (Debian package python3-pip)", spec.pypi))?;
    let wheel = fs::read_dir(dl.path())?.flatten().map(|e| e.path()).find(|p| p.extension().is_some_and(|e| e == "whl")).context("pip downloaded no wheel")?;
    let got = crate::sources::fetch::sha256_file(&wheel)?;
    if &got != want {
        bail!("{}: sha256 {got}, but toolchain.zig.wheel_sha256.{host} in the manifest is {want}; nothing was installed", wheel.display());
    }
    let unpacked = dl.path().join("unpacked");
    checked(Command::new("python3").args(["-m", "zipfile", "-e"]).arg(&wheel).arg(&unpacked)).with_context(|| format!("cannot unpack {}", wheel.display()))?;
    // Wheels carry no file modes for zipfile to restore.
    fs::set_permissions(unpacked.join("ziglang/zig"), fs::Permissions::from_mode(0o755))?;
    match fs::rename(&unpacked, &dir) {
        Ok(()) => {}
        // Another build unpacked it at the same time.
        Err(_) if zig.is_file() => {}
        Err(e) => return Err(e).with_context(|| format!("cannot move zig into {}", dir.display())),
    }
    Ok(zig)
}

/// zig's target triple for an arch and glibc floor: `aarch64-linux-gnu.2.28`;
/// musl has one ABI, no floor: `aarch64-linux-musl`.
pub fn target(arch: &Arch, floor: Option<(u32, u32)>) -> Result<String> {
    let t = arch.zig_target.as_deref().with_context(|| format!("arch {} has no zig_target", arch.triplet))?;
    match (arch.libc, floor) {
        (LibcKind::Musl, _) => Ok(t.to_string()),
        (LibcKind::Glibc, Some(f)) => Ok(format!("{t}.{}.{}", f.0, f.1)),
        (LibcKind::Glibc, None) => bail!("zig for {} needs a glibc floor (libc.glibc_floor in the manifest, or --glibc-floor)", arch.triplet),
    }
}

/// zig's compiler-rt for `arch` at `floor`, with the C library functions
/// it also defines (`log2`, `exp`, `sin` ..., `memcpy`, `strlen`) made
/// local, built once into `<zig dir>/wrappers/<target>/lib`.
///
/// Why: compiler-rt is one object. On 32-bit arches nearly every program
/// needs a helper from it (`__aeabi_uldivmod`, `__udivdi3`), and then its
/// weak hidden `log2` and `memcpy` win over the board's `libm.so.6` and
/// `libc.so.6`, since lld prefers a definition in an object to one in a
/// shared library: CPython's `math.log2(1e-308)` came out 2.7M ulps off on
/// armhf and mipsel (test_math). The wrappers put this copy on every link
/// line ahead of zig's own, so the helpers come from it and the C library
/// functions from the board.
pub fn compiler_rt_for_boards(zig: &Path, arch: &Arch, floor: Option<(u32, u32)>) -> Result<PathBuf> {
    let target = target(arch, floor)?;
    let base = zig.parent().and_then(Path::parent).context("zig lives in <dir>/ziglang/zig")?;
    let lib = base.join("wrappers").join(&target).join("lib");
    // The name changes with how it is made (a file of an older recipe stays unused).
    let out = lib.join("libcompiler_rt_for_boards.v2.a");
    if out.is_file() {
        return Ok(out);
    }
    fs::create_dir_all(&lib)?;
    let work = tempfile::tempdir_in(&lib)?;
    let cache = base.parent().unwrap_or(base).join("zig-cache");
    let mut build = Command::new(zig);
    build.current_dir(work.path()).env("ZIG_GLOBAL_CACHE_DIR", &cache).env("ZIG_LOCAL_CACHE_DIR", &cache);
    // Function sections, as zig builds its own: the linker then keeps only
    // the helpers a file uses (without them every library grew by the whole
    // 1.2 MB object: libffi from 50 to 297 KiB).
    build.args(["build-lib", "-target", &target, "-O", "ReleaseFast", "-fPIC", "-ffunction-sections", "-fdata-sections", "--name", "compiler_rt"]);
    if let Some(cpu) = &arch.zig_cpu {
        build.arg(format!("-mcpu={cpu}"));
    }
    build.arg(zig.with_file_name("lib").join("compiler_rt.zig"));
    checked(&mut build).with_context(|| format!("zig build-lib compiler_rt for {target}"))?;
    // GNU objcopy refuses zig's archive (its members are named by absolute
    // paths): each object is edited alone and the archive made again.
    let bytes = fs::read(work.path().join("libcompiler_rt.a"))?;
    let objects = archive_objects(&bytes)?;
    let names = libc_names(&objects)?;
    let list = work.path().join("localize.txt");
    fs::write(&list, names.join("\n"))?;
    let objcopy = format!("/usr/bin/{}-objcopy", arch.binutils_triplet());
    let mut members = vec![];
    for (i, data) in objects.iter().enumerate() {
        let o = work.path().join(format!("compiler_rt_{i}.o"));
        fs::write(&o, data)?;
        checked(Command::new(&objcopy).arg(format!("--localize-symbols={}", list.display())).arg(&o))
            .context("localizing the C library's symbols in zig's compiler-rt")?;
        members.push(o);
    }
    let local = work.path().join("local.a");
    checked(Command::new(zig).arg("ar").arg("rcs").arg(&local).args(&members).env("ZIG_GLOBAL_CACHE_DIR", &cache))?;
    fs::rename(&local, &out)?;
    Ok(out)
}

/// The file name of the LLVM profile runtime in `<zig dir>/wrappers/<target>/lib`.
const PROFILE_RUNTIME: &str = "libclang_rt.profile.a";

/// What clang's PGO needs beside the compiler.
#[derive(Debug, Clone)]
pub struct ProfileTools {
    /// compiler-rt's profile runtime for the target, which the wrappers
    /// link into instrumented programs and libraries.
    pub runtime: PathBuf,
    /// An `llvm-profdata` that reads the raw profiles of zig's LLVM.
    pub profdata: PathBuf,
}

/// The LLVM profile runtime and `llvm-profdata` for clang's PGO
/// (`-fprofile-instr-generate`, `-fprofile-instr-use`) with zig.
///
/// zig links no profile runtime (ziglang/zig#17737; cargo-zigbuild cannot
/// do PGO for that reason, rust-cross/cargo-zigbuild#315): an instrumented
/// program runs and writes no profile. rustup's standard library for a
/// target carries compiler-rt's profile runtime (`profiler_builtins`), and
/// its `llvm-tools` an `llvm-profdata`, both of the rustc's LLVM: they are
/// used when that LLVM has zig's major version, since the raw profile
/// format changes between majors. The runtime's objects are made into
/// `<zig dir>/wrappers/<target>/lib/libclang_rt.profile.a` once; rustup's
/// pieces are added when missing.
pub fn profile_tools(zig: &Path, arch: &Arch, floor: Option<(u32, u32)>) -> Result<ProfileTools> {
    let target = target(arch, floor)?;
    let base = zig.parent().and_then(Path::parent).context("zig lives in <dir>/ziglang/zig")?;
    let lib = base.join("wrappers").join(&target).join("lib");
    let cache = base.parent().unwrap_or(base).join("zig-cache");
    let major = |text: &str, after: &str| text.lines().find_map(|l| l.split_once(after)).and_then(|(_, v)| v.trim().split('.').next().map(str::to_string));
    let zig_version = String::from_utf8_lossy(&checked(Command::new(zig).args(["cc", "--version"]).env("ZIG_GLOBAL_CACHE_DIR", &cache))?.stdout).into_owned();
    let zig_llvm = major(&zig_version, "clang version").context("`zig cc --version` names no clang version")?;
    let no_rustc = || format!("PGO with zig needs rustup's LLVM {zig_llvm} tools (zig has no profile runtime): rustc is not installed");
    let rustc = String::from_utf8_lossy(&checked(Command::new("rustc").arg("-vV")).with_context(no_rustc)?.stdout).into_owned();
    let rust_llvm = major(&rustc, "LLVM version:").context("`rustc -vV` names no LLVM version")?;
    if rust_llvm != zig_llvm {
        bail!(
            "PGO with zig needs a profile runtime and llvm-profdata of zig's LLVM {zig_llvm}; they come from rustup, whose rustc here is on LLVM {rust_llvm} \
             (a rustc on LLVM {zig_llvm} would serve, or --toolchain debian-gcc, whose gcc has its own profile runtime)"
        );
    }
    let sysroot = PathBuf::from(String::from_utf8_lossy(&checked(Command::new("rustc").args(["--print", "sysroot"]))?.stdout).trim());
    let rustlib = sysroot.join("lib/rustlib");
    let profdata = rustlib.join(crate::machine::build_sys::rust_target()).join("bin/llvm-profdata");
    if !profdata.is_file() {
        checked(Command::new("rustup").args(["component", "add", "llvm-tools"])).context("rustup component add llvm-tools (for llvm-profdata)")?;
    }
    let runtime = lib.join(PROFILE_RUNTIME);
    if !runtime.is_file() {
        let find = || -> Option<PathBuf> {
            fs::read_dir(rustlib.join(&arch.rust_target).join("lib"))
                .ok()?
                .flatten()
                .map(|e| e.path())
                .find(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("libprofiler_builtins-") && n.ends_with(".rlib")))
        };
        let rlib = match find() {
            Some(r) => r,
            None => {
                checked(Command::new("rustup").args(["target", "add", &arch.rust_target])).with_context(|| {
                    format!(
                        "no LLVM profile runtime for {target}: rustup has no standard library for {} (PGO with zig needs the one it carries; --toolchain debian-gcc has gcc's own)",
                        arch.rust_target
                    )
                })?;
                find().with_context(|| format!("rustup's standard library for {} has no profiler_builtins", arch.rust_target))?
            }
        };
        fs::create_dir_all(&lib)?;
        let work = tempfile::tempdir_in(&lib)?;
        let bytes = fs::read(&rlib).with_context(|| format!("cannot read {}", rlib.display()))?;
        let mut members = vec![];
        // compiler-rt's C objects; not the crate's own (Rust) code unit.
        for (name, data) in archive_members(&bytes)?.into_iter().filter(|(name, _)| !name.ends_with(".rcgu.o")) {
            let o = work.path().join(format!("{}-{name}", members.len()));
            fs::write(&o, data)?;
            members.push(o);
        }
        if members.is_empty() {
            bail!("{} holds no compiler-rt objects", rlib.display());
        }
        let tmp = work.path().join(PROFILE_RUNTIME);
        checked(Command::new(zig).arg("ar").arg("rcs").arg(&tmp).args(&members).env("ZIG_GLOBAL_CACHE_DIR", &cache))?;
        fs::rename(&tmp, &runtime)?;
    }
    Ok(ProfileTools { runtime, profdata })
}

/// The object files of an archive.
fn archive_objects(archive: &[u8]) -> Result<Vec<Vec<u8>>> {
    Ok(archive_members(archive)?.into_iter().map(|(_, data)| data).collect())
}

/// The object files of an archive, with their member names.
fn archive_members(archive: &[u8]) -> Result<Vec<(String, Vec<u8>)>> {
    let mut out = vec![];
    for member in object::read::archive::ArchiveFile::parse(archive)?.members() {
        let member = member?;
        let data = member.data(archive)?;
        if object::File::parse(data).is_ok() {
            out.push((String::from_utf8_lossy(member.name()).into_owned(), data.to_vec()));
        }
    }
    Ok(out)
}

/// The global names objects define that are not compiler helpers (those
/// all start with `__`): the C library functions among them.
fn libc_names(objects: &[Vec<u8>]) -> Result<Vec<String>> {
    use object::{Object as _, ObjectSymbol as _};
    let mut names = std::collections::BTreeSet::new();
    for data in objects {
        let file = object::File::parse(data.as_slice())?;
        for sym in file.symbols() {
            let name = sym.name().unwrap_or_default();
            if sym.is_definition() && sym.is_global() && !name.starts_with("__") && !name.is_empty() {
                names.insert(name.to_string());
            }
        }
    }
    Ok(names.into_iter().collect())
}

/// Write the wrapper scripts of `arch` at `floor` next to `zig` and return
/// their `bin` directory. Files are only rewritten when their text changes.
/// `compiler_rt` (see `compiler_rt_for_boards`) goes on every link line;
/// `profile_runtime` (see `profile_tools`) on every instrumented one: those
/// wrappers are a set of their own (`bin-profile`), so that builds without
/// PGO keep theirs, and their signatures, unchanged.
pub fn wrappers(
    zig: &Path,
    spec: &ZigToolchain,
    arch: &Arch,
    floor: Option<(u32, u32)>,
    compiler_rt: Option<&Path>,
    profile_runtime: Option<&Path>,
) -> Result<PathBuf> {
    let base = zig.parent().and_then(Path::parent).context("zig lives in <dir>/ziglang/zig")?;
    let target = target(arch, floor)?;
    let bin = base.join("wrappers").join(&target).join(if profile_runtime.is_some() { "bin-profile" } else { "bin" });
    fs::create_dir_all(&bin)?;
    let cache = base.parent().unwrap_or(base).join("zig-cache");
    let boards = match floor {
        Some((a, b)) if arch.libc.is_glibc() => format!("glibc {a}.{b}"),
        _ => "musl".to_string(),
    };
    let header = format!(
        "#!/bin/sh\n# crosspython: zig as a {triplet} toolchain for {boards} boards.\nexport ZIG_GLOBAL_CACHE_DIR='{cache}' ZIG_LOCAL_CACHE_DIR='{cache}'\n",
        triplet = arch.triplet,
        cache = cache.display()
    );
    let zig_path = zig.display().to_string();
    let gnu_as = match arch.zig_gnu_as {
        true => format!("    *.s|*.S) inputs=1; set -- \"$@\" -fno-integrated-as -B/usr/bin/{}- \"$a\";;\n", arch.binutils_triplet()),
        false => String::new(),
    };
    let (profile_init, profile_arg, profile) = match profile_runtime {
        Some(rt) => (
            "profile=\n".to_string(),
            "    -fprofile-instr-generate*|-fprofile-generate*) profile=1; set -- \"$@\" \"$a\";;\n\
             \x20   -fprofile-instr-use=*|-fprofile-use=*) set -- \"$@\" \"$a\" \"-D__crosspython_profile=$(sha256sum < \"${a#*=}\" | cut -c1-16)\";;\n"
                .to_string(),
            format!(
                "if [ -n \"$profile\" ]; then set -- \"$@\" -fno-lto -g0; fi\n\
                 if [ -n \"$profile\" ] && [ -n \"$inputs\" ] && [ -n \"$link\" ]; then set -- \"$@\" -Wl,-u,__llvm_profile_runtime '{}'; fi\n",
                rt.display()
            ),
        ),
        None => Default::default(),
    };
    let image_base = arch
        .zig_image_base
        .map(|base| format!("if [ -n \"$inputs\" ] && [ -n \"$link\" ] && [ -z \"$shared\" ]; then set -- \"$@\" -Wl,--image-base={base:#x}; fi\n"))
        .unwrap_or_default();
    let compiler_rt = compiler_rt.map(|p| format!("if [ -n \"$inputs\" ] && [ -n \"$link\" ]; then set -- \"$@\" '{}'; fi\n", p.display())).unwrap_or_default();
    let parts = [
        ("TRIPLET", arch.triplet.clone()),
        ("BOARDS", boards),
        ("CACHE", cache.display().to_string()),
        ("ZIG", zig_path.clone()),
        ("PLAIN", arch.zig_target.clone().unwrap_or_default()),
        ("TARGET", target.clone()),
        ("CPU", arch.zig_cpu.as_deref().map(|c| format!(" -mcpu={c}")).unwrap_or_default()),
        ("DROP", if spec.drop_linker_args.is_empty() { "''".to_string() } else { spec.drop_linker_args.join("|") }),
        ("GNU_AS", gnu_as),
        ("PROFILE_INIT", profile_init),
        ("PROFILE_ARG", profile_arg),
        ("COMPILER_RT", compiler_rt),
        ("IMAGE_BASE", image_base),
        ("PROFILE", profile),
    ];
    let mut files: Vec<(String, String)> = vec![];
    for (name, driver) in [("gcc", "cc"), ("cc", "cc"), ("g++", "c++"), ("c++", "c++")] {
        let mut parts = parts.to_vec();
        parts.push(("DRIVER", driver.to_string()));
        files.push((name.into(), render(CC_WRAPPER, &parts)));
    }
    // llvm-ar too: CPython's configure takes llvm-ar for LTO with clang,
    // and the build machine's older LLVM cannot read zig's bitcode
    // ("Opaque pointers are only supported in -opaque-pointers mode").
    for (name, sub) in [("ar", "ar"), ("ranlib", "ranlib"), ("ld", "ld.lld"), ("llvm-ar", "ar")] {
        files.push((name.into(), format!("{header}exec '{zig_path}' {sub} \"$@\"\n")));
    }
    for tool in ["strip", "objcopy", "nm", "readelf", "objdump"] {
        files.push((tool.into(), format!("{header}exec /usr/bin/{}-{tool} \"$@\"\n", arch.binutils_triplet())));
    }
    for (name, text) in files {
        let path = bin.join(format!("{}-{name}", arch.triplet));
        if fs::read_to_string(&path).ok().as_deref() != Some(text.as_str()) {
            let tmp = path.with_extension("tmp");
            fs::write(&tmp, &text)?;
            fs::set_permissions(&tmp, fs::Permissions::from_mode(0o755))?;
            fs::rename(&tmp, &path)?;
        }
    }
    Ok(bin)
}

/// The compiler wrappers' shell script, with its `@NAME@` parts (see its head).
const CC_WRAPPER: &str = include_str!("zig/cc-wrapper.sh");

/// A wrapper template with its parts filled in: `##` lines are left out;
/// a line that is only `@NAME@` becomes that part (whole lines, or
/// nothing); `@NAME@` within a line becomes its value.
fn render(template: &str, parts: &[(&str, String)]) -> String {
    let mut out = String::with_capacity(template.len());
    for line in template.lines() {
        if line.starts_with("##") {
            continue;
        }
        if let Some((_, lines)) = parts.iter().find(|(name, _)| line.strip_prefix('@').and_then(|l| l.strip_suffix('@')) == Some(*name)) {
            out.push_str(lines);
            continue;
        }
        let mut line = line.to_string();
        for (name, value) in parts {
            line = line.replace(&format!("@{name}@"), value);
        }
        out.push_str(&line);
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The wrappers around a stand-in `zig` that prints the arguments it gets.
    fn wrappers_around_echo(drop: &[&str]) -> (tempfile::TempDir, PathBuf) {
        wrappers_around_echo_with(drop, None)
    }

    fn wrappers_around_echo_with(drop: &[&str], profile: Option<&Path>) -> (tempfile::TempDir, PathBuf) {
        wrappers_around_echo_for("mipsel", drop, profile)
    }

    fn wrappers_around_echo_for(arch: &str, drop: &[&str], profile: Option<&Path>) -> (tempfile::TempDir, PathBuf) {
        let t = tempfile::tempdir().unwrap();
        let zig = t.path().join("zig-0/ziglang/zig");
        fs::create_dir_all(zig.parent().unwrap()).unwrap();
        fs::write(
            &zig,
            "#!/bin/sh\nfor a in \"$@\"; do case \"$a\" in *.o) printf '%s=%s\\n' \"${a##*.}\" \"$(readlink \"$a\" || echo \"$a\")\";; *) echo \"$a\";; esac; done\n",
        )
        .unwrap();
        fs::set_permissions(&zig, fs::Permissions::from_mode(0o755)).unwrap();
        let loaded = crate::model::manifest::Loaded::read(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../recipes-manifest.toml")).unwrap();
        let spec = ZigToolchain { pypi: "ziglang==0".into(), wheel_sha256: Default::default(), drop_linker_args: drop.iter().map(|d| d.to_string()).collect() };
        let bin = wrappers(&zig, &spec, &loaded.manifest.arch[arch], Some((2, 28)), Some(Path::new("/crt/libcompiler_rt_for_boards.a")), profile).unwrap();
        (t, bin)
    }

    fn run(bin: &Path, tool: &str, args: &[&str]) -> Vec<String> {
        // The arch's triplet, read off its gcc wrapper (`<triplet>-gcc`).
        let gcc = fs::read_dir(bin).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).find(|n| n.ends_with("-gcc")).unwrap();
        let out = Command::new(bin.join(format!("{}{tool}", gcc.strip_suffix("gcc").unwrap()))).args(args).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).lines().map(str::to_string).collect()
    }

    #[test]
    fn compiles_for_the_floor_and_answers_queries_as_gcc_would() {
        let (_t, bin) = wrappers_around_echo(&[]);
        assert_eq!(
            run(&bin, "gcc", &["-c", "x.c"]),
            ["cc", "-target", "mipsel-linux-gnueabihf.2.28", "-fno-sanitize=all", "-Wno-error=date-time", "-c", "x.c"]
        );
        assert_eq!(run(&bin, "g++", &["-c", "x.cc"])[..3], ["c++", "-target", "mipsel-linux-gnueabihf.2.28"]);
        assert_eq!(run(&bin, "gcc", &["-dumpmachine"]), ["mipsel-linux-gnu"], "configure compares it with --host");
        assert_eq!(run(&bin, "gcc", &["--version"]), ["cc", "-target", "mipsel-linux-gnueabihf", "--version"], "clang rejects the glibc version in queries");
        assert_eq!(run(&bin, "ar", &["rcs", "x.a"]), ["ar", "rcs", "x.a"]);
    }

    #[test]
    fn refused_linker_options_are_dropped_and_the_rest_kept() {
        let (_t, bin) = wrappers_around_echo(&["-stats", "-lc"]);
        let args = run(&bin, "gcc", &["-shared", "-Wl,-soname,libx.so.6,-stats,-lc", "-Wl,-stats", "-o", "libx.so.6", "*.c"]);
        assert_eq!(args[5..10], ["-shared", "-Wl,-soname,libx.so.6", "-o", "libx.so.6", "*.c"], "and `*` is not globbed");
        // CPython's libpython3.so: a library made of a library only.
        let args = run(&bin, "gcc", &["-shared", "-Wl,-hlibpython3.13.so.1.0", "-Wl,--hash-style=gnu", "libpython3.13.so"]);
        let link = args.iter().rposition(|a| a == "cc").unwrap();
        assert_eq!(args[link + 5..link + 9], ["-shared", "-Wl,-soname,libpython3.13.so.1.0", "-Wl,--hash-style=gnu", "libpython3.13.so"]);
        assert!(args[link + 9].ends_with("/empty.o"), "an empty object is added: {args:?}");
        assert!(args[..link].contains(&"/dev/null".to_string()), "compiled from nothing: {args:?}");
    }

    #[test]
    fn standard_input_is_passed_as_a_file() {
        let (_t, bin) = wrappers_around_echo(&[]);
        let out = Command::new(bin.join("mipsel-linux-gnu-gcc"))
            .args(["-E", "-"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .and_then(|mut c| {
                use std::io::Write;
                c.stdin.take().unwrap().write_all(b"MIPSEB\n")?;
                c.wait_with_output()
            })
            .unwrap();
        let args: Vec<String> = String::from_utf8_lossy(&out.stdout).lines().map(str::to_string).collect();
        assert!(args.last().unwrap().ends_with("/stdin.c"), "{args:?}");
        assert!(!args.contains(&"-".to_string()));
    }

    #[test]
    fn an_object_file_named_so_is_passed_as_an_object_and_a_library_as_is() {
        let (t, bin) = wrappers_around_echo(&[]);
        let mut rel = b"\x7fELF\x01\x01\x01\0\0\0\0\0\0\0\0\0".to_vec();
        rel.extend([1, 0, 8, 0]);
        fs::write(t.path().join("history.so"), &rel).unwrap();
        let mut dynamic = rel.clone();
        dynamic[16] = 3;
        fs::write(t.path().join("libz.so"), &dynamic).unwrap();
        let out = Command::new(bin.join("mipsel-linux-gnu-gcc")).current_dir(t.path()).args(["-shared", "history.so", "libz.so"]).output().unwrap();
        let args: Vec<String> = String::from_utf8_lossy(&out.stdout).lines().map(str::to_string).collect();
        assert_eq!(args[6..8], [format!("o={}", t.path().join("history.so").display()), "libz.so".to_string()]);
    }

    #[test]
    fn links_take_compiler_rt_for_boards_and_compiles_do_not() {
        let (_t, bin) = wrappers_around_echo(&[]);
        assert_eq!(run(&bin, "gcc", &["x.o", "-lm", "-o", "x"]).last().unwrap(), "/crt/libcompiler_rt_for_boards.a", "after the inputs, before zig's own");
        for only in ["-c", "-S", "-E"] {
            assert!(!run(&bin, "gcc", &[only, "x.c"]).iter().any(|a| a.contains("compiler_rt")), "{only}");
        }
    }

    #[test]
    fn programs_are_linked_at_the_arch_image_base_and_libraries_are_not() {
        // mipsel's manifest entry sets it (lld's 64 KiB less one patchelf
        // page was address 0); armhf's does not, and its wrapper is unchanged.
        let (_t, bin) = wrappers_around_echo(&[]);
        let base = "-Wl,--image-base=0x400000";
        assert!(run(&bin, "gcc", &["x.o", "-o", "x"]).iter().any(|a| a == base));
        assert!(run(&bin, "g++", &["x.cc", "-o", "x"]).iter().any(|a| a == base), "compiled and linked in one step");
        assert!(!run(&bin, "gcc", &["-shared", "x.o", "-o", "libx.so"]).iter().any(|a| a == base), "a library's base is the loader's choice");
        assert!(!run(&bin, "gcc", &["-c", "x.c"]).iter().any(|a| a == base));
        let (_u, armhf) = wrappers_around_echo_for("armhf", &[], None);
        assert!(!run(&armhf, "gcc", &["x.o", "-o", "x"]).iter().any(|a| a.contains("image-base")));
        assert!(!fs::read_to_string(armhf.join("arm-linux-gnueabihf-gcc")).unwrap().contains("image-base"));
    }

    #[test]
    fn instrumented_links_take_the_profile_runtime_in_a_wrapper_set_of_their_own() {
        let rt = Path::new("/rt/libclang_rt.profile.a");
        let (_t, plain) = wrappers_around_echo(&[]);
        let (_u, bin) = wrappers_around_echo_with(&[], Some(rt));
        assert!(bin.ends_with("bin-profile"), "{}", bin.display());
        let text = |dir: &Path| fs::read_to_string(dir.join("mipsel-linux-gnu-gcc")).unwrap();
        assert!(!text(&plain).contains("profile"), "builds without PGO keep their wrapper, and so their signatures");
        let link = ["-flto=thin", "-fprofile-instr-generate", "x.o", "-o", "x"];
        let args = run(&bin, "gcc", &link);
        assert_eq!(args[args.len() - 2..], ["-Wl,-u,__llvm_profile_runtime", "/rt/libclang_rt.profile.a"], "kept even though nothing refers to it");
        let compile = run(&bin, "gcc", &["-flto=thin", "-fprofile-instr-generate", "-c", "x.c"]);
        assert_eq!(compile[compile.len() - 2..], ["-fno-lto", "-g0"], "the instrumented build is neither LTO nor debug information: {compile:?}");
        assert!(
            !run(&bin, "gcc", &["-flto=thin", "-fprofile-instr-use=/dev/null", "-c", "x.c"]).iter().any(|a| a == "-fno-lto" || a == "-g0"),
            "the optimized one is both"
        );
        // zig's compile cache keys on arguments: the profile's content is one.
        let dir = tempfile::tempdir().unwrap();
        let profile = dir.path().join("code.profdata");
        let use_flag = format!("-fprofile-instr-use={}", profile.display());
        let key = |content: &str| {
            fs::write(&profile, content).unwrap();
            run(&bin, "gcc", &[&use_flag, "-c", "x.c"]).into_iter().find(|a| a.starts_with("-D__crosspython_profile=")).expect("the profile's key")
        };
        let (first, second) = (key("profile one"), key("profile two"));
        assert_ne!(first, second, "a new profile at the same path is a new compile");
        assert_eq!(first, key("profile one"));
        assert!(!run(&bin, "gcc", &["-fprofile-instr-generate", "-c", "x.c"]).iter().any(|a| a.contains("profile_runtime")), "compiles take no runtime");
        assert!(!run(&bin, "gcc", &["x.o", "-o", "x"]).iter().any(|a| a.contains("profile_runtime")), "nor uninstrumented links");
    }

    #[test]
    fn the_c_library_functions_of_compiler_rt_are_found_by_name() {
        // A real archive: the host's libc_nonshared.a defines `atexit`
        // and glibc-internal `__`-helpers.
        let archive = fs::read(format!("/usr/lib/{}-linux-gnu/libc_nonshared.a", std::env::consts::ARCH)).expect("the host's libc6-dev");
        let names = libc_names(&archive_objects(&archive).unwrap()).unwrap();
        assert!(names.iter().any(|n| n == "atexit"), "{names:?}");
        assert!(names.iter().all(|n| !n.starts_with("__")), "{names:?}");
    }
}
