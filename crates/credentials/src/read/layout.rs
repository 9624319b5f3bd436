//! Header and column recognition: from the first record and the options, which row is the
//! header, which column holds which field, the file's format and the width a row should have.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::sync::Arc;

use super::Reader;
use crate::parse::{self, RawRecord};
use crate::report::{ColumnInfo, FileFormat, ProblemCode, Severity};
use crate::schema::{ColumnMapping, ColumnRef, Field, HeaderMode, column_letter, normalize};

/// Columns a mapping may name (Excel's last column is XFD = 16,384).
const MAX_COLUMNS: usize = 16_384;

pub(super) struct Layout {
    pub(super) header_line: Option<usize>,
    /// Column of each field.
    pub(super) column_of: HashMap<Field, usize>,
    pub(super) format: FileFormat,
    /// Number of columns a row should have, if known.
    pub(super) width: Option<usize>,
    pub(super) columns: Vec<ColumnInfo>,
    /// Whether rows can be turned into records (the login column is known).
    pub(super) usable: bool,
}

impl Reader<'_> {
    /// Decides header, column fields and format from the first record.
    pub(super) fn layout(&mut self, first: &RawRecord<'_>) -> Layout {
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
                                "known columns: Login/UserName, Password, EmailAddress/Target, Target Password, UserRoot, First Name, Last Name, Display Name; or give a column mapping",
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
}

fn label(index: usize, header: Option<&str>, field: Option<Field>) -> String {
    let letter = column_letter(index);
    match (header, field) {
        (Some(h), _) => format!("{letter} ({h})"),
        (None, Some(f)) => format!("{letter} ({f})"),
        (None, None) => letter,
    }
}
