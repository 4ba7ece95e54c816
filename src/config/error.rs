//! Configuration errors with their place in the file, collected so a user fixes them all in one
//! pass.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

/// One error in a config or rules file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The file (or `<embedded default>`).
    pub file: PathBuf,
    /// 1-based line.
    pub line: usize,
    /// 1-based column (in characters).
    pub col: usize,
    /// What is wrong and, where it helps, what would be right.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.file.display(),
            self.line,
            self.col,
            self.message
        )
    }
}

/// Every error found in one load.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// A file's text, for turning byte spans into line:col and collecting errors against it.
pub struct SourceText<'a> {
    /// Path shown in messages.
    pub path: &'a Path,
    /// The file's contents.
    pub text: &'a str,
}

impl SourceText<'_> {
    /// 1-based (line, column) of byte offset `at` (clamped to the text).
    pub fn line_col(&self, at: usize) -> (usize, usize) {
        let at = at.min(self.text.len());
        let before = self.text.get(..at).unwrap_or(self.text);
        let line = before.matches('\n').count() + 1;
        let col = before
            .rfind('\n')
            .map_or(before, |nl| &before[nl + 1..])
            .chars()
            .count()
            + 1;
        (line, col)
    }

    /// An error located at the start of `span`.
    pub fn error(&self, span: Range<usize>, message: impl Into<String>) -> ConfigError {
        let (line, col) = self.line_col(span.start);
        ConfigError {
            file: self.path.to_path_buf(),
            line,
            col,
            message: message.into(),
        }
    }

    /// Turns a TOML parse error into a located error.
    pub fn toml_error(&self, e: &toml::de::Error) -> ConfigError {
        let span = e.span().unwrap_or(0..0);
        self.error(span, e.message().trim().to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_col_counts_from_one() {
        let src = SourceText {
            path: Path::new("x.toml"),
            text: "a = 1\nbé = 2\n",
        };
        assert_eq!(src.line_col(0), (1, 1));
        assert_eq!(src.line_col(6), (2, 1));
        // "bé = " is 6 bytes but 5 characters.
        assert_eq!(src.line_col(12), (2, 6));
        assert_eq!(src.error(6..7, "bad").to_string(), "x.toml:2:1: bad");
    }
}
