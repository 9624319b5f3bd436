//! Validating one data row: the width against the header or mapping, then login, password and
//! target, and building its [`CredentialRecord`].

use std::collections::hash_map::Entry;
use std::sync::Arc;

use super::{CredentialRecord, Reader, layout::Layout};
use crate::error::Error;
use crate::fxhash::FxHashMap;
use crate::parse::{self, RawRecord};
use crate::report::{FileFormat, ProblemCode, Severity};
use crate::schema::{Field, TargetIdentity};
use crate::secret::{CellAt, PasswordSource};

impl Reader<'_> {
    /// Validates one data row and builds its record (when it has a login). Locations are built
    /// only when a problem is reported, so a clean row allocates little.
    pub(super) fn row(
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

        // Passwords: the source's, and the target's when it differs (IMAP targets).
        let password = cell(Field::Password)
            .and_then(|(value, at)| self.password_cell(value, at, "the password", true));
        let target_password = cell(Field::TargetPassword)
            .and_then(|(value, at)| self.password_cell(value, at, "the target password", false));

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
            } else if let Some(why) = self.options.target_identity.problem(t) {
                let kind = self.options.target_identity;
                self.push_at(
                    Severity::Error,
                    ProblemCode::BadAddress,
                    at,
                    format!("the target `{t}` is not {}: it {why}", kind.describe()),
                    match kind {
                        TargetIdentity::Address => {
                            "write the Microsoft 365 address or UPN, e.g. terrya@contoso.com"
                        }
                        TargetIdentity::Username => {
                            "write the target server's login name, e.g. terrya or terrya@example.org"
                        }
                        TargetIdentity::FolderName => {
                            "write a name without path separators, e.g. terrya"
                        }
                    },
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
            target_password,
            target,
            user_root: text(Field::UserRoot),
            first_name: text(Field::FirstName),
            last_name: text(Field::LastName),
            display_name: text(Field::DisplayName),
        })
    }

    /// Checks a password cell (`what` names it in messages) and reads it as a password or a
    /// reference. An empty cell is an error only for the source password, and only when
    /// passwords are required.
    fn password_cell(
        &mut self,
        value: &str,
        at: Pos,
        what: &str,
        required: bool,
    ) -> Option<PasswordSource> {
        if value.is_empty() {
            if required && self.options.passwords_required {
                self.push_at(
                    Severity::Error,
                    ProblemCode::EmptyCell,
                    at,
                    format!("{what} is empty"),
                    "fill it in, or write env:NAME / file:PATH to keep it out of the file, or use the admin login mode",
                );
            }
            return None;
        }
        if value.contains(['\r', '\n', '\0']) {
            self.push_at(
                Severity::Error,
                ProblemCode::ControlCharacter,
                at,
                format!("{what} contains a line break"),
                "IMAP cannot send it; this is usually a quoting mistake: check the quotes on this row",
            );
            return None;
        }
        if value.trim().len() != value.len() {
            self.push_at(
                Severity::Warning,
                ProblemCode::Whitespace,
                at,
                format!("{what} starts or ends with a space; it is kept as written"),
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
                Some(src)
            }
            Err((message, hint)) => {
                self.push_at(
                    Severity::Error,
                    ProblemCode::BadPasswordReference,
                    at,
                    message,
                    &hint,
                );
                None
            }
        }
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

/// A cell's position, kept cheap until a problem needs a [`Location`](crate::report::Location).
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
