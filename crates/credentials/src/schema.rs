//! Fields, header aliases and explicit column mappings.

use std::fmt;
use std::str::FromStr;

use serde::Serialize;

use crate::error::Error;

/// A field of a credentials row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum Field {
    /// The login on the source IMAP server (Microsoft `UserName`, CodeTwo `Login`). Required.
    Login,
    /// The source password, or a reference `env:NAME` / `file:PATH`. Required unless the admin
    /// login mode is used.
    Password,
    /// The target mailbox address / UPN (Microsoft `EmailAddress`, or a `Target` column).
    Target,
    /// The password on the target server when it is not the source's (IMAP targets with
    /// per-user login), or a reference `env:NAME` / `file:PATH`.
    TargetPassword,
    /// Microsoft `UserRoot`: the root folder of the user's mailbox on the IMAP server.
    UserRoot,
    /// CodeTwo `First Name`.
    FirstName,
    /// CodeTwo `Last Name`.
    LastName,
    /// CodeTwo `Display Name`.
    DisplayName,
}

impl Field {
    /// All fields.
    pub const ALL: [Field; 8] = [
        Field::Login,
        Field::Password,
        Field::Target,
        Field::TargetPassword,
        Field::UserRoot,
        Field::FirstName,
        Field::LastName,
        Field::DisplayName,
    ];

    /// The canonical name used in mappings and reports (`login`, `password`, `target`, …).
    pub fn name(self) -> &'static str {
        match self {
            Field::Login => "login",
            Field::Password => "password",
            Field::Target => "target",
            Field::TargetPassword => "target-password",
            Field::UserRoot => "user-root",
            Field::FirstName => "first-name",
            Field::LastName => "last-name",
            Field::DisplayName => "display-name",
        }
    }

    /// Header names (normalised: lower case, letters and digits only) accepted for this field.
    pub fn aliases(self) -> &'static [&'static str] {
        match self {
            Field::Login => &[
                "login",
                "username",
                "user",
                "userid",
                "loginname",
                "logon",
                "logonname",
                "imapuser",
                "imaplogin",
                "imapusername",
                "sourcelogin",
                "sourceuser",
                "sourceusername",
                "sourceaccount",
                "sourceemail",
                "sourceaddress",
                "benutzername",
            ],
            Field::Password => &[
                "password",
                "pass",
                "passwd",
                "pwd",
                "imappassword",
                "sourcepassword",
                "passwort",
                "kennwort",
                "motdepasse",
                "contraseña",
                "contrasena",
            ],
            Field::Target => &[
                "emailaddress",
                "email",
                "mail",
                "target",
                "targetaddress",
                "targetemail",
                "targetmailbox",
                "targetupn",
                "targetuser",
                "upn",
                "userprincipalname",
                "destination",
                "destinationaddress",
                "destinationemail",
                "destinationmailbox",
                "o365",
                "office365",
                "microsoft365",
                "m365",
                "newemail",
                "newaddress",
            ],
            Field::TargetPassword => &[
                "targetpassword",
                "targetpass",
                "targetpwd",
                "destinationpassword",
                "newpassword",
            ],
            Field::UserRoot => &["userroot", "root", "imaproot", "mailboxroot"],
            Field::FirstName => &[
                "firstname",
                "givenname",
                "first",
                "forename",
                "vorname",
                "prenom",
            ],
            Field::LastName => &[
                "lastname",
                "surname",
                "familyname",
                "last",
                "nachname",
                "nom",
            ],
            Field::DisplayName => &["displayname", "name", "fullname", "display"],
        }
    }

    /// The field a header names, if any (case-, space- and punctuation-insensitive).
    pub fn from_header(header: &str) -> Option<Field> {
        let n = normalize(header);
        if n.is_empty() {
            return None;
        }
        Field::ALL
            .into_iter()
            .find(|f| f.aliases().contains(&n.as_str()))
    }
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Field {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        Field::from_header(s).ok_or_else(|| {
            Error::options(
                format!("unknown field `{s}` in the column mapping"),
                "use login, password, target, user-root, first-name, last-name or display-name",
            )
        })
    }
}

/// Lower case, letters and digits only: `E-mail Address` → `emailaddress`.
pub(crate) fn normalize(header: &str) -> String {
    header
        .chars()
        .filter(|c| c.is_alphanumeric())
        .flat_map(char::to_lowercase)
        .collect()
}

/// A column of the file, by position or by header name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ColumnRef {
    /// 0-based position (column `A` is 0). Written `1`, `2`… or `A`, `B`… in a mapping string.
    Index(usize),
    /// A header name, matched like headers are (case-, space- and punctuation-insensitively).
    Name(String),
}

/// An explicit column → field mapping, used instead of header recognition (and required for
/// files without a header row).
///
/// Parsed from a string in one of two forms:
/// - named: `login=UserName,password=3,target=B` — each field with a column given by header name,
///   1-based number or spreadsheet letter;
/// - positional: `login,password,-,target` — the fields of columns A, B, C… in order, `-` skipping
///   a column.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ColumnMapping {
    entries: Vec<(Field, ColumnRef)>,
    /// Columns a positional mapping declares (including skipped `-` ones).
    declared: usize,
}

impl ColumnMapping {
    /// An empty mapping; add columns with [`ColumnMapping::with`].
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `field` read from `column`.
    pub fn with(mut self, field: Field, column: ColumnRef) -> Self {
        self.entries.push((field, column));
        self
    }

    /// The entries in the order given.
    pub fn entries(&self) -> &[(Field, ColumnRef)] {
        &self.entries
    }

    /// How many columns a file without a header row may have: the highest mapped column, or
    /// more when a positional mapping skips trailing columns with `-`.
    pub fn width(&self) -> usize {
        let mapped = self
            .entries
            .iter()
            .filter_map(|(_, c)| match c {
                ColumnRef::Index(i) => Some(i.saturating_add(1)),
                ColumnRef::Name(_) => None,
            })
            .max()
            .unwrap_or(0);
        mapped.max(self.declared)
    }

    /// Whether any column is given by header name (then the file must have a header row).
    pub fn uses_names(&self) -> bool {
        self.entries
            .iter()
            .any(|(_, c)| matches!(c, ColumnRef::Name(_)))
    }
}

impl FromStr for ColumnMapping {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        let parts: Vec<&str> = s.split(',').map(str::trim).collect();
        let mut entries = Vec::new();
        let mut declared = 0;
        if parts.iter().any(|p| p.contains('=')) {
            for part in parts.iter().filter(|p| !p.is_empty()) {
                let Some((field, col)) = part.split_once('=') else {
                    return Err(Error::options(
                        format!("column mapping entry `{part}` has no `=`"),
                        "write field=column, e.g. login=UserName,password=3,target=B",
                    ));
                };
                let field: Field = field.trim().parse()?;
                entries.push((field, parse_column(col.trim())?));
            }
        } else {
            declared = parts.len();
            for (i, part) in parts.iter().enumerate() {
                if part.is_empty() || *part == "-" || *part == "_" {
                    continue;
                }
                entries.push((part.parse()?, ColumnRef::Index(i)));
            }
        }
        if entries.is_empty() {
            return Err(Error::options(
                "the column mapping is empty",
                "write e.g. login,password,target or login=1,password=2",
            ));
        }
        let mut seen = Vec::new();
        for (f, _) in &entries {
            if seen.contains(f) {
                return Err(Error::options(
                    format!("the column mapping names field `{f}` twice"),
                    "give each field one column",
                ));
            }
            seen.push(*f);
        }
        Ok(ColumnMapping { entries, declared })
    }
}

fn parse_column(col: &str) -> Result<ColumnRef, Error> {
    if col.is_empty() {
        return Err(Error::options(
            "a column mapping entry has no column",
            "write field=column with a header name, a 1-based number or a letter",
        ));
    }
    if col.bytes().all(|b| b.is_ascii_digit()) {
        return match col.parse::<usize>() {
            Ok(n) if (1..=16_384).contains(&n) => Ok(ColumnRef::Index(n - 1)),
            _ => Err(Error::options(
                format!("column number `{col}` is out of range"),
                "columns are numbered from 1 to 16384",
            )),
        };
    }
    if col.len() <= 2 && col.bytes().all(|b| b.is_ascii_uppercase()) {
        let idx = col
            .bytes()
            .fold(0usize, |acc, b| acc * 26 + usize::from(b - b'A' + 1));
        return Ok(ColumnRef::Index(idx - 1));
    }
    Ok(ColumnRef::Name(col.to_owned()))
}

/// Spreadsheet letter of a 0-based column index: 0 → `A`, 26 → `AA`.
pub fn column_letter(index: usize) -> String {
    let mut n = index.saturating_add(1);
    let mut out = Vec::new();
    while n > 0 {
        let rem = (n - 1) % 26;
        out.push(b'A' + rem as u8);
        n = (n - 1) / 26;
    }
    out.reverse();
    String::from_utf8(out).unwrap_or_default()
}

/// Whether the file has a header row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum HeaderMode {
    /// A header row is expected unless an index-only mapping is given and the first row does not
    /// look like a header.
    #[default]
    Auto,
    /// The first non-blank row is a header.
    Present,
    /// There is no header row; a column mapping must be given.
    Absent,
}

impl FromStr for HeaderMode {
    type Err = Error;
    /// `auto`, `present`/`yes`/`true`, `absent`/`no`/`none`/`false`.
    fn from_str(s: &str) -> Result<Self, Error> {
        match s.trim().to_ascii_lowercase().as_str() {
            "auto" => Ok(HeaderMode::Auto),
            "present" | "yes" | "true" => Ok(HeaderMode::Present),
            "absent" | "no" | "none" | "false" => Ok(HeaderMode::Absent),
            _ => Err(Error::options(
                format!("`{s}` is not a header mode"),
                "use auto, present or absent",
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_match_loosely() {
        assert_eq!(Field::from_header("E-mail Address"), Some(Field::Target));
        assert_eq!(Field::from_header(" User_Name "), Some(Field::Login));
        assert_eq!(Field::from_header("First Name"), Some(Field::FirstName));
        assert_eq!(Field::from_header("PASSWORD"), Some(Field::Password));
        assert_eq!(Field::from_header("Notes"), None);
    }

    #[test]
    fn mappings_parse() {
        let m: ColumnMapping = "login=UserName, password=3,target=B".parse().unwrap();
        assert_eq!(
            m.entries(),
            &[
                (Field::Login, ColumnRef::Name("UserName".into())),
                (Field::Password, ColumnRef::Index(2)),
                (Field::Target, ColumnRef::Index(1)),
            ]
        );
        let m: ColumnMapping = "login,-,password".parse().unwrap();
        assert_eq!(
            m.entries(),
            &[
                (Field::Login, ColumnRef::Index(0)),
                (Field::Password, ColumnRef::Index(2))
            ]
        );
        assert!("login=1,login=2".parse::<ColumnMapping>().is_err());
        assert!("bogus".parse::<ColumnMapping>().is_err());
        assert!("login=0".parse::<ColumnMapping>().is_err());
        assert!(
            "login=18446744073709551615"
                .parse::<ColumnMapping>()
                .is_err()
        );
    }

    #[test]
    fn letters() {
        assert_eq!(column_letter(0), "A");
        assert_eq!(column_letter(25), "Z");
        assert_eq!(column_letter(26), "AA");
        assert_eq!(column_letter(701), "ZZ");
        assert_eq!(column_letter(702), "AAA");
    }
}

/// What the target column names, which decides how it is checked: the job's target kind knows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum TargetIdentity {
    /// A mailbox address or UPN (Microsoft Graph, EWS): `name@domain`.
    #[default]
    Address,
    /// An IMAP username, with or without `@` (Dovecot, Cyrus and Courier often use bare
    /// names): no spaces or control characters.
    Username,
    /// A name used as a folder on disk (EML export): no path separators, `.`/`..`, or control
    /// characters.
    FolderName,
}

impl TargetIdentity {
    /// The rule for people ("a Microsoft 365 address or UPN", …).
    pub fn describe(self) -> &'static str {
        match self {
            TargetIdentity::Address => "a Microsoft 365 address or UPN (name@domain)",
            TargetIdentity::Username => "an IMAP username (with or without @)",
            TargetIdentity::FolderName => "a folder name for the export (no / or \\)",
        }
    }

    /// Why `value` is not an identity of this kind, or `None` when it is.
    pub fn problem(self, value: &str) -> Option<&'static str> {
        match self {
            TargetIdentity::Address => crate::read::address_problem(value),
            TargetIdentity::Username => {
                if value.chars().any(|c| c.is_whitespace() || c.is_control()) {
                    Some("contains a space or a control character")
                } else if value.len() > 255 {
                    Some("is longer than 255 characters")
                } else {
                    None
                }
            }
            TargetIdentity::FolderName => {
                if value == "." || value == ".." {
                    Some("is `.` or `..`")
                } else if value
                    .chars()
                    .any(|c| c == '/' || c == '\\' || c.is_control())
                {
                    Some("contains / or \\ or a control character")
                } else if value.len() > 255 {
                    Some("is longer than 255 bytes")
                } else {
                    None
                }
            }
        }
    }
}
