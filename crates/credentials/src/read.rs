//! Reading and validating a credentials file.
//!
//! This file holds the options, the results ([`CredentialRecord`], [`Parsed`], [`Credentials`]),
//! the entry points and the reader's main pass (encoding, delimiter, streaming the rows). The
//! submodules decide the header and columns (`layout`) and validate one data row (`row`).

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use crate::decode::{self, TextEncoding};
use crate::error::Error;
use crate::fxhash::{FxBuild, FxHashMap};
use crate::parse::{self, RawRecord, SyntaxProblem, Tokenizer};
use crate::report::{
    CheckReport, FileFormat, Location, Problem, ProblemCode, RecordSummary, Severity,
};
use crate::schema::{ColumnMapping, HeaderMode, TargetIdentity, column_letter};
use crate::secret::PasswordSource;

mod layout;
mod row;

pub(crate) use row::address_problem;
#[cfg(test)]
mod tests;

/// Microsoft's cap on rows in a CSV file for one of *its* IMAP migration batches. Not a limit
/// of this crate: a larger file is read whole, with a warning naming the cap (it matters when
/// the file is exported as Microsoft's batch).
pub const MICROSOFT_ROW_LIMIT: usize = 50_000;

/// How to read a credentials file. Start from [`ReadOptions::default`] and change what you need.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ReadOptions {
    /// The delimiter; `None` detects it among comma, semicolon, tab and pipe.
    pub delimiter: Option<char>,
    /// The encoding; `None` uses the byte order mark, recognises UTF-16 without one, reads UTF-8,
    /// and falls back to Windows-1252 (with a warning) when the file is not UTF-8.
    pub encoding: Option<TextEncoding>,
    /// Whether the file has a header row.
    pub header: HeaderMode,
    /// Explicit column → field mapping instead of header recognition.
    pub mapping: Option<ColumnMapping>,
    /// Maximum number of data rows; `None` (the default) for no limit.
    pub row_limit: Option<usize>,
    /// What the target column names (default: an address), by the job's target kind.
    pub target_identity: TargetIdentity,
    /// Whether every row needs a password. `false` for the admin login mode, where one admin
    /// credential logs in for every user.
    pub passwords_required: bool,
    /// Whether password cells may be `env:NAME`, `file:PATH` or `literal:VALUE` (default true).
    pub secret_references: bool,
    /// Resolve `env:` and `file:` references during the check and report failures as problems
    /// (default false: they are resolved on demand with [`PasswordSource::resolve`]).
    pub resolve_secrets: bool,
    /// Folder that relative `file:` paths are relative to; [`read_file`] sets it to the CSV
    /// file's folder when unset.
    pub base_dir: Option<PathBuf>,
}

impl Default for ReadOptions {
    fn default() -> Self {
        ReadOptions {
            delimiter: None,
            encoding: None,
            header: HeaderMode::Auto,
            mapping: None,
            row_limit: None,
            target_identity: TargetIdentity::Address,
            passwords_required: true,
            secret_references: true,
            resolve_secrets: false,
            base_dir: None,
        }
    }
}

impl ReadOptions {
    /// Sets the delimiter instead of detecting it.
    pub fn delimiter(mut self, delimiter: char) -> Self {
        self.delimiter = Some(delimiter);
        self
    }

    /// Sets the encoding instead of detecting it.
    pub fn encoding(mut self, encoding: TextEncoding) -> Self {
        self.encoding = Some(encoding);
        self
    }

    /// Sets the header mode.
    pub fn header(mut self, header: HeaderMode) -> Self {
        self.header = header;
        self
    }

    /// Uses an explicit column mapping.
    pub fn mapping(mut self, mapping: ColumnMapping) -> Self {
        self.mapping = Some(mapping);
        self
    }

    /// Sets [`ReadOptions::target_identity`].
    pub fn target_identity(mut self, identity: TargetIdentity) -> Self {
        self.target_identity = identity;
        self
    }

    /// Sets [`ReadOptions::row_limit`].
    pub fn row_limit(mut self, limit: Option<usize>) -> Self {
        self.row_limit = limit;
        self
    }

    /// Admin login mode: per-user passwords are not needed.
    pub fn admin_mode(mut self) -> Self {
        self.passwords_required = false;
        self
    }

    /// Resolves `env:` / `file:` password references during the check.
    pub fn resolve_secrets(mut self, resolve: bool) -> Self {
        self.resolve_secrets = resolve;
        self
    }
}

/// Parses a delimiter as an admin types it: `,` `;` `|`, `\t` or `tab`, or the names `comma`,
/// `semicolon`, `pipe`.
pub fn parse_delimiter(s: &str) -> Result<char, Error> {
    let c = match s.to_ascii_lowercase().as_str() {
        "comma" => ',',
        "semicolon" => ';',
        "tab" | "\\t" => '\t',
        "pipe" => '|',
        _ => {
            let mut chars = s.chars();
            match (chars.next(), chars.next()) {
                (Some(c), None) => c,
                _ => {
                    return Err(Error::options(
                        format!("`{s}` is not a single-character delimiter"),
                        "use , ; | or tab",
                    ));
                }
            }
        }
    };
    check_delimiter(c)?;
    Ok(c)
}

fn check_delimiter(c: char) -> Result<u8, Error> {
    match u8::try_from(c) {
        Ok(b)
            if b.is_ascii() && !matches!(b, b'"' | b'\r' | b'\n') && !b.is_ascii_alphanumeric() =>
        {
            Ok(b)
        }
        _ => Err(Error::options(
            format!("{c:?} cannot be a delimiter"),
            "use an ASCII punctuation character or tab, e.g. , ; | or tab",
        )),
    }
}

/// One row of a credentials file.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct CredentialRecord {
    /// 1-based data row number (the header does not count).
    pub row: usize,
    /// Line where the row starts in the file.
    pub line: usize,
    /// Login on the source IMAP server.
    pub login: String,
    /// Password or password reference; `None` when the file has none (admin login mode).
    pub password: Option<PasswordSource>,
    /// The password on the target server when it differs from the source's (IMAP targets with
    /// per-user login), or a reference `env:NAME` / `file:PATH`.
    pub target_password: Option<PasswordSource>,
    /// Target mailbox address / UPN, when the file gives it.
    pub target: Option<String>,
    /// Microsoft `UserRoot`.
    pub user_root: Option<String>,
    /// First name.
    pub first_name: Option<String>,
    /// Last name.
    pub last_name: Option<String>,
    /// Display name.
    pub display_name: Option<String>,
}

impl CredentialRecord {
    /// A row with only a login (row and line 0, no password): for embedders that build
    /// credentials from elsewhere, and for tests. Set the other public fields as needed.
    pub fn new(login: impl Into<String>) -> Self {
        CredentialRecord {
            row: 0,
            line: 0,
            login: login.into(),
            password: None,
            target_password: None,
            target: None,
            user_root: None,
            first_name: None,
            last_name: None,
            display_name: None,
        }
    }

    fn summary(&self) -> RecordSummary {
        let name = self.display_name.clone().or_else(|| {
            match (self.first_name.as_deref(), self.last_name.as_deref()) {
                (Some(f), Some(l)) => Some(format!("{f} {l}")),
                (Some(n), None) | (None, Some(n)) => Some(n.to_owned()),
                (None, None) => None,
            }
        });
        RecordSummary {
            row: self.row,
            line: self.line,
            login: self.login.clone(),
            target: self.target.clone(),
            password: self.password.as_ref().map(PasswordSource::masked),
            target_password: self.target_password.as_ref().map(PasswordSource::masked),
            user_root: self.user_root.clone(),
            name,
        }
    }
}

/// A file read and checked: the report and the rows. Obtain the validated rows with
/// [`Parsed::into_credentials`], which refuses a file with errors.
#[derive(Debug, Clone)]
pub struct Parsed {
    /// The report without row summaries (they are built on first use of `report()`).
    base: CheckReport,
    records: Vec<CredentialRecord>,
    full: OnceLock<CheckReport>,
}

impl Parsed {
    /// The check report (what `o365-migrate credentials check` prints), with every row's summary.
    pub fn report(&self) -> &CheckReport {
        self.full.get_or_init(|| {
            let mut r = self.base.clone();
            r.records = self.records.iter().map(CredentialRecord::summary).collect();
            r
        })
    }

    /// The rows that could be read (also when the file has errors).
    pub fn records(&self) -> &[CredentialRecord] {
        &self.records
    }

    /// The rows, if the file has no errors; otherwise [`Error::Rejected`] with every problem.
    pub fn into_credentials(self) -> Result<Credentials, Error> {
        if self.base.has_errors() {
            return Err(Error::Rejected {
                problems: self.base.problems,
            });
        }
        Ok(Credentials {
            records: self.records,
            warnings: self.base.problems,
        })
    }
}

/// Validated credentials: every row has a login, and a password unless admin mode was chosen.
#[derive(Debug, Clone)]
pub struct Credentials {
    records: Vec<CredentialRecord>,
    warnings: Vec<Problem>,
}

impl Credentials {
    /// The rows in file order.
    pub fn records(&self) -> &[CredentialRecord] {
        &self.records
    }

    /// Number of rows.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// Whether there are no rows.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// Warnings found while reading.
    pub fn warnings(&self) -> &[Problem] {
        &self.warnings
    }

    /// The row for a login (case-insensitive).
    pub fn find_login(&self, login: &str) -> Option<&CredentialRecord> {
        let wanted = login.trim().to_lowercase();
        self.records
            .iter()
            .find(|r| r.login.to_lowercase() == wanted)
    }

    /// Resolves every `env:` / `file:` password reference now; returns one error per failure
    /// (empty when all resolve). Use it before a long run so that a missing secret fails early.
    pub fn check_secrets(&self) -> Vec<Error> {
        self.records
            .iter()
            .filter_map(|r| r.password.as_ref())
            .filter_map(|p| p.resolve().err())
            .collect()
    }
}

/// Reads and checks a credentials file. Fails only when the file cannot be read or an option is
/// invalid; problems in the file are in the returned report.
pub fn read_file(path: &Path, options: &ReadOptions) -> Result<Parsed, Error> {
    let bytes = std::fs::read(path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let mut options = options.clone();
    if options.base_dir.is_none() {
        options.base_dir = path.parent().map(Path::to_path_buf);
    }
    parse_bytes(&bytes, &path.display().to_string(), &options)
}

/// Reads a credentials file and returns its rows, or [`Error::Rejected`] listing every problem.
pub fn load_file(path: &Path, options: &ReadOptions) -> Result<Credentials, Error> {
    read_file(path, options)?.into_credentials()
}

/// Reads and checks credentials from bytes; `file` names the source in locations. Fails only
/// when an option is invalid; any bytes give a report.
pub fn parse_bytes(bytes: &[u8], file: &str, options: &ReadOptions) -> Result<Parsed, Error> {
    let forced_delim = options.delimiter.map(check_delimiter).transpose()?;
    if options.mapping.is_none() && options.header == HeaderMode::Absent {
        return Err(Error::options(
            "a file without a header row needs a column mapping",
            "give the mapping, e.g. --columns login,password,target",
        ));
    }
    if options.header == HeaderMode::Absent
        && options
            .mapping
            .as_ref()
            .is_some_and(ColumnMapping::uses_names)
    {
        return Err(Error::options(
            "the column mapping names header columns but the file has no header row",
            "map columns by number or letter (e.g. login=1,password=2) for a file without a header",
        ));
    }
    let mut r = Reader {
        file,
        options,
        problems: Vec::new(),
        file_arc: Arc::from(file),
        labels: Vec::new(),
        base_dir: options.base_dir.as_deref(),
    };
    let parsed = r.run(bytes, forced_delim);
    tracing::debug!(
        file,
        encoding = parsed.base.encoding.name(),
        delimiter = ?parsed.base.delimiter,
        rows = parsed.base.rows,
        errors = parsed.base.errors,
        warnings = parsed.base.warnings,
        "credentials file checked"
    );
    for p in &parsed.base.problems {
        tracing::debug!(problem = %p, "credentials problem");
    }
    Ok(parsed)
}

struct Reader<'o> {
    file: &'o str,
    options: &'o ReadOptions,
    problems: Vec<Problem>,
    /// The file name, shared by every password's location.
    file_arc: Arc<str>,
    /// Per column: the cell label used in locations, e.g. `C (Password)`.
    labels: Vec<Arc<str>>,
    base_dir: Option<&'o Path>,
}

impl<'o> Reader<'o> {
    fn loc(&self, line: usize, column: usize, col: Option<usize>) -> Location {
        Location {
            file: self.file.to_owned(),
            line,
            column,
            cell: col.map(|c| {
                self.labels
                    .get(c)
                    .map_or_else(|| column_letter(c), |l| l.to_string())
            }),
        }
    }

    fn push(
        &mut self,
        severity: Severity,
        code: ProblemCode,
        location: Location,
        message: String,
        hint: &str,
    ) {
        self.problems.push(Problem {
            severity,
            code,
            location,
            message,
            hint: hint.to_owned(),
        });
    }

    fn run(&mut self, bytes: &[u8], forced_delim: Option<u8>) -> Parsed {
        let mut report = CheckReport {
            file: self.file.to_owned(),
            encoding: TextEncoding::Utf8,
            bom: false,
            encoding_fallback: false,
            delimiter: ',',
            delimiter_detected: false,
            header_line: None,
            format: FileFormat::Unknown,
            columns: Vec::new(),
            rows: 0,
            blank_lines: 0,
            row_limit: self.options.row_limit,
            target_identity: self.options.target_identity,
            passwords_required: self.options.passwords_required,
            errors: 0,
            warnings: 0,
            problems: Vec::new(),
            records: Vec::new(),
        };
        let mut records = Vec::new();
        self.read(bytes, forced_delim, &mut report, &mut records);
        // File order; at one position, problems of the row (syntax, width) before those of a cell.
        self.problems.sort_by_key(|p| {
            (
                p.location.line,
                p.location.column,
                p.location.cell.is_some(),
            )
        });
        report.errors = self.problems.iter().filter(|p| p.is_error()).count();
        report.warnings = self.problems.len() - report.errors;
        report.problems = std::mem::take(&mut self.problems);
        Parsed {
            base: report,
            records,
            full: OnceLock::new(),
        }
    }

    fn read(
        &mut self,
        bytes: &[u8],
        forced_delim: Option<u8>,
        report: &mut CheckReport,
        records: &mut Vec<CredentialRecord>,
    ) {
        if bytes.starts_with(b"PK\x03\x04") || bytes.starts_with(&[0xD0, 0xCF, 0x11, 0xE0]) {
            self.push(
                Severity::Error,
                ProblemCode::NotText,
                self.loc(1, 1, None),
                "this is a spreadsheet workbook (.xlsx/.xls), not a CSV text file".into(),
                "open it in Excel and use File > Save As > \"CSV UTF-8 (Comma delimited)\"",
            );
            return;
        }
        let decoded = decode::decode(bytes, self.options.encoding);
        report.encoding = decoded.encoding;
        report.bom = decoded.bom;
        report.encoding_fallback = decoded.fallback;
        let text: &str = &decoded.text;
        for p in &decoded.problems {
            let (line, column) = line_col(text, p.offset);
            let loc = self.loc(line, column, None);
            self.push(p.severity, p.code, loc, p.message.clone(), &p.hint);
        }
        if let Some(off) = text.find('\0') {
            let (line, column) = line_col(text, off);
            self.push(
                Severity::Error,
                ProblemCode::NotText,
                self.loc(line, column, None),
                "the file contains NUL characters: it is binary or in an encoding other than the one detected".into(),
                "export the list again as \"CSV UTF-8\", or pass the encoding explicitly",
            );
        }

        let delim = match forced_delim {
            Some(d) => d,
            None => {
                let (d, clear) = parse::detect_delimiter(text);
                report.delimiter_detected = clear;
                if !clear && !text.trim().is_empty() {
                    self.push(
                        Severity::Warning,
                        ProblemCode::DelimiterUnclear,
                        self.loc(1, 1, None),
                        "no comma, semicolon, tab or pipe splits the first row into columns; assumed comma".into(),
                        "give the delimiter explicitly (--delimiter) if the file uses another one",
                    );
                }
                d
            }
        };
        report.delimiter = char::from(delim);

        let mut tok = Tokenizer::new(text, delim);
        let mut first = RawRecord {
            line: 0,
            fields: Vec::new(),
        };
        if !tok.next_record_into(&mut first) {
            self.syntax_problems(&tok.problems);
            report.blank_lines = tok.blank_lines;
            let loc = self.loc(1, 1, None);
            self.push(
                Severity::Error,
                ProblemCode::Empty,
                loc,
                "the file has no rows".into(),
                "export the user list again; it should have a header row and one row per mailbox",
            );
            return;
        }

        let layout = self.layout(&first);
        report.header_line = layout.header_line;
        report.format = layout.format;
        report.columns = layout.columns.clone();

        // Stream the data rows, reusing one field buffer.
        // Size the maps and the row vector once from the line count (cheap next to parsing).
        let estimate = text.bytes().filter(|&b| b == b'\n').count().min(1 << 22) + 1;
        let mut logins: FxHashMap<String, usize> =
            FxHashMap::with_capacity_and_hasher(estimate, FxBuild::default());
        let mut targets: FxHashMap<String, usize> =
            FxHashMap::with_capacity_and_hasher(estimate, FxBuild::default());
        records.reserve(estimate);
        let mut rows = 0usize;
        let mut over_limit_line = None;
        let mut reference_width = layout.width;
        let mut rec = RawRecord {
            line: 0,
            fields: Vec::with_capacity(8),
        };
        let mut pending_first = layout.header_line.is_none();
        loop {
            let current = if pending_first {
                pending_first = false;
                &first
            } else if tok.next_record_into(&mut rec) {
                &rec
            } else {
                break;
            };
            rows += 1;
            if over_limit_line.is_none() && self.options.row_limit.is_some_and(|l| rows > l) {
                over_limit_line = Some(current.line);
            }
            if !layout.usable {
                continue;
            }
            let width = *reference_width.get_or_insert_with(|| parse::non_trailing_width(current));
            if let Some(r) = self.row(rows, current, &layout, width, &mut logins, &mut targets) {
                records.push(r);
            }
        }
        report.rows = rows;
        report.blank_lines = tok.blank_lines;
        self.syntax_problems(&tok.problems);
        if rows == 0 {
            let loc = self.loc(first.line, 1, None);
            self.push(
                Severity::Error,
                ProblemCode::Empty,
                loc,
                "the file has a header row but no data rows".into(),
                "add one row per mailbox below the header",
            );
        }
        if self.options.row_limit.is_none() && rows > MICROSOFT_ROW_LIMIT {
            let loc = self.loc(first.line, 1, None);
            self.push(
                Severity::Warning,
                ProblemCode::RowLimit,
                loc,
                format!(
                    "the file has {rows} data rows, more than Microsoft's cap of 50,000 for one \
                     IMAP migration batch file"
                ),
                "nothing to do for this tool, which reads the file whole; only a batch for \
                 Microsoft's own IMAP migration must be split into files of at most 50,000 rows",
            );
        }
        if let (Some(limit), Some(line)) = (self.options.row_limit, over_limit_line) {
            let loc = self.loc(line, 1, None);
            let hint = if limit == MICROSOFT_ROW_LIMIT {
                "split the file into batches of at most 50,000 rows: Microsoft caps one IMAP migration batch file there"
            } else {
                "split the file, or read it with a higher row limit (ReadOptions::row_limit); Microsoft's own IMAP migration caps a batch file at 50,000 rows"
            };
            self.push(
                Severity::Error,
                ProblemCode::RowLimit,
                loc,
                format!("the file has {rows} data rows, more than the limit of {limit}"),
                hint,
            );
        }
    }

    fn syntax_problems(&mut self, problems: &[SyntaxProblem]) {
        for sp in problems {
            match *sp {
                SyntaxProblem::UnterminatedQuote { line, column } => {
                    let loc = self.loc(line, column, None);
                    self.push(
                        Severity::Error,
                        ProblemCode::UnterminatedQuote,
                        loc,
                        "a quoted field opens here and never closes; everything after it was read as one value".into(),
                        "add the closing double quote, and write a quote inside a quoted value as two (\"\")",
                    );
                }
                SyntaxProblem::TextAfterQuote { line, column } => {
                    let loc = self.loc(line, column, None);
                    self.push(
                        Severity::Error,
                        ProblemCode::TextAfterQuote,
                        loc,
                        "text follows the closing quote of a quoted field".into(),
                        "quote the whole value and double any quote inside it: \"pa\"\"ss\" means pa\"ss",
                    );
                }
            }
        }
    }
}

/// 1-based line and character column of a byte offset.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let mut end = offset.min(text.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let before = text.get(..end).unwrap_or("");
    let mut line = 1;
    let mut line_start = 0;
    let b = before.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b.get(i) {
            Some(b'\n') => {
                line += 1;
                line_start = i + 1;
            }
            Some(b'\r') if b.get(i + 1) != Some(&b'\n') => {
                line += 1;
                line_start = i + 1;
            }
            _ => {}
        }
        i += 1;
    }
    let column = before.get(line_start..).map_or(0, |s| s.chars().count()) + 1;
    (line, column)
}
