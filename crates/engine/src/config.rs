//! The job file (`o365-migrate.toml`): typed, strict, located errors.
//!
//! Every table rejects unknown keys. Errors name the file, line and column and end with a hint,
//! for example `unknown key `conections` in [source] at o365-migrate.toml:12:1; did you mean
//! `connections_per_host`?`. Secrets are accepted only by reference ([`SecretRef`]: `env:NAME` or
//! `file:/path`); a literal secret is an error that says how to fix it and never repeats the value.
//!
//! Relative paths in the job file (credentials, state, report, log, `file:` secrets, …) are
//! resolved against the directory holding the job file, so a cron job works from any directory.
//!
//! ```
//! let job = o365_migrate_engine::config::Job::parse(
//!     o365_migrate_engine::config::TEMPLATE,
//!     "o365-migrate.toml",
//! ).unwrap();
//! assert_eq!(job.source.port(), 993);
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};

use crate::error::{Error, Location, Result};
use o365_migrate_target::{Cloud, WellKnownFolder};

/// The commented job-file template written by `o365-migrate init`. It parses (tested) and
/// documents every key.
pub const TEMPLATE: &str = include_str!("template.toml");

/// A parsed, validated job file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Job {
    /// `[source]`: the IMAP server mail is read from.
    pub source: Source,
    /// `[target]`: where mail is written.
    pub target: Target,
    /// `[matching]`: how source users are matched to target mailboxes.
    #[serde(default)]
    pub matching: Matching,
    /// `[filters]`: which messages and folders are migrated.
    #[serde(default)]
    pub filters: Filters,
    /// `[folders]`: folder-mapping rules and system-folder handling.
    #[serde(default)]
    pub folders: FolderRules,
    /// `[limits]`: concurrency and memory bounds.
    #[serde(default)]
    pub limits: Limits,
    /// `[state]`: where the state store lives.
    #[serde(default)]
    pub state: StateConfig,
    /// `[report]`: where reports are written.
    #[serde(default)]
    pub report: ReportConfig,
    /// `[log]`: log file and level.
    #[serde(default)]
    pub log: LogConfig,
    /// The job file this was read from (set by [`Job::load`] / [`Job::parse`]).
    #[serde(skip)]
    pub file: PathBuf,
}

/// `[source]`: the IMAP server mail is read from.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Source {
    /// Host name or address.
    pub host: String,
    /// Port; defaults to 993 for `tls`, 143 otherwise. Use [`Source::port`].
    pub port: Option<u16>,
    /// Transport security. Defaults to `tls`; plaintext only when `none` is written.
    #[serde(default)]
    pub security: Security,
    /// Accept certificates that do not verify. Off unless set by name.
    #[serde(default)]
    pub accept_invalid_certs: bool,
    /// Extra CA certificate (PEM) to trust, e.g. a company CA.
    pub ca_file: Option<PathBuf>,
    /// How users log in.
    #[serde(default)]
    pub login: LoginMode,
    /// `[source.admin]`: the admin / master user, required when `login = "admin"`.
    pub admin: Option<AdminLogin>,
    /// The credentials CSV (one row per mailbox).
    pub credentials: PathBuf,
    /// Connections opened to the host at once (all mailboxes together).
    #[serde(default = "default_connections")]
    pub connections_per_host: u32,
    /// Cap on logins per second (servers lock out bursts); unlimited when absent.
    pub logins_per_second: Option<u32>,
    /// Cap on bytes read per second from the source; unlimited when absent.
    pub max_bytes_per_second: Option<ByteSize>,
    /// Longest wait, in seconds, for any byte while a command is outstanding before the
    /// connection is given up as stalled (default 120).
    #[serde(default = "default_read_timeout")]
    pub read_timeout_seconds: u64,
}

fn default_read_timeout() -> u64 {
    120
}

impl Source {
    /// The effective port.
    pub fn port(&self) -> u16 {
        self.port.unwrap_or(self.security.default_port())
    }
}

fn default_connections() -> u32 {
    6
}

/// Transport security for an IMAP connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Security {
    /// Implicit TLS (port 993).
    #[default]
    Tls,
    /// STARTTLS upgrade; failing to upgrade is an error, never a plaintext fallback.
    Starttls,
    /// Plaintext. Only when written explicitly.
    None,
}

impl Security {
    /// The IANA port for this mode.
    pub fn default_port(self) -> u16 {
        match self {
            Security::Tls => 993,
            Security::Starttls | Security::None => 143,
        }
    }
}

/// How mailbox logins are made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LoginMode {
    /// Each user's own password from the credentials file.
    #[default]
    PerUser,
    /// One admin / master user logs in on behalf of each user (`[.. .admin]`).
    Admin,
}

/// An admin / master login.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminLogin {
    /// The admin user name.
    pub user: String,
    /// The admin password, by reference.
    pub secret: SecretRef,
}

/// `[target]`: where mail is written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Target {
    /// Which writer.
    pub kind: TargetKind,
    /// `[target.graph]`, required when `kind = "graph"`.
    pub graph: Option<GraphTarget>,
    /// `[target.imap]`, required when `kind = "imap"`.
    pub imap: Option<ImapTarget>,
    /// `[target.ews]`, required when `kind = "ews"`.
    pub ews: Option<EwsTarget>,
    /// `[target.eml]`, required when `kind = "eml"`.
    pub eml: Option<EmlTarget>,
}

/// The target's settings for its kind (guaranteed present after validation).
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub enum TargetSettings<'a> {
    /// Microsoft Graph (Exchange Online).
    Graph(&'a GraphTarget),
    /// Any IMAP server.
    Imap(&'a ImapTarget),
    /// Exchange Server via EWS.
    Ews(&'a EwsTarget),
    /// EML files on disk.
    Eml(&'a EmlTarget),
}

impl Target {
    /// The settings for [`Target::kind`]. `None` only for a `Target` built by hand without them;
    /// [`Job::parse`] guarantees `Some`.
    pub fn settings(&self) -> Option<TargetSettings<'_>> {
        match self.kind {
            TargetKind::Graph => self.graph.as_ref().map(TargetSettings::Graph),
            TargetKind::Imap => self.imap.as_ref().map(TargetSettings::Imap),
            TargetKind::Ews => self.ews.as_ref().map(TargetSettings::Ews),
            TargetKind::Eml => self.eml.as_ref().map(TargetSettings::Eml),
        }
    }
}

/// Target writer kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TargetKind {
    /// Microsoft Graph (Exchange Online).
    Graph,
    /// IMAP APPEND to any server.
    Imap,
    /// EWS for on-premises Exchange Server.
    Ews,
    /// EML files in a folder tree.
    Eml,
}

impl TargetKind {
    /// The name used in the job file.
    pub fn as_str(self) -> &'static str {
        match self {
            TargetKind::Graph => "graph",
            TargetKind::Imap => "imap",
            TargetKind::Ews => "ews",
            TargetKind::Eml => "eml",
        }
    }
}

/// `[target.graph]`: Microsoft Graph app-only access.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GraphTarget {
    /// Tenant id (GUID) or primary domain.
    pub tenant: String,
    /// The app registration's client id.
    pub client_id: String,
    /// Client secret, by reference. Exactly one of this and `certificate`.
    pub client_secret: Option<SecretRef>,
    /// Certificate + private key (PEM or PKCS#12) for certificate credentials.
    pub certificate: Option<PathBuf>,
    /// Password of the certificate's key, by reference, when it has one.
    pub certificate_secret: Option<SecretRef>,
    /// National cloud.
    #[serde(default)]
    pub cloud: Cloud,
    /// Override of the authority (token) base URL, e.g. for the local Graph emulator.
    #[serde(default, deserialize_with = "de_url")]
    pub authority_url: Option<String>,
    /// Override of the Graph base URL, e.g. for the local Graph emulator.
    #[serde(default, deserialize_with = "de_url")]
    pub graph_url: Option<String>,
}

impl GraphTarget {
    /// The authority base URL: the override, else the cloud's.
    pub fn authority_url(&self) -> String {
        match &self.authority_url {
            Some(url) => url.clone(),
            None => self.cloud.endpoints().authority,
        }
    }
    /// The Graph base URL: the override, else the cloud's.
    pub fn graph_url(&self) -> String {
        match &self.graph_url {
            Some(url) => url.clone(),
            None => self.cloud.endpoints().graph,
        }
    }
}

/// `[target.imap]`: any IMAP server.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImapTarget {
    /// Host name or address.
    pub host: String,
    /// Port; defaults by `security`. Use [`ImapTarget::port`].
    pub port: Option<u16>,
    /// Transport security (default `tls`).
    #[serde(default)]
    pub security: Security,
    /// Accept certificates that do not verify. Off unless set by name.
    #[serde(default)]
    pub accept_invalid_certs: bool,
    /// Extra CA certificate (PEM) to trust.
    pub ca_file: Option<PathBuf>,
    /// How users log in (target passwords come from the credentials file).
    #[serde(default)]
    pub login: LoginMode,
    /// `[target.imap.admin]`, required when `login = "admin"`.
    pub admin: Option<AdminLogin>,
    /// Connections opened to the host at once.
    #[serde(default = "default_connections")]
    pub connections_per_host: u32,
}

impl ImapTarget {
    /// The effective port.
    pub fn port(&self) -> u16 {
        self.port.unwrap_or(self.security.default_port())
    }
}

/// `[target.ews]`: on-premises Exchange Server.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EwsTarget {
    /// The EWS endpoint, e.g. `https://mail.example.com/EWS/Exchange.asmx`.
    #[serde(deserialize_with = "de_url_required")]
    pub url: String,
    /// Authentication scheme.
    #[serde(default)]
    pub auth: EwsAuth,
    /// The service account (basic auth); it impersonates each mailbox.
    pub user: Option<String>,
    /// The password (basic) or bearer token, by reference.
    pub secret: SecretRef,
    /// Accept certificates that do not verify. Off unless set by name.
    #[serde(default)]
    pub accept_invalid_certs: bool,
    /// Extra CA certificate (PEM) to trust.
    pub ca_file: Option<PathBuf>,
}

/// EWS authentication schemes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EwsAuth {
    /// HTTP Basic with a service account.
    #[default]
    Basic,
    /// OAuth bearer token.
    Bearer,
}

/// `[target.eml]`: export to `.eml` files.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmlTarget {
    /// Root directory of the exported folder tree.
    pub directory: PathBuf,
}

/// `[matching]`: values handed to the automatch crate.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Matching {
    /// Matching rules by name, tried in order (the automatch crate defines the names).
    #[serde(default)]
    pub rules: Vec<String>,
    /// Source domain → target domain (e.g. `"old.example" = "new.onmicrosoft.com"`).
    #[serde(default)]
    pub domains: BTreeMap<String, String>,
    /// A CSV of manual `source,target` pairs that override the rules.
    pub pairs_file: Option<PathBuf>,
    /// Source addresses (or `*` globs) never migrated.
    #[serde(default)]
    pub exclude: Vec<String>,
    /// Allow `provision` to create missing target users.
    #[serde(default)]
    pub allow_create: bool,
    /// Two-letter ISO country code set on created users (Graph requires it for licensing).
    #[serde(default, deserialize_with = "de_country")]
    pub usage_location: Option<String>,
    /// Licence SKU part number assigned to created users (e.g. `EXCHANGESTANDARD`).
    pub licence_sku: Option<String>,
    /// Verified target domain for users `provision` creates (needed with `allow_create`).
    pub create_domain: Option<String>,
    /// Pattern of the new UPN's local part when first and last name are known (tokens
    /// `first`, `last`, `f`, `l`, separators `.` `_` `-`; default `first.last`).
    pub upn_pattern: Option<String>,
}

/// `[filters]`: which messages and folders are migrated.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Filters {
    /// Only messages whose INTERNALDATE is on or after this day (UTC), like IMAP `SINCE`.
    pub since: Option<CivilDate>,
    /// Only messages whose INTERNALDATE is before this day (UTC), like IMAP `BEFORE`.
    pub before: Option<CivilDate>,
    /// When non-empty, only folders matching one of these are migrated.
    #[serde(default)]
    pub include_folders: Vec<FolderPattern>,
    /// Folders matching any of these are not migrated (wins over include).
    #[serde(default)]
    pub exclude_folders: Vec<FolderPattern>,
    /// Messages larger than this are skipped with a reason, e.g. `"35MB"`.
    pub max_message_size: Option<ByteSize>,
}

impl Filters {
    /// Whether a message with this INTERNALDATE (Unix seconds, UTC) passes `since` / `before`.
    pub fn date_allows(&self, internal_date_unix: i64) -> bool {
        if let Some(s) = self.since
            && internal_date_unix < s.unix_midnight()
        {
            return false;
        }
        if let Some(b) = self.before
            && internal_date_unix >= b.unix_midnight()
        {
            return false;
        }
        true
    }
    /// Whether a message of this size passes `max_message_size`.
    pub fn size_allows(&self, size: u64) -> bool {
        self.max_message_size.is_none_or(|m| size <= m.0)
    }
}

/// A folder pattern in `include_folders` / `exclude_folders`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FolderPattern {
    /// A well-known token such as `#SentItems#`: matches the folder(s) mapped to that kind.
    WellKnown(WellKnownFolder),
    /// A glob over the source path with `/` as separator: `*` and `?` within one level, `**`
    /// across levels; `Name/**` matches `Name` and everything below it. Case-insensitive.
    Glob(String),
}

/// `[folders]`: mapping rules applied after SPECIAL-USE and the name table.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FolderRules {
    /// Also migrate system folders (Sync Issues, Conflicts, Outbox, …). Off by default.
    #[serde(default)]
    pub migrate_system_folders: bool,
    /// `[[folders.map]]` regex rules, first match wins.
    #[serde(default)]
    pub map: Vec<FolderRule>,
}

/// One `[[folders.map]]` rule.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FolderRule {
    /// A regular expression over the source path (`/` separated), anchored by you.
    #[serde(deserialize_with = "de_regex")]
    pub source: String,
    /// Target path with `$1`-style captures, `/` separated; may start with a well-known token,
    /// e.g. `#Archive#/$1`.
    pub target: Option<String>,
    /// Skip matching folders instead (reported).
    #[serde(default)]
    pub skip: bool,
}

/// `[limits]`: concurrency and memory bounds.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// Mailboxes migrated at the same time.
    #[serde(default = "default_mailboxes")]
    pub mailboxes_at_once: u32,
    /// Global budget of message bytes held in memory at once.
    #[serde(default = "default_in_flight")]
    pub in_flight_bytes: ByteSize,
    /// Attempts per item before it stays failed until `rescan`.
    #[serde(default = "default_attempts")]
    pub max_attempts: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            mailboxes_at_once: default_mailboxes(),
            in_flight_bytes: default_in_flight(),
            max_attempts: default_attempts(),
        }
    }
}

fn default_mailboxes() -> u32 {
    4
}
fn default_in_flight() -> ByteSize {
    ByteSize(256 * 1024 * 1024)
}
fn default_attempts() -> u32 {
    3
}

/// `[state]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StateConfig {
    /// The SQLite state file (created owner-only).
    #[serde(default = "default_state_path")]
    pub path: PathBuf,
}

impl Default for StateConfig {
    fn default() -> Self {
        StateConfig {
            path: default_state_path(),
        }
    }
}

fn default_state_path() -> PathBuf {
    PathBuf::from("./o365-migrate.db")
}

/// `[report]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReportConfig {
    /// Directory reports are written to.
    #[serde(default = "default_report_dir")]
    pub directory: PathBuf,
}

impl Default for ReportConfig {
    fn default() -> Self {
        ReportConfig {
            directory: default_report_dir(),
        }
    }
}

fn default_report_dir() -> PathBuf {
    PathBuf::from("./o365-migrate-report")
}

/// `[log]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    /// Log file (created owner-only).
    #[serde(default = "default_log_file")]
    pub file: PathBuf,
    /// Level: `error`, `warn`, `info`, `debug` or `trace`.
    #[serde(default = "default_log_level", deserialize_with = "de_level")]
    pub level: String,
    /// Optional JSON-lines event file (same as `run --events`).
    pub events: Option<PathBuf>,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            file: default_log_file(),
            level: default_log_level(),
            events: None,
        }
    }
}

fn default_log_file() -> PathBuf {
    PathBuf::from("./o365-migrate.log")
}
fn default_log_level() -> String {
    "info".to_owned()
}

// ---------------------------------------------------------------------------------------------
// Value types

/// A byte count written as an integer or with a unit: `"35MB"`, `"512 KiB"`, `"1.5GB"`.
///
/// Units are binary as mail admins and Exchange use them: `KB`/`KiB` = 1024, `MB`/`MiB` = 1024²,
/// `GB`/`GiB` = 1024³; `B` or no unit = bytes. Case-insensitive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct ByteSize(pub u64);

impl ByteSize {
    /// Parses `"35MB"` and friends.
    pub fn parse(s: &str) -> std::result::Result<ByteSize, String> {
        let t = s.trim();
        let split = t
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(t.len());
        let (num, unit) = t.split_at(split);
        let unit = unit.trim().to_ascii_lowercase();
        let mult: u64 = match unit.as_str() {
            "" | "b" => 1,
            "k" | "kb" | "kib" => 1 << 10,
            "m" | "mb" | "mib" => 1 << 20,
            "g" | "gb" | "gib" => 1 << 30,
            "t" | "tb" | "tib" => 1 << 40,
            _ => {
                return Err(format!(
                    "unknown size unit `{unit}`; write e.g. \"35MB\", \"512KB\" or \"1GB\""
                ));
            }
        };
        if num.is_empty() {
            return Err("a size needs a number, e.g. \"35MB\"".to_owned());
        }
        let bytes = if num.contains('.') {
            let f: f64 = num
                .parse()
                .map_err(|_| format!("`{num}` is not a number; write e.g. \"1.5GB\""))?;
            let v = f * mult as f64;
            if !v.is_finite() || v < 0.0 || v > u64::MAX as f64 {
                return Err("size out of range".to_owned());
            }
            v.round() as u64
        } else {
            let n: u64 = num
                .parse()
                .map_err(|_| format!("`{num}` is not a whole number"))?;
            n.checked_mul(mult).ok_or("size out of range")?
        };
        Ok(ByteSize(bytes))
    }
}

impl fmt::Display for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0;
        if b >= 1 << 30 && b.is_multiple_of(1 << 30) {
            write!(f, "{}GB", b >> 30)
        } else if b >= 1 << 20 && b.is_multiple_of(1 << 20) {
            write!(f, "{}MB", b >> 20)
        } else if b >= 1 << 10 && b.is_multiple_of(1 << 10) {
            write!(f, "{}KB", b >> 10)
        } else {
            write!(f, "{b}B")
        }
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = ByteSize;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a size such as \"35MB\" or a number of bytes")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> std::result::Result<ByteSize, E> {
                u64::try_from(v)
                    .map(ByteSize)
                    .map_err(|_| E::custom("a size cannot be negative"))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> std::result::Result<ByteSize, E> {
                Ok(ByteSize(v))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> std::result::Result<ByteSize, E> {
                ByteSize::parse(v).map_err(E::custom)
            }
        }
        d.deserialize_any(V)
    }
}

/// A calendar day (UTC), written `"2024-01-31"` or as a TOML date `2024-01-31`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct CivilDate {
    /// Year.
    pub year: i32,
    /// Month 1–12.
    pub month: u8,
    /// Day 1–31.
    pub day: u8,
}

impl CivilDate {
    /// Parses `YYYY-MM-DD`.
    pub fn parse(s: &str) -> std::result::Result<CivilDate, String> {
        let hint = "write a date as \"YYYY-MM-DD\", e.g. \"2024-01-31\"";
        let mut parts = s.trim().splitn(3, '-');
        let (Some(y), Some(m), Some(d)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(format!("not a date; {hint}"));
        };
        let (Ok(year), Ok(month), Ok(day)) = (y.parse::<i32>(), m.parse::<u8>(), d.parse::<u8>())
        else {
            return Err(format!("not a date; {hint}"));
        };
        let month_t =
            time::Month::try_from(month).map_err(|_| format!("no month {month}; {hint}"))?;
        time::Date::from_calendar_date(year, month_t, day)
            .map_err(|_| format!("{y}-{m} has no day {day}; {hint}"))?;
        Ok(CivilDate { year, month, day })
    }

    /// Unix seconds of this day's 00:00 UTC.
    pub fn unix_midnight(self) -> i64 {
        time::Month::try_from(self.month)
            .ok()
            .and_then(|m| time::Date::from_calendar_date(self.year, m, self.day).ok())
            .map(|d| d.midnight().assume_utc().unix_timestamp())
            .unwrap_or(0)
    }
}

impl fmt::Display for CivilDate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}-{:02}", self.year, self.month, self.day)
    }
}

impl<'de> Deserialize<'de> for CivilDate {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = CivilDate;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a date such as \"2024-01-31\"")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> std::result::Result<CivilDate, E> {
                CivilDate::parse(v).map_err(E::custom)
            }
            fn visit_map<A: de::MapAccess<'de>>(
                self,
                map: A,
            ) -> std::result::Result<CivilDate, A::Error> {
                // A native TOML date arrives as toml's private datetime map.
                let dt =
                    toml::value::Datetime::deserialize(de::value::MapAccessDeserializer::new(map))?;
                if dt.time.is_some() || dt.offset.is_some() {
                    return Err(de::Error::custom(
                        "give a day without time, e.g. 2024-01-31 (days are UTC)",
                    ));
                }
                CivilDate::parse(&dt.to_string()).map_err(de::Error::custom)
            }
        }
        d.deserialize_any(V)
    }
}

impl<'de> Deserialize<'de> for FolderPattern {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        parse_folder_pattern(&s).map_err(de::Error::custom)
    }
}

fn parse_folder_pattern(s: &str) -> std::result::Result<FolderPattern, String> {
    if s.trim().is_empty() {
        return Err("an empty folder pattern matches nothing; remove it".to_owned());
    }
    if s.len() > 1 && s.starts_with('#') && s.ends_with('#') {
        if let Some(k) = WellKnownFolder::from_token(s) {
            return Ok(FolderPattern::WellKnown(k));
        }
        let tokens: Vec<&str> = WellKnownFolder::ALL.iter().map(|k| k.token()).collect();
        let mut msg = format!(
            "unknown folder token `{s}`; known tokens: {}",
            tokens.join(", ")
        );
        let inner: Vec<&str> = tokens.iter().map(|t| t.trim_matches('#')).collect();
        if let Some(best) = did_you_mean(s.trim_matches('#'), inner.iter().copied()) {
            msg.push_str(&format!("; did you mean `#{best}#`?"));
        }
        return Err(msg);
    }
    Ok(FolderPattern::Glob(s.to_owned()))
}

fn de_regex<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<String, D::Error> {
    let s = String::deserialize(d)?;
    regex::Regex::new(&s).map_err(|e| {
        de::Error::custom(format!(
            "invalid regular expression: {}; check the pattern (regex crate syntax)",
            regex_error_text(&e)
        ))
    })?;
    Ok(s)
}

/// The useful last line of a regex error ("error: unclosed group" → "unclosed group").
pub(crate) fn regex_error_text(e: &regex::Error) -> String {
    let t = e.to_string();
    let last = t.lines().last().unwrap_or("").trim();
    last.strip_prefix("error: ").unwrap_or(last).to_owned()
}

fn de_country<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<Option<String>, D::Error> {
    let s = String::deserialize(d)?;
    if s.len() == 2 && s.bytes().all(|b| b.is_ascii_alphabetic()) {
        Ok(Some(s.to_ascii_uppercase()))
    } else {
        Err(de::Error::custom(
            "usage_location is a two-letter ISO 3166 country code, e.g. \"DE\" or \"US\"",
        ))
    }
}

fn de_level<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<String, D::Error> {
    let s = String::deserialize(d)?.to_ascii_lowercase();
    const LEVELS: [&str; 5] = ["error", "warn", "info", "debug", "trace"];
    if LEVELS.contains(&s.as_str()) {
        Ok(s)
    } else {
        let mut m = format!("unknown log level `{s}`; use one of error, warn, info, debug, trace");
        if let Some(b) = did_you_mean(&s, LEVELS.iter().copied()) {
            m.push_str(&format!("; did you mean `{b}`?"));
        }
        Err(de::Error::custom(m))
    }
}

fn check_url(s: &str) -> std::result::Result<(), String> {
    let lower = s.to_ascii_lowercase();
    if lower.starts_with("https://") {
        return Ok(());
    }
    if let Some(rest) = lower.strip_prefix("http://") {
        let host = rest.split(['/', '?']).next().unwrap_or("");
        let host = host
            .rsplit_once(':')
            .map(|(h, p)| {
                if p.chars().all(|c| c.is_ascii_digit()) {
                    h
                } else {
                    host
                }
            })
            .unwrap_or(host);
        if matches!(host, "localhost" | "127.0.0.1" | "[::1]") {
            return Ok(());
        }
        return Err("plain http:// is only allowed for a local emulator on 127.0.0.1 / localhost; use https://".to_owned());
    }
    Err("expected a URL starting with https://".to_owned())
}

fn de_url<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<Option<String>, D::Error> {
    let s = String::deserialize(d)?;
    check_url(&s).map_err(de::Error::custom)?;
    Ok(Some(s.trim_end_matches('/').to_owned()))
}

fn de_url_required<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<String, D::Error> {
    let s = String::deserialize(d)?;
    check_url(&s).map_err(de::Error::custom)?;
    Ok(s)
}

// ---------------------------------------------------------------------------------------------
// Secrets

/// A secret value resolved from a [`SecretRef`]. Debug prints `Secret([REDACTED])`; there is no
/// Display. The memory is zeroed on drop.
#[derive(Clone)]
pub struct Secret(secrecy::SecretString);

impl Secret {
    /// Wraps a value.
    pub fn new(value: String) -> Secret {
        Secret(secrecy::SecretString::from(value))
    }
    /// The value, for handing to a login or token request. Never log it.
    pub fn expose(&self) -> &str {
        use secrecy::ExposeSecret;
        self.0.expose_secret()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([REDACTED])")
    }
}

/// Where a secret lives: an environment variable or a file. Printing it shows the reference
/// (`env:NAME`), never the value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretSource {
    /// `env:NAME`.
    Env(String),
    /// `file:/path` (trailing newline stripped when read).
    File(PathBuf),
}

/// A reference to a secret written in the job file as `env:NAME` or `file:/path`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretRef {
    /// Where the secret lives.
    pub source: SecretSource,
    /// Which key in which file it came from, e.g. `[target.graph] client_secret at job.toml:9:17`.
    pub origin: String,
}

impl fmt::Display for SecretRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.source {
            SecretSource::Env(n) => write!(f, "env:{n}"),
            SecretSource::File(p) => write!(f, "file:{}", p.display()),
        }
    }
}

impl SecretRef {
    /// Parses `env:NAME` / `file:PATH`. The error never contains the input.
    pub fn parse(s: &str) -> std::result::Result<SecretRef, String> {
        let literal = "a literal secret is not allowed in the job file (its value is not shown); \
                       give a reference instead: `env:VARIABLE` and export the variable before \
                       running, or `file:/path/to/secret` with a file only you can read (chmod 600)";
        if let Some(name) = s.strip_prefix("env:") {
            let ok = !name.is_empty()
                && name
                    .chars()
                    .next()
                    .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !ok {
                return Err("`env:` needs a variable name of letters, digits and `_`, e.g. `env:O365_CLIENT_SECRET`".to_owned());
            }
            Ok(SecretRef {
                source: SecretSource::Env(name.to_owned()),
                origin: String::new(),
            })
        } else if let Some(path) = s.strip_prefix("file:") {
            if path.trim().is_empty() {
                return Err(
                    "`file:` needs a path, e.g. `file:/etc/o365-migrate/client-secret`".to_owned(),
                );
            }
            Ok(SecretRef {
                source: SecretSource::File(PathBuf::from(path)),
                origin: String::new(),
            })
        } else {
            Err(literal.to_owned())
        }
    }

    /// Reads the secret. Errors name the reference and its origin, never a value.
    pub fn resolve(&self) -> Result<Secret> {
        let err = |message: String, hint: &str| Error::Secret {
            reference: self.to_string(),
            origin: self.origin.clone(),
            message,
            hint: Some(hint.to_owned()),
        };
        match &self.source {
            SecretSource::Env(name) => match std::env::var(name) {
                Ok(v) if !v.is_empty() => Ok(Secret::new(v)),
                Ok(_) => Err(err(
                    "the environment variable is empty".to_owned(),
                    "export it with the secret before running",
                )),
                Err(std::env::VarError::NotPresent) => Err(err(
                    "the environment variable is not set".to_owned(),
                    "export it before running, e.g. from a systemd EnvironmentFile",
                )),
                Err(std::env::VarError::NotUnicode(_)) => Err(err(
                    "the environment variable is not valid UTF-8".to_owned(),
                    "set it to the secret as text",
                )),
            },
            SecretSource::File(path) => {
                let mut v = std::fs::read_to_string(path).map_err(|e| {
                    err(
                        format!("cannot read the file: {}", e.kind()),
                        "check the path and that this user may read it",
                    )
                })?;
                while v.ends_with('\n') || v.ends_with('\r') {
                    v.pop();
                }
                if v.is_empty() {
                    return Err(err(
                        "the file is empty".to_owned(),
                        "write the secret into it (one line)",
                    ));
                }
                Ok(Secret::new(v))
            }
        }
    }
}

impl<'de> Deserialize<'de> for SecretRef {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = SecretRef;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a secret reference `env:NAME` or `file:/path`")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> std::result::Result<SecretRef, E> {
                SecretRef::parse(v).map_err(E::custom)
            }
        }
        d.deserialize_str(V)
    }
}

// ---------------------------------------------------------------------------------------------
// Loading and validation

impl Job {
    /// Reads and validates a job file.
    pub fn load(path: impl AsRef<Path>) -> Result<Job> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| Error::ConfigRead {
            file: path.to_owned(),
            source,
        })?;
        Job::parse(&text, path)
    }

    /// Parses and validates job-file text; `file` names it in errors and anchors relative paths.
    pub fn parse(text: &str, file: impl AsRef<Path>) -> Result<Job> {
        let file = file.as_ref();
        let mut job: Job = toml::from_str(text).map_err(|e| toml_error(text, file, &e))?;
        job.file = file.to_owned();
        job.validate(text)?;
        job.set_secret_origins(text);
        Ok(job)
    }

    /// The directory relative paths are resolved against (the job file's directory).
    pub fn base_dir(&self) -> PathBuf {
        match self.file.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
            _ => PathBuf::from("."),
        }
    }

    /// Resolves a path from the job file against [`Job::base_dir`].
    pub fn resolve_path(&self, p: &Path) -> PathBuf {
        if p.is_absolute() {
            p.to_owned()
        } else {
            self.base_dir().join(p)
        }
    }

    /// Every secret reference in the job, with its key, e.g. for `target test` to resolve them
    /// all up front.
    pub fn secret_refs(&self) -> Vec<&SecretRef> {
        let mut v = Vec::new();
        if let Some(a) = &self.source.admin {
            v.push(&a.secret);
        }
        if let Some(g) = &self.target.graph {
            v.extend(g.client_secret.iter());
            v.extend(g.certificate_secret.iter());
        }
        if let Some(i) = &self.target.imap
            && let Some(a) = &i.admin
        {
            v.push(&a.secret);
        }
        if let Some(e) = &self.target.ews {
            v.push(&e.secret);
        }
        v
    }

    fn set_secret_origins(&mut self, text: &str) {
        let file = self.file.clone();
        let base = self.base_dir();
        let fix = |r: &mut SecretRef, table: &[&str], key: &str| {
            let loc = locate(text, &file, table, Some(key));
            r.origin = format!("[{}] {key} at {loc}", table.join("."));
            if let SecretSource::File(p) = &mut r.source
                && p.is_relative()
            {
                *p = base.join(&*p);
            }
        };
        if let Some(a) = &mut self.source.admin {
            fix(&mut a.secret, &["source", "admin"], "secret");
        }
        if let Some(g) = &mut self.target.graph {
            if let Some(s) = &mut g.client_secret {
                fix(s, &["target", "graph"], "client_secret");
            }
            if let Some(s) = &mut g.certificate_secret {
                fix(s, &["target", "graph"], "certificate_secret");
            }
        }
        if let Some(i) = &mut self.target.imap
            && let Some(a) = &mut i.admin
        {
            fix(&mut a.secret, &["target", "imap", "admin"], "secret");
        }
        if let Some(e) = &mut self.target.ews {
            fix(&mut e.secret, &["target", "ews"], "secret");
        }
    }

    fn validate(&self, text: &str) -> Result<()> {
        let err = |table: &[&str], key: Option<&str>, message: String, hint: &str| Error::Config {
            message,
            location: locate(text, &self.file, table, key),
            hint: Some(hint.to_owned()),
        };
        // [source]
        let s = &self.source;
        if s.host.trim().is_empty() {
            return Err(err(
                &["source"],
                Some("host"),
                "`host` is empty".into(),
                "set the IMAP server's host name",
            ));
        }
        check_login(s.login, s.admin.is_some(), &["source"], &err)?;
        check_tls(s.security, s.accept_invalid_certs, &["source"], &err)?;
        if s.port == Some(0) {
            return Err(err(
                &["source"],
                Some("port"),
                "port 0 is not valid".into(),
                "remove `port` to use the default for `security`",
            ));
        }
        if !(1..=64).contains(&s.connections_per_host) {
            return Err(err(
                &["source"],
                Some("connections_per_host"),
                format!(
                    "connections_per_host = {} is out of range",
                    s.connections_per_host
                ),
                "use 1 to 64 (servers such as Gmail allow about 15 per user)",
            ));
        }
        // [target]
        let t = &self.target;
        let present = [
            (TargetKind::Graph, t.graph.is_some()),
            (TargetKind::Imap, t.imap.is_some()),
            (TargetKind::Ews, t.ews.is_some()),
            (TargetKind::Eml, t.eml.is_some()),
        ];
        for (kind, is) in present {
            if kind == t.kind && !is {
                return Err(err(
                    &["target"],
                    Some("kind"),
                    format!(
                        "kind = \"{}\" but there is no [target.{}] table",
                        kind.as_str(),
                        kind.as_str()
                    ),
                    &format!(
                        "add a [target.{}] table with its settings (see `o365-migrate init`)",
                        kind.as_str()
                    ),
                ));
            }
            if kind != t.kind && is {
                return Err(err(
                    &["target", kind.as_str()],
                    None,
                    format!(
                        "[target.{}] is given but kind = \"{}\"",
                        kind.as_str(),
                        t.kind.as_str()
                    ),
                    &format!(
                        "remove [target.{}] or set kind = \"{}\"",
                        kind.as_str(),
                        kind.as_str()
                    ),
                ));
            }
        }
        if let Some(g) = &t.graph {
            let tbl = &["target", "graph"][..];
            match (&g.client_secret, &g.certificate) {
                (Some(_), Some(_)) => {
                    return Err(err(
                        tbl,
                        Some("certificate"),
                        "both `client_secret` and `certificate` are given".into(),
                        "keep exactly one credential: a client secret or a certificate",
                    ));
                }
                (None, None) => {
                    return Err(err(
                        tbl,
                        None,
                        "no app credential: neither `client_secret` nor `certificate`".into(),
                        "add `client_secret = \"env:O365_CLIENT_SECRET\"` or `certificate = \"/path/app.pem\"`",
                    ));
                }
                _ => {}
            }
            if g.certificate_secret.is_some() && g.certificate.is_none() {
                return Err(err(
                    tbl,
                    Some("certificate_secret"),
                    "`certificate_secret` without `certificate`".into(),
                    "add `certificate` or remove `certificate_secret`",
                ));
            }
            if g.tenant.trim().is_empty() || g.client_id.trim().is_empty() {
                return Err(err(
                    tbl,
                    None,
                    "`tenant` and `client_id` must not be empty".into(),
                    "copy them from the app registration's overview page",
                ));
            }
        }
        if let Some(i) = &t.imap {
            let tbl = &["target", "imap"][..];
            check_login(i.login, i.admin.is_some(), tbl, &err)?;
            check_tls(i.security, i.accept_invalid_certs, tbl, &err)?;
            if !(1..=64).contains(&i.connections_per_host) {
                return Err(err(
                    tbl,
                    Some("connections_per_host"),
                    format!(
                        "connections_per_host = {} is out of range",
                        i.connections_per_host
                    ),
                    "use 1 to 64",
                ));
            }
        }
        if let Some(e) = &t.ews
            && e.auth == EwsAuth::Basic
            && e.user.is_none()
        {
            return Err(err(
                &["target", "ews"],
                Some("auth"),
                "auth = \"basic\" needs `user`".into(),
                "add `user = \"svc-migrate@example.com\"` (an account with ApplicationImpersonation)",
            ));
        }
        // [matching]
        if self.matching.licence_sku.is_some() && self.matching.usage_location.is_none() {
            return Err(err(
                &["matching"],
                Some("licence_sku"),
                "`licence_sku` needs `usage_location`".into(),
                "Microsoft 365 assigns licences only to users with a usage location: add e.g. `usage_location = \"DE\"`",
            ));
        }
        if self.matching.allow_create
            && self
                .matching
                .create_domain
                .as_deref()
                .is_none_or(|d| d.trim().is_empty())
        {
            return Err(err(
                &["matching"],
                Some("allow_create"),
                "`allow_create = true` needs `create_domain`".into(),
                "add the verified domain new users get, e.g. `create_domain = \"contoso.onmicrosoft.com\"`",
            ));
        }
        if self.matching.allow_create && self.matching.usage_location.is_none() {
            return Err(err(
                &["matching"],
                Some("allow_create"),
                "`allow_create = true` needs `usage_location`".into(),
                "Microsoft 365 licenses only users with a usage location: add e.g. `usage_location = \"DE\"`",
            ));
        }
        if let Err(e) = o365_migrate_automatch::MatchConfig::from_names(
            &self.matching.rules,
            &self.matching.domains,
        ) {
            return Err(err(
                &["matching"],
                Some("rules"),
                e.to_string(),
                "fix `rules` in [matching], or leave it out for the default chain",
            ));
        }
        // [filters]
        if let (Some(a), Some(b)) = (self.filters.since, self.filters.before)
            && a >= b
        {
            return Err(err(
                &["filters"],
                Some("before"),
                format!("`before` ({b}) is not after `since` ({a}), so nothing would be migrated"),
                "swap or widen the dates",
            ));
        }
        if self.filters.max_message_size == Some(ByteSize(0)) {
            return Err(err(
                &["filters"],
                Some("max_message_size"),
                "max_message_size = 0 skips every message".into(),
                "remove it or give a size such as \"150MB\"",
            ));
        }
        // [folders]
        for (n, r) in self.folders.map.iter().enumerate() {
            if r.skip == r.target.is_some() {
                return Err(Error::Config {
                    message: format!(
                        "[[folders.map]] rule {} needs exactly one of `target` or `skip = true`",
                        n + 1
                    ),
                    location: locate(text, &self.file, &["folders", "map"], Some("source")),
                    hint: Some("add `target = \"Archive/$1\"` or `skip = true`".into()),
                });
            }
        }
        // [limits]
        let l = &self.limits;
        if l.mailboxes_at_once == 0 || l.max_attempts == 0 {
            return Err(err(
                &["limits"],
                None,
                "`mailboxes_at_once` and `max_attempts` must be at least 1".into(),
                "remove them to use the defaults",
            ));
        }
        if l.in_flight_bytes.0 < (1 << 20) {
            return Err(err(
                &["limits"],
                Some("in_flight_bytes"),
                "in_flight_bytes below 1MB cannot hold a normal message".into(),
                "use at least \"64MB\"; the default is \"256MB\"",
            ));
        }
        if let Some(max) = self.filters.max_message_size
            && max > l.in_flight_bytes
        {
            return Err(err(
                &["limits"],
                Some("in_flight_bytes"),
                format!(
                    "in_flight_bytes ({}) is smaller than filters.max_message_size ({max})",
                    l.in_flight_bytes
                ),
                "raise in_flight_bytes so the largest allowed message fits",
            ));
        }
        Ok(())
    }
}

/// Builds a located config error: (table, key, message, hint).
type ErrAt<'a> = dyn Fn(&[&str], Option<&str>, String, &str) -> Error + 'a;

fn check_login(mode: LoginMode, has_admin: bool, table: &[&str], err: &ErrAt<'_>) -> Result<()> {
    let t = table.join(".");
    match (mode, has_admin) {
        (LoginMode::Admin, false) => Err(err(
            table,
            Some("login"),
            format!("login = \"admin\" but there is no [{t}.admin] table"),
            &format!("add [{t}.admin] with `user` and `secret = \"env:...\"`"),
        )),
        (LoginMode::PerUser, true) => Err(err(
            table,
            Some("login"),
            format!("[{t}.admin] is given but login = \"per-user\""),
            "set login = \"admin\" or remove the admin table",
        )),
        _ => Ok(()),
    }
}

fn check_tls(sec: Security, accept_invalid: bool, table: &[&str], err: &ErrAt<'_>) -> Result<()> {
    if sec == Security::None && accept_invalid {
        return Err(err(
            table,
            Some("accept_invalid_certs"),
            "accept_invalid_certs has no meaning with security = \"none\"".into(),
            "remove it, or use security = \"tls\" / \"starttls\"",
        ));
    }
    Ok(())
}

/// Turns a toml/serde error into a located one with a hint. Never includes the offending line
/// (it may hold a literal secret).
fn toml_error(text: &str, file: &Path, e: &toml::de::Error) -> Error {
    let offset = e.span().map(|s| s.start).unwrap_or(0);
    let location = offset_location(text, file, offset);
    let raw = e.message().trim().to_owned();
    // A missing key is reported at its table's header; anything else at the offending key.
    let table = table_at(text, offset, !raw.starts_with("missing field"));
    let in_table = if table.is_empty() {
        String::from("at the top level")
    } else {
        format!("in [{table}]")
    };
    if let Some(rest) = raw.strip_prefix("unknown field `") {
        let name = rest.split('`').next().unwrap_or("");
        let expected = backticked_after(&raw, "expected");
        let mut hint = match did_you_mean(name, expected.iter().map(String::as_str)) {
            Some(b) => format!("did you mean `{b}`?"),
            None if !expected.is_empty() => format!("known keys here: {}", expected.join(", ")),
            None => "remove it".to_owned(),
        };
        if ["password", "secret", "pass", "client_secret", "token"].contains(&name)
            && !expected.iter().any(|x| x == name)
        {
            hint.push_str(" (secrets go in by reference, e.g. `secret = \"env:NAME\"`)");
        }
        return Error::Config {
            message: format!("unknown key `{name}` {in_table}"),
            location,
            hint: Some(hint),
        };
    }
    if let Some(rest) = raw.strip_prefix("unknown variant `") {
        let name = rest.split('`').next().unwrap_or("");
        let expected = backticked_after(&raw, "expected");
        let hint = match did_you_mean(name, expected.iter().map(String::as_str)) {
            Some(b) => format!("did you mean `{b}`? (one of {})", expected.join(", ")),
            None => format!("use one of {}", expected.join(", ")),
        };
        return Error::Config {
            message: format!("unknown value `{name}` {in_table}"),
            location,
            hint: Some(hint),
        };
    }
    if let Some(rest) = raw.strip_prefix("missing field `") {
        let name = rest.split('`').next().unwrap_or("");
        let hint = if name == "source" || name == "target" {
            format!("add a [{name}] table (see `o365-migrate init`)")
        } else {
            format!("add `{name} = ...` (see `o365-migrate init` for an example)")
        };
        return Error::Config {
            message: format!("missing key `{name}` {in_table}"),
            location,
            hint: Some(hint),
        };
    }
    if raw.starts_with("duplicate key") {
        return Error::Config {
            message: raw,
            location,
            hint: Some("remove one of the two".into()),
        };
    }
    if raw.starts_with("invalid type") {
        return Error::Config {
            message: format!("{raw} {in_table}"),
            location,
            hint: Some("check the quoting: strings in \"...\", numbers and true/false bare".into()),
        };
    }
    // Our own value errors already carry their hint after the first `;`.
    let (message, hint) = match raw.split_once("; ") {
        Some((m, h)) => (m.to_owned(), Some(h.to_owned())),
        None => (raw, None),
    };
    Error::Config {
        message,
        location,
        hint,
    }
}

fn backticked_after(msg: &str, word: &str) -> Vec<String> {
    let Some(i) = msg.find(word) else {
        return Vec::new();
    };
    msg[i..]
        .split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect()
}

/// The closest candidate by edit distance, if close enough to be a plausible typo.
pub(crate) fn did_you_mean<'a>(
    input: &str,
    candidates: impl Iterator<Item = &'a str>,
) -> Option<&'a str> {
    let inp = input.to_ascii_lowercase();
    let mut best: Option<(usize, &str)> = None;
    for c in candidates {
        let lc = c.to_ascii_lowercase();
        let mut d = levenshtein(&inp, &lc);
        if lc.contains(&inp) && inp.len() >= 4 || inp.contains(&lc) && lc.len() >= 4 {
            d = d.min(2);
        }
        if best.is_none_or(|(bd, _)| d < bd) {
            best = Some((d, c));
        }
    }
    let limit = (input.chars().count() / 3).max(2);
    best.filter(|(d, _)| *d <= limit).map(|(_, c)| c)
}

fn levenshtein(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for (i, ca) in a.iter().enumerate() {
        cur[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != cb);
            cur[j + 1] = (prev[j + 1] + 1).min(cur[j] + 1).min(prev[j] + cost);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

fn offset_location(text: &str, file: &Path, offset: usize) -> Location {
    let offset = offset.min(text.len());
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map(|i| i + 1).unwrap_or(0);
    let column = before
        .get(line_start..)
        .map(|s| s.chars().count())
        .unwrap_or(0)
        + 1;
    Location {
        file: file.to_owned(),
        line,
        column,
    }
}

/// Parses a table header line `[a.b]` / `[[a.b]]` into its dotted name.
fn header_name(line: &str) -> Option<String> {
    let l = line.trim();
    let inner = l
        .strip_prefix("[[")
        .and_then(|r| r.split("]]").next())
        .or_else(|| l.strip_prefix('[').and_then(|r| r.split(']').next()))?;
    Some(
        inner
            .split('.')
            .map(|p| p.trim().trim_matches('"'))
            .collect::<Vec<_>>()
            .join("."),
    )
}

/// The table whose body contains `offset`; for an offset inside a header `[a.b]`, the table
/// that header's last key belongs to (`a`, or the top level).
fn table_at(text: &str, offset: usize, header_is_parent: bool) -> String {
    let mut current = String::new();
    let mut pos = 0;
    for line in text.split_inclusive('\n') {
        let on_this_line = offset >= pos && offset < pos + line.len();
        if let Some(h) = header_name(line) {
            if on_this_line && !header_is_parent {
                return h;
            }
            if on_this_line {
                return h
                    .rsplit_once('.')
                    .map(|(p, _)| p.to_owned())
                    .unwrap_or_default();
            }
            current = h;
        }
        if on_this_line {
            break;
        }
        pos += line.len();
    }
    current
}

/// Finds `key` in table `table` (first occurrence), else the table header, else 1:1.
fn locate(text: &str, file: &Path, table: &[&str], key: Option<&str>) -> Location {
    let want = table.join(".");
    let mut current = String::new();
    let mut header_at = None;
    let mut pos = 0;
    for line in text.split_inclusive('\n') {
        if let Some(h) = header_name(line) {
            current = h;
            if current == want && header_at.is_none() {
                header_at = Some(pos + (line.len() - line.trim_start().len()));
            }
        } else if current == want
            && let Some(k) = key
        {
            let t = line.trim_start();
            if let Some(rest) = t.strip_prefix(k)
                && rest.trim_start().starts_with('=')
            {
                return offset_location(text, file, pos + (line.len() - t.len()));
            }
        }
        pos += line.len();
    }
    offset_location(text, file, header_at.unwrap_or(0))
}

#[cfg(test)]
mod tests;
