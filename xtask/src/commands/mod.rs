//! Commands that read across the layers, dispatched by `main`: nothing
//! else imports them. They may import every layer.
//!
//! - `inspect`: `check`, `graph`, `show`, `fetch`, `clean`;
//! - `pip`: ad-hoc installs of Python packages into the built tree;
//! - `bench`: build cost, footprint and target speed next to yardsticks.

pub mod bench;
pub mod inspect;
pub mod pip;
