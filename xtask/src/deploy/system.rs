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

use crate::model::manifest::{Arch, SystemBoot};
use crate::sources::fetch::Fetcher;

/// Where the guest's own files go, beside the board's.
pub const GUEST_DIR: &str = ".crosspython";

/// The kernel image of `boot` for `arch`, from Debian, cached in
/// `<cache>/kernels/<package>_<version>/vmlinuz`.
pub fn kernel(fetcher: &Fetcher, cache: &Path, boot: &SystemBoot, arch: &Arch) -> Result<PathBuf> {
    let index = crate::sources::debian::index(fetcher, &boot.kernel_suite, &arch.debian_arch)?;
    let named =
        index.get(&boot.kernel_package).with_context(|| format!("Debian {} {} has no package {}", boot.kernel_suite, arch.debian_arch, boot.kernel_package))?;
    // A metapackage (linux-image-arm64) names the versioned image it stands for.
    let image = named.depends.iter().flatten().find(|d| d.starts_with("linux-image-") && index.contains_key(*d)).map(|d| &index[d]).unwrap_or(named);
    let dir = cache.join("kernels").join(format!("{}_{}", image.name, image.version));
    let vmlinuz = dir.join("vmlinuz");
    if vmlinuz.is_file() {
        return Ok(vmlinuz);
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
    fs::copy(&found, vmlinuz.with_extension("part"))?;
    fs::rename(vmlinuz.with_extension("part"), &vmlinuz)?;
    Ok(vmlinuz)
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
        let b = cpio::newc::Builder::new(&name).ino(meta.ino() as u32).mode(meta.mode()).uid(0).gid(0).nlink(1).mtime(0);
        let mut w = b.write(&mut gz, size);
        w.write_all(&data)?;
        w.finish()?;
    }
    cpio::newc::trailer(&mut gz)?;
    gz.finish()?.flush()?;
    Ok(())
}

/// The guest's `/init`: mounts (with `/dev/shm`, where multiprocessing's
/// semaphores live, and `/dev/pts`, as a booted board has them), the
/// environment of the checks, the checks,
/// each board program (as `PROGRAM <exit status> <argv>`), power off.
pub fn init_script(env: &[(&str, String)], programs: &[Vec<String>]) -> String {
    let bb = format!("/{GUEST_DIR}/busybox");
    let mut s = format!(
        "#!{bb} sh\n{bb} mkdir -p /proc /sys /dev /tmp\n{bb} mount -t proc proc /proc\n{bb} mount -t sysfs sys /sys\n\
         {bb} mount -t devtmpfs dev /dev\n{bb} mkdir -p /dev/shm /dev/pts\n{bb} mount -t tmpfs shm /dev/shm\n{bb} mount -t devpts pts /dev/pts\n\
         {bb} mount -t tmpfs tmp /tmp\n{bb} ip link set lo up\necho \"BOOTED $({bb} uname -r) $({bb} uname -m)\"\n"
    );
    for (k, v) in env {
        s.push_str(&format!("export {k}='{v}'\n"));
    }
    s.push_str(&format!("/usr/local/bin/python3 -I -B /{GUEST_DIR}/checks.py\necho \"CHECKS-EXIT $?\"\n"));
    for argv in programs {
        let quoted: Vec<String> = argv.iter().map(|a| format!("'{}'", a.replace('\'', "'\\''"))).collect();
        s.push_str(&format!("{} > /tmp/out 2>&1; echo \"PROGRAM $? {}\"; {bb} head -n 1 /tmp/out\n", quoted.join(" "), argv.join(" ").replace('"', "")));
    }
    s.push_str(&format!("{bb} poweroff -f\n"));
    s
}

/// Boot and return the serial console's text. The guest powers itself
/// off; one that does not within `limit` is stopped and that is an error.
pub fn run(boot: &SystemBoot, kernel: &Path, initrd: &Path, limit: Duration) -> Result<String> {
    let mut cmd = Command::new(&boot.qemu);
    cmd.args(["-M", &boot.machine, "-m", &boot.memory_mib.to_string(), "-smp", "2", "-nographic", "-no-reboot", "-nic", "none"]);
    if let Some(cpu) = &boot.cpu {
        cmd.args(["-cpu", cpu]);
    }
    cmd.arg("-kernel").arg(kernel).arg("-initrd").arg(initrd);
    cmd.args(["-append", &format!("console={} rdinit=/init quiet panic=-1", boot.console)]);
    let out_path = initrd.with_file_name("console.txt");
    let out = File::create(&out_path)?;
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(out.try_clone()?)
        .stderr(out)
        .spawn()
        .with_context(|| format!("cannot run {} (Debian package qemu-system-*)", boot.qemu))?;
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait()? {
            let text = fs::read_to_string(&out_path).unwrap_or_default();
            if !status.success() {
                bail!("{} exited with {status}:\n{}", boot.qemu, crate::base::process::last_lines(&text, 20));
            }
            return Ok(text);
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            let text = fs::read_to_string(&out_path).unwrap_or_default();
            bail!("the guest did not power off within {} s; its console ended with:\n{}", limit.as_secs(), crate::base::process::last_lines(&text, 20));
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

    #[test]
    fn init_runs_the_checks_then_each_board_program_and_powers_off() {
        let s = init_script(&[("LC_ALL", "C.UTF-8".into())], &[vec!["/bin/ls".into(), "/lib".into()]]);
        let lines: Vec<&str> = s.lines().collect();
        assert_eq!(lines[0], "#!/.crosspython/busybox sh");
        assert!(s.contains("export LC_ALL='C.UTF-8'\n/usr/local/bin/python3 -I -B /.crosspython/checks.py\n"), "{s}");
        assert!(s.contains("'/bin/ls' '/lib' > /tmp/out 2>&1; echo \"PROGRAM $? /bin/ls /lib\""), "{s}");
        assert_eq!(*lines.last().unwrap(), "/.crosspython/busybox poweroff -f");
    }
}
