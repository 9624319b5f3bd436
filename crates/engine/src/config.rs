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

mod load;
mod secret;
mod values;

pub(crate) use load::did_you_mean;
pub use secret::{Secret, SecretRef, SecretSource};
pub(crate) use values::regex_error_text;
pub use values::{ByteSize, CivilDate};
use values::{de_country, de_level, de_regex, de_url, de_url_required};

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
    /// `[fleet]`: caps shared by every `o365-migrate worker` of this job.
    #[serde(default)]
    pub fleet: FleetConfig,
    /// `[gmail]`: labels, placement and Google's download limit for a Gmail source.
    #[serde(default)]
    pub gmail: GmailConfig,
    /// `[dav]`: contacts, calendars and tasks read from CardDAV / CalDAV or from `.vcf` /
    /// `.ics` files, migrated with the mail (absent: mail only).
    pub dav: Option<Dav>,
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
    /// Gmail mode: each message read once from `[Gmail]/All Mail` and placed by its labels
    /// (`[gmail]`). `"auto"` (the default) turns it on when the server offers `X-GM-EXT-1`.
    #[serde(default)]
    pub gmail: GmailMode,
    /// `[source.google]`: sign in to Gmail with OAuth (a service account with domain-wide
    /// delegation, or a refresh token per user) instead of the credentials file's passwords.
    pub google: Option<GoogleSignIn>,
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

/// Whether the source is read as Gmail (`[source] gmail`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum GmailMode {
    /// On when the server announces `X-GM-EXT-1`.
    #[default]
    Auto,
    /// Always (the server must announce `X-GM-EXT-1`).
    On,
    /// Never: every label folder is read as an ordinary folder.
    Off,
}

impl<'de> Deserialize<'de> for GmailMode {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Bool(bool),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Bool(true) => Ok(GmailMode::On),
            Raw::Bool(false) => Ok(GmailMode::Off),
            Raw::Text(t) if t == "auto" => Ok(GmailMode::Auto),
            Raw::Text(t) => Err(serde::de::Error::custom(format!(
                "gmail = {t:?}: use true, false or \"auto\""
            ))),
        }
    }
}

/// `[source.google]`: how the tool gets Google access tokens for IMAP (XOAUTH2).
///
/// Either `service_account_key` (Google Workspace: the service account's JSON key, whose
/// client ID is allowed the scope under domain-wide delegation), or `client_id`,
/// `client_secret` and `refresh_token` (an OAuth client of type "Desktop app" and each user's
/// refresh token from `o365-migrate google authorize`). Secrets are references only.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GoogleSignIn {
    /// The service account's JSON key file, by reference (`file:/path/key.json`).
    pub service_account_key: Option<SecretRef>,
    /// The OAuth client ID (refresh-token sign-in).
    pub client_id: Option<String>,
    /// The OAuth client secret, by reference.
    pub client_secret: Option<SecretRef>,
    /// Each user's refresh token, by reference; `{login}` is replaced by the mailbox's login,
    /// e.g. `file:/etc/o365-migrate/google/{login}.token`.
    pub refresh_token: Option<String>,
    /// The OAuth scope (default `https://mail.google.com/`).
    pub scope: Option<String>,
    /// The token endpoint (default: the key file's `token_uri`, else Google's).
    pub token_endpoint: Option<String>,
    /// The authorization endpoint `google authorize` sends the browser to (default Google's).
    pub auth_endpoint: Option<String>,
}

/// `[gmail]`: how a Gmail source's labels become folders, categories and keywords, and
/// Google's download limit.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GmailConfig {
    /// How labels place messages.
    #[serde(default)]
    pub strategy: GmailStrategy,
    /// `\Important`: `"none"` (default) or `"category"` (a category named `Important`).
    #[serde(default)]
    pub important: ImportantAs,
    /// IMAP download allowed per user and window (default `"2500MB"`, Google's documented
    /// daily limit).
    #[serde(default = "default_daily_download")]
    pub daily_download: ByteSize,
    /// The window the download budget applies to, in seconds (default 86400: a day).
    #[serde(default = "default_download_window")]
    pub download_window_seconds: u64,
}

impl Default for GmailConfig {
    fn default() -> Self {
        GmailConfig {
            strategy: GmailStrategy::default(),
            important: ImportantAs::default(),
            daily_download: default_daily_download(),
            download_window_seconds: default_download_window(),
        }
    }
}

fn default_daily_download() -> ByteSize {
    ByteSize(2500 << 20)
}

fn default_download_window() -> u64 {
    86_400
}

/// How a Gmail message's labels place it (`[gmail] strategy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum GmailStrategy {
    /// One copy: Inbox if labelled `\Inbox`, else Sent Items if `\Sent`, else Drafts if
    /// `\Draft`, else the folder of the first user label (labels sorted by name), else
    /// Archive; the other user labels become categories (Graph) or keywords (IMAP).
    #[default]
    OneCopy,
    /// One copy in the folder of its first label in folder order (Inbox, Sent, Drafts, then
    /// user labels by name; Archive without one); the other labels become categories.
    FirstWins,
    /// imapsync-style: a copy in the folder of every label (Inbox, Sent, Drafts and user
    /// labels), Archive for messages without one.
    LabelsAsFolders,
}

/// What `\Important` becomes (`[gmail] important`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ImportantAs {
    /// Nothing (Gmail sets it by itself on many messages).
    #[default]
    None,
    /// A category (keyword) named `Important`.
    Category,
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

/// `[dav]`: contacts, calendars and tasks (issue 18). Read from a CardDAV / CalDAV server
/// (discovered from `url` per user, signing in with the mailbox's source login and password from
/// the credentials file) or, with `files`, from a directory of `.vcf` / `.ics` files per mailbox.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Dav {
    /// Where discovery starts: a URL (`https://dav.example.com/`); `.well-known`
    /// and `current-user-principal` find each user's address books and calendars. Defaults to
    /// `https://<source host>/`.
    #[serde(default, deserialize_with = "de_url")]
    pub url: Option<String>,
    /// Instead of a server: a directory per mailbox holding `.vcf` (contacts) and `.ics`
    /// (calendars, tasks) files; `{login}` is replaced by the mailbox's source login, e.g.
    /// `"exports/{login}"`. Each file is one collection named by the file's stem.
    pub files: Option<String>,
    /// Accept certificates that do not verify. Off unless set by name.
    #[serde(default)]
    pub accept_invalid_certs: bool,
    /// Extra CA certificate (PEM) to trust.
    pub ca_file: Option<PathBuf>,
    /// Migrate address books (default true).
    #[serde(default = "yes")]
    pub contacts: bool,
    /// Migrate calendars' events (default true).
    #[serde(default = "yes")]
    pub calendars: bool,
    /// Migrate tasks (VTODO) to Microsoft To Do (default true).
    #[serde(default = "yes")]
    pub tasks: bool,
    /// When non-empty, only collections whose display name matches one of these globs
    /// (case-insensitive, `*` and `?`).
    #[serde(default)]
    pub include: Vec<String>,
    /// Collections whose display name matches any of these are not migrated (reported).
    #[serde(default)]
    pub exclude: Vec<String>,
    /// Only events that end (a series: whose last occurrence ends) on or after this day (UTC).
    pub events_since: Option<CivilDate>,
    /// The IANA zone floating times (no zone, RFC 5545 form 1) are read in; default UTC.
    pub floating_zone: Option<String>,
    /// `[[dav.map]]` rules, first match wins: a source collection → the default collection of
    /// its kind or a named one. Without a matching rule the first collection of each kind goes
    /// to the default one and every other to a collection of its own name.
    #[serde(default)]
    pub map: Vec<DavMapRule>,
}

fn yes() -> bool {
    true
}

/// One `[[dav.map]]` rule.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DavMapRule {
    /// A glob over the source collection's display name (case-insensitive).
    pub source: String,
    /// The target collection's name; `"#default#"` for the mailbox's default contact folder,
    /// calendar or task list.
    pub target: Option<String>,
    /// Do not migrate matching collections (reported).
    #[serde(default)]
    pub skip: bool,
}

/// The token a `[[dav.map]]` target uses for the default collection.
pub const DAV_DEFAULT_TARGET: &str = "#default#";

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
/// 32 MB: eight IMAP mailboxes in parallel copy as fast as with 256 MB at half the memory
/// (docs/benchmarks.md). A message larger than the budget takes all of it and runs alone.
fn default_in_flight() -> ByteSize {
    ByteSize(32 * 1024 * 1024)
}
fn default_attempts() -> u32 {
    3
}

/// `[state]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StateConfig {
    /// The SQLite state file (created owner-only). Not used when `url` names a PostgreSQL
    /// database.
    #[serde(default = "default_state_path")]
    pub path: PathBuf,
    /// A PostgreSQL state store shared by many workers: `postgres://user@host:5432/database`,
    /// optionally with `?sslmode=…&sslrootcert=…`. TLS is verified (`verify-full`) unless the
    /// URL names another `sslmode`. The password never goes in the URL: see `password`.
    #[serde(default)]
    pub url: Option<String>,
    /// The PostgreSQL password, by reference (`env:NAME` or `file:PATH`).
    #[serde(default)]
    pub password: Option<SecretRef>,
}

impl Default for StateConfig {
    fn default() -> Self {
        StateConfig {
            path: default_state_path(),
            url: None,
            password: None,
        }
    }
}

fn default_state_path() -> PathBuf {
    PathBuf::from("./o365-migrate.db")
}

/// `[fleet]`: caps over all workers together, kept in the shared state store.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FleetConfig {
    /// Graph requests per second over all workers (a `$batch` counts each sub-request).
    /// Default: Microsoft's app-wide limit, 130,000 requests per 10 seconds.
    #[serde(default = "default_fleet_requests")]
    pub requests_per_second: u32,
    /// Upload megabytes (10^6 bytes) per second over all workers; none by default.
    #[serde(default)]
    pub megabytes_per_second: Option<f64>,
    /// Mailboxes in flight over all workers; none by default (workers × lanes).
    #[serde(default)]
    pub mailboxes_at_once: Option<u32>,
}

impl Default for FleetConfig {
    fn default() -> Self {
        FleetConfig {
            requests_per_second: default_fleet_requests(),
            megabytes_per_second: None,
            mailboxes_at_once: None,
        }
    }
}

fn default_fleet_requests() -> u32 {
    13_000
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

#[cfg(test)]
mod tests;
