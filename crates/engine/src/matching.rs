//! Which source mailbox goes where: automatch against the target directory (`match`), the
//! mailbox pairs a run uses, and provisioning of missing target users (`provision`).
//!
//! The decision chain, strongest first:
//! 1. the mapping file (`[matching] pairs_file`, written by `match --out` and edited by the
//!    admin): when it is configured, `run` migrates exactly its `matched` rows and reports every
//!    other source as skipped with the row's status;
//! 2. the credentials file's target column (a manual pair);
//! 3. `[matching] exclude` globs;
//! 4. the automatch rules (`[matching] rules`, `domains`) against the target directory (Graph),
//!    or, for targets without a directory (IMAP, EWS, EML), the domain map applied to the login.
//!
//! Without a mapping file, the automatch result *is* the job's pairing: every command that
//! needs targets (`target test`, `plan`, `run`, `rescan`, `verify`) migrates its `matched` rows
//! and reports every other source as skipped with its status and the fix. The result is kept in
//! the state store (record [`PAIRING_RECORD`]) so every command of the migration uses the same
//! pairs; `match` decides again and replaces it, `provision` drops it (new users exist), and a
//! change to the credentials rows or the `[matching]` rules makes the next command decide again.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::time::Duration;

use o365_migrate_automatch as am;
use o365_migrate_target as target;
use serde::Serialize;

use crate::error::{Error, Result};

/// One source mailbox and where it goes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MailboxPair {
    /// Source login (as in the credentials file).
    pub source: String,
    /// Target mailbox address / UPN.
    pub target: String,
}

/// One row of the mapping (the CSV `match --out` writes).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct MappingEntry {
    /// Source login.
    pub source: String,
    /// Target UPN / address (matched), proposed UPN (create), or empty.
    pub target: String,
    /// The rule that decided (`manual`, `credentials`, `domain-map`, a rule name…), or empty.
    pub rule: String,
    /// `matched`, `conflict`, `ambiguous`, `unmatched`, `create` or `excluded`.
    pub status: String,
    /// Confidence, how it matched, candidates, hints, or why not.
    pub note: String,
}

/// The result of [`crate::Engine::automatch`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct MatchOutcome {
    /// Users in the target directory, or `None` when the target has no directory (IMAP, EWS,
    /// EML: pairs then come from the credentials file and `[matching] domains`).
    pub directory_users: Option<usize>,
    /// One row per source, sorted by login.
    pub rows: Vec<MappingEntry>,
    /// Things to know that are not per-source (e.g. a manual pair naming an unknown source).
    pub warnings: Vec<String>,
}

impl MatchOutcome {
    /// How many rows have `status`.
    pub fn count(&self, status: &str) -> usize {
        self.rows.iter().filter(|r| r.status == status).count()
    }

    /// Whether every source is either matched or excluded (nothing for the admin to decide).
    pub fn is_complete(&self) -> bool {
        self.rows
            .iter()
            .all(|r| r.status == "matched" || r.status == "excluded")
    }

    /// The mapping CSV (`source,target,rule,status,note`), as `match --out` writes it and
    /// `[matching] pairs_file` reads it back.
    pub fn to_csv(&self) -> Result<Vec<u8>> {
        let rows: Vec<am::MappingRow> = self
            .rows
            .iter()
            .map(|r| am::MappingRow {
                source: r.source.clone(),
                target: r.target.clone(),
                rule: r.rule.clone(),
                status: parse_status(&r.status),
                note: r.note.clone(),
            })
            .collect();
        let mut out = Vec::new();
        am::write_csv(&rows, &mut out).map_err(|e| Error::Matching {
            context: "mapping CSV".into(),
            source: Box::new(e),
            hint: None,
        })?;
        Ok(out)
    }
}

fn parse_status(s: &str) -> am::Status {
    match s {
        "conflict" => am::Status::Conflict,
        "ambiguous" => am::Status::Ambiguous,
        "unmatched" => am::Status::Unmatched,
        "create" => am::Status::Create,
        "excluded" => am::Status::Excluded,
        _ => am::Status::Matched,
    }
}

/// A source mailbox a run does not migrate, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Unpaired {
    /// Source login.
    pub source: String,
    /// Why it is not migrated, and what to do.
    pub reason: String,
}

/// The name of the state-store record that keeps the automatch pairing between commands.
pub const PAIRING_RECORD: &str = "pairing";

/// Where a job's pairing comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
#[non_exhaustive]
pub enum PairingOrigin {
    /// `[matching] pairs_file` (it wins over automatch).
    MappingFile {
        /// The file.
        path: PathBuf,
    },
    /// Automatch against the target directory.
    Automatch {
        /// Users in the directory when it decided.
        directory_users: usize,
        /// When it decided, Unix milliseconds.
        decided_at: i64,
        /// Whether the decision was read back from the state store (`false`: made just now).
        kept: bool,
    },
    /// The target has no directory: the credentials' target column, `[matching] domains`
    /// applied to the login, else the login itself.
    Credentials {
        /// The target kind (`imap`, `ews`, `eml`).
        target_kind: String,
    },
}

/// The mailbox pairs every command of a job uses, the sources left out, and where the
/// decision came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Pairing {
    /// The pairs to migrate, in credentials order.
    pub pairs: Vec<MailboxPair>,
    /// The sources not migrated, with the reason and the fix.
    pub unpaired: Vec<Unpaired>,
    /// Where the pairs came from.
    pub origin: PairingOrigin,
}

impl Pairing {
    /// One line for the admin: which pairing is used and where it came from.
    pub fn describe(&self) -> String {
        let counts = format!(
            "{} mailbox{} paired, {} left out",
            self.pairs.len(),
            if self.pairs.len() == 1 { "" } else { "es" },
            self.unpaired.len()
        );
        match &self.origin {
            PairingOrigin::MappingFile { path } => {
                format!("pairing: the mapping file {} ({counts})", path.display())
            }
            PairingOrigin::Automatch {
                directory_users,
                decided_at,
                kept,
            } => format!(
                "pairing: automatch against the target directory ({directory_users} users), \
                 decided {}{} ({counts}); `o365-migrate match` decides again, \
                 [matching] pairs_file overrides it",
                crate::report::utc_minutes(*decided_at),
                if *kept {
                    ", kept in the state store"
                } else {
                    " just now"
                }
            ),
            PairingOrigin::Credentials { target_kind } => format!(
                "pairing: the credentials file (the {target_kind} target has no directory: its \
                 target column, else [matching] domains applied to the login, else the login) \
                 ({counts})"
            ),
        }
    }
}

/// What the state store keeps of an automatch decision: the rows and what they were decided
/// from (a tag of the credentials rows and the `[matching]` rules).
#[derive(Debug, serde::Deserialize, Serialize)]
struct KeptPairing {
    inputs: String,
    directory_users: usize,
    rows: Vec<MappingEntry>,
}

/// Why a source automatch did not pair is not migrated, and what to do.
fn unpaired_reason(row: &MappingEntry) -> String {
    let note = if row.note.is_empty() {
        String::new()
    } else {
        format!(" ({})", row.note)
    };
    let decide = "decide it: `o365-migrate match --out pairs.csv`, set the row's target and \
                  status `matched`, and name the file in [matching] pairs_file \
                  (or put the target in the credentials file's target column)";
    match row.status.as_str() {
        "excluded" => format!("excluded{note}"),
        "ambiguous" => format!("automatch: ambiguous, several target users fit{note}; {decide}"),
        "unmatched" => format!("automatch: no target user matched{note}; {decide}"),
        "conflict" => {
            format!("automatch: conflict, its target is also another source's{note}; {decide}")
        }
        "create" => format!(
            "automatch: no target user yet, {} would be created{note}; run `o365-migrate \
             provision`, then `o365-migrate match`",
            row.target
        ),
        other => format!("automatch: status `{other}`{note}; {decide}"),
    }
}

/// The mapping file as loaded when the engine starts.
#[derive(Debug, Clone)]
pub(crate) enum MappingFile {
    /// No `pairs_file` configured.
    None,
    /// Configured but not there yet (`match --out` has not written it).
    Missing(PathBuf),
    /// Its rows.
    Rows(PathBuf, Vec<am::MappingRow>),
}

/// Reads `[matching] pairs_file` when configured; a broken file is an error naming the line.
pub(crate) fn load_mapping(job: &crate::config::Job) -> Result<MappingFile> {
    let Some(p) = &job.matching.pairs_file else {
        return Ok(MappingFile::None);
    };
    let path = job.resolve_path(p);
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok(MappingFile::Missing(path));
        }
        Err(e) => {
            return Err(Error::Io {
                context: format!("mapping file {}", path.display()),
                source: e,
                hint: Some("check [matching] pairs_file and the file's permissions".into()),
            });
        }
    };
    let rows = am::read_csv(bytes.as_slice()).map_err(|e| Error::Matching {
        context: format!("mapping file {}", path.display()),
        source: Box::new(e),
        hint: Some(
            "fix the row (columns source,target,rule,status,note), or delete the file and run \
             `o365-migrate match --out FILE` again"
                .into(),
        ),
    })?;
    Ok(MappingFile::Rows(path, rows))
}

/// What matching reads: the job, the credentials, the mapping file and, for Graph, the
/// directory client. [`crate::Engine`] lends these for `pairing`, `automatch` and `provision`.
pub(crate) struct Matching<'a> {
    pub(crate) job: &'a crate::config::Job,
    pub(crate) credentials: &'a o365_migrate_credentials::Credentials,
    pub(crate) mapping: &'a MappingFile,
    pub(crate) graph: Option<&'a std::sync::Arc<target::graph::GraphClient>>,
    pub(crate) store: &'a dyn crate::state::StateStore,
}

impl Matching<'_> {
    /// The `[matching] exclude` pattern that excludes `login`, if any.
    pub(crate) fn excluded_by(&self, login: &str) -> Option<&str> {
        self.job
            .matching
            .exclude
            .iter()
            .find(|p| am::Glob::new(p).matches(login))
            .map(String::as_str)
    }

    /// The target without a directory lookup: the credentials' target column, else
    /// `[matching] domains` applied to the login's domain, else the login itself; with the rule
    /// that decided.
    fn derived_target(&self, r: &o365_migrate_credentials::CredentialRecord) -> (String, &str) {
        if let Some(t) = &r.target {
            return (t.clone(), "credentials");
        }
        match r.login.rsplit_once('@') {
            Some((local, domain)) => match self
                .job
                .matching
                .domains
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(domain))
            {
                Some((_, d)) => (format!("{local}@{d}"), "domain-map"),
                None => (r.login.clone(), "same-address"),
            },
            None => (r.login.clone(), "same-address"),
        }
    }

    /// The job's pairing: the mapping file when configured; else, with a directory, automatch
    /// (kept in the state store while its inputs stay the same); else the credentials.
    pub(crate) async fn pairing(&self) -> Result<Pairing> {
        match (&self.mapping, self.graph) {
            (MappingFile::Rows(path, _) | MappingFile::Missing(path), _) => {
                let (pairs, unpaired) = self.pairing_without_directory();
                Ok(Pairing {
                    pairs,
                    unpaired,
                    origin: PairingOrigin::MappingFile { path: path.clone() },
                })
            }
            (MappingFile::None, None) => {
                let (pairs, unpaired) = self.pairing_without_directory();
                Ok(Pairing {
                    pairs,
                    unpaired,
                    origin: PairingOrigin::Credentials {
                        target_kind: self.job.target.kind.as_str().to_owned(),
                    },
                })
            }
            (MappingFile::None, Some(_)) => self.automatch_pairing().await,
        }
    }

    /// A tag of what an automatch decision depends on besides the directory: the credentials
    /// rows (logins, targets, names; never passwords) and the `[matching]` rules.
    fn pairing_inputs(&self) -> String {
        let m = &self.job.matching;
        let rows: Vec<_> = self
            .credentials
            .records()
            .iter()
            .map(|r| {
                (
                    &r.login,
                    &r.target,
                    &r.first_name,
                    &r.last_name,
                    &r.display_name,
                )
            })
            .collect();
        let doc = serde_json::json!({
            "rows": rows,
            "rules": m.rules,
            "domains": m.domains,
            "exclude": m.exclude,
            "allow_create": m.allow_create,
            "create_domain": m.create_domain,
            "upn_pattern": m.upn_pattern,
        });
        o365_migrate_mime::content_tag(doc.to_string().as_bytes())
    }

    /// Keeps an automatch decision in the state store as the job's pairing.
    pub(crate) async fn keep(&self, outcome: &MatchOutcome) -> Result<()> {
        let Some(directory_users) = outcome.directory_users else {
            return Ok(());
        };
        let kept = KeptPairing {
            inputs: self.pairing_inputs(),
            directory_users,
            rows: outcome.rows.clone(),
        };
        crate::state::put_json(self.store, PAIRING_RECORD, &kept).await
    }

    /// Automatch as the job's pairing: the kept decision when its inputs are unchanged, else a
    /// new decision against the directory (then kept).
    async fn automatch_pairing(&self) -> Result<Pairing> {
        let inputs = self.pairing_inputs();
        let kept = match self.store.record(PAIRING_RECORD).await? {
            Some(rec) => serde_json::from_str::<KeptPairing>(&rec.value)
                .ok()
                .filter(|k| k.inputs == inputs)
                .map(|k| (k, rec.updated_at)),
            None => None,
        };
        let (rows, directory_users, decided_at, was_kept) = match kept {
            Some((k, at)) => (k.rows, k.directory_users, at, true),
            None => {
                let outcome = self.automatch(self.job.matching.allow_create).await?;
                self.keep(&outcome).await?;
                (
                    outcome.rows,
                    outcome.directory_users.unwrap_or_default(),
                    crate::state::now_ms(),
                    false,
                )
            }
        };
        let by_source: HashMap<String, &MappingEntry> = rows
            .iter()
            .map(|r| (r.source.trim().to_lowercase(), r))
            .collect();
        let mut pairs = Vec::new();
        let mut unpaired = Vec::new();
        for r in self.credentials.records() {
            match by_source.get(&r.login.trim().to_lowercase()) {
                Some(row) if row.status == "matched" && !row.target.is_empty() => {
                    pairs.push(MailboxPair {
                        source: r.login.clone(),
                        target: row.target.trim().to_owned(),
                    })
                }
                Some(row) => unpaired.push(Unpaired {
                    source: r.login.clone(),
                    reason: unpaired_reason(row),
                }),
                None => unpaired.push(Unpaired {
                    source: r.login.clone(),
                    reason: "automatch has no row for it; run `o365-migrate match`".into(),
                }),
            }
        }
        Ok(Pairing {
            pairs,
            unpaired,
            origin: PairingOrigin::Automatch {
                directory_users,
                decided_at,
                kept: was_kept,
            },
        })
    }

    /// The pairs from the mapping file, or derived from the credentials (no directory).
    fn pairing_without_directory(&self) -> (Vec<MailboxPair>, Vec<Unpaired>) {
        let mut pairs = Vec::new();
        let mut unpaired = Vec::new();
        let rows: Option<(&PathBuf, HashMap<String, &am::MappingRow>)> = match &self.mapping {
            MappingFile::Rows(path, rows) => Some((
                path,
                rows.iter()
                    .map(|r| (r.source.trim().to_lowercase(), r))
                    .collect(),
            )),
            _ => None,
        };
        for r in self.credentials.records() {
            if let MappingFile::Missing(path) = &self.mapping {
                unpaired.push(Unpaired {
                    source: r.login.clone(),
                    reason: format!(
                        "the mapping file {} does not exist; run `o365-migrate match --out {}`, \
                         review it, and run again",
                        path.display(),
                        path.display()
                    ),
                });
                continue;
            }
            if let Some(p) = self.excluded_by(&r.login) {
                unpaired.push(Unpaired {
                    source: r.login.clone(),
                    reason: format!("excluded by [matching] exclude `{p}`"),
                });
                continue;
            }
            match &rows {
                Some((path, by_source)) => match by_source.get(&r.login.trim().to_lowercase()) {
                    Some(row) if row.status == am::Status::Matched && !row.target.is_empty() => {
                        pairs.push(MailboxPair {
                            source: r.login.clone(),
                            target: row.target.trim().to_owned(),
                        })
                    }
                    Some(row) => unpaired.push(Unpaired {
                        source: r.login.clone(),
                        reason: format!(
                            "status `{}` in the mapping file {}{}; set a target and status \
                             `matched` to migrate it",
                            row.status,
                            path.display(),
                            if row.note.is_empty() {
                                String::new()
                            } else {
                                format!(" ({})", row.note)
                            }
                        ),
                    }),
                    None => unpaired.push(Unpaired {
                        source: r.login.clone(),
                        reason: format!(
                            "not in the mapping file {}; run `o365-migrate match --out {}` again",
                            path.display(),
                            path.display()
                        ),
                    }),
                },
                None => pairs.push(MailboxPair {
                    source: r.login.clone(),
                    target: self.derived_target(r).0,
                }),
            }
        }
        (pairs, unpaired)
    }

    /// The target directory's users, or `None` when the target has none.
    async fn directory_users(&self) -> Result<Option<Vec<target::graph::User>>> {
        let Some(client) = &self.graph else {
            return Ok(None);
        };
        client
            .list_users(None)
            .await
            .map(Some)
            .map_err(|e| Error::target("listing the target directory (GET /users)", e))
    }

    /// Matches every source in the credentials file to a target user, as `match` shows it.
    /// Manual decisions win: the mapping file's matched and excluded rows, then the credentials'
    /// target column, then `[matching] exclude`; the rules decide the rest. With `create`, unmatched
    /// sources become `create` proposals (needs `[matching] allow_create`).
    pub(crate) async fn automatch(&self, create: bool) -> Result<MatchOutcome> {
        let users = self.directory_users().await?;
        self.automatch_over(users.as_deref(), create)
    }

    /// [`crate::Engine::automatch`] over a directory listing already fetched (`None`: no directory).
    fn automatch_over(
        &self,
        users: Option<&[target::graph::User]>,
        create: bool,
    ) -> Result<MatchOutcome> {
        let directory: Option<Vec<am::DirectoryUser>> =
            users.map(|u| u.iter().map(to_directory_user).collect());
        let mut overrides = match &self.mapping {
            MappingFile::Rows(path, rows) => {
                am::Overrides::from_rows(rows).map_err(|e| Error::Matching {
                    context: format!("mapping file {}", path.display()),
                    source: Box::new(e),
                    hint: Some("keep one decision per source".into()),
                })?
            }
            _ => am::Overrides::new(),
        };
        let mut warnings = Vec::new();
        for r in self.credentials.records() {
            let key = r.login.trim().to_lowercase();
            if overrides.pairs().contains_key(&key) || overrides.exclusions().contains_key(&key) {
                continue;
            }
            if let Some(p) = self.excluded_by(&r.login) {
                let _ = overrides.exclude(&r.login, &format!("[matching] exclude `{p}`"));
            } else if let Some(t) = &r.target
                && let Err(e) = overrides.pair(&r.login, t)
            {
                warnings.push(format!("credentials row {}: {e}", r.row));
            }
        }
        let Some(directory) = directory else {
            return Ok(self.match_without_directory(&overrides, warnings));
        };
        let users = directory.len();
        let mut config =
            am::MatchConfig::from_names(&self.job.matching.rules, &self.job.matching.domains)
                .map_err(|e| Error::Matching {
                    context: "[matching] rules".into(),
                    source: Box::new(e),
                    hint: None,
                })?;
        if create {
            let m = &self.job.matching;
            config.create = am::CreateConfig {
                enabled: m.allow_create,
                domain: m.create_domain.clone().unwrap_or_default(),
                upn_pattern: m.upn_pattern.clone(),
                usage_location: m.usage_location.clone().unwrap_or_default(),
                sku: m.licence_sku.clone(),
            };
        }
        let matcher = am::Matcher::new(config, directory).map_err(|e| Error::Matching {
            context: "automatch".into(),
            source: Box::new(e),
            hint: None,
        })?;
        let sources: Vec<am::SourceIdentity> = self
            .credentials
            .records()
            .iter()
            .map(|r| {
                let mut s = am::SourceIdentity::new(r.login.clone());
                if let (Some(f), Some(l)) = (&r.first_name, &r.last_name) {
                    s = s.with_name(f.clone(), l.clone());
                }
                if let Some(d) = &r.display_name {
                    s = s.with_display(d.clone());
                }
                s
            })
            .collect();
        let report = matcher
            .run(&sources, &overrides)
            .map_err(|e| Error::Matching {
                context: "automatch".into(),
                source: Box::new(e),
                hint: None,
            })?;
        warnings.extend(report.warnings.iter().cloned());
        let rows = report
            .to_rows()
            .into_iter()
            .map(|r| MappingEntry {
                source: r.source,
                target: r.target,
                rule: r.rule,
                status: r.status.as_str().to_owned(),
                note: r.note,
            })
            .collect();
        Ok(MatchOutcome {
            directory_users: Some(users),
            rows,
            warnings,
        })
    }

    fn match_without_directory(
        &self,
        overrides: &am::Overrides,
        warnings: Vec<String>,
    ) -> MatchOutcome {
        let mut rows: Vec<MappingEntry> = self
            .credentials
            .records()
            .iter()
            .map(|r| {
                let key = r.login.trim().to_lowercase();
                if let Some(reason) = overrides.exclusions().get(&key) {
                    return MappingEntry {
                        source: r.login.clone(),
                        target: String::new(),
                        rule: String::new(),
                        status: "excluded".into(),
                        note: reason.clone(),
                    };
                }
                let (target, rule) = match overrides.pairs().get(&key) {
                    Some(t) => (t.clone(), "manual"),
                    None => self.derived_target(r),
                };
                MappingEntry {
                    source: r.login.clone(),
                    target,
                    rule: rule.to_owned(),
                    status: "matched".into(),
                    note: format!(
                        "the {} target has no directory to check against",
                        self.job.target.kind.as_str()
                    ),
                }
            })
            .collect();
        rows.sort_by_key(|r| r.source.to_lowercase());
        MatchOutcome {
            directory_users: None,
            rows,
            warnings,
        }
    }
}

fn to_directory_user(u: &target::graph::User) -> am::DirectoryUser {
    let mut d = am::DirectoryUser::new(u.id.clone(), u.user_principal_name.clone());
    d.mail = u.mail.clone();
    d.proxy_addresses = u.proxy_addresses.clone();
    d.given_name = u.given_name.clone();
    d.surname = u.surname.clone();
    d.display_name = u.display_name.clone();
    d.licensed = !u.assigned_licenses.is_empty();
    d.has_mailbox = d.licensed;
    d
}

/// What `provision` did (or, with `dry_run`, would do) for one target user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProvisionStep {
    /// Source login.
    pub source: String,
    /// Target UPN.
    pub target: String,
    /// `create` (new user), `license` (existing user gets the licence), `ready` (nothing to do).
    pub action: String,
    /// Final state: `planned` (dry run), `mailbox-ready`, `waiting` (timed out), `failed`.
    pub state: String,
    /// Details (the error and its fix, for `failed`).
    pub note: String,
}

/// The result of [`crate::Engine::provision`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ProvisionReport {
    /// Per matched or created user.
    pub steps: Vec<ProvisionStep>,
    /// Sources left for the admin (ambiguous, unmatched without creation, conflicts).
    pub undecided: Vec<MappingEntry>,
    /// Where the updated mapping was written, if anywhere.
    pub mapping_written: Option<PathBuf>,
    /// Seconds spent waiting for mailboxes.
    pub waited_seconds: u64,
}

impl ProvisionReport {
    /// Whether every step ended with a ready mailbox (or is a dry-run plan) and nothing is
    /// undecided.
    pub fn is_ok(&self) -> bool {
        self.undecided.is_empty()
            && self
                .steps
                .iter()
                .all(|s| s.state == "mailbox-ready" || s.state == "planned")
    }
}

impl Matching<'_> {
    /// `provision`: runs automatch with user creation, creates the proposed users (usage
    /// location set), assigns `[matching] licence_sku` to new and unlicensed matched users, and
    /// polls until every mailbox answers or `wait` passes. Updates the mapping file (when
    /// configured) so created users are `matched`. With `dry_run`, only reports the plan.
    /// Graph target only; needs User.ReadWrite.All and LicenseAssignment.ReadWrite.All.
    pub(crate) async fn provision(&self, dry_run: bool, wait: Duration) -> Result<ProvisionReport> {
        let Some(client) = self.graph.cloned() else {
            return Err(Error::Pipeline {
                context: "provision".into(),
                message: format!(
                    "the {} target has no user directory to provision",
                    self.job.target.kind.as_str()
                ),
                hint: Some("provision works with [target] kind = \"graph\"".into()),
            });
        };
        let m = &self.job.matching;
        if !m.allow_create && m.licence_sku.is_none() {
            return Err(Error::Pipeline {
                context: "provision".into(),
                message: "nothing to provision: [matching] allow_create is false and no licence_sku is set".into(),
                hint: Some("set allow_create = true with create_domain and usage_location, and licence_sku".into()),
            });
        }
        if !dry_run {
            client
                .check_permissions(true)
                .await
                .map_err(|e| Error::target("provision: permissions", e))?;
        }
        let users = self.directory_users().await?.unwrap_or_default();
        let outcome = self.automatch_over(Some(&users), m.allow_create)?;
        let by_upn: HashMap<String, &target::graph::User> = users
            .iter()
            .map(|u| (u.user_principal_name.to_lowercase(), u))
            .collect();
        let sku_id = match &m.licence_sku {
            None => None,
            Some(part) => {
                let skus = client
                    .subscribed_skus()
                    .await
                    .map_err(|e| Error::target("listing licences (GET /subscribedSkus)", e))?;
                let sku = skus
                    .iter()
                    .find(|s| s.sku_part_number.eq_ignore_ascii_case(part) || s.sku_id == *part)
                    .ok_or_else(|| Error::Pipeline {
                        context: "provision".into(),
                        message: format!(
                            "licence_sku `{part}` is not among the tenant's subscriptions ({})",
                            skus.iter()
                                .map(|s| s.sku_part_number.as_str())
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                        hint: Some("set [matching] licence_sku to one of them".into()),
                    })?;
                Some((
                    sku.sku_id.clone(),
                    sku.enabled_units.saturating_sub(sku.consumed_units),
                ))
            }
        };
        let mut report = ProvisionReport::default();
        let mut steps: Vec<ProvisionStep> = Vec::new();
        for row in &outcome.rows {
            match row.status.as_str() {
                "create" => steps.push(ProvisionStep {
                    source: row.source.clone(),
                    target: row.target.clone(),
                    action: "create".into(),
                    state: "planned".into(),
                    note: String::new(),
                }),
                "matched" => {
                    let licensed = by_upn
                        .get(&row.target.to_lowercase())
                        .is_some_and(|u| !u.assigned_licenses.is_empty());
                    steps.push(ProvisionStep {
                        source: row.source.clone(),
                        target: row.target.clone(),
                        action: if licensed || sku_id.is_none() {
                            "ready".into()
                        } else {
                            "license".into()
                        },
                        state: "planned".into(),
                        note: String::new(),
                    });
                }
                "excluded" => {}
                _ => report.undecided.push(row.clone()),
            }
        }
        let needed = steps.iter().filter(|s| s.action != "ready").count() as u64;
        if let Some((_, free)) = &sku_id
            && needed > *free
        {
            return Err(Error::Pipeline {
                context: "provision".into(),
                message: format!(
                    "{needed} users need the licence `{}` but only {free} units are free",
                    m.licence_sku.as_deref().unwrap_or_default()
                ),
                hint: Some("buy more units or provision fewer users (exclude some)".into()),
            });
        }
        if dry_run {
            report.steps = steps;
            return Ok(report);
        }
        let location = m.usage_location.clone();
        for s in &mut steps {
            let r: std::result::Result<(), target::Error> = async {
                if s.action == "create" {
                    let upn = s.target.clone();
                    let nickname = upn.split('@').next().unwrap_or(&upn).to_owned();
                    let display = self
                        .credentials
                        .find_login(&s.source)
                        .and_then(|r| {
                            r.display_name
                                .clone()
                                .or_else(|| match (&r.first_name, &r.last_name) {
                                    (Some(f), Some(l)) => Some(format!("{f} {l}")),
                                    _ => None,
                                })
                        })
                        .unwrap_or_else(|| nickname.clone());
                    client
                        .create_user(&target::graph::NewUser {
                            user_principal_name: upn,
                            display_name: display,
                            mail_nickname: nickname,
                            password: target::graph::generate_password(),
                            usage_location: location.clone(),
                        })
                        .await?;
                } else if s.action == "license"
                    && let Some(loc) = &location
                {
                    let has_location = by_upn
                        .get(&s.target.to_lowercase())
                        .is_some_and(|u| u.usage_location.is_some());
                    if !has_location {
                        client.set_usage_location(&s.target, loc).await?;
                    }
                }
                if s.action != "ready"
                    && let Some((id, _)) = &sku_id
                {
                    client.assign_license(&s.target, id).await?;
                }
                Ok(())
            }
            .await;
            if let Err(e) = r {
                s.state = "failed".into();
                s.note = e.to_string();
            } else {
                s.state = "waiting".into();
            }
        }
        // Poll until every mailbox answers, backing off from 2 s to 30 s.
        let started = std::time::Instant::now();
        let mut delay = Duration::from_secs(2);
        loop {
            let waiting: Vec<usize> = (0..steps.len())
                .filter(|i| steps[*i].state == "waiting")
                .collect();
            if waiting.is_empty() {
                break;
            }
            let upns: Vec<&str> = waiting.iter().map(|i| steps[*i].target.as_str()).collect();
            let probes = client
                .probe_mailboxes(&upns)
                .await
                .map_err(|e| Error::target("provision: probing mailboxes", e))?;
            for (i, p) in waiting.iter().zip(probes) {
                if p == target::graph::MailboxProbe::Ready {
                    steps[*i].state = "mailbox-ready".into();
                }
            }
            if steps.iter().all(|s| s.state != "waiting") || started.elapsed() >= wait {
                break;
            }
            tokio::time::sleep(delay.min(wait.saturating_sub(started.elapsed()))).await;
            delay = (delay * 2).min(Duration::from_secs(30));
        }
        for s in &mut steps {
            if s.state == "waiting" {
                s.note = format!(
                    "no mailbox after {} s; Exchange Online can take up to 24 hours — run \
                     `o365-migrate provision` again later (it is idempotent)",
                    started.elapsed().as_secs()
                );
            }
        }
        report.waited_seconds = started.elapsed().as_secs();
        // Created users become matched rows of the mapping file.
        if let MappingFile::Rows(path, _) | MappingFile::Missing(path) = &self.mapping {
            let created: BTreeMap<&str, &str> = steps
                .iter()
                .filter(|s| s.action == "create" && s.state != "failed")
                .map(|s| (s.source.as_str(), s.target.as_str()))
                .collect();
            let mut out = outcome.clone();
            for r in &mut out.rows {
                if let Some(t) = created.get(r.source.as_str()) {
                    r.target = (*t).to_owned();
                    r.rule = "created".into();
                    r.status = "matched".into();
                    r.note = "created by provision".into();
                }
            }
            let bytes = out.to_csv()?;
            crate::report::write_private(path, &bytes).map_err(|e| Error::Io {
                context: format!("mapping file {}", path.display()),
                source: e,
                hint: Some("check that its directory exists and is writable".into()),
            })?;
            report.mapping_written = Some(path.clone());
        }
        report.steps = steps;
        Ok(report)
    }
}
