//! The one way a target program runs on the build machine: qemu-user for
//! the arch, with its CPU (OpenBLAS and others pick their kernels by the
//! CPU they see: `arch.qemu_cpu`) and a root that stands for `/` (the
//! board root with the tree installed, or the toolchain's C library).
//! qemu-test, the CPython tests, bench, PGO's profile run (through
//! `TARGET_RUN_ENV`) and meson's `exe_wrapper` all take it from here.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::model::manifest::Arch;

#[derive(Debug, Clone)]
pub struct TargetRunner {
    pub qemu: String,
    pub cpu: Option<String>,
    pub root: PathBuf,
}

impl TargetRunner {
    pub fn new(arch: &Arch, root: &Path) -> TargetRunner {
        TargetRunner { qemu: arch.qemu.clone(), cpu: arch.qemu_cpu.clone(), root: root.to_path_buf() }
    }

    /// qemu's settings as environment variables: children of the program
    /// (started by the kernel through binfmt_misc) inherit them.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        let mut env = vec![("QEMU_LD_PREFIX", self.root.display().to_string())];
        env.extend(self.cpu.iter().map(|c| ("QEMU_CPU", c.clone())));
        env
    }

    /// `program` under qemu, with an empty environment but qemu's: through
    /// binfmt_misc when the kernel has it (`binfmt`), else qemu by name.
    pub fn command(&self, program: &Path, binfmt: bool) -> Command {
        let mut cmd = if binfmt {
            Command::new(program)
        } else {
            let mut c = Command::new(&self.qemu);
            c.args(self.cpu.iter().flat_map(|c| ["-cpu", c.as_str()])).arg("-L").arg(&self.root).arg(program);
            c
        };
        cmd.env_clear().envs(self.env());
        cmd
    }

    /// `VAR=value ...` for a shell line (CPython's PGO profile task).
    pub fn assignments(&self) -> String {
        self.env().iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(" ")
    }

    /// The words of meson's `exe_wrapper`.
    pub fn exe_wrapper(&self) -> Vec<String> {
        let mut w = vec![self.qemu.clone()];
        if let Some(cpu) = &self.cpu {
            w.extend(["-cpu".to_string(), cpu.clone()]);
        }
        w.extend(["-L".to_string(), self.root.display().to_string()]);
        w
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn runner() -> TargetRunner {
        TargetRunner { qemu: "qemu-aarch64".into(), cpu: Some("cortex-a72".into()), root: "/b/root".into() }
    }

    #[test]
    fn every_way_of_running_names_the_same_cpu_and_root() {
        let r = runner();
        assert_eq!(r.assignments(), "QEMU_LD_PREFIX=/b/root QEMU_CPU=cortex-a72");
        assert_eq!(r.exe_wrapper(), ["qemu-aarch64", "-cpu", "cortex-a72", "-L", "/b/root"]);
        let cmd = r.command(Path::new("/b/root/usr/bin/python3"), false);
        assert_eq!(cmd.get_program(), "qemu-aarch64");
        let args: Vec<_> = cmd.get_args().map(|a| a.to_string_lossy().into_owned()).collect();
        assert_eq!(args, ["-cpu", "cortex-a72", "-L", "/b/root", "/b/root/usr/bin/python3"]);
        let env: Vec<_> = cmd.get_envs().map(|(k, v)| (k.to_string_lossy().into_owned(), v.map(|v| v.to_string_lossy().into_owned()))).collect();
        assert!(env.contains(&("QEMU_CPU".into(), Some("cortex-a72".into()))), "{env:?}");
        let direct = r.command(Path::new("/b/root/usr/bin/python3"), true);
        assert_eq!(direct.get_program(), "/b/root/usr/bin/python3", "the kernel starts it through binfmt_misc");
    }
}
