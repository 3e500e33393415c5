//! `qemu-test --system`: the checks on a booted kernel, not on qemu-user.
//! A Debian kernel of the arch (by package name, from the host's mirror,
//! cached) boots under `qemu-system-*` with an initramfs that holds the
//! board root with the package installed over it, a static busybox for
//! `/init`, the check script and its test certificate. `/init` mounts
//! `/proc`, `/sys`, `/dev`, runs the checks and the board's programs, and
//! powers off; the results come back over the serial console as the same
//! `CHECK {...}` lines qemu-user gives. Nothing borrows the build
//! machine's kernel, `/proc` or binfmt_misc: children start as on a board.

use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::model::manifest::{Arch, GuestMachine, GuestRoot, SystemBoot};
use crate::sources::fetch::Fetcher;

/// Where the guest's own files go, beside the board's.
pub const GUEST_DIR: &str = ".crosspython";

/// A kernel to boot: its image, and the modules `boot.modules` names with
/// what they depend on, in the order they load.
pub struct Kernel {
    pub vmlinuz: PathBuf,
    pub modules: Vec<PathBuf>,
}

/// The kernel of `boot` for `arch`, from Debian, cached in
/// `<cache>/kernels/<package>_<version>/` (`vmlinuz`, `modules/*.ko`).
pub fn kernel(fetcher: &Fetcher, cache: &Path, boot: &SystemBoot, arch: &Arch) -> Result<Kernel> {
    let index = crate::sources::debian::index(fetcher, &boot.kernel_suite, &arch.debian_arch)?;
    let named =
        index.get(&boot.kernel_package).with_context(|| format!("Debian {} {} has no package {}", boot.kernel_suite, arch.debian_arch, boot.kernel_package))?;
    // A metapackage (linux-image-arm64) names the versioned image it stands for.
    let image = named.depends.iter().flatten().find(|d| d.starts_with("linux-image-") && index.contains_key(*d)).map(|d| &index[d]).unwrap_or(named);
    let dir = cache.join("kernels").join(format!("{}_{}", image.name, image.version));
    let vmlinuz = dir.join("vmlinuz");
    let order = dir.join("modules/order");
    // The cache holds the modules the manifest named when it was filled:
    // one named since (virtio_blk for mipsel's swap) fills it again.
    let cached = fs::read_to_string(&order).unwrap_or_default();
    if vmlinuz.is_file() && boot.modules.iter().all(|m| cached.lines().any(|l| l == format!("{m}.ko"))) {
        let modules = cached.lines().map(|m| dir.join("modules").join(m)).collect();
        return Ok(Kernel { vmlinuz, modules });
    }
    eprintln!("crosspython: fetching the kernel {} {} (Debian {})", image.name, image.version, boot.kernel_suite);
    let deb = crate::sources::debian::fetch(fetcher, image)?;
    fs::create_dir_all(cache.join("kernels"))?;
    let tmp = tempfile::Builder::new().prefix(".kernel-").tempdir_in(cache.join("kernels"))?;
    crate::sources::debian::extract(&deb, tmp.path())?;
    let found = fs::read_dir(tmp.path().join("boot"))
        .with_context(|| format!("{} has no /boot", image.name))?
        .flatten()
        .map(|e| e.path())
        .find(|p| p.file_name().is_some_and(|n| n.to_string_lossy().starts_with("vmlinu")))
        .with_context(|| format!("{} has no /boot/vmlinuz-*", image.name))?;
    fs::create_dir_all(&dir)?;
    let mut modules = vec![];
    if !boot.modules.is_empty() {
        let wanted = module_closure(tmp.path(), &boot.modules).with_context(|| format!("the modules of {}", image.name))?;
        let mdir = dir.join("modules");
        fs::create_dir_all(&mdir)?;
        let mut names = String::new();
        for (name, path) in &wanted {
            let file = format!("{name}.ko");
            fs::write(mdir.join(&file), module_bytes(path)?)?;
            names.push_str(&file);
            names.push('\n');
            modules.push(mdir.join(file));
        }
        crate::engine::tasks::atomic_write(&order, names.as_bytes())?;
    }
    fs::copy(&found, vmlinuz.with_extension("part"))?;
    fs::rename(vmlinuz.with_extension("part"), &vmlinuz)?;
    Ok(Kernel { vmlinuz, modules })
}

/// The modules `wanted` of an unpacked kernel package and every module
/// they depend on (`depends=` of each one's `.modinfo`: the package has no
/// `modules.dep`, which depmod makes on install), dependencies first.
/// Debian 13's modules are xz-compressed (`ext4.ko.xz`), Debian 12's not.
fn module_closure(root: &Path, wanted: &[String]) -> Result<Vec<(String, PathBuf)>> {
    let norm = |n: &str| n.replace('-', "_");
    let mut all = std::collections::BTreeMap::new();
    // Debian 13 keeps them under /usr/lib (merged /usr), Debian 12 under /lib.
    for base in ["lib/modules", "usr/lib/modules"].map(|b| root.join(b)).into_iter().filter(|b| b.is_dir()) {
        for e in walkdir::WalkDir::new(base) {
            let e = e?;
            let name = e.file_name().to_string_lossy();
            if let Some(stem) = name.strip_suffix(".ko").or_else(|| name.strip_suffix(".ko.xz")) {
                all.insert(norm(stem), e.path().to_path_buf());
            }
        }
    }
    let mut out: Vec<(String, PathBuf)> = vec![];
    fn visit(name: &str, all: &std::collections::BTreeMap<String, PathBuf>, out: &mut Vec<(String, PathBuf)>, path: &mut Vec<String>) -> Result<()> {
        if out.iter().any(|(n, _)| n == name) {
            return Ok(());
        }
        if path.iter().any(|n| n == name) {
            bail!("modules depend on each other in a circle: {} -> {name}", path.join(" -> "));
        }
        let file = all.get(name).with_context(|| format!("no module {name}.ko under lib/modules"))?;
        path.push(name.to_string());
        for dep in module_depends(file)? {
            visit(&dep, all, out, path)?;
        }
        path.pop();
        out.push((name.to_string(), file.clone()));
        Ok(())
    }
    for w in wanted {
        visit(&norm(w), &all, &mut out, &mut vec![])?;
    }
    Ok(out)
}

/// A module file's ELF object: busybox's `insmod` in the first stage takes
/// no compressed module.
fn module_bytes(ko: &Path) -> Result<Vec<u8>> {
    let data = fs::read(ko).with_context(|| format!("cannot read {}", ko.display()))?;
    if ko.extension().is_some_and(|e| e == "xz") {
        let mut out = vec![];
        std::io::Read::read_to_end(&mut xz2::read::XzDecoder::new(data.as_slice()), &mut out).with_context(|| format!("{} is no xz file", ko.display()))?;
        return Ok(out);
    }
    Ok(data)
}

/// The `depends=` list of a kernel module's `.modinfo` section.
fn module_depends(ko: &Path) -> Result<Vec<String>> {
    use object::{Object as _, ObjectSection as _};
    let data = module_bytes(ko)?;
    let file = object::File::parse(data.as_slice()).with_context(|| format!("{} is no ELF file", ko.display()))?;
    let info = file.section_by_name(".modinfo").with_context(|| format!("{} has no .modinfo", ko.display()))?.data()?;
    Ok(info
        .split(|&b| b == 0)
        .filter_map(|kv| kv.strip_prefix(b"depends="))
        .flat_map(|d| String::from_utf8_lossy(d).split(',').filter(|m| !m.is_empty()).map(|m| m.replace('-', "_")).collect::<Vec<_>>())
        .collect())
}

/// The initramfs of a guest whose root is not in it: busybox, the modules,
/// and an `/init` that loads them, mounts the root (the 9p share `root`, or
/// the first virtio disk) and hands over to the root's own `/init`.
pub fn stage1_initramfs(busybox: &Path, modules: &[PathBuf], root: GuestRoot, out: &Path) -> Result<()> {
    let t = tempfile::tempdir()?;
    let dir = t.path();
    fs::create_dir_all(dir.join("modules"))?;
    fs::copy(busybox, dir.join("busybox"))?;
    let mut names = vec![];
    for m in modules {
        let name = m.file_name().context("a module without a name")?.to_string_lossy().into_owned();
        fs::copy(m, dir.join("modules").join(&name))?;
        names.push(name);
    }
    fs::write(dir.join("init"), stage1_init(&names, root)?)?;
    for f in ["init", "busybox"] {
        fs::set_permissions(dir.join(f), std::os::unix::fs::PermissionsExt::from_mode(0o755))?;
    }
    initramfs(dir, out)
}

/// The first stage's `/init`: load the modules (`<name>.ko`, in order),
/// mount the root, switch to it.
fn stage1_init(modules: &[String], root: GuestRoot) -> Result<String> {
    let mut init = String::from("#!/busybox sh\n/busybox mkdir -p /proc /dev /newroot\n/busybox mount -t devtmpfs dev /dev\n");
    for name in modules {
        init.push_str(&format!("/busybox insmod /modules/{name} || echo \"STAGE1 cannot load {name}\"\n"));
    }
    let (mount, what) = match root {
        // 9p2000.u: with 9p2000.L, Debian 12's malta kernel under qemu 7.2
        // executes no file of the share (exec fails with EOPNOTSUPP).
        GuestRoot::NineP => ("-t 9p -o trans=virtio,version=9p2000.u,msize=262144,cache=loose root".to_string(), "the 9p root"),
        GuestRoot::Disk => (format!("-t ext4 {ROOT_DISK}"), ROOT_DISK),
        GuestRoot::Initramfs => bail!("a guest whose root is its initramfs has no second stage"),
    };
    init.push_str(&format!("/busybox mount {mount} /newroot || {{ echo 'STAGE1 cannot mount {what}'; /busybox poweroff -f -n; }}\n"));
    init.push_str("/busybox umount /dev\nexec /busybox switch_root /newroot /init\n");
    Ok(init)
}

/// Debian's static busybox of the arch, for the guest's `/init`.
pub fn busybox(fetcher: &Fetcher, cache: &Path, boot: &SystemBoot, arch: &Arch) -> Result<PathBuf> {
    let what = crate::model::manifest::DebianPackages { suite: boot.busybox_suite.clone(), packages: vec!["busybox-static".into()] };
    let root = crate::machine::board::debian_packages_root(fetcher, cache, &format!("busybox-{}", arch.debian_arch), "a static busybox", &what, arch)?;
    let bb = root.join("bin/busybox");
    if !bb.is_file() {
        bail!("{} has no bin/busybox", root.display());
    }
    Ok(bb)
}

/// `root` as a gzip-compressed newc cpio archive (the initramfs format).
pub fn initramfs(root: &Path, out: &Path) -> Result<()> {
    let file = BufWriter::new(File::create(out).with_context(|| format!("cannot write {}", out.display()))?);
    let mut gz = flate2::write::GzEncoder::new(file, flate2::Compression::fast());
    for e in walkdir::WalkDir::new(root).min_depth(1).sort_by_file_name() {
        let e = e?;
        let meta = fs::symlink_metadata(e.path())?;
        let name = e.path().strip_prefix(root).unwrap().to_string_lossy().into_owned();
        let data: Vec<u8> = if meta.file_type().is_symlink() {
            fs::read_link(e.path())?.as_os_str().as_encoded_bytes().to_vec()
        } else if meta.is_file() {
            fs::read(e.path())?
        } else {
            vec![]
        };
        let size = u32::try_from(data.len()).with_context(|| format!("{name}: too large for cpio"))?;
        // Times as `tar -x` of the package keeps them: zipfile refuses files
        // from before 1980 (test_zipfile's PyZipFile tests zip the stdlib).
        let mtime = u32::try_from(meta.mtime().max(0)).unwrap_or(u32::MAX);
        let b = cpio::newc::Builder::new(&name).ino(meta.ino() as u32).mode(meta.mode()).uid(0).gid(0).nlink(1).mtime(mtime);
        let mut w = b.write(&mut gz, size);
        w.write_all(&data)?;
        w.finish()?;
    }
    cpio::newc::trailer(&mut gz)?;
    gz.finish()?.flush()?;
    Ok(())
}

/// CPython's tests in the guest: regrtest's arguments, and whether the
/// guest first names the whole suite (`SUITE <module>` lines).
pub struct GuestRegrtest {
    pub list_suite: bool,
    pub args: Vec<String>,
    /// The guest's swap disk ([`swap_device`]), turned on first.
    pub swap: Option<&'static str>,
    /// The tests' time in the guest: then regrtest gets SIGINT, stops its
    /// workers and still writes its JUnit XML (exit 130), so the host reads
    /// what finished and the next run resumes from the rest.
    pub seconds: Option<u64>,
}

/// After the first SIGINT, regrtest stops its workers and re-runs the test
/// cases that failed: only that re-run tells a flaky test from a failing
/// one. A minute was too short on a booted riscv64 (the 8 barrier tests of
/// `test_multiprocessing_spawn.test_manager` were cut, and stayed failed);
/// a quarter of an hour is what one multiprocessing file takes under TCG.
/// A second SIGINT then stops the re-run, so that the XML is still written
/// (the resumed run runs what failed again); SIGKILL after the grace.
const GUEST_RERUN_SECONDS: u64 = 900;
const GUEST_GRACE_SECONDS: u64 = 600;

/// The longest a guest given `tests` seconds of regrtest takes to stop it:
/// the tests, the re-run of what failed, the grace before SIGKILL.
pub fn regrtest_stop_seconds(tests: u64) -> u64 {
    tests + GUEST_RERUN_SECONDS + GUEST_GRACE_SECONDS
}

/// Where the guest writes regrtest's JUnit XML, which it then prints
/// gzipped and base64-encoded as `JUNIT <line>`s: an initramfs root
/// keeps nothing once the guest is off.
const GUEST_JUNIT: &str = "/tmp/junit.xml";

/// The guest's `/init`, doing what a board's init and image do before the
/// checks:
/// - `/proc`, `/sys`, `/dev`, `/dev/shm` (multiprocessing's semaphores) and
///   `/dev/pts` mounted;
/// - `/dev/fd`, `/dev/stdin`, ... linked to `/proc/self/fd` (devtmpfs has
///   none; asyncio's test_devstdin_input reads `/dev/stdin`);
/// - `/etc/hosts` and `/etc/nsswitch.conf` where the board root has none (a
///   root of Debian packages has neither: the installer and libc-bin's
///   postinst write them; without them `localhost` does not resolve);
/// - `/etc/passwd` and `/etc/group` with root where it has none (base-passwd's
///   postinst writes them; without them `pwd.getpwuid(0)` fails and
///   `Path.home()` with no `HOME` too: test_pathlib's test_home).
///
/// Then the environment of the checks, the checks, CPython's tests, each
/// board program (as `PROGRAM <exit status> <argv>`), power off.
pub fn init_script(env: &[(&str, String)], programs: &[Vec<String>], regrtest: Option<&GuestRegrtest>) -> String {
    let bb = format!("/{GUEST_DIR}/busybox");
    let mut s = init_start(env);
    s.push_str(&format!("/usr/local/bin/python3 -I -B /{GUEST_DIR}/checks.py\necho \"CHECKS-EXIT $?\"\n"));
    if let Some(r) = regrtest {
        // The checks write no byte code; the tests' own children must
        // (test_compileall's HardlinkDedupTests*.test_import imports with -O
        // and expects a new opt-1.pyc). regrtest itself runs with -B.
        s.push_str("unset PYTHONDONTWRITEBYTECODE\ncd /tmp\n");
        // A test that fills the guest's memory must fail, not end the run:
        // on mipsel's 256 MiB, test_multiprocessing_fork.test_misc (guest
        // load 27) made the OOM killer pick regrtest's own process, the
        // largest, and the run ended without its JUnit XML. The task whose
        // allocation fails is killed instead: a test's process.
        s.push_str("echo 1 > /proc/sys/vm/oom_kill_allocating_task\n");
        if let Some(dev) = r.swap {
            s.push_str(&format!("{bb} mkswap {dev} > /dev/null && {bb} swapon {dev} || echo 'SWAP cannot use {dev}'\n"));
        }
        if r.list_suite {
            s.push_str(&format!("/usr/local/bin/python3 -B -m test --list-tests | {bb} sed 's/^/SUITE /'\n"));
        }
        let args = crate::base::process::shell_words(&r.args);
        // busybox's timeout execs the program in its own process (a child
        // watches and signals it), so the two nest on one regrtest process.
        let limit = r
            .seconds
            .map_or(String::new(), |secs| format!("{bb} timeout -s INT -k {GUEST_GRACE_SECONDS} {} {bb} timeout -s INT {secs} ", secs + GUEST_RERUN_SECONDS));
        s.push_str(&format!("{limit}/usr/local/bin/python3 -B -m test {args} --junit-xml {GUEST_JUNIT}\necho \"REGRTEST-EXIT $?\"\n"));
        // What regrtest leaves running (a killed worker's children, still
        // filling mipsel's 256 MiB) must not slow the board's programs:
        // kill(-1) reaches every process but init, this script.
        s.push_str(&format!("{bb} kill -9 -1\n"));
        // Only panics on the console while the XML goes out: a kernel
        // message in the middle of a JUNIT line would break its base64
        // (before, the OOM killer's messages say why a worker died).
        s.push_str(&format!("echo 1 > /proc/sys/kernel/printk\n{bb} gzip -c {GUEST_JUNIT} | {bb} base64 | {bb} sed 's/^/JUNIT /'\ncd /\n"));
    }
    for argv in programs {
        let quoted = crate::base::process::shell_words(argv);
        s.push_str(&format!("{quoted} > /tmp/out 2>&1; echo \"PROGRAM $? {}\"; {bb} head -n 1 /tmp/out\n", argv.join(" ").replace('"', "")));
    }
    s.push_str(&power_off());
    s
}

/// An application's `/init`: the board's start as for the checks, then
/// `app` alone (its file in the guest, with `args`) from `/tmp`, timed by
/// busybox's `time -v` for its elapsed time and peak RSS (the largest of
/// the app and the children it waited for). Read back as `APP-EXIT`,
/// `APP | <line>` for each line it printed, `APP-ELAPSED`, and
/// `APP-MAXRSS` with `APP-PAGE-SIZE` (see `Console::app_peak_rss_kib`);
/// then power off.
pub fn app_init_script(env: &[(&str, String)], app: &str, args: &[String]) -> String {
    let bb = format!("/{GUEST_DIR}/busybox");
    let mut s = init_start(env);
    let mut argv = vec!["/usr/local/bin/python3".to_string(), "-B".into(), app.to_string()];
    argv.extend(args.iter().cloned());
    let argv = crate::base::process::shell_words(&argv);
    s.push_str(&format!(
        "cd /tmp\n{bb} time -v -o /tmp/app.time {argv} > /tmp/app.out 2>&1 < /dev/null\necho \"APP-EXIT $?\"\n\
         {bb} sed 's/^/APP | /' /tmp/app.out\n\
         {bb} sed -n 's/.*Maximum resident set size (kbytes): /APP-MAXRSS /p; s/.*Page size (bytes): /APP-PAGE-SIZE /p; s/.*Elapsed (wall clock) time (h:mm:ss or m:ss): /APP-ELAPSED /p' /tmp/app.time\ncd /\n"
    ));
    s.push_str(&power_off());
    s
}

/// What a board's init and image give every guest (see [`init_script`]),
/// then `BOOTED <release> <machine> <uptime>` and the environment `env`.
fn init_start(env: &[(&str, String)]) -> String {
    let bb = format!("/{GUEST_DIR}/busybox");
    let mut s = format!(
        "#!{bb} sh\n{bb} mkdir -p /proc /sys /dev /tmp\n{bb} mount -t proc proc /proc\n{bb} mount -t sysfs sys /sys\n\
         {bb} mount -t devtmpfs dev /dev\n{bb} ln -s /proc/self/fd /dev/fd\n{bb} ln -s fd/0 /dev/stdin\n{bb} ln -s fd/1 /dev/stdout\n{bb} ln -s fd/2 /dev/stderr\n{bb} mkdir -p /dev/shm /dev/pts\n{bb} mount -t tmpfs shm /dev/shm\n{bb} mount -t devpts pts /dev/pts\n\
         {bb} mount -t tmpfs tmp /tmp\n{bb} ip link set lo up\n\
         [ -e /etc/hosts ] || printf '127.0.0.1 localhost\\n::1 localhost ip6-localhost ip6-loopback\\n' > /etc/hosts\n\
         [ -e /etc/nsswitch.conf ] || printf 'hosts: files dns\\nservices: files\\nprotocols: files\\npasswd: files\\ngroup: files\\n' > /etc/nsswitch.conf\n\
         [ -e /etc/passwd ] || printf 'root:x:0:0:root:/root:/bin/sh\\n' > /etc/passwd\n[ -e /etc/group ] || printf 'root:x:0:\\n' > /etc/group\necho \"BOOTED $({bb} uname -r) $({bb} uname -m) $({bb} cut -d' ' -f1 /proc/uptime)\"\n"
    );
    for (k, v) in env {
        s.push_str(&format!("export {k}='{v}'\n"));
    }
    s
}

/// The guest's last lines: nothing it wrote is kept.
fn power_off() -> String {
    // -n: no sync first. Nothing the guest wrote is kept, and on mipsel's
    // 9p root (cache=loose) the sync once hung the guest after its last
    // program ("task busybox blocked for more than 120 seconds").
    format!("echo {POWERING_OFF}\n/{GUEST_DIR}/busybox poweroff -f -n\n")
}

/// The guest's root disk, and its swap disk: the first virtio disk, or
/// the second after a root disk.
const ROOT_DISK: &str = "/dev/vda";
pub fn swap_device(root: GuestRoot) -> &'static str {
    if root == GuestRoot::Disk {
        "/dev/vdb"
    } else {
        ROOT_DISK
    }
}

/// An ext4 image of `dir` (e2fsprogs' `mkfs.ext4 -d`), sized for the tree
/// and room for what the tests write outside `/tmp`. No journal and no
/// metadata checksums: nothing is kept after the guest is off.
fn ext4_image(dir: &Path, image: &Path) -> Result<()> {
    crate::machine::host::ensure_tool("mkfs.ext4", "e2fsprogs", "the booted guest's root disk")?;
    let bytes: u64 = walkdir::WalkDir::new(dir).into_iter().flatten().filter_map(|e| e.metadata().ok()).map(|m| m.len().max(4096)).sum();
    let mib = bytes / (1 << 20) * 5 / 4 + 1024;
    let _ = fs::remove_file(image);
    let out = Command::new("mkfs.ext4")
        .args(["-q", "-F", "-O", "^has_journal,^metadata_csum", "-E", "root_owner=0:0", "-L", "root", "-d"])
        .arg(dir)
        .arg(image)
        .arg(format!("{mib}M"))
        .output()
        .context("cannot run mkfs.ext4")?;
    if !out.status.success() {
        bail!("mkfs.ext4 -d {} {} failed:\n{}", dir.display(), image.display(), String::from_utf8_lossy(&out.stderr));
    }
    Ok(())
}

/// The guest's last line before `poweroff`: a guest still running
/// [`POWEROFF_GRACE`] after it has finished (once on mipsel, after the OOM
/// killer had been at work) is stopped by the host as powered off.
const POWERING_OFF: &str = "POWERING-OFF";
const POWEROFF_GRACE: Duration = Duration::from_secs(60);

/// Print the console's complete lines after byte `from` as they come (a
/// whole test suite takes hours), but not the machine-read `CHECK` and
/// `JUNIT` lines; returns where the next call starts, and whether the
/// guest said it is powering off.
fn show_console(path: &Path, from: usize) -> (usize, bool) {
    use std::io::{Read, Seek, SeekFrom};
    let mut bytes = vec![];
    let Ok(mut file) = File::open(path) else { return (from, false) };
    if file.seek(SeekFrom::Start(from as u64)).and_then(|_| file.read_to_end(&mut bytes)).is_err() {
        return (from, false);
    }
    let Some(end) = bytes.iter().rposition(|&b| b == b'\n').map(|i| i + 1) else { return (from, false) };
    let mut finished = false;
    for line in String::from_utf8_lossy(&bytes[..end]).lines() {
        let line = line.trim_end_matches('\r');
        finished |= line == POWERING_OFF;
        if !line.trim().is_empty() && !line.starts_with("CHECK ") && !line.starts_with("JUNIT ") {
            eprintln!("  | {line}");
        }
    }
    (from + end, finished)
}

/// What the guest wrote on its serial console, and how its run ended.
pub struct Console {
    pub text: String,
    pub ended: Ended,
    pub path: PathBuf,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// The guest powered itself off: its `/init` ran to the end.
    PoweredOff,
    /// Stopped by the host at the time limit.
    TimeLimit,
    /// Stopped because the user pressed Ctrl-C.
    Interrupted,
}

/// Boot and return the serial console. The guest powers itself off; one
/// that does not within `limit` is stopped, and the caller decides what
/// its console is still worth (hours of CPython's tests are).
/// `share` is the directory a `9p` guest mounts as its root; the console
/// is written to `log` as it comes.
pub fn run(boot: &SystemBoot, guest: &GuestMachine, kernel: &Path, initrd: &Path, share: Option<&Path>, limit: Duration, log: &Path) -> Result<Console> {
    let mut cmd = Command::new(&boot.qemu);
    // The console is serial: no VGA card either, whose option ROM (malta's
    // vgabios-cirrus.bin, from seabios, only recommended by qemu-system-mips)
    // may not be installed.
    let (memory, cpus) = (guest.memory_mib.to_string(), boot.cpus.to_string());
    cmd.args(["-M", &boot.machine, "-m", &memory, "-smp", &cpus, "-nographic", "-vga", "none", "-no-reboot", "-nic", "none"]);
    if let Some(cpu) = &guest.cpu {
        cmd.args(["-cpu", cpu]);
    }
    cmd.arg("-kernel").arg(kernel).arg("-initrd").arg(initrd);
    if let (GuestRoot::NineP, Some(dir)) = (boot.root, share) {
        cmd.arg("-fsdev").arg(format!("local,id=root,path={},security_model=none", dir.display()));
        cmd.args(["-device", "virtio-9p-pci,fsdev=root,mount_tag=root"]);
    }
    // The disks' files go when the run ends, however it ends. The root
    // disk first: it is /dev/vda, the swap disk after it.
    let mut disks = vec![];
    if let (GuestRoot::Disk, Some(dir)) = (boot.root, share) {
        let image = tempfile::TempPath::try_from_path(log.with_file_name("root.img"))?;
        ext4_image(dir, &image)?;
        cmd.arg("-drive").arg(format!("file={},if=none,id=root,format=raw,cache=unsafe", image.display()));
        cmd.args(["-device", "virtio-blk-pci,drive=root"]);
        disks.push(image);
    }
    if let Some(mib) = guest.swap_mib {
        // A sparse file: swap the guest never writes takes no disk.
        let swap = tempfile::TempPath::try_from_path(log.with_file_name("swap.img"))?;
        File::create(&swap).and_then(|f| f.set_len(u64::from(mib) << 20)).with_context(|| format!("cannot write {}", swap.display()))?;
        cmd.arg("-drive").arg(format!("file={},if=none,id=swap,format=raw,cache=unsafe", swap.display()));
        cmd.args(["-device", "virtio-blk-pci,drive=swap"]);
        disks.push(swap);
    }
    let extra: String = guest.kernel_args.iter().map(|a| format!(" {a}")).collect();
    cmd.args(["-append", &format!("console={} rdinit=/init quiet panic=-1{extra}", boot.console)]);
    let out_path = log.to_path_buf();
    if let Some(dir) = log.parent() {
        fs::create_dir_all(dir)?;
    }
    let out = File::create(&out_path).with_context(|| format!("cannot write {}", out_path.display()))?;
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(out.try_clone()?)
        .stderr(out)
        .spawn()
        .with_context(|| format!("cannot run {} (Debian package qemu-system-*)", boot.qemu))?;
    let start = Instant::now();
    let mut shown = 0;
    let mut finished: Option<Instant> = None;
    loop {
        let said_finished;
        (shown, said_finished) = show_console(&out_path, shown);
        if said_finished && finished.is_none() {
            finished = Some(Instant::now());
        }
        if finished.is_some_and(|t| t.elapsed() > POWEROFF_GRACE) {
            let _ = child.kill();
            let _ = child.wait();
            let text = fs::read_to_string(&out_path).unwrap_or_default();
            eprintln!("the guest had finished but did not power off within {} s; stopped it (console: {})", POWEROFF_GRACE.as_secs(), out_path.display());
            return Ok(Console { text, ended: Ended::PoweredOff, path: out_path });
        }
        if let Some(status) = child.try_wait()? {
            let _ = show_console(&out_path, shown);
            let text = fs::read_to_string(&out_path).unwrap_or_default();
            if !status.success() {
                bail!("{} exited with {status}:\n{}", boot.qemu, crate::base::process::last_lines(&text, 20));
            }
            return Ok(Console { text, ended: Ended::PoweredOff, path: out_path });
        }
        if crate::base::process::interrupted() {
            let _ = child.kill();
            let _ = child.wait();
            let text = fs::read_to_string(&out_path).unwrap_or_default();
            eprintln!("interrupted: the guest was stopped; what its console says finished is reported (console: {})", out_path.display());
            return Ok(Console { text, ended: Ended::Interrupted, path: out_path });
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            let text = fs::read_to_string(&out_path).unwrap_or_default();
            eprintln!(
                "the guest did not power off within {} s and was stopped; its console ended with:\n{}",
                limit.as_secs(),
                crate::base::process::last_lines(&text, 20)
            );
            return Ok(Console { text, ended: Ended::TimeLimit, path: out_path });
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_initramfs_holds_files_links_and_directories_with_their_modes() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().join("root");
        fs::create_dir_all(root.join("usr/bin")).unwrap();
        fs::write(root.join("usr/bin/hello"), "#!/bin/sh\necho hi\n").unwrap();
        let when = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_735_689_600);
        File::options().write(true).open(root.join("usr/bin/hello")).unwrap().set_modified(when).unwrap();
        for p in ["usr", "usr/bin", "usr/bin/hello"] {
            fs::set_permissions(root.join(p), std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        }
        std::os::unix::fs::symlink("usr/bin", root.join("bin")).unwrap();
        let out = t.path().join("initrd.gz");
        initramfs(&root, &out).unwrap();
        let mut r = flate2::read::GzDecoder::new(File::open(&out).unwrap());
        let mut seen = vec![];
        loop {
            let entry = cpio::NewcReader::new(r).unwrap();
            if entry.entry().is_trailer() {
                break;
            }
            let (name, mode) = (entry.entry().name().to_string(), entry.entry().mode());
            if name == "usr/bin/hello" {
                assert_eq!(entry.entry().mtime(), 1_735_689_600, "files keep their times");
            }
            let mut data = String::new();
            let mut entry = entry;
            std::io::Read::read_to_string(&mut entry, &mut data).unwrap();
            seen.push((name, mode & 0o170777, data));
            r = entry.finish().unwrap();
        }
        assert_eq!(
            seen,
            [
                ("bin".to_string(), 0o120777, "usr/bin".to_string()),
                ("usr".to_string(), 0o040755, String::new()),
                ("usr/bin".to_string(), 0o040755, String::new()),
                ("usr/bin/hello".to_string(), 0o100755, "#!/bin/sh\necho hi\n".to_string()),
            ]
        );
    }

    /// A kernel module file: an ELF object whose `.modinfo` names what it depends on.
    fn module(dir: &Path, file: &str, depends: &str) {
        use object::write::Object;
        let mut o = Object::new(object::BinaryFormat::Elf, object::Architecture::Mips, object::Endianness::Little);
        let s = o.add_section(vec![], b".modinfo".to_vec(), object::SectionKind::ReadOnlyData);
        o.append_section_data(s, format!("license=GPL\0depends={depends}\0name=x\0").as_bytes(), 1);
        fs::write(dir.join(file), o.write().unwrap()).unwrap();
    }

    #[test]
    fn modules_load_after_what_they_depend_on_each_once() {
        let t = tempfile::tempdir().unwrap();
        let dir = t.path().join("lib/modules/6.1.0-4kc-malta/kernel");
        fs::create_dir_all(&dir).unwrap();
        module(&dir, "9p.ko", "9pnet,netfs");
        module(&dir, "9pnet.ko", "");
        module(&dir, "netfs.ko", "fscache");
        module(&dir, "fscache.ko", "");
        module(&dir, "9pnet_virtio.ko", "virtio,9pnet");
        module(&dir, "virtio.ko", "");
        module(&dir, "unrelated.ko", "");
        let order: Vec<String> = module_closure(t.path(), &["9pnet-virtio".into(), "9p".into()]).unwrap().into_iter().map(|(n, _)| n).collect();
        assert_eq!(order, ["virtio", "9pnet", "9pnet_virtio", "fscache", "netfs", "9p"]);
        let err = module_closure(t.path(), &["virtio_pci".into()]).unwrap_err().to_string();
        assert_eq!(err, "no module virtio_pci.ko under lib/modules");
    }

    #[test]
    fn xz_compressed_modules_of_a_merged_usr_kernel_are_found_and_unpacked() {
        // Debian 13's kernels: /usr/lib/modules, every module `.ko.xz`.
        let t = tempfile::tempdir().unwrap();
        let dir = t.path().join("usr/lib/modules/6.12.0-riscv64/kernel");
        fs::create_dir_all(&dir).unwrap();
        module(&dir, "jbd2.ko", "");
        let ext4 = dir.join("ext4.ko");
        module(&dir, "ext4.ko", "jbd2");
        let plain = fs::read(&ext4).unwrap();
        let mut xz = xz2::write::XzEncoder::new(vec![], 6);
        std::io::Write::write_all(&mut xz, &plain).unwrap();
        fs::write(dir.join("ext4.ko.xz"), xz.finish().unwrap()).unwrap();
        fs::remove_file(&ext4).unwrap();
        let found = module_closure(t.path(), &["ext4".into()]).unwrap();
        let names: Vec<&str> = found.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["jbd2", "ext4"], "the compressed module's .modinfo was read");
        assert_eq!(module_bytes(&found[1].1).unwrap(), plain, "busybox's insmod gets the ELF object, not xz");
        fs::write(dir.join("broken.ko.xz"), b"not xz").unwrap();
        let err = format!("{:#}", module_closure(t.path(), &["broken".into()]).unwrap_err());
        assert!(err.contains("broken.ko.xz is no xz file"), "{err}");
    }

    #[test]
    fn cpython_tests_run_after_the_checks_and_come_back_as_console_lines() {
        let r = GuestRegrtest { list_suite: true, args: vec!["-j2".into(), "--ignore".into(), "test.test_os.It's*".into()], seconds: None, swap: None };
        let s = init_script(&[], &[], Some(&r));
        let checks = s.find("checks.py").unwrap();
        assert!(checks < s.find("unset PYTHONDONTWRITEBYTECODE").unwrap(), "the tests' children write byte code, as on a board");
        let list = s.find("-m test --list-tests | /.crosspython/busybox sed 's/^/SUITE /'").expect("the suite is named first");
        let run = s.find("-m test -j2 --ignore 'test.test_os.It'\\''s*' --junit-xml /tmp/junit.xml\necho \"REGRTEST-EXIT $?\"").expect(&s);
        let junit = s.find("gzip -c /tmp/junit.xml | /.crosspython/busybox base64 | /.crosspython/busybox sed 's/^/JUNIT /'").unwrap();
        assert!(checks < list && list < run && run < junit, "{s}");
        assert!(s.contains("echo 1 > /proc/sys/kernel/printk"), "kernel messages would break the base64 lines");
        assert!(!init_script(&[], &[], None).contains("-m test"));
    }

    #[test]
    fn the_guest_stops_the_tests_itself_at_their_time_limit_so_their_results_still_come_back() {
        let r = GuestRegrtest { list_suite: false, args: vec!["-j2".into()], seconds: Some(600), swap: None };
        let s = init_script(&[], &[], Some(&r));
        let bb = "/.crosspython/busybox";
        let run = s.find(&format!("{bb} timeout -s INT -k 600 1500 {bb} timeout -s INT 600 /usr/local/bin/python3 -B -m test -j2 --junit-xml")).expect(&s);
        assert!(run < s.find("JUNIT").unwrap());
        assert_eq!(regrtest_stop_seconds(600), 600 + 900 + 600, "the host waits for the re-run and the grace, not less");
    }

    #[test]
    fn the_guest_has_what_a_boards_init_and_image_give_it() {
        let s = init_script(&[], &[], None);
        for want in [
            "ln -s /proc/self/fd /dev/fd",
            "ln -s fd/0 /dev/stdin",
            "mount -t tmpfs shm /dev/shm",
            "[ -e /etc/hosts ] ||",
            "[ -e /etc/nsswitch.conf ] ||",
            "[ -e /etc/passwd ] ||",
            "[ -e /etc/group ] ||",
        ] {
            assert!(s.contains(want), "{want} missing from:\n{s}");
        }
    }

    #[test]
    fn init_runs_the_checks_then_each_board_program_and_powers_off() {
        let s = init_script(&[("LC_ALL", "C.UTF-8".into())], &[vec!["/bin/ls".into(), "/lib".into()]], None);
        let lines: Vec<&str> = s.lines().collect();
        assert_eq!(lines[0], "#!/.crosspython/busybox sh");
        assert!(s.contains("export LC_ALL='C.UTF-8'\n/usr/local/bin/python3 -I -B /.crosspython/checks.py\n"), "{s}");
        assert!(s.contains("/bin/ls /lib > /tmp/out 2>&1; echo \"PROGRAM $? /bin/ls /lib\""), "{s}");
        assert_eq!(lines[lines.len() - 2..], ["echo POWERING-OFF", "/.crosspython/busybox poweroff -f -n"]);
        assert!(!s.contains("oom_kill_allocating_task"), "the checks measure memory on the kernel's defaults:\n{s}");
    }

    #[test]
    fn an_apps_init_runs_the_app_alone_timed_and_powers_off() {
        let s = app_init_script(&[("HOME", "/tmp".into())], "/.crosspython/app/svc.py", &["--self-test".into(), "it's".into()]);
        let bb = "/.crosspython/busybox";
        assert!(!s.contains("checks.py") && !s.contains("-m test"), "the app alone:\n{s}");
        assert!(s.contains("[ -e /etc/hosts ] ||") && s.contains("export HOME='/tmp'"), "the board's start as for the checks:\n{s}");
        let run = s
            .find(&format!("{bb} time -v -o /tmp/app.time /usr/local/bin/python3 -B /.crosspython/app/svc.py --self-test 'it'\\''s' > /tmp/app.out 2>&1 < /dev/null\necho \"APP-EXIT $?\""))
            .expect(&s);
        let printed = s.find(&format!("{bb} sed 's/^/APP | /' /tmp/app.out")).unwrap();
        let figures = s.find("APP-PAGE-SIZE").unwrap();
        assert!(run < printed && printed < figures && figures < s.find("POWERING-OFF").unwrap(), "{s}");
    }

    #[test]
    fn in_the_whole_suite_a_test_filling_memory_is_killed_not_regrtest() {
        let r = GuestRegrtest { list_suite: false, args: vec!["-j1".into()], seconds: None, swap: None };
        let s = init_script(&[], &[vec!["/bin/ls".into()]], Some(&r));
        let oom = s.find("echo 1 > /proc/sys/vm/oom_kill_allocating_task").expect("the OOM rule is set");
        let regrtest = s.find("-m test -j1").unwrap();
        assert!(oom < regrtest, "set before regrtest starts:\n{s}");
        assert!(!s.contains("swapon"), "no swap unless the arch asks for it:\n{s}");
        let kill = s.find("busybox kill -9 -1").expect("what regrtest left running is killed");
        assert!(regrtest < kill && kill < s.find("/bin/ls").unwrap(), "after regrtest, before the board's programs:\n{s}");
    }

    #[test]
    fn the_first_stage_loads_the_modules_then_mounts_the_root_and_switches_to_it() {
        let modules = ["virtio_blk.ko".to_string(), "ext4.ko".to_string()];
        let disk = stage1_init(&modules, GuestRoot::Disk).unwrap();
        let at = |s: &str, what: &str| s.find(what).unwrap_or_else(|| panic!("{what} missing from:\n{s}"));
        assert!(at(&disk, "insmod /modules/virtio_blk.ko") < at(&disk, "insmod /modules/ext4.ko"));
        assert!(at(&disk, "insmod /modules/ext4.ko") < at(&disk, "mount -t ext4 /dev/vda /newroot"));
        assert!(disk.ends_with("exec /busybox switch_root /newroot /init\n"), "{disk}");
        let share = stage1_init(&[], GuestRoot::NineP).unwrap();
        assert!(share.contains("mount -t 9p -o trans=virtio"), "{share}");
        assert!(stage1_init(&[], GuestRoot::Initramfs).is_err());
    }

    #[test]
    fn the_root_disk_is_an_ext4_image_of_the_tree() {
        if which::which("mkfs.ext4").is_err() || which::which("debugfs").is_err() {
            eprintln!("skipped: no e2fsprogs (mkfs.ext4, debugfs) on this machine");
            return;
        }
        let t = tempfile::tempdir().unwrap();
        let tree = t.path().join("tree");
        fs::create_dir_all(tree.join("usr/local/bin")).unwrap();
        fs::write(tree.join("usr/local/bin/python3"), b"\x7fELF").unwrap();
        std::os::unix::fs::symlink("python3", tree.join("usr/local/bin/python")).unwrap();
        let image = t.path().join("root.img");
        ext4_image(&tree, &image).unwrap();
        let ls = Command::new("debugfs").args(["-R", "ls -l /usr/local/bin"]).arg(&image).output().unwrap();
        let listing = String::from_utf8_lossy(&ls.stdout);
        assert!(listing.contains("python3") && listing.contains("python"), "{listing}");
        let features = Command::new("debugfs").args(["-R", "features"]).arg(&image).output().unwrap();
        let features = String::from_utf8_lossy(&features.stdout);
        assert!(!features.contains("has_journal") && !features.contains("metadata_csum"), "{features}");
    }

    #[test]
    fn the_swap_disk_comes_after_a_root_disk() {
        assert_eq!(swap_device(GuestRoot::Disk), "/dev/vdb");
        assert_eq!(swap_device(GuestRoot::NineP), "/dev/vda");
        assert_eq!(swap_device(GuestRoot::Initramfs), "/dev/vda");
    }

    #[test]
    fn a_suite_with_swap_turns_it_on_before_regrtest() {
        let r = GuestRegrtest { list_suite: false, args: vec!["-j1".into()], seconds: None, swap: Some(swap_device(GuestRoot::Disk)) };
        let s = init_script(&[], &[], Some(&r));
        let on = s.find("swapon /dev/vdb").expect("swap turned on");
        assert!(s.find("mkswap /dev/vdb").unwrap() < on && on < s.find("-m test -j1").unwrap(), "{s}");
    }

    #[test]
    fn a_guest_is_finished_once_its_console_says_so() {
        let t = tempfile::tempdir().unwrap();
        let log = t.path().join("console.log");
        fs::write(&log, "PROGRAM 0 /bin/ls\nbin\nPOWERING-OFF").unwrap();
        let (next, finished) = show_console(&log, 0);
        assert_eq!((next, finished), ("PROGRAM 0 /bin/ls\nbin\n".len(), false), "a line is read once it is whole");
        fs::write(&log, "PROGRAM 0 /bin/ls\nbin\nPOWERING-OFF\r\n[   12.0] reboot: Power down\n").unwrap();
        assert!(show_console(&log, next).1);
    }
}
