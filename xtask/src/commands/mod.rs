//! Commands that read across the layers, dispatched by `main`: nothing
//! else imports them. They may import every layer.
//!
//! - `build`, `qemu-test`, `package`, `doctor`: one module each, with its
//!   command-line arguments;
//! - `inspect`: `check`, `graph`, `show`, `fetch`, `clean`;
//! - `pip`: ad-hoc installs of Python packages into the built tree;
//! - `bench`: build cost, footprint and target speed next to yardsticks.

pub mod bench;
pub mod build;
pub mod doctor;
pub mod inspect;
pub mod package;
pub mod pip;
pub mod qemu_test;
