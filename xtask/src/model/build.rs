//! How a recipe is built: the one list of build fields. A `[[recipe]]`
//! sets them, a `[recipe.arch.<key>]` override replaces some of them, a
//! resolved node carries them, and a task's signature hashes all of them:
//! a field added here is read, overridden, shown and signed with no other
//! edit. Build options (packageconfig) add to `configure`, `make_args`,
//! `make_args_for_compiler`, `env` and `builtin_modules` only, by design.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The fields of a recipe that say how it is built. Serialized in this
/// order into every task signature of the recipe.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default)]
pub struct Build {
    /// Run `autoreconf -fi` in the source before configure.
    pub autoreconf: bool,
    pub configure: Vec<String>,
    pub env: BTreeMap<String, String>,
    pub make_args: Vec<String>,
    /// make arguments for one compiler family only (`gcc`, `clang`), after
    /// `make_args`: what the other family would refuse (Yocto's
    /// `:toolchain-gcc` overrides).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub make_args_for_compiler: BTreeMap<Compiler, Vec<String>>,
    /// Configure and build in `B`, beside the source (`S`); when false the
    /// source is copied into `B` first.
    pub out_of_tree: bool,
    /// Where the build system's top file is below the source
    /// (`build/meson`, `build/cmake`), as Yocto's OECMAKE_SOURCEPATH.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source_subdir: Option<String>,
    pub do_configure: Option<String>,
    pub do_compile: Option<String>,
    pub do_install: Option<String>,
    pub do_install_append: Option<String>,
    /// CPython's stdlib C modules linked into the interpreter instead of
    /// built as shared objects: the cpython class writes them into
    /// `Modules/Setup.local` under `*static*` before configure.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub builtin_modules: Vec<String>,
}

impl Default for Build {
    fn default() -> Build {
        Build {
            autoreconf: false,
            configure: vec![],
            env: BTreeMap::new(),
            make_args: vec![],
            make_args_for_compiler: BTreeMap::new(),
            out_of_tree: true,
            source_subdir: None,
            do_configure: None,
            do_compile: None,
            do_install: None,
            do_install_append: None,
            builtin_modules: vec![],
        }
    }
}

/// A compiler family: what a toolchain's C compiler is, for the build
/// fields that only one family takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Compiler {
    Gcc,
    Clang,
}

/// A class task that a recipe may replace with a shell script of its own
/// (`do_configure = "..."`), as BitBake's tasks of the same names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Configure,
    Compile,
    Install,
}

impl Phase {
    pub fn task_name(self) -> &'static str {
        match self {
            Phase::Configure => "do_configure",
            Phase::Compile => "do_compile",
            Phase::Install => "do_install",
        }
    }
}

impl Build {
    /// The names of the fields, as the manifest spells them (from serde,
    /// so that this list cannot drift from the struct).
    pub fn fields() -> Vec<String> {
        let all = Build {
            source_subdir: Some(String::new()),
            builtin_modules: vec![String::new()],
            make_args_for_compiler: BTreeMap::from([(Compiler::Gcc, vec![])]),
            ..Build::default()
        };
        match serde_json::to_value(all) {
            Ok(serde_json::Value::Object(m)) => m.keys().cloned().collect(),
            _ => unreachable!("Build serializes to an object"),
        }
    }

    /// The recipe's own script for a phase, if it replaces the class's.
    pub fn script(&self, phase: Phase) -> Option<&String> {
        match phase {
            Phase::Configure => self.do_configure.as_ref(),
            Phase::Compile => self.do_compile.as_ref(),
            Phase::Install => self.do_install.as_ref(),
        }
    }

    /// The make arguments a build with `compiler` runs: `make_args`, then
    /// those for its family.
    pub fn make_args_with(&self, compiler: Compiler) -> impl Iterator<Item = &String> {
        self.make_args.iter().chain(self.make_args_for_compiler.get(&compiler).into_iter().flatten())
    }

    /// Whether any field mentions `text` (a `${VAR}` reference, say).
    pub fn mentions(&self, text: &str) -> bool {
        serde_json::to_string(self).is_ok_and(|s| s.contains(text))
    }

    /// This build with an override's fields on top: a table (`env`) merges
    /// key by key, any other value replaces the recipe's. An error names
    /// the field: an unknown one (with a suggestion) or a value of the
    /// wrong type.
    pub fn overlay(&self, patch: &toml::Table) -> Result<Build, FieldError> {
        let fields = Build::fields();
        let mut merged = match toml::Value::try_from(self) {
            Ok(toml::Value::Table(t)) => t,
            _ => unreachable!("Build serializes to a table"),
        };
        for (key, value) in patch {
            if !fields.contains(key) {
                return Err(FieldError { field: key.clone(), message: format!("unknown field `{key}`{}", did_you_mean(key, &fields)) });
            }
            match (merged.get_mut(key), value) {
                (Some(toml::Value::Table(mine)), toml::Value::Table(theirs)) => mine.extend(theirs.clone()),
                _ => {
                    merged.insert(key.clone(), value.clone());
                }
            }
            // One key at a time, so that a wrong type is blamed on its field.
            if let Err(e) = Build::deserialize(toml::Value::Table(merged.clone())) {
                return Err(FieldError { field: key.clone(), message: e.message().to_string() });
            }
        }
        Ok(Build::deserialize(toml::Value::Table(merged)).expect("checked key by key"))
    }
}

/// A field of an override that does not fit [`Build`].
#[derive(Debug, PartialEq)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

fn did_you_mean(wanted: &str, known: &[String]) -> String {
    known
        .iter()
        .map(|k| (strsim::levenshtein(wanted, k), k))
        .filter(|(d, _)| *d <= 2)
        .min()
        .map(|(_, k)| format!("; did you mean `{k}`?"))
        .unwrap_or_else(|| format!(" (known: {})", known.join(", ")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(text: &str) -> toml::Table {
        toml::from_str(text).unwrap()
    }

    #[test]
    fn the_field_list_comes_from_the_struct() {
        let f = Build::fields();
        assert_eq!(f.len(), 12);
        assert!(f.iter().any(|k| k == "source_subdir"), "optional fields are listed too");
        assert!(f.iter().any(|k| k == "do_install_append"));
        assert!(f.iter().any(|k| k == "builtin_modules"), "and those left out of signatures when empty");
        assert!(f.iter().any(|k| k == "make_args_for_compiler"));
    }

    #[test]
    fn an_override_replaces_lists_and_merges_env() {
        let base = Build {
            configure: vec!["--a".into()],
            env: [("CFLAGS".to_string(), "-O2".to_string()), ("X".to_string(), "1".to_string())].into(),
            ..Build::default()
        };
        let b = base.overlay(&table("configure = [\"--b\"]\nenv = { X = \"2\" }\nout_of_tree = false")).unwrap();
        assert_eq!(b.configure, ["--b"]);
        assert_eq!(b.env["CFLAGS"], "-O2", "env merges key by key");
        assert_eq!(b.env["X"], "2");
        assert!(!b.out_of_tree);
        assert_eq!(base.overlay(&toml::Table::new()).unwrap(), base, "an empty override changes nothing");
    }

    #[test]
    fn an_override_names_an_unknown_field_and_a_wrong_type() {
        let err = Build::default().overlay(&table("configur = []")).unwrap_err();
        assert_eq!(err.message, "unknown field `configur`; did you mean `configure`?");
        let err = Build::default().overlay(&table("configure = []\nout_of_tree = \"no\"")).unwrap_err();
        assert_eq!(err.field, "out_of_tree");
        assert!(err.message.contains("invalid type: string \"no\", expected a boolean"), "{}", err.message);
    }

    #[test]
    fn make_args_for_one_compiler_come_last_and_only_for_that_compiler() {
        let b = Build {
            make_args: vec!["V=1".into()],
            make_args_for_compiler: BTreeMap::from([(Compiler::Gcc, vec!["LDFLAGS_NODIST=-flto=2".into()])]),
            ..Build::default()
        };
        assert_eq!(b.make_args_with(Compiler::Gcc).collect::<Vec<_>>(), ["V=1", "LDFLAGS_NODIST=-flto=2"]);
        assert_eq!(b.make_args_with(Compiler::Clang).collect::<Vec<_>>(), ["V=1"]);
        assert!(b.mentions("-flto=2"), "signed with the build");
        assert!(!serde_json::to_string(&Build::default()).unwrap().contains("make_args_for_compiler"), "absent, every other recipe keeps its signature");
    }

    #[test]
    fn mentions_looks_at_every_field() {
        let b = Build { do_install_append: Some("${TARGET_RUN_ENV} ./x".into()), ..Build::default() };
        assert!(b.mentions("${TARGET_RUN_ENV}"));
        assert!(!Build::default().mentions("${TARGET_RUN_ENV}"));
    }
}
