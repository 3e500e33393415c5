//! The build engine, as BitBake's runqueue and its tasks. It may import
//! `classes`, `python`, `machine`, `sources`, `model` and `base`.
//!
//! - `project`: where things are (the clone, the build directory, the
//!   caches), the build-directory lock, the manifest turned into a plan;
//! - `tasks`: the task graph of every recipe and arch, each task with a
//!   signature over its inputs, and the stamps;
//! - `work`: the bodies of the recipe tasks and how their commands run;
//! - `image`: `do_rootfs`, the target tree `sysroots/<arch>`, and the ELF
//!   checks every file of it must pass;
//! - `sstate`: the shared artifact cache, by task signature;
//! - `scheduler`: running the graph: which tasks, in what order, how many
//!   at once (one make jobserver), and the report.

pub mod image;
pub mod project;
pub mod scheduler;
pub mod sstate;
pub mod tasks;
pub mod work;
