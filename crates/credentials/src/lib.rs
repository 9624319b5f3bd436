//! Reads the mailbox credentials files admins bring to a migration — read right, or rejected
//! with the line, the column and the fix.
//!
//! - **Formats**: CodeTwo (`Login`, `Password`, optional `First Name`, `Last Name`,
//!   `Display Name`), Microsoft's IMAP migration batch (`EmailAddress`, `UserName`, `Password`,
//!   optional `UserRoot`), and an optional target column (`Target`, `UPN`, …). Headers match
//!   case-, space- and punctuation-insensitively with aliases ([`Field::aliases`]); an explicit
//!   [`ColumnMapping`] replaces them and allows files without a header row.
//! - **Reading**: delimiter detection (comma, semicolon, tab, pipe) or override; quoted fields with
//!   delimiters, quotes and line breaks; byte order marks; UTF-8, UTF-16 LE/BE (Excel's "Unicode
//!   text"), Windows-1252 fallback reported as a warning; blank lines; trailing delimiters.
//! - **Validation**: every problem is a [`Problem`] at `file:line:column` with a hint — required
//!   cells, addresses, duplicate logins, an optional row limit (none by default; past
//!   Microsoft's [`MICROSOFT_ROW_LIMIT`] for its own batch files a warning says so).
//! - **Secrets**: passwords are [`Secret`]s that never print; a cell may say `env:NAME` or
//!   `file:PATH` instead ([`PasswordSource`]), resolved on demand.
//! - **Admin login**: [`LoginMode::Admin`] turns each row into an [`ImapLogin`] for a Dovecot
//!   master user (`user*admin`) or a SASL PLAIN authorization identity.
//! - **Report**: [`CheckReport`] is what `o365-migrate credentials check` prints, as JSON
//!   ([`CheckReport::to_json`]) or text ([`CheckReport::render_human`]).
//!
//! ```
//! use o365_migrate_credentials::{parse_bytes, LoginMode, ReadOptions};
//!
//! let csv = b"EmailAddress,UserName,Password\r\n\
//!             terrya@contoso.edu,contoso\\terry.adams,1091990\r\n\
//!             annb@contoso.edu,contoso\\ann.beebe,2111991\r\n";
//! let parsed = parse_bytes(csv, "users.csv", &ReadOptions::default())?;
//! assert_eq!(parsed.report().rows, 2);
//! assert!(!parsed.report().to_json().contains("1091990")); // masked
//!
//! let creds = parsed.into_credentials()?; // refuses a file with errors
//! let first = &creds.records()[0];
//! assert_eq!(first.login, "contoso\\terry.adams");
//! assert_eq!(first.target.as_deref(), Some("terrya@contoso.edu"));
//!
//! let login = LoginMode::PerUser.login_for(first, "users.csv")?;
//! assert_eq!(login.authcid, "contoso\\terry.adams");
//! assert_eq!(login.secret.expose(), "1091990");
//! assert_eq!(format!("{login:?}").contains("1091990"), false);
//! # Ok::<(), o365_migrate_credentials::Error>(())
//! ```

mod decode;
mod error;
#[cfg(feature = "fuzzing")]
pub mod fuzzing;
mod fxhash;
mod login;
mod parse;
mod read;
mod report;
mod schema;
mod secret;

pub use decode::TextEncoding;
pub use error::Error;
pub use login::{AdminLogin, AdminStyle, ImapLogin, LoginMode};
pub use read::{
    CredentialRecord, Credentials, MICROSOFT_ROW_LIMIT, Parsed, ReadOptions, load_file,
    parse_bytes, parse_delimiter, read_file,
};
pub use report::{
    CheckReport, ColumnInfo, FileFormat, Location, MASK, Problem, ProblemCode, RecordSummary,
    Severity,
};
pub use schema::{ColumnMapping, ColumnRef, Field, HeaderMode, TargetIdentity, column_letter};
pub use secret::{PasswordKind, PasswordSource, Secret};

/// The README's examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
