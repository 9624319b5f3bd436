//! Reading and validating a credentials file.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use crate::decode::{self, TextEncoding};
use crate::error::Error;
use crate::fxhash::{FxBuild, FxHashMap};
use crate::parse::{self, RawRecord, SyntaxProblem, Tokenizer};
use crate::report::{
    CheckReport, ColumnInfo, FileFormat, Location, Problem, ProblemCode, RecordSummary, Severity,
};
use crate::schema::{ColumnMapping, ColumnRef, Field, HeaderMode, column_letter, normalize};
use crate::secret::{CellAt, PasswordSource};

/// Columns a mapping may name (Excel's last column is XFD = 16,384).
const MAX_COLUMNS: usize = 16_384;

/// Microsoft's cap on rows in a CSV file for an IMAP migration batch; our default row limit.
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
    /// Maximum number of data rows; `None` for no limit. Default [`MICROSOFT_ROW_LIMIT`].
    pub row_limit: Option<usize>,
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
            row_limit: Some(MICROSOFT_ROW_LIMIT),
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

    /// Sets the row limit (`None`: unlimited).
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

struct Layout {
    header_line: Option<usize>,
    /// Column of each field.
    column_of: HashMap<Field, usize>,
    format: FileFormat,
    /// Number of columns a row should have, if known.
    width: Option<usize>,
    columns: Vec<ColumnInfo>,
    /// Whether rows can be turned into records (the login column is known).
    usable: bool,
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
        if let (Some(limit), Some(line)) = (self.options.row_limit, over_limit_line) {
            let loc = self.loc(line, 1, None);
            let hint = if limit == MICROSOFT_ROW_LIMIT {
                "split the file into batches; Microsoft caps an IMAP migration batch file at 50,000 rows, and this tool applies the same default — raise it with --max-rows if you mean to run one larger batch"
            } else {
                "split the file, or raise the limit (--max-rows); Microsoft's own IMAP migration caps a batch file at 50,000 rows"
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

    /// Decides header, column fields and format from the first record.
    fn layout(&mut self, first: &RawRecord<'_>) -> Layout {
        let header_cells: Vec<&str> = first.fields.iter().map(|f| f.value.as_ref()).collect();
        // A header names at least two fields (or is a single recognised column); one data cell
        // that happens to read like a header name (`root`, `user`) is not enough.
        let recognised = header_cells
            .iter()
            .filter(|c| Field::from_header(c).is_some())
            .count();
        let looks_like_header = recognised >= 2 || (recognised == 1 && header_cells.len() == 1);
        let has_header = match (&self.options.mapping, self.options.header) {
            (_, HeaderMode::Present) => true,
            (_, HeaderMode::Absent) => false,
            (None, HeaderMode::Auto) => true,
            (Some(m), HeaderMode::Auto) => m.uses_names() || looks_like_header,
        };
        let header_width = if has_header {
            parse::non_trailing_width(first)
        } else {
            0
        };
        let header_text = |i: usize| -> Option<String> {
            if has_header {
                header_cells
                    .get(i)
                    .map(|s| s.trim().to_owned())
                    .filter(|s| !s.is_empty())
            } else {
                None
            }
        };

        let mut fields: Vec<Option<Field>> = vec![None; header_width];
        let mut column_of: HashMap<Field, usize> = HashMap::new();
        let format;
        let field_loc = |i: usize| -> (usize, usize) {
            first
                .fields
                .get(i)
                .map_or((first.line, 1), |f| (f.line, f.column))
        };

        // Labels are needed for problem locations below.
        self.labels = (0..header_width)
            .map(|i| Arc::from(label(i, header_text(i).as_deref(), None)))
            .collect();

        match &self.options.mapping {
            Some(mapping) => {
                format = FileFormat::Mapped;
                for (field, col) in mapping.entries() {
                    let idx = match col {
                        ColumnRef::Index(i) => {
                            if *i >= MAX_COLUMNS {
                                let loc = self.loc(first.line, 1, None);
                                self.push(
                                    Severity::Error,
                                    ProblemCode::BadMapping,
                                    loc,
                                    format!("the mapping puts {field} in column {}, beyond the last column a spreadsheet has ({MAX_COLUMNS})", i.saturating_add(1)),
                                    "check the column numbers in the mapping (they start at 1)",
                                );
                                continue;
                            }
                            if has_header && *i >= header_width {
                                let (l, c) = (first.line, 1);
                                let loc = self.loc(l, c, None);
                                self.push(
                                    Severity::Error,
                                    ProblemCode::BadMapping,
                                    loc,
                                    format!(
                                        "the mapping puts {field} in column {} but the header has only {header_width} column(s)",
                                        column_letter(*i)
                                    ),
                                    "check the column numbers in the mapping (they start at 1)",
                                );
                                continue;
                            }
                            *i
                        }
                        ColumnRef::Name(name) => {
                            let want = normalize(name);
                            match header_cells.iter().position(|c| normalize(c) == want) {
                                Some(i) => i,
                                None => {
                                    let loc = self.loc(first.line, 1, None);
                                    self.push(
                                        Severity::Error,
                                        ProblemCode::BadMapping,
                                        loc,
                                        format!("the mapping reads {field} from column `{name}`, which the header does not have"),
                                        "use a header name from line 1, a column number or a letter",
                                    );
                                    continue;
                                }
                            }
                        }
                    };
                    if fields.len() <= idx {
                        fields.resize(idx + 1, None);
                    }
                    if let Some(slot) = fields.get_mut(idx) {
                        *slot = Some(*field);
                    }
                    column_of.insert(*field, idx);
                }
            }
            None => {
                let normalized: Vec<String> = header_cells.iter().map(|c| normalize(c)).collect();
                let has = |n: &str| normalized.iter().any(|h| h == n);
                format = if has("emailaddress") && has("username") {
                    FileFormat::Microsoft
                } else if has("login") && has("password") {
                    FileFormat::CodeTwo
                } else {
                    FileFormat::Aliases
                };
                for i in 0..header_width {
                    let text = header_cells.get(i).copied().unwrap_or("");
                    let Some(field) = Field::from_header(text) else {
                        if !text.trim().is_empty() && looks_like_header {
                            let (l, c) = field_loc(i);
                            let loc = self.loc(l, c, Some(i));
                            self.push(
                                Severity::Warning,
                                ProblemCode::UnknownColumn,
                                loc,
                                format!("column `{}` is not a credentials field and is ignored", text.trim()),
                                "known columns: Login/UserName, Password, EmailAddress/Target, UserRoot, First Name, Last Name, Display Name; or give a column mapping",
                            );
                        }
                        continue;
                    };
                    match column_of.entry(field) {
                        Entry::Occupied(e) => {
                            let prev = *e.get();
                            let (l, c) = field_loc(i);
                            let loc = self.loc(l, c, Some(i));
                            self.push(
                                Severity::Error,
                                ProblemCode::DuplicateColumn,
                                loc,
                                format!(
                                    "columns {} and {} both name the {field} field",
                                    self.labels
                                        .get(prev)
                                        .map(|l| l.to_string())
                                        .unwrap_or_default(),
                                    self.labels
                                        .get(i)
                                        .map(|l| l.to_string())
                                        .unwrap_or_default()
                                ),
                                "remove or rename one of them, or give a column mapping",
                            );
                        }
                        Entry::Vacant(v) => {
                            v.insert(i);
                            if let Some(slot) = fields.get_mut(i) {
                                *slot = Some(field);
                            }
                        }
                    }
                }
            }
        }

        // Final labels include the field for mapped columns without a header.
        self.labels = fields
            .iter()
            .enumerate()
            .map(|(i, f)| Arc::from(label(i, header_text(i).as_deref(), *f)))
            .collect();
        let columns = fields
            .iter()
            .enumerate()
            .map(|(i, f)| ColumnInfo {
                number: i + 1,
                letter: column_letter(i),
                header: header_text(i),
                field: *f,
            })
            .collect();

        let header_line = has_header.then_some(first.line);
        if !has_header && self.options.header == HeaderMode::Auto {
            let loc = self.loc(first.line, 1, None);
            self.push(
                Severity::Warning,
                ProblemCode::HeaderAssumed,
                loc,
                "no header row recognised: this first row is read as data".into(),
                "if the file has a header with other names, say so (header present) or map columns by header name; say \"no header\" explicitly to silence this warning",
            );
        }
        let mut usable = true;
        let hl = first.line;
        if !column_of.contains_key(&Field::Login) {
            usable = false;
            let loc = self.loc(hl, 1, None);
            if column_of.is_empty() && self.options.mapping.is_none() {
                self.push(
                    Severity::Error,
                    ProblemCode::NoHeader,
                    loc,
                    if header_cells.iter().any(|c| c.contains('@')) {
                        "the first row looks like data, not a header: no column names a credentials field".into()
                    } else {
                        "the first row is not a header this tool knows: no column names a credentials field".into()
                    },
                    "start the file with a header such as Login,Password (CodeTwo) or EmailAddress,UserName,Password (Microsoft), or give a column mapping for a file without a header (e.g. --columns login,password,target)",
                );
            } else {
                let microsoft = header_cells.iter().any(|c| normalize(c) == "emailaddress");
                let hint = if microsoft {
                    "Microsoft's format needs a UserName column with the IMAP login; if the login is the address itself, add UserName with the same values, or map it: --columns login=EmailAddress,password=Password"
                } else {
                    "add a Login (or UserName) column with each mailbox's IMAP login, or name it in the column mapping"
                };
                self.push(
                    Severity::Error,
                    ProblemCode::MissingColumn,
                    loc,
                    "no login column (Login / UserName)".into(),
                    hint,
                );
            }
        }
        match (
            column_of.get(&Field::Password),
            self.options.passwords_required,
        ) {
            (None, true) if !(column_of.is_empty() && self.options.mapping.is_none()) => {
                let loc = self.loc(hl, 1, None);
                self.push(
                    Severity::Error,
                    ProblemCode::MissingColumn,
                    loc,
                    "no password column".into(),
                    "add a Password column (the password, or env:NAME / file:PATH to keep it out of the file), or use the admin login mode",
                );
            }
            (Some(&i), false) => {
                let (l, c) = field_loc(i);
                let loc = self.loc(l, c, Some(i));
                self.push(
                    Severity::Warning,
                    ProblemCode::PasswordIgnored,
                    loc,
                    "per-user passwords are not needed in admin login mode; the admin credential is used".into(),
                    "remove the column to keep passwords out of the file",
                );
            }
            _ => {}
        }
        // Without a header the mapping says how wide a row is; a wider row is misaligned (often a
        // password with an unquoted delimiter) and must not be read cell by cell.
        let width = if has_header {
            Some(header_width)
        } else {
            self.options.mapping.as_ref().map(ColumnMapping::width)
        };
        Layout {
            header_line,
            column_of,
            format,
            width,
            columns,
            usable,
        }
    }

    /// Validates one data row and builds its record (when it has a login). Locations are built
    /// only when a problem is reported, so a clean row allocates little.
    fn row(
        &mut self,
        row: usize,
        rec: &RawRecord<'_>,
        layout: &Layout,
        expected: usize,
        logins: &mut FxHashMap<String, usize>,
        targets: &mut FxHashMap<String, usize>,
    ) -> Option<CredentialRecord> {
        let width = parse::non_trailing_width(rec);
        if width > expected {
            let extra = rec.fields.get(expected);
            let (l, c) = extra.map_or((rec.line, 1), |f| (f.line, f.column));
            let loc = self.loc(l, c, None);
            let against = if layout.header_line.is_some() {
                "the header"
            } else {
                "the column mapping"
            };
            self.push(
                Severity::Error,
                ProblemCode::ExtraFields,
                loc,
                format!("this row has {width} fields but {against} has {expected}"),
                "a delimiter inside a value (often a password) splits it: put that value in double quotes",
            );
            // The cells are not where the header says; checking them would only add noise.
            return None;
        } else if rec.fields.len() < expected && layout.header_line.is_some() {
            let loc = self.loc(rec.line, 1, None);
            self.push(
                Severity::Warning,
                ProblemCode::ShortRow,
                loc,
                format!(
                    "this row has {} field(s) but the header has {expected}; missing cells are read as empty",
                    rec.fields.len()
                ),
                "check that no cell was lost when the file was exported",
            );
        }
        // (value, line, column, column index) of a field's cell; a missing cell is empty and
        // located at the start of the row.
        let cell = |f: Field| -> Option<(&str, Pos)> {
            let col = *layout.column_of.get(&f)?;
            Some(match rec.fields.get(col) {
                Some(rf) => (
                    rf.value.as_ref(),
                    Pos {
                        line: rf.line,
                        column: rf.column,
                        col,
                    },
                ),
                None => (
                    "",
                    Pos {
                        line: rec.line,
                        column: 1,
                        col,
                    },
                ),
            })
        };

        // Login.
        let (login, login_at) = cell(Field::Login).unwrap_or((
            "",
            Pos {
                line: rec.line,
                column: 1,
                col: 0,
            },
        ));
        let login_trimmed = login.trim();
        if login_trimmed.is_empty() {
            self.push_at(
                Severity::Error,
                ProblemCode::EmptyCell,
                login_at,
                "the login is empty".into(),
                "fill in the IMAP login (e.g. contoso\\terry.adams or terry@contoso.com) or delete the row",
            );
        } else {
            if login_trimmed.len() != login.len() {
                self.push_at(
                    Severity::Warning,
                    ProblemCode::Whitespace,
                    login_at,
                    format!("spaces around the login `{login_trimmed}` were removed"),
                    "remove them in the file to silence this warning",
                );
            }
            if login_trimmed.chars().any(char::is_control) {
                self.push_at(
                    Severity::Error,
                    ProblemCode::ControlCharacter,
                    login_at,
                    "the login contains a line break or control character".into(),
                    "check the quoting on this row: an unbalanced quote can swallow a line break",
                );
            } else if login_trimmed.chars().any(char::is_whitespace) {
                self.push_at(
                    Severity::Warning,
                    ProblemCode::Whitespace,
                    login_at,
                    format!("the login `{login_trimmed}` contains a space"),
                    "IMAP logins rarely contain spaces; check the value",
                );
            } else if login_trimmed.contains('@')
                && let Some(why) = address_problem(login_trimmed)
            {
                self.push_at(
                    Severity::Warning,
                    ProblemCode::BadAddress,
                    login_at,
                    format!("the login `{login_trimmed}` looks like an address but {why}"),
                    "check the login; it is used exactly as written",
                );
            }
            // With an admin login (Microsoft's Courier style) every row has the same UserName
            // and a different UserRoot; the pair is what must be unique.
            let mut key = login_trimmed.to_lowercase();
            if let Some((root, _)) = cell(Field::UserRoot) {
                key.push('\0');
                key.push_str(root.trim());
            }
            if let Some(first_line) = first_seen(logins, key, rec.line) {
                self.push_at(
                    Severity::Error,
                    ProblemCode::DuplicateLogin,
                    login_at,
                    format!("the login `{login_trimmed}` already appears on line {first_line}"),
                    "keep one row per mailbox (logins are compared case-insensitively)",
                );
            }
        }

        // Password.
        let mut password = None;
        if let Some((value, at)) = cell(Field::Password) {
            if value.is_empty() {
                if self.options.passwords_required {
                    self.push_at(
                        Severity::Error,
                        ProblemCode::EmptyCell,
                        at,
                        "the password is empty".into(),
                        "fill it in, or write env:NAME / file:PATH to keep it out of the file, or use the admin login mode",
                    );
                }
            } else if value.contains(['\r', '\n', '\0']) {
                self.push_at(
                    Severity::Error,
                    ProblemCode::ControlCharacter,
                    at,
                    "the password contains a line break".into(),
                    "IMAP cannot send it; this is usually a quoting mistake: check the quotes on this row",
                );
            } else {
                if value.trim().len() != value.len() {
                    self.push_at(
                        Severity::Warning,
                        ProblemCode::Whitespace,
                        at,
                        "the password starts or ends with a space; it is kept as written".into(),
                        "remove the space if it is not part of the password",
                    );
                }
                let cell_at = CellAt {
                    file: Arc::clone(&self.file_arc),
                    line: at.line,
                    column: at.column,
                    cell: self.labels.get(at.col).cloned(),
                };
                match PasswordSource::from_cell(
                    value,
                    cell_at,
                    self.base_dir,
                    self.options.secret_references,
                ) {
                    Ok(src) => {
                        if self.options.resolve_secrets
                            && let Err(Error::Secret { message, hint, .. }) = src.resolve()
                        {
                            self.push_at(
                                Severity::Error,
                                ProblemCode::UnresolvedSecret,
                                at,
                                message,
                                &hint,
                            );
                        }
                        password = Some(src);
                    }
                    Err((message, hint)) => {
                        self.push_at(
                            Severity::Error,
                            ProblemCode::BadPasswordReference,
                            at,
                            message,
                            &hint,
                        );
                    }
                }
            }
        }

        // Target.
        let mut target = None;
        if let Some((value, at)) = cell(Field::Target) {
            let t = value.trim();
            if t.is_empty() {
                if layout.format == FileFormat::Microsoft {
                    self.push_at(
                        Severity::Error,
                        ProblemCode::EmptyCell,
                        at,
                        "EmailAddress (the Microsoft 365 mailbox) is empty".into(),
                        "fill in the target mailbox address; Microsoft's format requires it on every row",
                    );
                }
            } else if let Some(why) = address_problem(t) {
                self.push_at(
                    Severity::Error,
                    ProblemCode::BadAddress,
                    at,
                    format!("the target `{t}` is not a valid address: it {why}"),
                    "write the Microsoft 365 address or UPN, e.g. terrya@contoso.com",
                );
            } else {
                if t.len() != value.len() {
                    self.push_at(
                        Severity::Warning,
                        ProblemCode::Whitespace,
                        at,
                        format!("spaces around the target `{t}` were removed"),
                        "remove them in the file to silence this warning",
                    );
                }
                if let Some(first_line) = first_seen(targets, t.to_lowercase(), rec.line) {
                    self.push_at(
                        Severity::Warning,
                        ProblemCode::DuplicateTarget,
                        at,
                        format!("the target `{t}` is also the target on line {first_line}; both source mailboxes go into it"),
                        "fine for merging mailboxes; otherwise correct one of the rows",
                    );
                }
                target = Some(t.to_owned());
            }
        }

        if login_trimmed.is_empty() {
            return None;
        }
        let text = |f: Field| -> Option<String> {
            cell(f)
                .map(|(v, _)| v.trim())
                .filter(|v| !v.is_empty())
                .map(str::to_owned)
        };
        Some(CredentialRecord {
            row,
            line: rec.line,
            login: login_trimmed.to_owned(),
            password,
            target,
            user_root: text(Field::UserRoot),
            first_name: text(Field::FirstName),
            last_name: text(Field::LastName),
            display_name: text(Field::DisplayName),
        })
    }

    fn push_at(
        &mut self,
        severity: Severity,
        code: ProblemCode,
        at: Pos,
        message: String,
        hint: &str,
    ) {
        let loc = self.loc(at.line, at.column, Some(at.col));
        self.push(severity, code, loc, message, hint);
    }
}

/// A cell's position, kept cheap until a problem needs a [`Location`].
#[derive(Clone, Copy)]
struct Pos {
    line: usize,
    column: usize,
    col: usize,
}

/// Records `key` as seen on `line`; returns the earlier line if it was seen before.
fn first_seen(map: &mut FxHashMap<String, usize>, key: String, line: usize) -> Option<usize> {
    match map.entry(key) {
        Entry::Occupied(e) => Some(*e.get()),
        Entry::Vacant(v) => {
            v.insert(line);
            None
        }
    }
}

fn label(index: usize, header: Option<&str>, field: Option<Field>) -> String {
    let letter = column_letter(index);
    match (header, field) {
        (Some(h), _) => format!("{letter} ({h})"),
        (None, Some(f)) => format!("{letter} ({f})"),
        (None, None) => letter,
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

/// Why `s` is not a well-formed address (`local@domain.tld`), or `None` when it is.
pub(crate) fn address_problem(s: &str) -> Option<&'static str> {
    if s.len() > 254 {
        return Some("is longer than 254 characters");
    }
    let mut parts = s.split('@');
    let (Some(local), Some(domain), None) = (parts.next(), parts.next(), parts.next()) else {
        return Some(if s.contains('@') {
            "has more than one @"
        } else {
            "has no @"
        });
    };
    if local.is_empty() {
        return Some("has nothing before the @");
    }
    if domain.is_empty() {
        return Some("has nothing after the @");
    }
    if s.chars()
        .any(|c| c.is_whitespace() || c.is_control() || "<>()[]\\,;:\"".contains(c))
    {
        return Some("contains a space or a character not allowed in an address");
    }
    if local.len() > 64 {
        return Some("has a part before the @ longer than 64 characters");
    }
    if local.starts_with('.') || local.ends_with('.') || local.contains("..") {
        return Some("has a misplaced dot before the @");
    }
    if !domain.contains('.') {
        return Some("has a domain without a dot (expected e.g. contoso.com)");
    }
    for labelpart in domain.split('.') {
        if labelpart.is_empty() {
            return Some("has an empty part in its domain (two dots, or a dot at an end)");
        }
        if labelpart.len() > 63 {
            return Some("has a domain part longer than 63 characters");
        }
        if labelpart.starts_with('-') || labelpart.ends_with('-') {
            return Some("has a domain part starting or ending with a hyphen");
        }
        if !labelpart.chars().all(|c| c.is_alphanumeric() || c == '-') {
            return Some("has a character not allowed in a domain");
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses() {
        assert_eq!(address_problem("terrya@contoso.edu"), None);
        assert_eq!(address_problem("a.b+c@sub.contoso.co.uk"), None);
        assert!(address_problem("terrya").is_some());
        assert!(address_problem("a@@b.com").is_some());
        assert!(address_problem("a@b").is_some());
        assert!(address_problem("a b@c.com").is_some());
        assert!(address_problem("a@-b.com").is_some());
        assert!(address_problem(".a@b.com").is_some());
        assert!(address_problem("a@b..com").is_some());
    }

    #[test]
    fn line_and_column() {
        assert_eq!(line_col("ab\ncé\r\nx\ry", 0), (1, 1));
        assert_eq!(line_col("ab\ncé\r\nx\ry", 3), (2, 1));
        assert_eq!(line_col("ab\ncé\r\nx\ry", 6), (2, 3));
        assert_eq!(line_col("ab\ncé\r\nx\ry", 8), (3, 1));
        assert_eq!(line_col("ab\ncé\r\nx\ry", 10), (4, 1));
    }

    #[test]
    fn delimiters_parse() {
        assert_eq!(parse_delimiter("tab").unwrap(), '\t');
        assert_eq!(parse_delimiter(";").unwrap(), ';');
        assert!(parse_delimiter("\"").is_err());
        assert!(parse_delimiter("ab").is_err());
        assert!(parse_delimiter("a").is_err());
    }
}
