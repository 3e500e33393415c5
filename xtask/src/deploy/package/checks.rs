//! What a package must pass before it is written: the tree check with the
//! package's rules (`machine::tree_check`) and the build machine's paths.

use std::fmt;
use std::path::{Path, PathBuf};

use anyhow::Result;

use crate::machine::tree_check::{BoardLibs, TreeCheck};
use crate::model::manifest::ElfExpect;

#[derive(Debug)]
pub struct Checked {
    pub elf: crate::machine::tree_check::Checked,
    pub files: usize,
}

impl fmt::Display for Checked {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.elf.summary())?;
        writeln!(
            f,
            "package check: {} files; every ELF file has a non-executable stack, RELRO and run paths inside the package; \
             no build path, setuid, world-writable file or escaping symlink",
            self.files
        )
    }
}

pub fn check(root: &Path, want: &ElfExpect, build_paths: &[PathBuf], board: &BoardLibs) -> Result<Checked> {
    let check = TreeCheck { build_paths: build_paths.to_vec(), package: true, ..TreeCheck::new(want, board) };
    let elf = check.run(root, &format!("the package {}", root.display()))?;
    Ok(Checked { files: elf.all_files, elf })
}
