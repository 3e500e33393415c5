//! The machines, as BitBake's `MACHINE` and its toolchain: the target the
//! tree runs on, and what the build machine needs to build for it. It may
//! import `sources`, `model` and `base`.
//!
//! - `toolchain`: the cross toolchain of an arch (zig by default, or gcc),
//!   its identity and the newest glibc its output may need;
//! - `elf`: what an ELF file says about itself;
//! - `debug_info`: debug information mapped off this machine's directories;
//! - `board`: board root filesystems, their C library, paths resolved
//!   inside them as the board would;
//! - `tree_check`: the one check of a target tree (image, pip, package);
//! - `private_glibc`: a gcc toolchain's newer glibc carried under the
//!   prefix, for boards with an older one;
//! - `runner`: the one way a target program runs here (qemu-user, its
//!   CPU, the root that stands for `/`);
//! - `build_sys`: the build machine itself: its Rust target, triplet and C
//!   compiler;
//! - `host`: what the build machine needs to build for these arches
//!   (`doctor`).

pub mod board;
pub mod build_sys;
pub mod debug_info;
pub mod elf;
pub mod host;
pub mod private_glibc;
pub mod runner;
pub mod toolchain;
pub mod tree_check;
