//! Values with their place in the manifest, and the problems found at
//! those places (`file:line:column: `key`: message`).

use std::fmt;
use std::path::PathBuf;

use toml::Spanned;

/// A string with the byte range it came from in the manifest.
pub type Name = Spanned<String>;

/// One problem found in the manifest, located in the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub file: PathBuf,
    pub line: usize,
    pub column: usize,
    pub key: String,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}: `{}`: {}", self.file.display(), self.line, self.column, self.key, self.message)
    }
}

/// All problems of one manifest, shown one per line.
#[derive(Debug)]
pub struct Problems(pub Vec<Problem>);

impl fmt::Display for Problems {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.0.len();
        writeln!(f, "{n} problem{} in the manifest:", if n == 1 { "" } else { "s" })?;
        for p in &self.0 {
            writeln!(f, "  {p}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Problems {}

/// 1-based line and column of a byte offset.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rfind('\n').map_or(before.len(), |nl| before.len() - nl - 1) + 1;
    (line, column)
}

pub(super) fn word_at(text: &str, offset: usize) -> String {
    text[offset.min(text.len())..].chars().take_while(|c| c.is_alphanumeric() || "_-.\"".contains(*c)).collect::<String>().trim_matches('"').to_string()
}
