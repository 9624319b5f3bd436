//! Problems, locations and the check report printed by `o365-migrate credentials check`.

use std::fmt::{self, Write as _};

use serde::Serialize;

use crate::decode::TextEncoding;
use crate::schema::Field;

/// What every password is shown as.
pub const MASK: &str = "********";

/// Where something is in a credentials file: `file:line:column`, plus the spreadsheet column.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Location {
    /// The file as named by the caller.
    pub file: String,
    /// 1-based line (physical line of the text, counting line breaks inside quoted fields); 0 when
    /// the location is a setting rather than a place in a file (`file` then names the setting).
    pub line: usize,
    /// 1-based character column on that line.
    pub column: usize,
    /// The spreadsheet column, e.g. `C (Password)`, when the location is a cell.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cell: Option<String>,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            // Not a place in a file (e.g. a password given on the command line).
            return f.write_str(&self.file);
        }
        write!(f, "{}:{}:{}", self.file, self.line, self.column)?;
        if let Some(cell) = &self.cell {
            write!(f, " [column {cell}]")?;
        }
        Ok(())
    }
}

/// How serious a problem is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Worth knowing; the file is still accepted.
    Warning,
    /// The file is rejected until it is fixed.
    Error,
}

/// A stable code per kind of problem (kebab-case in JSON), for scripts and documentation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum ProblemCode {
    /// The file is not UTF-8 and was read as Windows-1252.
    NotUtf8,
    /// Bytes that are not valid in the file's encoding.
    BadEncoding,
    /// A byte order mark disagrees with the requested encoding.
    EncodingOverride,
    /// The file is a spreadsheet workbook or binary, not CSV text.
    NotText,
    /// The file holds no rows.
    Empty,
    /// A quoted field never closes.
    UnterminatedQuote,
    /// Text after a closing quote.
    TextAfterQuote,
    /// No header row was recognised and no mapping was given.
    NoHeader,
    /// With an index-only mapping, the first row was not recognised as a header and is read
    /// as data.
    HeaderAssumed,
    /// A header column that maps to no field (ignored).
    UnknownColumn,
    /// Two columns map to the same field.
    DuplicateColumn,
    /// A required column is missing.
    MissingColumn,
    /// A mapping names a column the file does not have.
    BadMapping,
    /// A row has more non-empty fields than the header.
    ExtraFields,
    /// A row has fewer fields than the header.
    ShortRow,
    /// A required cell is empty.
    EmptyCell,
    /// A value has spaces around it (trimmed) or inside it.
    Whitespace,
    /// A value holds a line break or control character.
    ControlCharacter,
    /// An address is not well-formed.
    BadAddress,
    /// A password cell is a malformed `env:` / `file:` reference.
    BadPasswordReference,
    /// A password reference could not be resolved.
    UnresolvedSecret,
    /// The same login appears twice.
    DuplicateLogin,
    /// The same target appears twice.
    DuplicateTarget,
    /// More rows than the row limit.
    RowLimit,
    /// Passwords are present but not used (admin login mode).
    PasswordIgnored,
    /// The delimiter could not be detected.
    DelimiterUnclear,
}

/// One problem found in a credentials file, with its location and what to do about it.
/// It never contains a password.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// Error (file rejected) or warning.
    pub severity: Severity,
    /// Stable code.
    pub code: ProblemCode,
    /// Where.
    pub location: Location,
    /// What is wrong.
    pub message: String,
    /// What to do.
    pub hint: String,
}

impl Problem {
    /// Whether this problem rejects the file.
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sev = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        write!(
            f,
            "{}: {sev}: {} (hint: {})",
            self.location, self.message, self.hint
        )
    }
}

/// The file's layout as recognised.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum FileFormat {
    /// Microsoft IMAP migration batch: `EmailAddress,UserName,Password[,UserRoot]`.
    Microsoft,
    /// CodeTwo: `Login,Password[,First Name,Last Name,Display Name]`.
    #[serde(rename = "codetwo")]
    CodeTwo,
    /// Recognised through header aliases.
    Aliases,
    /// Given by an explicit column mapping.
    Mapped,
    /// Nothing recognised.
    Unknown,
}

impl FileFormat {
    fn describe(self) -> &'static str {
        match self {
            FileFormat::Microsoft => "Microsoft IMAP migration format",
            FileFormat::CodeTwo => "CodeTwo format",
            FileFormat::Aliases => "recognised by header names",
            FileFormat::Mapped => "explicit column mapping",
            FileFormat::Unknown => "not recognised",
        }
    }
}

/// One column of the file and the field it feeds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ColumnInfo {
    /// 1-based column number.
    pub number: usize,
    /// Spreadsheet letter (`A`, `B`, …).
    pub letter: String,
    /// Header text, if the file has a header row.
    pub header: Option<String>,
    /// The field this column feeds, or `None` when it is ignored.
    pub field: Option<Field>,
}

/// A row as shown in a report: the password masked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RecordSummary {
    /// 1-based data row number.
    pub row: usize,
    /// Line where the row starts.
    pub line: usize,
    /// Source login.
    pub login: String,
    /// Target address, if given.
    pub target: Option<String>,
    /// `********`, `env:NAME`, `file:PATH`, or `None` when the row has no password.
    pub password: Option<String>,
    /// The target password, masked like `password`, when the file gives one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_password: Option<String>,
    /// Microsoft `UserRoot`, if given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_root: Option<String>,
    /// Display name (or first and last name), if given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// Everything `o365-migrate credentials check` prints: how the file was read, every row (passwords
/// masked) and every problem. Serialises to JSON with [`CheckReport::to_json`]; renders for people
/// with [`CheckReport::render_human`] or `Display`.
#[derive(Debug, Clone, Serialize)]
pub struct CheckReport {
    /// The file as named by the caller.
    pub file: String,
    /// Encoding the text was decoded with.
    pub encoding: TextEncoding,
    /// Whether the file started with a byte order mark.
    pub bom: bool,
    /// Whether the encoding is the Windows-1252 fallback for a file that is not UTF-8.
    pub encoding_fallback: bool,
    /// The delimiter used.
    pub delimiter: char,
    /// Whether the delimiter was detected (`false`: given by the caller or defaulted).
    pub delimiter_detected: bool,
    /// Line of the header row, if the file has one.
    pub header_line: Option<usize>,
    /// The recognised layout.
    pub format: FileFormat,
    /// Every column and the field it feeds.
    pub columns: Vec<ColumnInfo>,
    /// Number of data rows read.
    pub rows: usize,
    /// Number of blank lines skipped (empty or only delimiters).
    pub blank_lines: usize,
    /// The row limit applied (`None`: no limit).
    pub row_limit: Option<usize>,
    /// The rule the target column was checked by.
    pub target_identity: crate::schema::TargetIdentity,
    /// Whether passwords are required (false in admin login mode).
    pub passwords_required: bool,
    /// Number of errors.
    pub errors: usize,
    /// Number of warnings.
    pub warnings: usize,
    /// Every problem, in file order.
    pub problems: Vec<Problem>,
    /// Every row, passwords masked.
    pub records: Vec<RecordSummary>,
}

impl CheckReport {
    /// Whether the file is rejected (at least one error).
    pub fn has_errors(&self) -> bool {
        self.errors > 0
    }

    /// The report as pretty-printed JSON. Passwords appear only masked.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|e| {
            // Serialising plain strings and numbers cannot fail; keep the CLI alive regardless.
            format!("{{\"error\":\"report serialisation failed: {e}\"}}")
        })
    }

    /// The report for people: how the file was read, the column mapping, up to `max_rows` rows
    /// (passwords masked), every problem, and a verdict line.
    pub fn render_human(&self, max_rows: usize) -> String {
        let mut out = String::new();
        let delim = match self.delimiter {
            ',' => "comma".to_owned(),
            ';' => "semicolon".to_owned(),
            '\t' => "tab".to_owned(),
            '|' => "pipe".to_owned(),
            c => format!("`{c}`"),
        };
        let how = if self.delimiter_detected {
            "detected"
        } else {
            "given"
        };
        let _ = writeln!(out, "file:       {}", self.file);
        let _ = writeln!(
            out,
            "encoding:   {}{}{}",
            self.encoding.name(),
            if self.bom {
                " with byte order mark"
            } else {
                ""
            },
            if self.encoding_fallback {
                " (fallback: the file is not UTF-8)"
            } else {
                ""
            }
        );
        let _ = writeln!(out, "delimiter:  {delim} ({how})");
        let _ = writeln!(
            out,
            "layout:     {}{}",
            self.format.describe(),
            match self.header_line {
                Some(l) => format!(", header on line {l}"),
                None => ", no header row".to_owned(),
            }
        );
        let limit = match self.row_limit {
            Some(l) if l == crate::MICROSOFT_ROW_LIMIT => {
                format!("limit {l}, Microsoft's cap for an IMAP migration batch")
            }
            Some(l) if l > crate::MICROSOFT_ROW_LIMIT => format!(
                "limit {l}, raised above Microsoft's {} for IMAP migration batches",
                crate::MICROSOFT_ROW_LIMIT
            ),
            Some(l) => format!("limit {l}"),
            None => "no limit; Microsoft caps its own IMAP batch files at 50,000".to_owned(),
        };
        let _ = writeln!(
            out,
            "rows:       {} ({limit}; {} blank line(s) skipped)",
            self.rows, self.blank_lines
        );
        let _ = writeln!(out, "targets:    {}", self.target_identity.describe());
        if !self.passwords_required {
            let _ = writeln!(out, "passwords:  not required (admin login mode)");
        }
        let _ = writeln!(out, "columns:");
        for c in &self.columns {
            let _ = writeln!(
                out,
                "  {:<3} {:<24} -> {}",
                c.letter,
                c.header.as_deref().unwrap_or("-"),
                c.field.map_or("(ignored)", Field::name)
            );
        }
        if !self.records.is_empty() {
            let _ = writeln!(out, "rows (passwords masked):");
            for r in self.records.iter().take(max_rows) {
                let _ = writeln!(
                    out,
                    "  line {:<6} {} -> {}  password {}{}{}{}",
                    r.line,
                    r.login,
                    r.target.as_deref().unwrap_or("(target not given)"),
                    r.password.as_deref().unwrap_or("(none)"),
                    r.target_password
                        .as_deref()
                        .map(|p| format!("  target password {p}"))
                        .unwrap_or_default(),
                    r.user_root
                        .as_deref()
                        .map(|u| format!("  root {u}"))
                        .unwrap_or_default(),
                    r.name
                        .as_deref()
                        .map(|n| format!("  name {n:?}"))
                        .unwrap_or_default()
                );
            }
            if self.records.len() > max_rows {
                let _ = writeln!(out, "  … {} more row(s)", self.records.len() - max_rows);
            }
        }
        if self.problems.is_empty() {
            let _ = writeln!(out, "problems:   none");
        } else {
            let _ = writeln!(out, "problems:");
            for p in &self.problems {
                let _ = writeln!(out, "  {p}");
            }
        }
        let verdict = if self.has_errors() { "REJECTED" } else { "OK" };
        let _ = write!(
            out,
            "result:     {verdict}: {} row(s), {} error(s), {} warning(s)",
            self.rows, self.errors, self.warnings
        );
        out
    }
}

impl fmt::Display for CheckReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.render_human(50))
    }
}
