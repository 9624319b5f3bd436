//! `o365-migrate export-batch`: the files for Microsoft's *own* IMAP migration, for admins who
//! must use Exchange Online's migration service instead of o365-migrate's copy.
//!
//! `build` (crate-private, called by `Engine::export_batch`) turns the job, the credentials and
//! the pairing into:
//!
//! - Microsoft's IMAP migration CSV (`EmailAddress,UserName,Password[,UserRoot]`), one file per
//!   batch of at most [`MICROSOFT_BATCH_ROWS`] rows (`migration.csv`, or `batch-1.csv`,
//!   `batch-2.csv`, … when there are several). These hold passwords ([`ExportFile::secret`]).
//! - `new-migration-batch.ps1`: Exchange Online PowerShell that tests the server
//!   (`Test-MigrationServerAvailability -IMAP`), creates the endpoint
//!   (`New-MigrationEndpoint -IMAP`) and one `New-MigrationBatch` per CSV; it starts nothing.
//! - `README.txt`: what Microsoft's IMAP migration keeps compared with o365-migrate, with the
//!   source of every Microsoft figure, and the warning that the CSV files hold passwords.
//!
//! It is pure: nothing is written here (the engine writes the files, the CSVs owner-only). Rows
//! that cannot be expressed in Microsoft's format are left out with their reason
//! ([`BatchExport::left_out`]); job settings Microsoft's batch cannot carry become warnings.
//!
//! Every Microsoft fact used here is a constant below with the page it comes from.

use std::collections::{HashMap, HashSet};
use std::fmt;

use o365_migrate_credentials as creds;

use crate::config::{FolderPattern, Job, LoginMode, Security};
use crate::error::{Error, Result};
use crate::matching::{MailboxPair, Unpaired};

// ---- Microsoft's documentation (the pages every figure below comes from) -------------------

/// "CSV files for IMAP migration batches": the columns `EmailAddress`, `UserName`, `Password`
/// and the optional `UserRoot`; the admin-credential forms per server (Exchange
/// `Domain/Admin_UserName/User_UserName`, Dovecot `User_UserName*Admin_UserName` "where the
/// asterisk (*) is a configurable separator character", Mirapoint `#user@domain#Admin_UserName#`,
/// Courier IMAP via `UserRoot`); "up to 50,000 rows … and can be as large as 10 MB"; the CSV's
/// content "is encrypted and stored on the Microsoft Exchange servers".
const DOC_CSV: &str = "https://learn.microsoft.com/exchange/mailbox-migration/migrating-imap-mailboxes/csv-files-for-imap-migrations";
/// "What you need to know about migrating your IMAP mailboxes": mail folders only ("doesn't
/// migrate contacts, calendar items, or tasks"), at most 500,000 items per mailbox ("newest to
/// oldest"), "The biggest email you can migrate is 35 MB".
const DOC_IMAP_LIMITS: &str = "https://learn.microsoft.com/exchange/mailbox-migration/migrating-imap-mailboxes/migrating-imap-mailboxes";
/// "Use PowerShell to perform an IMAP migration to Microsoft 365": the same three limits, the
/// `Test-MigrationServerAvailability -IMAP … -Security <None, Ssl, or Tls>` step ("typical to
/// use 143 for unencrypted or … (TLS) connections and to use 993 for SSL connections"), and
/// "incremental synchronization, which occurs once every 24 hours".
const DOC_IMAP_POWERSHELL: &str = "https://learn.microsoft.com/microsoft-365/enterprise/use-powershell-to-perform-an-imap-migration-to-microsoft-365";
/// "Migrate other types of IMAP mailboxes": source and Microsoft 365 mailboxes "synchronize once
/// a day"; verify with the batch status `Synced` in the migration dashboard; stop the sync by
/// deleting the batch.
const DOC_OTHER_IMAP: &str = "https://learn.microsoft.com/exchange/mailbox-migration/migrating-imap-mailboxes/migrate-other-types-of-imap-mailboxes";
/// `New-MigrationEndpoint`, parameter set IMAP; `-Security`: "The options are None, Tls, or Ssl";
/// defaults MaxConcurrentMigrations 100, MaxConcurrentIncrementalSyncs 20.
const DOC_NEW_ENDPOINT: &str =
    "https://learn.microsoft.com/powershell/module/exchange/new-migrationendpoint";
/// `Test-MigrationServerAvailability`, parameter set IMAP (`-RemoteServer`, `-Port` required).
const DOC_TEST_SERVER: &str =
    "https://learn.microsoft.com/powershell/module/exchange/test-migrationserveravailability";
/// `New-MigrationBatch`: Example 7 is an IMAP batch (`-Name -CSVData -SourceEndpoint
/// -ExcludeFolders`); `-Name` "maximum length is 64 characters"; `-ExcludeFolders` "For IMAP
/// migration, use folder names relative to the IMAP root", "`<FolderName>/*`", "`#<FolderName>#/*`"
/// for well-known folders (Inbox, SentItems, DeletedItems, Drafts, JunkEmail, Archive, …), a
/// backslash escapes a personal folder named like `#Notes#`, "Wildcard characters can't be used
/// in folder names"; without `-AutoStart` the batch is started with `Start-MigrationBatch`.
const DOC_NEW_BATCH: &str =
    "https://learn.microsoft.com/powershell/module/exchange/new-migrationbatch";
/// `Start-MigrationBatch -Identity <batch name>`.
const DOC_START_BATCH: &str =
    "https://learn.microsoft.com/powershell/module/exchange/start-migrationbatch";

/// Microsoft's cap on rows in one IMAP migration CSV ("The CSV file can contain up to 50,000
/// rows, one row for each user",
/// <https://learn.microsoft.com/exchange/mailbox-migration/migrating-imap-mailboxes/csv-files-for-imap-migrations>).
/// More mailboxes are split into several CSV files and batches.
pub const MICROSOFT_BATCH_ROWS: usize = 50_000;
const _: () = assert!(MICROSOFT_BATCH_ROWS == creds::MICROSOFT_ROW_LIMIT);

/// "… and can be as large as 10 MB" ([`DOC_CSV`]). Taken as 10,000,000 bytes, the smaller
/// reading of "MB".
const MICROSOFT_CSV_BYTES: usize = 10_000_000;
/// "The biggest email you can migrate is 35 MB" ([`DOC_IMAP_LIMITS`], [`DOC_IMAP_POWERSHELL`]).
const MICROSOFT_MAX_MESSAGE_MB: u32 = 35;
/// "You can migrate a maximum of 500,000 items from a user's mailbox" ([`DOC_IMAP_LIMITS`]).
const MICROSOFT_MAX_ITEMS: &str = "500,000";
/// `New-MigrationBatch -Name`: "The maximum length is 64 characters" ([`DOC_NEW_BATCH`]).
const MICROSOFT_NAME_MAX: usize = 64;

/// The CSV header Microsoft requires, in its order ([`DOC_CSV`]): "be sure to type the attributes
/// exactly as they're shown".
const CSV_COLUMNS: [&str; 3] = ["EmailAddress", "UserName", "Password"];
/// The optional column for Courier-style virtual shared folders ([`DOC_CSV`]).
const CSV_USER_ROOT: &str = "UserRoot";

/// The script's file name.
const SCRIPT_FILE: &str = "new-migration-batch.ps1";
/// The comparison and instructions.
const README_FILE: &str = "README.txt";

// ---- Public results --------------------------------------------------------------------------

/// What `export-batch` writes: the files, and what could not be carried over.
#[derive(Debug, Clone)]
pub struct BatchExport {
    /// The files to write into the output directory: the CSVs (`migration.csv`, or
    /// `batch-1.csv`, `batch-2.csv`, … when more than [`MICROSOFT_BATCH_ROWS`] mailboxes are
    /// exported), the script `new-migration-batch.ps1` and `README.txt`.
    pub files: Vec<ExportFile>,
    /// Mailboxes exported (rows over all CSV files).
    pub rows: usize,
    /// Sources not exported, with the reason: the unpaired sources passed in, then rows Microsoft's
    /// CSV cannot express (a password reference that does not resolve, a login the admin form
    /// cannot carry, a target that is not an address, …).
    pub left_out: Vec<Unpaired>,
    /// Job settings Microsoft's batch cannot carry exactly (folder filters, date filters, …),
    /// and the split into several batches.
    pub warnings: Vec<String>,
}

/// One file of a [`BatchExport`].
#[derive(Clone)]
pub struct ExportFile {
    /// File name (no directory).
    pub name: String,
    /// The content.
    pub bytes: Vec<u8>,
    /// Whether the file holds passwords (the CSVs): write it owner-only (0600) and tell the admin
    /// to delete it once the batches exist.
    pub secret: bool,
}

impl fmt::Debug for ExportFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("ExportFile");
        d.field("name", &self.name).field("secret", &self.secret);
        if self.secret {
            d.field(
                "bytes",
                &format_args!("<{} bytes, not shown>", self.bytes.len()),
            );
        } else {
            d.field("bytes", &format_args!("<{} bytes>", self.bytes.len()));
        }
        d.finish()
    }
}

impl crate::Engine {
    /// `export-batch`: builds Microsoft's IMAP migration files for the job's pairing (see
    /// [`crate::Engine::pairing`]) and writes them into `out` (created if needed): the CSVs
    /// owner-only (0600, they hold passwords), the script and README beside them.
    pub async fn export_batch(&self, out: &std::path::Path) -> Result<BatchExport> {
        let pairing = self.pairing().await?;
        let export = build(
            &self.job,
            &self.credentials,
            &pairing.pairs,
            &pairing.unpaired,
        )?;
        std::fs::create_dir_all(out).map_err(|e| Error::Io {
            context: format!("output directory {}", out.display()),
            source: e,
            hint: Some("choose a directory you can write to with --out".into()),
        })?;
        for f in &export.files {
            let path = out.join(&f.name);
            let written = if f.secret {
                crate::report::write_private(&path, &f.bytes)
            } else {
                std::fs::write(&path, &f.bytes)
            };
            written.map_err(|e| Error::Io {
                context: format!("writing {}", path.display()),
                source: e,
                hint: Some("check that the directory is writable and not full".into()),
            })?;
        }
        Ok(export)
    }
}

// ---- The builder -----------------------------------------------------------------------------

/// One exported mailbox.
struct Row {
    email: String,
    user_name: String,
    password: creds::Secret,
    user_root: Option<String>,
}

/// Builds Microsoft's IMAP migration batch files for `pairs`. `unpaired` (the sources the pairing
/// left out) is carried into [`BatchExport::left_out`] first. Fails only for what concerns every
/// row: in `login = "admin"` mode a missing `[source.admin]`, an admin secret that does not
/// resolve, or an admin name Dovecot's form cannot carry.
pub(crate) fn build(
    job: &Job,
    credentials: &creds::Credentials,
    pairs: &[MailboxPair],
    unpaired: &[Unpaired],
) -> Result<BatchExport> {
    let mode = crate::setup::source_login_mode(job)?;
    let file = job.source.credentials.display().to_string();
    let mut left_out: Vec<Unpaired> = unpaired.to_vec();
    let mut warnings = Vec::new();

    // Credentials::find_login is a linear scan; index once (same rule: trimmed, case-insensitive,
    // first row wins).
    let mut by_login: HashMap<String, &creds::CredentialRecord> = HashMap::new();
    for r in credentials.records() {
        by_login.entry(r.login.trim().to_lowercase()).or_insert(r);
    }

    let mut rows = Vec::with_capacity(pairs.len());
    let mut targets_seen = HashSet::new();
    for pair in pairs {
        let leave = |reason: String| Unpaired {
            source: pair.source.clone(),
            reason,
        };
        let Some(record) = by_login.get(&pair.source.trim().to_lowercase()) else {
            left_out.push(leave(format!(
                "not in the credentials file {file}; Microsoft's CSV needs its login and password"
            )));
            continue;
        };
        let at = format!("credentials row {} (line {})", record.row, record.line);
        if let Some(why) = creds::TargetIdentity::Address.problem(pair.target.trim()) {
            left_out.push(leave(format!(
                "{at}: the target `{}` is not an email address (it {why}); Microsoft's \
                 EmailAddress column names the Microsoft 365 mailbox ({DOC_CSV})",
                pair.target
            )));
            continue;
        }
        if !targets_seen.insert(pair.target.to_lowercase()) {
            left_out.push(leave(format!(
                "{at}: the target {} is already another exported row's; one row per Microsoft \
                 365 mailbox",
                pair.target
            )));
            continue;
        }
        let login = match mode.login_for(record, &file) {
            Ok(l) => l,
            Err(e) => {
                left_out.push(leave(format!("{at} cannot be exported: {e}")));
                continue;
            }
        };
        if !login.fits_login_command() {
            // SASL PLAIN with an authorization identity has no form in Microsoft's UserName.
            left_out.push(leave(format!(
                "{at}: this admin login style has no form in Microsoft's UserName column (it \
                 documents Exchange, Dovecot and Mirapoint forms, {DOC_CSV})"
            )));
            continue;
        }
        if login.secret.is_empty() {
            left_out.push(leave(format!(
                "{at}: the password is empty; Microsoft's Password column needs it"
            )));
            continue;
        }
        rows.push(Row {
            email: pair.target.trim().to_owned(),
            user_name: login.authcid,
            password: login.secret,
            user_root: record.user_root.clone().filter(|r| !r.trim().is_empty()),
        });
    }

    let with_root = rows.iter().any(|r| r.user_root.is_some());
    if with_root && job.source.login == LoginMode::Admin {
        warnings.push(format!(
            "rows with a UserRoot are exported in the admin form `user*admin`; Microsoft's \
             Courier IMAP example (virtual shared folders) puts the admin name alone in UserName \
             ({DOC_CSV}): check which your server needs"
        ));
    }
    let csvs = split_csv(&rows, with_root);
    if csvs.files.len() > 1 {
        warnings.push(format!(
            "{} mailboxes are more than one Microsoft IMAP migration CSV holds (at most {} rows \
             and {} bytes, {DOC_CSV}): split into {} CSV files and batches",
            rows.len(),
            group_thousands(MICROSOFT_BATCH_ROWS),
            group_thousands(MICROSOFT_CSV_BYTES),
            csvs.files.len()
        ));
    }
    if rows.is_empty() {
        warnings.push(
            "no mailbox could be exported (see the sources left out): the script creates the \
             endpoint only"
                .to_owned(),
        );
    }

    let exclusions = translate_exclusions(&job.filters.exclude_folders);
    warnings.extend(exclusions.warnings.iter().cloned());
    warnings.extend(job_warnings(job));

    let names = Names::new(job, csvs.files.len());
    let csv_names: Vec<String> = (0..csvs.files.len()).map(|i| names.csv(i)).collect();
    let script = script(job, &names, &csv_names, &exclusions.values);
    let readme = readme(
        job,
        &names,
        &csv_names,
        rows.len(),
        left_out.len(),
        &warnings,
    );

    let mut files: Vec<ExportFile> = csvs
        .files
        .into_iter()
        .zip(csv_names)
        .map(|(bytes, name)| ExportFile {
            name,
            bytes,
            secret: true,
        })
        .collect();
    files.push(ExportFile {
        name: SCRIPT_FILE.to_owned(),
        bytes: script.into_bytes(),
        secret: false,
    });
    files.push(ExportFile {
        name: README_FILE.to_owned(),
        bytes: readme.into_bytes(),
        secret: false,
    });
    Ok(BatchExport {
        files,
        rows: rows.len(),
        left_out,
        warnings,
    })
}

// ---- CSV --------------------------------------------------------------------------------------

/// The CSV files' bytes, in order.
struct Csvs {
    files: Vec<Vec<u8>>,
}

/// Splits the rows into CSV files under Microsoft's caps (rows and bytes per file), filling each
/// file in order.
fn split_csv(rows: &[Row], with_root: bool) -> Csvs {
    let mut header = CSV_COLUMNS.join(",");
    if with_root {
        header.push(',');
        header.push_str(CSV_USER_ROOT);
    }
    header.push_str("\r\n");

    let mut files = Vec::new();
    let mut current: Vec<u8> = Vec::new();
    let mut in_current = 0usize;
    for row in rows {
        let line = csv_line(row, with_root);
        let full = in_current == MICROSOFT_BATCH_ROWS
            || (in_current > 0 && current.len() + line.len() > MICROSOFT_CSV_BYTES);
        if full {
            files.push(std::mem::take(&mut current));
            in_current = 0;
        }
        if in_current == 0 {
            current.extend_from_slice(header.as_bytes());
        }
        current.extend_from_slice(&line);
        in_current += 1;
    }
    if in_current > 0 {
        files.push(current);
    }
    Csvs { files }
}

/// One CSV record with CRLF (RFC 4180).
fn csv_line(row: &Row, with_root: bool) -> Vec<u8> {
    let mut out = String::new();
    push_csv_field(&mut out, &row.email);
    out.push(',');
    push_csv_field(&mut out, &row.user_name);
    out.push(',');
    push_csv_field(&mut out, row.password.expose());
    if with_root {
        out.push(',');
        push_csv_field(&mut out, row.user_root.as_deref().unwrap_or(""));
    }
    out.push_str("\r\n");
    out.into_bytes()
}

/// RFC 4180: a field with a comma, quote or line break is quoted and its quotes doubled; so is
/// one with leading or trailing spaces (a reader that trims would change a password).
fn push_csv_field(out: &mut String, value: &str) {
    let needs_quotes = value.contains([',', '"', '\r', '\n'])
        || value.starts_with([' ', '\t'])
        || value.ends_with([' ', '\t']);
    if needs_quotes {
        out.push('"');
        for c in value.chars() {
            if c == '"' {
                out.push('"');
            }
            out.push(c);
        }
        out.push('"');
    } else {
        out.push_str(value);
    }
}

// ---- Folder filters ---------------------------------------------------------------------------

/// `filters.exclude_folders` in Microsoft's `-ExcludeFolders` syntax, and what could not be
/// carried exactly.
struct Exclusions {
    values: Vec<String>,
    warnings: Vec<String>,
}

/// Translates exclusions into Microsoft's `-ExcludeFolders` values ([`DOC_NEW_BATCH`]):
///
/// - a well-known token: o365-migrate's tokens (`#Inbox#`, `#SentItems#`, `#Drafts#`,
///   `#DeletedItems#`, `#JunkEmail#`, `#Archive#`) are all in Microsoft's list of well-known
///   folders and written the same way, so they pass as they are (with a warning: Microsoft
///   decides which IMAP folder is its JunkEmail, not o365-migrate's folder map);
/// - a glob without wildcards (`Projects/Old`): that folder, as written (relative to the IMAP
///   root, `/`-separated, case-insensitive on both sides); a segment written `#Name#` gets
///   Microsoft's backslash escape `\#Name\#`;
/// - `Name/**` (a folder and everything below it) → `Name/*`, Microsoft's `<FolderName>/*`
///   (with a warning: the doc gives the syntax but does not say in words that it takes the
///   subfolders);
/// - any other glob (`*`, `?` or `**` elsewhere): left out with a warning, because "Wildcard
///   characters can't be used in folder names". Leaving an exclusion out migrates more, never
///   less.
fn translate_exclusions(patterns: &[FolderPattern]) -> Exclusions {
    let mut values: Vec<String> = Vec::new();
    let mut warnings = Vec::new();
    let mut well_known = Vec::new();
    let mut subtrees = Vec::new();
    fn push(v: String, values: &mut Vec<String>) {
        if !values.iter().any(|x| x.eq_ignore_ascii_case(&v)) {
            values.push(v);
        }
    }
    for p in patterns {
        match p {
            FolderPattern::WellKnown(k) => {
                push(k.token().to_owned(), &mut values);
                well_known.push(k.token());
            }
            FolderPattern::Glob(g) => {
                let (base, subtree) = match g.strip_suffix("/**") {
                    Some(b) => (b, true),
                    None => (g.as_str(), false),
                };
                if base.is_empty() || base.contains(['*', '?']) {
                    warnings.push(format!(
                        "exclude_folders `{g}` is left out of Microsoft's batch: its \
                         -ExcludeFolders takes folder names, \"Wildcard characters can't be used \
                         in folder names\" ({DOC_NEW_BATCH}); Microsoft would migrate those \
                         folders — add their names by hand to -ExcludeFolders in {SCRIPT_FILE}"
                    ));
                    continue;
                }
                if base.contains('\\') {
                    warnings.push(format!(
                        "exclude_folders `{g}` is left out of Microsoft's batch: a backslash is \
                         Microsoft's escape character in -ExcludeFolders ({DOC_NEW_BATCH}); add \
                         the folder by hand"
                    ));
                    continue;
                }
                let name = base
                    .split('/')
                    .map(escape_hash_name)
                    .collect::<Vec<_>>()
                    .join("/");
                if subtree {
                    push(format!("{name}/*"), &mut values);
                    subtrees.push(g.as_str());
                } else {
                    push(name, &mut values);
                }
            }
        }
    }
    if !well_known.is_empty() {
        warnings.push(format!(
            "the exclude_folders pattern(s) {} are written as Microsoft's well-known folder names (-ExcludeFolders \
             `#<FolderName>#`, {DOC_NEW_BATCH}); Microsoft decides which IMAP folder that is, \
             which may differ from o365-migrate's folder map (SPECIAL-USE and its name table): \
             check the batch's folders",
            quoted_list(&well_known)
        ));
    }
    if !subtrees.is_empty() {
        warnings.push(format!(
            "the exclude_folders pattern(s) {} are written as `<FolderName>/*`, the folder syntax of Microsoft's \
             -ExcludeFolders ({DOC_NEW_BATCH}); the doc does not say in words that it takes the \
             subfolders: check the batch's folders",
            quoted_list(&subtrees)
        ));
    }
    Exclusions { values, warnings }
}

/// `#Notes#` as a personal folder name is written `\#Notes\#` ([`DOC_NEW_BATCH`]).
fn escape_hash_name(segment: &str) -> String {
    if segment.len() > 1 && segment.starts_with('#') && segment.ends_with('#') {
        format!("\\#{}\\#", &segment[1..segment.len() - 1])
    } else {
        segment.to_owned()
    }
}

fn quoted_list(items: &[&str]) -> String {
    items
        .iter()
        .map(|s| format!("`{s}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Job settings that Microsoft's batch does not carry.
fn job_warnings(job: &Job) -> Vec<String> {
    let mut w = Vec::new();
    let f = &job.filters;
    if !f.include_folders.is_empty() {
        let pats: Vec<String> = f
            .include_folders
            .iter()
            .map(|p| match p {
                FolderPattern::WellKnown(k) => k.token().to_owned(),
                FolderPattern::Glob(g) => g.clone(),
            })
            .collect();
        let pats: Vec<&str> = pats.iter().map(String::as_str).collect();
        w.push(format!(
            "include_folders {} is not carried into Microsoft's batch: it migrates every folder \
             not excluded (New-MigrationBatch documents -IncludeFolders for IMAP, {DOC_NEW_BATCH}, \
             but export-batch does not write it: a wrong include would leave mail behind)",
            quoted_list(&pats)
        ));
    }
    if f.since.is_some() || f.before.is_some() {
        w.push(format!(
            "[filters] since / before are not carried into Microsoft's batch: it migrates mail of \
             every date (New-MigrationBatch has -ContentFilter \"Received -ge '…'\" for IMAP, \
             {DOC_NEW_BATCH}; add it by hand if needed)"
        ));
    }
    if !job.folders.map.is_empty() {
        w.push(
            "[[folders.map]] rules are not carried into Microsoft's batch: it keeps the source \
             folder names"
                .to_owned(),
        );
    }
    if job.target.kind != crate::config::TargetKind::Graph {
        w.push(format!(
            "the job's target is `{}`, not Microsoft 365: the EmailAddress column holds the \
             pairing's targets, which Microsoft reads as Microsoft 365 mailboxes",
            job.target.kind.as_str()
        ));
    }
    let s = &job.source;
    if s.security == Security::None {
        w.push(
            "[source] security = \"none\": Microsoft's service will log in to the IMAP server \
             without encryption (-Security None), sending the passwords in clear"
                .to_owned(),
        );
    }
    if s.accept_invalid_certs {
        w.push(format!(
            "[source] accept_invalid_certs = true: the script adds -AcceptUntrustedCertificates \
             (in the IMAP parameter sets of Test-MigrationServerAvailability and \
             New-MigrationEndpoint; Microsoft's page gives no description of it, {DOC_NEW_ENDPOINT})"
        ));
    }
    if s.ca_file.is_some() {
        w.push(
            "[source] ca_file cannot be given to Microsoft's service: the IMAP server's \
             certificate must verify for Microsoft"
                .to_owned(),
        );
    }
    w
}

// ---- Names -----------------------------------------------------------------------------------

/// The endpoint and batch names, from the job file's name.
struct Names {
    endpoint: String,
    batches: Vec<String>,
}

impl Names {
    fn new(job: &Job, csv_count: usize) -> Names {
        let stem = job
            .file
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let mut base: String = stem
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' {
                    c
                } else {
                    '-'
                }
            })
            .collect();
        base = base.trim_matches('-').to_owned();
        // Room for "-imap" / "-NNNN" under Microsoft's 64 characters.
        base.truncate(MICROSOFT_NAME_MAX - 16);
        if base.is_empty() {
            base = "o365-migrate".to_owned();
        }
        let batches = if csv_count == 1 {
            vec![base.clone()]
        } else {
            (1..=csv_count).map(|i| format!("{base}-{i}")).collect()
        };
        Names {
            endpoint: format!("{base}-imap"),
            batches,
        }
    }

    fn csv(&self, i: usize) -> String {
        if self.batches.len() == 1 {
            "migration.csv".to_owned()
        } else {
            format!("batch-{}.csv", i + 1)
        }
    }
}

// ---- The PowerShell script -------------------------------------------------------------------

/// Microsoft's `-Security` value for our transport security ([`DOC_NEW_ENDPOINT`]: None, Tls or
/// Ssl; [`DOC_IMAP_POWERSHELL`]: 993 for SSL, 143 for unencrypted or TLS): implicit TLS is `Ssl`,
/// STARTTLS is `Tls`.
fn microsoft_security(s: Security) -> &'static str {
    match s {
        Security::Tls => "Ssl",
        Security::Starttls => "Tls",
        Security::None => "None",
    }
}

/// A PowerShell single-quoted string. PowerShell also ends such a string at the typographic
/// single quotes U+2018–U+201B; every one of them is doubled like `'`.
fn ps_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('\'');
    for c in s.chars() {
        if matches!(c, '\'' | '\u{2018}' | '\u{2019}' | '\u{201A}' | '\u{201B}') {
            out.push(c);
        }
        out.push(c);
    }
    out.push('\'');
    out
}

fn script(job: &Job, names: &Names, csv_names: &[String], exclude: &[String]) -> String {
    let s = &job.source;
    let server = ps_quote(s.host.trim());
    let port = s.port();
    let security = microsoft_security(s.security);
    let untrusted = if s.accept_invalid_certs {
        " -AcceptUntrustedCertificates"
    } else {
        ""
    };
    let mut lines: Vec<String> = vec![
        "# Microsoft's own IMAP migration, written by `o365-migrate export-batch`.".into(),
        "# Run it in Exchange Online PowerShell after Connect-ExchangeOnline (module".into(),
        "# ExchangeOnlineManagement). It reads the CSV files from its own folder, creates the IMAP"
            .into(),
        "# migration endpoint and one migration batch per CSV file, and starts nothing.".into(),
        format!("# How Microsoft describes these steps: {DOC_IMAP_POWERSHELL}"),
        "$ErrorActionPreference = 'Stop'".into(),
        String::new(),
        "# 1. Can Microsoft's datacenter reach the IMAP server? The result should say Success."
            .into(),
        format!("#    {DOC_TEST_SERVER}"),
        format!(
            "Test-MigrationServerAvailability -IMAP -RemoteServer {server} -Port {port} \
             -Security {security}{untrusted}"
        ),
        String::new(),
        "# 2. The migration endpoint. -Security: Ssl = TLS from the first byte (993), Tls =".into(),
        "#    STARTTLS (143), None = no encryption. Microsoft's defaults are 100 mailboxes at once"
            .into(),
        "#    (-MaxConcurrentMigrations) and 20 incremental syncs at once".into(),
        "#    (-MaxConcurrentIncrementalSyncs); lower them if the IMAP server limits connections."
            .into(),
        format!("#    {DOC_NEW_ENDPOINT}"),
        format!(
            "New-MigrationEndpoint -IMAP -Name {} -RemoteServer {server} -Port {port} \
             -Security {security}{untrusted}",
            ps_quote(&names.endpoint)
        ),
        String::new(),
    ];
    if csv_names.is_empty() {
        lines.push("# 3. No mailbox could be exported: no migration batch.".into());
    } else {
        lines.push(format!(
            "# 3. One migration batch per CSV file (at most {} rows each).",
            group_thousands(MICROSOFT_BATCH_ROWS)
        ));
        lines.push(format!("#    {DOC_NEW_BATCH}"));
        let exclude = if exclude.is_empty() {
            String::new()
        } else {
            let list: Vec<String> = exclude.iter().map(|e| ps_quote(e)).collect();
            format!(" -ExcludeFolders {}", list.join(","))
        };
        for (name, csv) in names.batches.iter().zip(csv_names) {
            lines.push(format!(
                "New-MigrationBatch -Name {} -SourceEndpoint {} -CSVData \
                 ([System.IO.File]::ReadAllBytes((Join-Path $PSScriptRoot {}))){exclude}",
                ps_quote(name),
                ps_quote(&names.endpoint),
                ps_quote(csv)
            ));
        }
        lines.push(String::new());
        lines.push(format!(
            "# The batches are created, not started. Start each one ({DOC_START_BATCH}):"
        ));
        for name in &names.batches {
            lines.push(format!(
                "#   Start-MigrationBatch -Identity {}",
                ps_quote(name)
            ));
        }
        lines.push("# and follow them with Get-MigrationBatch.".into());
        lines.push(
            "# Then delete the CSV files: they hold passwords, and Microsoft keeps its own copy."
                .into(),
        );
    }
    // A byte order mark: Windows PowerShell 5.1 reads a script without one as ANSI, which would
    // garble non-ASCII folder names.
    let mut out = String::from("\u{FEFF}");
    for l in lines {
        out.push_str(&l);
        out.push_str("\r\n");
    }
    out
}

// ---- README ----------------------------------------------------------------------------------

fn readme(
    job: &Job,
    names: &Names,
    csv_names: &[String],
    rows: usize,
    left_out: usize,
    warnings: &[String],
) -> String {
    let mut t = String::new();
    let mut line = |s: &str| {
        t.push_str(s);
        t.push_str("\r\n");
    };
    line("Microsoft's own IMAP migration, written by `o365-migrate export-batch`");
    line("=========================================================================");
    line("");
    line(&format!(
        "{rows} mailbox(es) exported in {} batch(es); {left_out} source(s) left out (listed by \
         the command, with the reason).",
        csv_names.len()
    ));
    line("");
    line("Files");
    line("-----");
    for (csv, batch) in csv_names.iter().zip(&names.batches) {
        line(&format!(
            "  {csv}  the rows of batch '{batch}' (Microsoft's CSV format)."
        ));
    }
    line(&format!(
        "  {SCRIPT_FILE}  creates the endpoint '{}' and the batches; starts nothing.",
        names.endpoint
    ));
    line(&format!("  {README_FILE}  this file."));
    line("");
    line("THE CSV FILES HOLD PASSWORDS");
    line("----------------------------");
    line(if job.source.login == LoginMode::Admin {
        "  The admin's IMAP password is in every row, in clear text."
    } else {
        "  Every user's IMAP password is in them, in clear text."
    });
    line("  They were written readable by their owner only. Do not mail them or copy them to a");
    line("  share. Delete them as soon as the batches are created: Microsoft keeps its own copy");
    line("  (\"The information from the CSV file is encrypted and stored on the Microsoft");
    line(&format!("  Exchange servers\", {DOC_CSV})."));
    line("");
    line("How to run");
    line("----------");
    line("  1. Connect-ExchangeOnline (module ExchangeOnlineManagement) as an Exchange admin.");
    line(&format!(
        "  2. .\\{SCRIPT_FILE}  (tests the server, creates the endpoint and the batches)."
    ));
    line("  3. Start-MigrationBatch -Identity <batch name>, for each batch.");
    line("  4. Follow with Get-MigrationBatch; a batch that finished its first pass shows Synced");
    line(&format!("     ({DOC_OTHER_IMAP})."));
    line("  5. Delete the CSV files. After the MX record points to Microsoft 365 and a last sync");
    line("     ran, delete the batches (Remove-MigrationBatch): that stops the daily sync.");
    line("");
    line("What each path keeps");
    line("--------------------");
    line("  Microsoft's figures are quoted from its pages, each given with its address.");
    line("");
    line("  Largest message");
    line(&format!(
        "    Microsoft IMAP migration: {MICROSOFT_MAX_MESSAGE_MB} MB (\"The biggest email you can \
         migrate is {MICROSOFT_MAX_MESSAGE_MB} MB\","
    ));
    line(&format!("      {DOC_IMAP_LIMITS})."));
    line("    o365-migrate: up to 150 MB through Graph upload sessions when the mailbox's");
    line("      MaxReceiveSize allows it; [filters] max_message_size skips larger ones, reported.");
    line("");
    line("  Items per mailbox");
    line(&format!(
        "    Microsoft: at most {MICROSOFT_MAX_ITEMS}, newest first ({DOC_IMAP_LIMITS})."
    ));
    line("    o365-migrate: no cap.");
    line("");
    line("  What is copied");
    line(
        "    Microsoft: mail folders only, \"doesn't migrate contacts, calendar items, or tasks\"",
    );
    line(&format!("      ({DOC_IMAP_LIMITS})."));
    line("    o365-migrate: mail folders too (IMAP holds mail only), with each message's flags");
    line("      and received date, and a reason for every folder and message it skips.");
    line("");
    line("  Mailboxes per batch");
    line(&format!(
        "    Microsoft: at most {} rows and 10 MB per CSV file ({DOC_CSV}).",
        group_thousands(MICROSOFT_BATCH_ROWS)
    ));
    line("    o365-migrate: no cap; [limits] mailboxes_at_once bounds the load on the server.");
    line("");
    line("  After the first pass");
    line("    Microsoft: \"incremental synchronization, which occurs once every 24 hours\"");
    line(&format!(
        "      ({DOC_IMAP_POWERSHELL}), until the batch is deleted."
    ));
    line("    o365-migrate: `o365-migrate rescan` copies what is new whenever you run it.");
    line("");
    line("  Folder filters");
    line("    Microsoft: -ExcludeFolders with folder names relative to the IMAP root or");
    line(&format!(
        "      well-known names such as #JunkEmail#; no wildcards ({DOC_NEW_BATCH})."
    ));
    line("    o365-migrate: globs, well-known tokens, include and exclude, date and size filters.");
    line("");
    line("  Verifying");
    line("    Microsoft: the batch status (Synced) and its per-user reports in the Exchange admin");
    line(&format!(
        "      center or Get-MigrationBatch ({DOC_OTHER_IMAP})."
    ));
    line("    o365-migrate: `o365-migrate verify` compares every folder's counts and every");
    line("      message's key / Message-ID between source and target, and reports differences.");
    if !warnings.is_empty() {
        line("");
        line("Warnings");
        line("--------");
        for w in warnings {
            line(&format!("  - {w}"));
        }
    }
    t
}

/// 50000 → "50,000".
fn group_thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    // ---- What Microsoft documents, as the tests check it ------------------------------------

    /// The required CSV attributes, in the doc's order, spelled as the doc spells them: "be sure
    /// to type the attributes exactly as they're shown".
    /// <https://learn.microsoft.com/exchange/mailbox-migration/migrating-imap-mailboxes/csv-files-for-imap-migrations>
    const MS_REQUIRED_COLUMNS: [&str; 3] = ["EmailAddress", "UserName", "Password"];
    /// The optional attribute (same page, "Use the optional UserRoot attribute").
    const MS_OPTIONAL_COLUMN: &str = "UserRoot";
    /// The same page's Dovecot example: `User_UserName*Admin_UserName` with the admin's password.
    const MS_DOVECOT_EXAMPLE_USER: &str = "terry.adams*mailadmin";

    /// `Test-MigrationServerAvailability`, parameter set IMAP (without the common parameters).
    /// <https://learn.microsoft.com/powershell/module/exchange/test-migrationserveravailability>
    const TEST_SERVER_IMAP: &[&str] = &[
        "RemoteServer",
        "Port",
        "Imap",
        "AcceptUntrustedCertificates",
        "Authentication",
        "Security",
        "Confirm",
        "Partition",
        "WhatIf",
    ];
    const TEST_SERVER_IMAP_REQUIRED: &[&str] = &["Imap", "RemoteServer", "Port"];

    /// `New-MigrationEndpoint`, parameter set IMAP.
    /// <https://learn.microsoft.com/powershell/module/exchange/new-migrationendpoint>
    const NEW_ENDPOINT_IMAP: &[&str] = &[
        "Name",
        "RemoteServer",
        "IMAP",
        "Port",
        "Security",
        "AcceptUntrustedCertificates",
        "Authentication",
        "Confirm",
        "DomainController",
        "MaxConcurrentIncrementalSyncs",
        "MaxConcurrentMigrations",
        "Partition",
        "SkipVerification",
        "WhatIf",
    ];
    const NEW_ENDPOINT_IMAP_REQUIRED: &[&str] = &["IMAP", "Name", "RemoteServer"];

    /// `New-MigrationBatch`: the parameters of the Onboarding set (the one with -SourceEndpoint
    /// and -ExcludeFolders, used by the doc's IMAP Example 7) that the doc does not restrict to
    /// other migration types. Left out on purpose: -AutoComplete ("only … for local moves and
    /// remote move migrations"), -TargetDeliveryDomain ("required for remote move onboarding and
    /// remote offboarding"), -TargetDatabases, -ArchiveOnly, -PrimaryOnly, the Google-only
    /// -Skip* switches and the on-premises-only parameters.
    /// <https://learn.microsoft.com/powershell/module/exchange/new-migrationbatch>
    const NEW_BATCH_IMAP: &[&str] = &[
        "Name",
        "CSVData",
        "SourceEndpoint",
        "ExcludeFolders",
        "IncludeFolders",
        "ContentFilter",
        "ContentFilterLanguage",
        "AutoStart",
        "NotificationEmails",
        "ReportInterval",
        "SkipReports",
        "StartAfter",
        "TimeZone",
        "AllowUnknownColumnsInCsv",
        "Confirm",
        "WhatIf",
    ];
    /// -Name is required in every set; an IMAP batch needs its CSV and its IMAP endpoint
    /// (Example 7).
    const NEW_BATCH_IMAP_REQUIRED: &[&str] = &["Name", "CSVData", "SourceEndpoint"];

    /// `-Security`: "The options are None, Tls, or Ssl" (both cmdlets' pages).
    const SECURITY_VALUES: &[&str] = &["None", "Tls", "Ssl"];

    // ---- Fixtures ------------------------------------------------------------------------------

    fn job(source_extra: &str, filters: &str) -> Job {
        let text = format!(
            r#"
[source]
host = "imap.example.com"
credentials = "users.csv"
{source_extra}

[target]
kind = "graph"

[target.graph]
tenant = "contoso.onmicrosoft.com"
client_id = "11111111-2222-3333-4444-555555555555"
client_secret = "env:O365_EXPORT_TEST_UNUSED_SECRET"

[filters]
{filters}
"#
        );
        Job::parse(&text, "o365-migrate.toml").expect("job parses")
    }

    fn credentials(csv: &str, admin: bool) -> creds::Credentials {
        let mut opts = creds::ReadOptions::default().delimiter(',');
        if admin {
            opts = opts.admin_mode();
        }
        creds::parse_bytes(csv.as_bytes(), "users.csv", &opts)
            .expect("reads")
            .into_credentials()
            .expect("valid credentials")
    }

    fn pair(source: &str, target: &str) -> MailboxPair {
        MailboxPair {
            source: source.into(),
            target: target.into(),
        }
    }

    fn file<'a>(e: &'a BatchExport, name: &str) -> &'a ExportFile {
        e.files
            .iter()
            .find(|f| f.name == name)
            .unwrap_or_else(|| panic!("no file {name} in {:?}", e.files))
    }

    fn text(f: &ExportFile) -> &str {
        std::str::from_utf8(&f.bytes).expect("UTF-8")
    }

    fn header(f: &ExportFile) -> &str {
        text(f).split("\r\n").next().unwrap_or("")
    }

    /// One CSV row read back: (EmailAddress, UserName, Password, UserRoot).
    type Back = (String, String, String, Option<String>);

    /// Reads a CSV back with a real CSV reader (the credentials crate's RFC 4180 reader, which
    /// knows Microsoft's format), passwords taken literally.
    fn read_back(f: &ExportFile) -> Vec<Back> {
        let mut opts = creds::ReadOptions::default().delimiter(',');
        opts.secret_references = false;
        let parsed = creds::parse_bytes(&f.bytes, &f.name, &opts).expect("reads");
        assert!(
            !parsed.report().has_errors(),
            "{}",
            parsed.report().to_json()
        );
        parsed
            .records()
            .iter()
            .map(|r| {
                let pw = r
                    .password
                    .as_ref()
                    .map(|p| p.resolve().expect("inline").expose().to_owned())
                    .unwrap_or_default();
                (
                    r.target.clone().unwrap_or_default(),
                    r.login.clone(),
                    pw,
                    r.user_root.clone(),
                )
            })
            .collect()
    }

    fn back(email: &str, user: &str, pw: &str, root: Option<&str>) -> Back {
        (
            email.into(),
            user.into(),
            pw.into(),
            root.map(str::to_owned),
        )
    }

    fn csv_files(e: &BatchExport) -> Vec<&ExportFile> {
        e.files
            .iter()
            .filter(|f| f.name.ends_with(".csv"))
            .collect()
    }

    // ---- A small PowerShell reader for the generated script -------------------------------------

    fn is_quote(c: char) -> bool {
        matches!(c, '\'' | '\u{2018}'..='\u{201B}')
    }

    /// Splits a line into tokens on whitespace outside single quotes and parentheses; a token
    /// starting with `#` starts a comment.
    fn tokenize(line: &str) -> Vec<String> {
        let chars: Vec<char> = line.chars().collect();
        let (mut tokens, mut cur) = (Vec::new(), String::new());
        let (mut depth, mut in_quote, mut i) = (0i32, false, 0);
        while i < chars.len() {
            let c = chars[i];
            if in_quote {
                cur.push(c);
                if is_quote(c) {
                    if chars.get(i + 1).is_some_and(|&n| is_quote(n)) {
                        cur.push(chars[i + 1]);
                        i += 1;
                    } else {
                        in_quote = false;
                    }
                }
            } else if is_quote(c) {
                in_quote = true;
                cur.push(c);
            } else if c == '#' && cur.is_empty() && depth == 0 {
                break;
            } else if c.is_whitespace() && depth == 0 {
                if !cur.is_empty() {
                    tokens.push(std::mem::take(&mut cur));
                }
            } else {
                depth += i32::from(c == '(') - i32::from(c == ')');
                cur.push(c);
            }
            i += 1;
        }
        assert!(
            !in_quote && depth == 0,
            "unbalanced quotes or parentheses: {line}"
        );
        if !cur.is_empty() {
            tokens.push(cur);
        }
        tokens
    }

    /// `'a','b''c'` → ["a", "b'c"]; a bare word is taken as it is.
    fn ps_values(token: &str) -> Vec<String> {
        let chars: Vec<char> = token.chars().collect();
        if !chars.first().is_some_and(|&c| is_quote(c)) {
            return vec![token.to_owned()];
        }
        let (mut out, mut cur, mut i) = (Vec::new(), String::new(), 0);
        while i < chars.len() {
            assert!(is_quote(chars[i]), "expected a quoted string in {token}");
            i += 1;
            loop {
                let c = *chars
                    .get(i)
                    .unwrap_or_else(|| panic!("unterminated: {token}"));
                if is_quote(c) {
                    if chars.get(i + 1).is_some_and(|&n| is_quote(n)) {
                        cur.push(c);
                        i += 2;
                        continue;
                    }
                    i += 1;
                    break;
                }
                cur.push(c);
                i += 1;
            }
            out.push(std::mem::take(&mut cur));
            if i < chars.len() {
                assert_eq!(chars[i], ',', "values must be separated by commas: {token}");
                i += 1;
            }
        }
        out
    }

    struct Command {
        cmdlet: String,
        params: Vec<(String, Option<String>)>,
    }

    impl Command {
        fn value(&self, name: &str) -> Option<&str> {
            self.params
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
                .and_then(|(_, v)| v.as_deref())
        }
    }

    fn is_param(t: &str) -> bool {
        t.strip_prefix('-')
            .is_some_and(|r| r.starts_with(|c: char| c.is_ascii_alphabetic()))
    }

    /// Every command of the script. Only `$ErrorActionPreference = 'Stop'` may be something
    /// other than a cmdlet call; a positional argument fails.
    fn commands(script: &str) -> Vec<Command> {
        let script = script.strip_prefix('\u{FEFF}').expect("byte order mark");
        let mut out = Vec::new();
        for line in script.split("\r\n") {
            let tokens = tokenize(line);
            let Some(first) = tokens.first() else {
                continue;
            };
            if first.starts_with('$') {
                assert_eq!(line, "$ErrorActionPreference = 'Stop'");
                continue;
            }
            let mut params = Vec::new();
            let mut i = 1;
            while i < tokens.len() {
                let t = &tokens[i];
                assert!(is_param(t), "positional argument `{t}` in: {line}");
                let value = tokens.get(i + 1).filter(|v| !is_param(v)).cloned();
                i += 1 + usize::from(value.is_some());
                params.push((t[1..].to_owned(), value));
            }
            out.push(Command {
                cmdlet: first.clone(),
                params,
            });
        }
        out
    }

    /// Checks the script against the documented parameter sets and the files; returns the
    /// batches' `-ExcludeFolders` values (the same for every batch).
    fn check_script(e: &BatchExport, job: &Job) -> Vec<String> {
        let cmds = commands(text(file(e, SCRIPT_FILE)));
        let sets: [(&str, &[&str], &[&str]); 3] = [
            (
                "Test-MigrationServerAvailability",
                TEST_SERVER_IMAP,
                TEST_SERVER_IMAP_REQUIRED,
            ),
            (
                "New-MigrationEndpoint",
                NEW_ENDPOINT_IMAP,
                NEW_ENDPOINT_IMAP_REQUIRED,
            ),
            (
                "New-MigrationBatch",
                NEW_BATCH_IMAP,
                NEW_BATCH_IMAP_REQUIRED,
            ),
        ];
        for c in &cmds {
            let (_, allowed, required) = sets
                .iter()
                .find(|(n, _, _)| n.eq_ignore_ascii_case(&c.cmdlet))
                .unwrap_or_else(|| panic!("undocumented cmdlet {}", c.cmdlet));
            for (p, _) in &c.params {
                assert!(
                    allowed.iter().any(|a| a.eq_ignore_ascii_case(p)),
                    "-{p} is not in the documented IMAP parameters of {}",
                    c.cmdlet
                );
            }
            for r in *required {
                assert!(
                    c.params.iter().any(|(p, _)| p.eq_ignore_ascii_case(r)),
                    "{} lacks -{r}",
                    c.cmdlet
                );
            }
            if let Some(s) = c.value("Security") {
                let s = &ps_values(s)[0];
                assert!(SECURITY_VALUES.contains(&s.as_str()), "-Security {s}");
            }
        }
        let names: Vec<&str> = cmds.iter().map(|c| c.cmdlet.as_str()).collect();
        let batches = csv_files(e).len();
        let mut expected = vec!["Test-MigrationServerAvailability", "New-MigrationEndpoint"];
        expected.extend(std::iter::repeat_n("New-MigrationBatch", batches));
        assert_eq!(names, expected);

        let server = ps_values(cmds[0].value("RemoteServer").expect("server"));
        assert_eq!(server, std::slice::from_ref(&job.source.host));
        for c in &cmds[..2] {
            assert_eq!(
                c.value("Port"),
                Some(job.source.port().to_string().as_str())
            );
            assert_eq!(ps_values(c.value("RemoteServer").expect("server")), server);
        }
        let endpoint = ps_values(cmds[1].value("Name").expect("endpoint name"));
        let prefix = "([System.IO.File]::ReadAllBytes((Join-Path $PSScriptRoot ";
        let mut read = Vec::new();
        let mut excludes = None;
        for c in &cmds[2..] {
            assert_eq!(
                ps_values(c.value("SourceEndpoint").expect("endpoint")),
                endpoint
            );
            let name = ps_values(c.value("Name").expect("name"));
            assert!(name[0].len() <= MICROSOFT_NAME_MAX);
            let data = c.value("CSVData").expect("CSVData");
            let inner = data
                .strip_prefix(prefix)
                .and_then(|d| d.strip_suffix(")))"))
                .unwrap_or_else(|| panic!("unexpected -CSVData {data}"));
            read.push(ps_values(inner).remove(0));
            let ex = c.value("ExcludeFolders").map(ps_values).unwrap_or_default();
            assert!(excludes.get_or_insert_with(|| ex.clone()) == &ex);
        }
        let produced: Vec<String> = csv_files(e).iter().map(|f| f.name.clone()).collect();
        assert_eq!(
            read, produced,
            "the script reads exactly the CSV files produced"
        );
        excludes.unwrap_or_default()
    }

    // ---- Tests ---------------------------------------------------------------------------------

    #[test]
    fn csv_has_microsofts_columns_and_quotes_passwords() {
        let job = job("", "");
        let creds = credentials(
            "Login,Password\r\n\
             alice@old.example,\"pa,ss\"\"word\"\r\n\
             bob@old.example,plain\r\n\
             carol@old.example, spaced \r\n",
            false,
        );
        let pairs = [
            pair("alice@old.example", "alice@contoso.com"),
            pair("BOB@old.example", "bob@contoso.com"),
            pair("carol@old.example", "carol@contoso.com"),
        ];
        let e = build(&job, &creds, &pairs, &[]).expect("export");
        let names: Vec<&str> = e.files.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, ["migration.csv", SCRIPT_FILE, README_FILE]);
        let csv = file(&e, "migration.csv");
        assert!(csv.secret);
        assert_eq!(header(csv), MS_REQUIRED_COLUMNS.join(","));
        assert_eq!(
            read_back(csv),
            [
                back(
                    "alice@contoso.com",
                    "alice@old.example",
                    "pa,ss\"word",
                    None
                ),
                back("bob@contoso.com", "bob@old.example", "plain", None),
                back("carol@contoso.com", "carol@old.example", " spaced ", None),
            ]
        );
        assert_eq!(e.rows, 3);
        assert!(e.left_out.is_empty(), "{:?}", e.left_out);
        assert!(e.warnings.is_empty(), "{:?}", e.warnings);
        // Passwords are in the CSV only.
        for f in e.files.iter().filter(|f| !f.secret) {
            for pw in ["pa,ss\"word", "plain"] {
                assert!(!text(f).contains(pw), "{} holds a password", f.name);
            }
        }
        assert!(!format!("{e:?}").contains("plain"));
        // The README gives Microsoft's figures with their source.
        let readme = text(file(&e, README_FILE));
        assert!(readme.contains("35 MB") && readme.contains(DOC_IMAP_LIMITS));
        assert!(readme.contains("HOLD PASSWORDS"));
        check_script(&e, &job);
    }

    #[test]
    fn script_uses_documented_parameters_and_reads_the_csv_files() {
        let job = job(
            "security = \"starttls\"\naccept_invalid_certs = true",
            r##"exclude_folders = ["#JunkEmail#", "Projects/**", "Archive/2019", "**/Spam", "Old*", "Team/#Notes#"]
include_folders = ["#Inbox#"]"##,
        );
        let creds = credentials("Login,Password\r\nalice@old.example,pw\r\n", false);
        let e = build(
            &job,
            &creds,
            &[pair("alice@old.example", "alice@contoso.com")],
            &[],
        )
        .expect("export");
        let excludes = check_script(&e, &job);
        assert_eq!(
            excludes,
            [
                "#JunkEmail#",
                "Projects/*",
                "Archive/2019",
                "Team/\\#Notes\\#"
            ]
        );
        let script = text(file(&e, SCRIPT_FILE));
        assert!(
            script.contains("-Port 143 -Security Tls"),
            "STARTTLS is Microsoft's Tls"
        );
        assert!(script.contains("-AcceptUntrustedCertificates"));
        assert!(!script.contains("-AutoStart"));
        let warned = |needle: &str| e.warnings.iter().any(|w| w.contains(needle));
        assert!(warned("`**/Spam`") && warned("`Old*`"), "{:?}", e.warnings);
        assert!(warned("include_folders `#Inbox#`"), "{:?}", e.warnings);
        assert!(
            warned("`#JunkEmail#`") && warned("`Projects/**`"),
            "{:?}",
            e.warnings
        );
    }

    #[test]
    fn security_maps_to_microsofts_values() {
        assert_eq!(microsoft_security(Security::Tls), "Ssl");
        assert_eq!(microsoft_security(Security::Starttls), "Tls");
        assert_eq!(microsoft_security(Security::None), "None");
        assert_eq!(ps_quote("O'Brien\u{2019}s"), "'O''Brien\u{2019}\u{2019}s'");
        assert_eq!(ps_values(&ps_quote("O'Brien")), ["O'Brien"]);
    }

    #[test]
    fn admin_mode_writes_dovecots_user_star_admin_form() {
        let dir = tempfile::tempdir().expect("tempdir");
        let secret = dir.path().join("admin-pw");
        std::fs::write(&secret, "P@ss,w0rd\"\n").expect("write secret");
        let job = job(
            &format!(
                "login = \"admin\"\n[source.admin]\nuser = \"mailadmin\"\nsecret = \"file:{}\"",
                secret.display()
            ),
            "",
        );
        let creds = credentials(
            "UserName,EmailAddress\r\n\
             terry.adams,terrya@contoso.edu\r\n\
             ann*beebe,annb@contoso.edu\r\n",
            true,
        );
        let pairs = [
            pair("terry.adams", "terrya@contoso.edu"),
            pair("ann*beebe", "annb@contoso.edu"),
        ];
        let e = build(&job, &creds, &pairs, &[]).expect("export");
        let csv = file(&e, "migration.csv");
        assert_eq!(header(csv), MS_REQUIRED_COLUMNS.join(","));
        assert_eq!(
            read_back(csv),
            [back(
                "terrya@contoso.edu",
                MS_DOVECOT_EXAMPLE_USER,
                "P@ss,w0rd\"",
                None
            )]
        );
        assert_eq!(e.left_out.len(), 1);
        assert_eq!(e.left_out[0].source, "ann*beebe");
        assert!(
            e.left_out[0].reason.contains("row 2") && e.left_out[0].reason.contains("separator"),
            "{}",
            e.left_out[0].reason
        );
        // An admin secret that does not resolve concerns every row: an error with a hint.
        let job = self::job(
            "login = \"admin\"\n[source.admin]\nuser = \"mailadmin\"\nsecret = \"env:O365_EXPORT_TEST_NEVER_SET_ADMIN\"",
            "",
        );
        let err = build(&job, &creds, &pairs, &[]).expect_err("unresolved admin secret");
        assert!(
            err.to_string().contains("O365_EXPORT_TEST_NEVER_SET_ADMIN"),
            "{err}"
        );
    }

    #[test]
    fn user_root_adds_the_optional_column() {
        let job = job("", "");
        let creds = credentials(
            "EmailAddress,UserName,Password,UserRoot\r\n\
             terrya@contoso.edu,mailadmin,pw1,/users/terry.adams\r\n\
             annb@contoso.edu,ann.beebe,pw2,\r\n",
            false,
        );
        let pairs = [
            pair("mailadmin", "terrya@contoso.edu"),
            pair("ann.beebe", "annb@contoso.edu"),
        ];
        let e = build(&job, &creds, &pairs, &[]).expect("export");
        let csv = file(&e, "migration.csv");
        let mut columns = MS_REQUIRED_COLUMNS.to_vec();
        columns.push(MS_OPTIONAL_COLUMN);
        assert_eq!(header(csv), columns.join(","));
        assert_eq!(
            read_back(csv),
            [
                back(
                    "terrya@contoso.edu",
                    "mailadmin",
                    "pw1",
                    Some("/users/terry.adams")
                ),
                back("annb@contoso.edu", "ann.beebe", "pw2", None),
            ]
        );
    }

    #[test]
    fn more_than_microsofts_cap_is_split_into_batches() {
        let job = job("", "");
        let n = MICROSOFT_BATCH_ROWS + 1;
        let mut csv = String::from("Login,Password\r\n");
        for i in 0..n {
            csv.push_str(&format!("user{i}@old.example,pw{i}\r\n"));
        }
        let creds = credentials(&csv, false);
        let pairs: Vec<MailboxPair> = (0..n)
            .map(|i| {
                pair(
                    &format!("user{i}@old.example"),
                    &format!("user{i}@contoso.com"),
                )
            })
            .collect();

        // Exactly at the cap: one file, no warning.
        let e = build(&job, &creds, &pairs[..MICROSOFT_BATCH_ROWS], &[]).expect("export");
        let files = csv_files(&e);
        assert_eq!(files.len(), 1);
        assert_eq!(files[0].name, "migration.csv");
        assert_eq!(
            text(files[0]).matches("\r\n").count(),
            MICROSOFT_BATCH_ROWS + 1
        );
        assert!(e.warnings.is_empty(), "{:?}", e.warnings);

        // One more: two files and batches, and a warning naming Microsoft's cap.
        let e = build(&job, &creds, &pairs, &[]).expect("export");
        let files = csv_files(&e);
        let names: Vec<&str> = files.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, ["batch-1.csv", "batch-2.csv"]);
        assert_eq!(
            text(files[0]).matches("\r\n").count(),
            MICROSOFT_BATCH_ROWS + 1
        );
        assert_eq!(
            read_back(files[1]),
            [back(
                &format!("user{}@contoso.com", n - 1),
                &format!("user{}@old.example", n - 1),
                &format!("pw{}", n - 1),
                None
            )]
        );
        for f in &files {
            assert_eq!(header(f), MS_REQUIRED_COLUMNS.join(","));
        }
        assert_eq!(e.rows, n);
        assert_eq!(e.warnings.len(), 1, "{:?}", e.warnings);
        assert!(
            e.warnings[0].contains("50,000") && e.warnings[0].contains("2 CSV files"),
            "{}",
            e.warnings[0]
        );
        check_script(&e, &job);
    }

    #[test]
    fn unresolvable_password_reference_is_left_out_with_its_row() {
        let var = "O365_EXPORT_TEST_NEVER_SET_7F3A";
        assert!(std::env::var_os(var).is_none());
        let job = job("", "");
        let creds = credentials(
            &format!("Login,Password\r\nalice@old.example,env:{var}\r\nbob@old.example,pw\r\n"),
            false,
        );
        let pairs = [
            pair("alice@old.example", "alice@contoso.com"),
            pair("bob@old.example", "bob@contoso.com"),
            pair("dave@old.example", "dave@contoso.com"),
        ];
        let carol = Unpaired {
            source: "carol@old.example".into(),
            reason: "automatch: no target user matched".into(),
        };
        let e = build(&job, &creds, &pairs, std::slice::from_ref(&carol)).expect("export");
        assert_eq!(e.rows, 1);
        assert_eq!(
            read_back(file(&e, "migration.csv")),
            [back("bob@contoso.com", "bob@old.example", "pw", None)]
        );
        let sources: Vec<&str> = e.left_out.iter().map(|u| u.source.as_str()).collect();
        assert_eq!(
            sources,
            ["carol@old.example", "alice@old.example", "dave@old.example"]
        );
        assert_eq!(e.left_out[0], carol);
        let reason = &e.left_out[1].reason;
        assert!(
            reason.contains("credentials row 1 (line 2)") && reason.contains(var),
            "{reason}"
        );
        assert!(e.left_out[2].reason.contains("not in the credentials file"));
    }
}
