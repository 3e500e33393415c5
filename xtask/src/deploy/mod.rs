//! Deploy: the target tree leaves the build and is checked on a board.
//! It may import `engine` and every layer below it.
//!
//! - `package`: the tree made fit for a board by profile: reproducible
//!   archives with a file list, size report and SBOM, or installed into a
//!   root filesystem;
//! - `qemu`: `qemu-test`: the tree (or a package) installed over a board
//!   root and run there under qemu-user, as Yocto's testimage;
//! - `regrtest`: CPython's own test suite on the target (the manifest's
//!   modules or all of it), under qemu-user or booted, for `qemu-test`;
//! - `system`: `qemu-test --system`: a Debian kernel booted under
//!   qemu-system with the board root and the package as its root (an
//!   ext4 disk, or the initramfs).

pub mod package;
pub mod qemu;
pub mod regrtest;
mod system;
