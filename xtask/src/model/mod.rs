//! The model: `recipes-manifest.toml` and what it means, as BitBake's
//! parser and its providers step. It imports nothing of the crate outside
//! this folder (a ground floor beside `base`).
//!
//! - `build`: the one list of build fields (recipe, override, node,
//!   signature) and the phases a recipe may script;
//! - `manifest`: the typed file, parsed with source positions, and
//!   validated;
//! - `recipe_include`: BitBake's `require`: `[include.*]` expanded into the
//!   recipes before parsing;
//! - `version`: recipe versions, their order and `preferred_version`
//!   patterns;
//! - `resolve`: one arch's dependency graph: versions, providers, native
//!   variants, overrides, build-time and run-time closures.

pub mod build;
pub mod manifest;
mod recipe_include;
pub mod resolve;
mod version;

/// The manifest's text with its `require` includes copied into the
/// recipes, as the manifest is read (None: it uses none).
pub use self::recipe_include::expand as expand_includes;
