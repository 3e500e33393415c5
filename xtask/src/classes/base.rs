//! What every class inherits (BitBake's `base.bbclass`): the recipe's
//! directories, its variables and environment, and the steps a task runs.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Result};

use crate::machine::toolchain::Toolchain;
use crate::model::manifest::Arch;
use crate::model::resolve::Node;

/// One command of a task.
#[derive(Debug, Clone)]
pub enum Step {
    /// A program with its arguments, run in `cwd`.
    Run { argv: Vec<String>, cwd: PathBuf },
    /// A shell script from the manifest, run with `sh -e` in `cwd`.
    Shell { script: String, cwd: PathBuf },
    /// Copy the source tree into the build directory (in-tree builds).
    CopySource,
    /// Work crosspython does itself after the commands before it.
    Builtin(Builtin),
}

/// Checks and fixes a class runs after its build commands.
#[derive(Debug, Clone, Copy)]
pub enum Builtin {
    /// Every optional CPython module configure could build was built.
    CheckCpythonModules,
    /// `build-details.json` describes the target, with relative paths.
    FixBuildDetails,
    /// `Modules/Setup.local` in `B` names the recipe's `builtin_modules`.
    WriteSetupLocal,
}

/// The directories of one recipe, as BitBake names them.
#[derive(Debug, Clone)]
pub struct WorkDirs {
    pub workdir: PathBuf,
    /// `S`: the unpacked, patched source.
    pub src: PathBuf,
    /// `B`: where configure and make run.
    pub build: PathBuf,
    /// `D`: the install destination.
    pub image: PathBuf,
    pub sysroot_destdir: PathBuf,
    pub recipe_sysroot: PathBuf,
    pub recipe_sysroot_native: PathBuf,
    pub temp: PathBuf,
}

impl WorkDirs {
    pub fn new(workdir: PathBuf) -> WorkDirs {
        WorkDirs {
            src: workdir.join("src"),
            build: workdir.join("build"),
            image: workdir.join("image"),
            sysroot_destdir: workdir.join("sysroot-destdir"),
            recipe_sysroot: workdir.join("recipe-sysroot"),
            recipe_sysroot_native: workdir.join("recipe-sysroot-native"),
            temp: workdir.join("temp"),
            workdir,
        }
    }
}

/// Everything a class needs to know about the recipe it builds.
pub struct Ctx<'a> {
    pub node: &'a Node,
    pub dirs: &'a WorkDirs,
    /// None for native recipes.
    pub target: Option<(&'a Arch, &'a Toolchain)>,
    pub prefix: &'a str,
    pub build_sys: &'a str,
    /// The arch's `config_site` written as a file.
    pub config_site: Option<&'a Path>,
    /// `ccache` or `sccache`, from `CROSSPYTHON_CC_LAUNCHER`.
    pub launcher: Option<&'a str>,
    /// The job tokens the task holds: `${PARALLEL_JOBS}` (not a signature
    /// input: how many processes run, not what they make).
    pub parallel_jobs: usize,
}

impl Ctx<'_> {
    /// The prefix the recipe installs to: the distro's for target recipes,
    /// `/usr` inside the native sysroot for native ones.
    pub fn prefix(&self) -> &str {
        match self.target {
            Some(_) => self.prefix,
            None => "/usr",
        }
    }

    pub fn host_sys(&self) -> &str {
        match self.target {
            Some((arch, _)) => &arch.triplet,
            None => self.build_sys,
        }
    }

    /// Variables for `${VAR}` in manifest strings and for the environment.
    pub fn vars(&self) -> BTreeMap<String, String> {
        let d = self.dirs;
        let pv = self.node.pv();
        let mut v = BTreeMap::new();
        let mut set = |k: &str, val: String| {
            v.insert(k.to_string(), val);
        };
        set("PN", self.node.name.clone());
        set("PV", self.node.version.clone());
        set("PV_MAJMIN", pv.major_minor());
        set("PARALLEL_JOBS", self.parallel_jobs.to_string());
        set("S", d.src.display().to_string());
        set("B", d.build.display().to_string());
        set("D", d.image.display().to_string());
        set("WORKDIR", d.workdir.display().to_string());
        set("RECIPE_SYSROOT", d.recipe_sysroot.display().to_string());
        set("RECIPE_SYSROOT_NATIVE", d.recipe_sysroot_native.display().to_string());
        set("prefix", self.prefix().to_string());
        set("HOST_SYS", self.host_sys().to_string());
        set("BUILD_SYS", self.build_sys.to_string());
        if let Some((arch, tc)) = self.target {
            set("OPENSSL_TARGET", arch.openssl.clone());
            // The target's C++ compiler, a variable and not CXX in every
            // recipe's environment: autotools recipes would then build
            // their optional C++ parts (ncurses' bindings). A C++ recipe
            // says `env = { CXX = "${TARGET_CXX}" }` (zeromq).
            let mut cxx: Vec<String> = self.launcher.into_iter().map(str::to_string).collect();
            cxx.push(tc.tool("g++"));
            set("TARGET_CXX", cxx.join(" "));
            // Variable assignments under which a target program runs on the
            // build machine (CPython's PGO profile task): the kernel starts
            // it, and its children, through qemu's binfmt_misc entry, and
            // qemu finds the toolchain's loader and libc in the prefix.
            if let Some(root) = &tc.run_root {
                set("TARGET_RUN_ENV", crate::machine::runner::TargetRunner::new(arch, root).assignments());
            }
        }
        v
    }

    /// What a recipe's shell script (`do_configure`, ...) sees besides the
    /// build environment: the recipe variables, and the recipe's
    /// `configure` list, expanded and joined by spaces, as `EXTRA_OECONF`
    /// (BitBake's name, and like it for an unquoted `$EXTRA_OECONF`): a
    /// build system without a configure step of the class's own (OpenSSL's
    /// `Configure`) takes its options from the manifest's list, so that
    /// versions and arches add to it rather than copy the script.
    pub fn script_vars(&self) -> Result<BTreeMap<String, String>> {
        let mut v = self.vars();
        v.insert("EXTRA_OECONF".into(), self.configure_args()?.join(" "));
        Ok(v)
    }

    /// The build environment: cross tools, flags that see only the
    /// recipe's own sysroot, and pkg-config that never sees the host's.
    /// The recipe variables (`S`, `D`, `prefix`, ...) are not in it: make
    /// would take them as defaults for Makefile variables of the same name.
    pub fn env(&self) -> Result<BTreeMap<String, String>> {
        let mut env = BTreeMap::new();
        let d = self.dirs;
        let native_bin = d.recipe_sysroot_native.join("usr/bin");
        let path = format!("{}:{}", native_bin.display(), std::env::var("PATH").unwrap_or_default());
        env.insert("PATH".into(), path);
        env.insert("CC_FOR_BUILD".into(), "gcc".into());
        // No build time in any output: gcc takes __DATE__/__TIME__ from it,
        // OpenSSL its "built on" line (a task signature input).
        env.insert("SOURCE_DATE_EPOCH".into(), crate::base::reproducible::source_date_epoch()?.to_string());
        env.insert("BUILD_CC".into(), "gcc".into());
        match self.target {
            Some((arch, tc)) => {
                let sysroot = d.recipe_sysroot.display().to_string();
                let prefix = self.prefix;
                env.insert("CC".into(), tc.cc_command(self.launcher));
                for (var, tool) in
                    [("AR", "ar"), ("RANLIB", "ranlib"), ("STRIP", "strip"), ("NM", "nm"), ("LD", "ld"), ("OBJDUMP", "objdump"), ("READELF", "readelf")]
                {
                    env.insert(var.into(), tc.tool(tool));
                }
                // CPython's configure takes these for LTO and PGO with clang.
                if tc.zig_target.is_some() {
                    env.insert("LLVM_AR".into(), tc.tool("llvm-ar"));
                }
                if let Some(p) = &tc.profile {
                    env.insert("LLVM_PROFDATA".into(), p.profdata.display().to_string());
                }
                // Paths of this build directory must not end up in the
                // binaries (__FILE__, debug info): they are mapped to where a
                // debug source package would put them.
                let prefix_map = format!("-ffile-prefix-map={}=/usr/src/debug/{}/{}", d.workdir.display(), self.node.name, self.node.version);
                let mut cflags = vec!["-O2".to_string(), "-pipe".to_string(), prefix_map];
                cflags.extend(tc.arch_cflags(arch));
                env.insert("CFLAGS".into(), cflags.join(" "));
                env.insert("CPPFLAGS".into(), format!("-I{sysroot}{prefix}/include"));
                env.insert("LDFLAGS".into(), format!("-L{sysroot}{prefix}/lib -Wl,-rpath-link,{sysroot}{prefix}/lib"));
                env.insert("PKG_CONFIG_LIBDIR".into(), format!("{sysroot}{prefix}/lib/pkgconfig:{sysroot}{prefix}/share/pkgconfig"));
                env.insert("PKG_CONFIG_SYSROOT_DIR".into(), sysroot);
                env.insert("PKG_CONFIG_PATH".into(), String::new());
                env.insert("PKG_CONFIG".into(), "pkg-config".into());
                if let Some(site) = self.config_site {
                    env.insert("CONFIG_SITE".into(), site.display().to_string());
                }
            }
            None => {
                let native = d.recipe_sysroot_native.display().to_string();
                let cc = match self.launcher {
                    Some(l) => format!("{l} gcc"),
                    None => "gcc".to_string(),
                };
                env.insert("CC".into(), cc);
                env.insert("CFLAGS".into(), "-O2 -pipe".into());
                env.insert("CPPFLAGS".into(), format!("-I{native}/usr/include"));
                env.insert("LDFLAGS".into(), format!("-L{native}/usr/lib"));
            }
        }
        // A recipe's env may build on the class's: "${CFLAGS} -DX".
        let mut known = self.vars();
        known.extend(env.clone());
        for (k, val) in &self.node.build.env {
            env.insert(k.clone(), expand(val, &known, &self.node.name)?);
        }
        Ok(env)
    }

    /// Replace `${VAR}` with the recipe's variables; an unknown one is an error.
    pub fn expand(&self, s: &str) -> Result<String> {
        expand(s, &self.vars(), &self.node.name)
    }

    /// The directory with the build system's top file: `S`, or below it.
    pub(super) fn source_dir(&self) -> std::path::PathBuf {
        match &self.node.build.source_subdir {
            Some(sub) => self.dirs.src.join(sub),
            None => self.dirs.src.clone(),
        }
    }

    pub(super) fn configure_args(&self) -> Result<Vec<String>> {
        self.node.build.configure.iter().map(|a| self.expand(a)).collect()
    }

    /// `make_args`, then those for the toolchain's compiler family.
    pub(super) fn make_args(&self) -> Result<Vec<String>> {
        // Native recipes build with the build machine's gcc.
        let compiler = self.target.map_or(crate::model::build::Compiler::Gcc, |(_, tc)| tc.compiler());
        self.node.build.make_args_with(compiler).map(|a| self.expand(a)).collect()
    }

    /// `configure` named relative to the build directory (`../src/configure`):
    /// autoconf then records a relative `srcdir`, so no absolute path of
    /// this build is compiled into the programs (CPython's VPATH, for one).
    pub(super) fn configure_script(&self) -> String {
        let rel = crate::base::sysroot::relative(&self.dirs.build, &self.dirs.src);
        rel.join("configure").display().to_string()
    }

    pub(super) fn run(&self, argv: Vec<String>) -> Step {
        Step::Run { argv, cwd: self.dirs.build.clone() }
    }
}

pub fn expand(s: &str, vars: &BTreeMap<String, String>, recipe: &str) -> Result<String> {
    let mut out = String::new();
    let mut rest = s;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let Some(len) = rest[start..].find('}') else {
            bail!("recipe {recipe}: unterminated `${{` in `{s}`");
        };
        let name = &rest[start + 2..start + len];
        match vars.get(name) {
            Some(v) => out.push_str(v),
            None => bail!("recipe {recipe}: unknown variable `${{{name}}}` in `{s}`; known: {}", vars.keys().cloned().collect::<Vec<_>>().join(", ")),
        }
        rest = &rest[start + len + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variables_expand_and_unknown_ones_are_errors() {
        let vars = BTreeMap::from([("prefix".to_string(), "/usr/local".to_string())]);
        assert_eq!(expand("--prefix=${prefix}/x", &vars, "r").unwrap(), "--prefix=/usr/local/x");
        let err = expand("${prefx}", &vars, "r").unwrap_err().to_string();
        assert!(err.contains("recipe r: unknown variable `${prefx}`"), "{err}");
    }
}
