//! Source files, positions and the diagnostics that point into them.

use std::fmt;
use std::sync::Arc;

/// One config file as it was read. Every [`Pos`] keeps its file alive so a diagnostic can quote
/// the offending line long after parsing.
pub struct Source {
    /// The file name as given (or as resolved for `include_file`), used in `FILE:LINE:COL`.
    pub name: Arc<str>,
    /// The whole text of the file.
    pub text: String,
}

impl Source {
    pub fn new(name: impl Into<Arc<str>>, text: impl Into<String>) -> Arc<Source> {
        Arc::new(Source {
            name: name.into(),
            text: text.into(),
        })
    }

    /// The text of 1-based line `line`, without its line terminator.
    pub fn line_text(&self, line: u32) -> Option<&str> {
        let idx = usize::try_from(line).ok()?.checked_sub(1)?;
        self.text
            .split('\n')
            .nth(idx)
            .map(|l| l.strip_suffix('\r').unwrap_or(l))
    }
}

// The text can be large: a position's debug form only needs the name.
impl fmt::Debug for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Source").field("name", &self.name).finish()
    }
}

/// A place in a config file. `line` and `col` are 1-based; `col` counts characters.
/// Line 0 means "no particular place" (see [`Pos::nowhere`]).
#[derive(Clone, Debug)]
pub struct Pos {
    pub source: Arc<Source>,
    pub line: u32,
    pub col: u32,
}

impl Pos {
    /// A position for errors that have no place in any file (e.g. an unknown timer name asked by
    /// the daemon). Its diagnostic prints as `NAME: message` without a quoted line.
    pub fn nowhere(name: &str) -> Pos {
        Pos {
            source: Source::new(name, String::new()),
            line: 0,
            col: 0,
        }
    }
}

impl fmt::Display for Pos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}", self.source.name)
        } else {
            write!(f, "{}:{}:{}", self.source.name, self.line, self.col)
        }
    }
}

/// An error tied to a place in the config.
///
/// Displays as `FILE:LINE:COL: message`, then the offending source line and a caret under the
/// column, the way compilers do, so an operator sees the mistake without opening the file.
#[derive(Clone, Debug)]
pub struct Diagnostic {
    pub pos: Pos,
    pub message: String,
}

impl Diagnostic {
    pub fn at(pos: &Pos, message: impl Into<String>) -> Self {
        Diagnostic {
            pos: pos.clone(),
            message: message.into(),
        }
    }

    /// Just the first line: `FILE:LINE:COL: message`.
    pub fn headline(&self) -> String {
        format!("{}: {}", self.pos, self.message)
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.pos, self.message)?;
        let Some(line) = self.pos.source.line_text(self.pos.line) else {
            return Ok(());
        };
        write!(f, "\n    {line}\n    ")?;
        // Reuse the line's own tabs so the caret lines up whatever the tab width.
        let before = (self.pos.col as usize).saturating_sub(1);
        for c in line.chars().take(before) {
            f.write_str(if c == '\t' { "\t" } else { " " })?;
        }
        let missing = before.saturating_sub(line.chars().count());
        write!(f, "{:missing$}^", "")
    }
}

impl std::error::Error for Diagnostic {}

/// Renders several diagnostics, one after the other, each ending with a newline.
pub fn render(diags: &[Diagnostic]) -> String {
    let mut out = String::new();
    for d in diags {
        out.push_str(&d.to_string());
        out.push('\n');
    }
    out
}
