//! Diagnostics: what is wrong with a DAG or calendar file, and where.
//!
//! A [`Diagnostic`] is self-contained: it carries the file, the 1-based
//! `line:col`, the message and the text of the offending line, so that it can
//! be rendered rustc-style ([`Diagnostic::render`]) or sent as JSON without
//! re-reading the file. [`SourceText`] turns the byte spans the TOML parser
//! gives into those positions (columns count characters, not bytes).

use serde::{Deserialize, Serialize};
use std::fmt::Write as _;
use std::ops::Range;
use std::path::{Path, PathBuf};

/// How bad a diagnostic is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// The file is rejected.
    Error,
    /// Worth fixing, but the file is accepted.
    Warning,
}

impl Severity {
    /// `"error"` or `"warning"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
        }
    }
}

/// One problem found in one file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Diagnostic {
    /// The file the problem is in.
    pub file: PathBuf,
    /// 1-based line; 0 when the problem has no position in the file (for
    /// example the file could not be read).
    pub line: usize,
    /// 1-based column, in characters; 0 when `line` is 0.
    pub col: usize,
    /// What is wrong, lowercase, naming the offending key or value.
    pub message: String,
    /// Error or warning.
    pub severity: Severity,
    /// The text of line `line` (without its line break), for rendering.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_line: Option<String>,
    /// How many characters from `col` the problem spans on that line (≥ 1).
    #[serde(default = "one")]
    pub width: usize,
}

fn one() -> usize {
    1
}

impl Diagnostic {
    /// A diagnostic about a whole file, with no position (I/O errors, a
    /// folder with no DAG files).
    pub fn for_file(
        file: impl Into<PathBuf>,
        severity: Severity,
        message: impl Into<String>,
    ) -> Self {
        Self {
            file: file.into(),
            line: 0,
            col: 0,
            message: message.into(),
            severity,
            source_line: None,
            width: 1,
        }
    }

    /// Whether this is an error (as opposed to a warning).
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }

    /// `file:line:col`, or just `file` when there is no position.
    pub fn location(&self) -> String {
        if self.line == 0 {
            self.file.display().to_string()
        } else {
            format!("{}:{}:{}", self.file.display(), self.line, self.col)
        }
    }

    /// Renders the diagnostic the way rustc does, ending with a newline:
    ///
    /// ```text
    /// error: unknown key `shard` (did you mean `shards`?)
    ///   --> dags/x.toml:12:5
    ///    |
    /// 12 |     shard = 4
    ///    |     ^^^^^
    /// ```
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = writeln!(out, "{}: {}", self.severity.as_str(), self.message);
        let gutter = if self.line == 0 {
            1
        } else {
            self.line.to_string().len()
        };
        let pad = " ".repeat(gutter);
        let _ = writeln!(out, "{pad}--> {}", self.location());
        if let (Some(text), true) = (&self.source_line, self.line > 0) {
            // Keep tabs as tabs so the caret lines up in any terminal.
            let indent: String = text
                .chars()
                .take(self.col.saturating_sub(1))
                .map(|c| if c == '\t' { '\t' } else { ' ' })
                .collect();
            let _ = writeln!(out, "{pad} |");
            let _ = writeln!(out, "{} | {}", self.line, text);
            let _ = writeln!(out, "{pad} | {indent}{}", "^".repeat(self.width.max(1)));
        }
        out
    }
}

/// A source file's text with its line starts, to turn byte offsets into
/// `line:col` positions.
#[derive(Debug, Clone)]
pub struct SourceText<'s> {
    file: &'s Path,
    text: &'s str,
    line_starts: Vec<usize>,
}

impl<'s> SourceText<'s> {
    /// Indexes `text`, the contents of `file`.
    pub fn new(file: &'s Path, text: &'s str) -> Self {
        let line_starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        Self {
            file,
            text,
            line_starts,
        }
    }

    /// The file this text came from.
    pub fn file(&self) -> &'s Path {
        self.file
    }

    /// The 1-based (line, column) of byte `offset`. Offsets past the end, or
    /// inside a UTF-8 sequence, are moved back to the nearest character; an
    /// offset just past a final line break points at the end of the last line
    /// so that every position names a line that exists.
    pub fn position(&self, offset: usize) -> (usize, usize) {
        let offset = self.clamp(offset);
        let line_index = match self.line_starts.binary_search(&offset) {
            Ok(i) => i,
            Err(i) => i - 1,
        };
        let start = self.line_starts[line_index];
        let col = self.text[start..offset].chars().count() + 1;
        // A `\r` before the line break is not part of the line as shown.
        let max_col = self.line_text(line_index + 1).chars().count() + 1;
        (line_index + 1, col.min(max_col))
    }

    /// A diagnostic at `span` (a byte range into the text).
    pub fn diagnostic(
        &self,
        span: Range<usize>,
        severity: Severity,
        message: impl Into<String>,
    ) -> Diagnostic {
        let (line, col) = self.position(span.start);
        let line_text = self.line_text(line);
        let start = self.clamp(span.start);
        let end = self.clamp(span.end.max(start));
        // Underline to the end of the span or of its first line, at least one
        // character (zero-width spans come from "expected X here" errors).
        let width = self.text[start..end]
            .split('\n')
            .next()
            .map_or(0, |s| s.trim_end_matches('\r').chars().count())
            .max(1);
        Diagnostic {
            file: self.file.to_path_buf(),
            line,
            col,
            message: message.into(),
            severity,
            source_line: Some(line_text.to_owned()),
            width,
        }
    }

    fn line_text(&self, line: usize) -> &'s str {
        let start = self.line_starts[line - 1];
        let end = self
            .line_starts
            .get(line)
            .map_or(self.text.len(), |next| next - 1);
        self.text[start..end.max(start)].trim_end_matches('\r')
    }

    fn clamp(&self, offset: usize) -> usize {
        let mut offset = offset.min(self.text.len());
        // A span right after the final line break belongs to the last line.
        if offset == self.text.len() && offset > 0 && self.text.ends_with('\n') {
            offset -= 1;
        }
        while !self.text.is_char_boundary(offset) {
            offset -= 1;
        }
        offset
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_count_lines_and_characters() {
        let path = Path::new("x.toml");
        let text = "a = 1\nbé = 2\n";
        let src = SourceText::new(path, text);
        assert_eq!(src.position(0), (1, 1));
        assert_eq!(src.position(6), (2, 1));
        // `=` after the two-byte `é` is the 4th character of line 2.
        assert_eq!(src.position(text.find("= 2").unwrap()), (2, 4));
        // The end of the file is the end of the last line, not a phantom line 3.
        assert_eq!(src.position(text.len()), (2, 7));
    }

    #[test]
    fn render_puts_the_caret_under_the_span() {
        let path = Path::new("dags/x.toml");
        let text = "[jobs.a]\n    shard = 4\n";
        let src = SourceText::new(path, text);
        let start = text.find("shard").unwrap();
        let d = src.diagnostic(start..start + 5, Severity::Error, "unknown key `shard`");
        assert_eq!(
            d.render(),
            "error: unknown key `shard`\n --> dags/x.toml:2:5\n  |\n2 |     shard = 4\n  |     ^^^^^\n"
        );
    }
}
