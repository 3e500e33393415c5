//! The ground floor: what every layer does with the build machine itself.
//! It imports nothing of the crate.
//!
//! - `bytes`: finding and replacing byte strings (build paths in files);
//! - `process`: child processes, each in its own process group, stopped
//!   with the build and found again after a killed one;
//! - `progress`: live bars on a terminal, plain lines otherwise;
//! - `reproducible`: `SOURCE_DATE_EPOCH`, the one time an output may carry;
//! - `signing`: ed25519 keys and signatures for a shared artifact cache;
//! - `sysroot`: file trees: hard-linked per-recipe sysroots, the
//!   `populate_sysroot` filter, copies and removal.

pub mod bytes;
pub mod process;
pub mod progress;
pub mod reproducible;
pub mod signing;
pub mod sysroot;
