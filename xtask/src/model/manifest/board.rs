//! `[board.*]` and `[system.*]`: where the package is tried: board roots
//! assembled from Debian's packages, and the booted guests of
//! `qemu-test --system`.

use serde::Deserialize;

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
    /// The most memory this machine and kernel can use: `qemu-test
    /// --memory-mib` above it is refused before anything is staged.
    pub max_memory: Option<MemoryCeiling>,
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

/// Where a guest's memory stops, and why (the error says it).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemoryCeiling {
    pub mib: u32,
    pub why: String,
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
    /// The machine of one boot, with `memory_mib` (`qemu-test
    /// --memory-mib`: the RAM of the user's board) over the arch's.
    pub fn guest_with(&self, whole_suite: bool, memory_mib: Option<u32>, arch_name: &str) -> anyhow::Result<GuestMachine> {
        let mut guest = self.guest(whole_suite);
        if let Some(mib) = memory_mib {
            if let Some(max) = self.max_memory.as_ref().filter(|max| mib > max.mib) {
                anyhow::bail!(
                    "qemu-test --arch {arch_name} --system --memory-mib {mib}: [system.{arch_name}] boots at most {} MiB on `{}`: {}",
                    max.mib,
                    self.machine,
                    max.why
                );
            }
            guest.memory_mib = mib;
        }
        Ok(guest)
    }

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
