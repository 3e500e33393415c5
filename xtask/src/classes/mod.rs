//! Recipe classes: how `configure`, `compile` and `install` run for each
//! kind of build system, and the environment every recipe builds in
//! (like BitBake's classes and its cross environment).
//!
//! A recipe may replace a step with a shell script (`do_configure`,
//! `do_compile`, `do_install`) or add to install (`do_install_append`);
//! the scripts see the same variables as the environment `base` makes.
//!
//! A layer above `machine`, beside `python` (neither imports the other):
//! it may import `machine`, `sources`, `model` and `base`.

mod autotools;
mod base;
pub mod cmake;
mod configure;
pub mod cpython;
mod make;
mod meson;

use anyhow::Result;

pub use self::base::{Builtin, Ctx, Step, WorkDirs};
use crate::model::build::Phase;
use crate::model::manifest::Class;

/// Bumped when what the classes run changes, so that signatures change.
const CLASS_VERSION: &str = "classes-4";

/// What goes into a recipe's signature for its class: the shared version,
/// and the cpython class's own, so that a change to CPython's checks and
/// fixes rebuilds CPython only.
pub fn class_version(class: Class) -> String {
    match class {
        Class::Cpython => format!("{CLASS_VERSION}+{}", cpython::VERSION),
        _ => CLASS_VERSION.to_string(),
    }
}

impl Ctx<'_> {
    /// The steps of a phase: the recipe's script for it, or its class's.
    pub fn steps(&self, phase: Phase) -> Result<Vec<Step>> {
        let (n, b) = (self.node, &self.node.build);
        let cwd = self.dirs.build.clone();
        let mut steps = Vec::new();
        if phase == Phase::Configure && !b.out_of_tree {
            steps.push(Step::CopySource);
        }
        match b.script(phase) {
            Some(s) => steps.push(Step::Shell { script: s.clone(), cwd: cwd.clone() }),
            None => steps.extend(match (n.class, phase) {
                (Class::Autotools, Phase::Configure) => autotools::configure(self)?,
                (Class::Cpython, Phase::Configure) => cpython::configure(self)?,
                (Class::Configure, Phase::Configure) => configure::configure(self)?,
                (Class::Make | Class::Cmake, Phase::Configure) => vec![],
                (Class::Cmake, Phase::Compile) => cmake::compile(self)?,
                (Class::Cmake, Phase::Install) => cmake::install(self)?,
                (Class::Meson, Phase::Configure) => meson::configure(self)?,
                (Class::Meson, Phase::Compile) => meson::compile(self)?,
                (Class::Meson, Phase::Install) => meson::install(self)?,
                (Class::Cpython, Phase::Compile) => cpython::compile(self)?,
                (Class::Cpython, Phase::Install) => cpython::install(self)?,
                (_, Phase::Compile) => make::compile(self)?,
                (_, Phase::Install) => make::install(self)?,
            }),
        }
        if phase == Phase::Install {
            if let Some(s) = &b.do_install_append {
                steps.push(Step::Shell { script: s.clone(), cwd });
            }
        }
        Ok(steps)
    }
}
