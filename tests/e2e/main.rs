//! End-to-end tests through the `o365-migrate` binary against a real Dovecot (source) and the
//! local Graph emulator (target).
//!
//! The source Dovecot runs with `mail_fsync = never` so that loading thousands of test messages
//! by APPEND stays quick on CI; that setting only affects how the test server persists mail.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::Duration;

use o365_migrate_graph_emulator::Emulator;
use o365_migrate_testkit::{Corpus, CorpusProfile, Dovecot, DovecotOptions, Manifest, User};

mod cutover;
mod dashboard;
mod gmail;
mod pairing;
mod pim;
mod proof;
mod reliability;
mod scheduling;
mod sync;
mod workers;

const BIN: &str = env!("CARGO_BIN_EXE_o365-migrate");
const DOMAIN: &str = "contoso.example";
const SECRET_ENV: &str = "E2E_GRAPH_CLIENT_SECRET";

/// The end of every test job: where the state store, the reports and the log go.
const JOB_FILES: &str = "[state]\npath = \"state.db\"\n\n[report]\ndirectory = \"report\"\n\n[log]\nfile = \"migrate.log\"\nlevel = \"debug\"\n";

/// Source passwords: distinctive, so that a grep finds any leak.
fn password(user: &str) -> String {
    format!("Pw-{user}-7Qx!z9#LeakCanary")
}

struct Env {
    source: Dovecot,
    graph: Emulator,
    dir: tempfile::TempDir,
    users: Vec<String>,
    client_secret: String,
    manifests: BTreeMap<String, Manifest>,
    stderr_log: std::sync::Mutex<String>,
}

struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Env {
    async fn start(users: &[&str], per_user: usize, seed: u64) -> Env {
        reliability::start_env(users, per_user, seed, DovecotOptions::default(), None).await
    }

    fn job_path(&self) -> PathBuf {
        self.dir.path().join("o365-migrate.toml")
    }

    /// Writes the job file; `filters` is the body of the `[filters]` section.
    fn write_job(&self, filters: &str) {
        let app = &self.graph.config().tenants[0].apps[0];
        let job = format!(
            r#"[source]
host = "127.0.0.1"
port = {port}
security = "starttls"
ca_file = "{ca}"
credentials = "users.csv"
connections_per_host = 10

[target]
kind = "graph"

[target.graph]
tenant = "{tenant}"
client_id = "{client_id}"
client_secret = "env:{SECRET_ENV}"
authority_url = "{url}"
graph_url = "{url}"

[filters]
{filters}

[limits]
mailboxes_at_once = 5
in_flight_bytes = "64MB"
max_attempts = 3

{JOB_FILES}"#,
            port = self.source.imap_port(),
            ca = self.source.ca_path().display(),
            tenant = self.graph.tenant_id(),
            client_id = app.client_id,
            url = self.graph.url(),
        );
        std::fs::write(self.job_path(), job).unwrap();
    }

    fn command(&self, args: &[&str]) -> tokio::process::Command {
        let mut c = tokio::process::Command::new(BIN);
        c.args(["--config", self.job_path().to_str().unwrap()])
            .args(args)
            .current_dir(self.dir.path())
            .env(SECRET_ENV, &self.client_secret)
            .env_remove("RUST_LOG")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true);
        c
    }

    async fn cli(&self, args: &[&str]) -> Out {
        let o = self.command(args).output().await.expect("run binary");
        let out = Out {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        };
        self.stderr_log.lock().unwrap().push_str(&out.stderr);
        out
    }

    /// Target messages per mailbox: (folder path, internetMessageId) → count.
    fn target_index(&self, user: &str) -> HashMap<(String, String), usize> {
        let mut m = HashMap::new();
        for msg in self.graph.messages(&format!("{user}@{DOMAIN}")) {
            let id = msg.str("internetMessageId").unwrap_or("").to_owned();
            *m.entry((msg.folder_path.clone(), id)).or_insert(0) += 1;
        }
        m
    }

    async fn status_counts(&self) -> serde_json::Value {
        let o = self.cli(&["status", "--json"]).await;
        assert_eq!(o.code, 0, "status failed: {}", o.stderr);
        let v: serde_json::Value = serde_json::from_str(&o.stdout).expect("status json");
        v["counts"].clone()
    }

    /// Greps every artefact for the planted secrets.
    fn assert_no_secrets(&self) {
        let mut needles: Vec<String> = self.users.iter().map(|u| password(u)).collect();
        needles.push(self.client_secret.clone());
        let mut files = vec![
            self.dir.path().join("migrate.log"),
            self.dir.path().join("state.db"),
        ];
        for extra in ["state.db-wal", "state.db-shm"] {
            let p = self.dir.path().join(extra);
            if p.exists() {
                files.push(p);
            }
        }
        if let Ok(rd) = std::fs::read_dir(self.dir.path().join("report")) {
            for e in rd.flatten() {
                files.push(e.path());
            }
        }
        for f in &files {
            let bytes = std::fs::read(f).unwrap_or_default();
            for n in &needles {
                assert!(
                    !contains(&bytes, n.as_bytes()),
                    "a secret leaked into {}",
                    f.display()
                );
            }
        }
        let stderr = self.stderr_log.lock().unwrap();
        for n in &needles {
            assert!(!stderr.contains(n.as_str()), "a secret leaked to stderr");
        }
        for must in ["migrate.log", "state.db"] {
            assert!(
                self.dir.path().join(must).exists(),
                "{must} was not written"
            );
        }
    }
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// Folders the default job skips (none: the e2e job has no folder excludes), mapped to the
/// emulator's folder paths.
fn graph_folder(source: &str) -> String {
    match source {
        "INBOX" => "Inbox".into(),
        "Sent" => "Sent Items".into(),
        "Drafts" => "Drafts".into(),
        "Trash" => "Deleted Items".into(),
        "Junk" => "Junk Email".into(),
        other => other.to_owned(),
    }
}

/// Checks every manifest entry is in the target exactly once, in the right folder, with the
/// right read / flag / draft state and received date.
fn check_per_message(env: &Env, user: &str, skipped_folders: &[&str]) -> usize {
    check_messages_in(env, user, &format!("{user}@{DOMAIN}"), skipped_folders)
}

/// [`check_per_message`] with the source `user`'s messages expected in the mailbox `target`.
fn check_messages_in(env: &Env, user: &str, target: &str, skipped_folders: &[&str]) -> usize {
    let manifest = &env.manifests[user];
    let messages = env.graph.messages(target);
    let mut by_id: HashMap<&str, Vec<&o365_migrate_graph_emulator::StoredMessage>> = HashMap::new();
    for m in &messages {
        by_id
            .entry(m.str("internetMessageId").unwrap_or(""))
            .or_default()
            .push(m);
    }
    let mut checked = 0;
    for e in manifest.entries() {
        if skipped_folders.contains(&e.folder.as_str()) {
            continue;
        }
        let found = by_id
            .get(e.message_id.as_str())
            .cloned()
            .unwrap_or_default();
        let in_folder: Vec<_> = found
            .iter()
            .filter(|m| folder_matches(&m.folder_path, &e.folder))
            .collect();
        assert_eq!(
            in_folder.len(),
            1,
            "{user}: message {} of folder {} is in the target {} times (folders {:?})",
            e.message_id,
            e.folder,
            in_folder.len(),
            found
                .iter()
                .map(|m| m.folder_path.clone())
                .collect::<Vec<_>>()
        );
        let m = in_folder[0];
        let seen = e.flags.iter().any(|f| f.eq_ignore_ascii_case("\\Seen"));
        let draft = e.flags.iter().any(|f| f.eq_ignore_ascii_case("\\Draft"));
        assert_eq!(
            m.bool("isRead"),
            Some(seen),
            "{user} {}: isRead",
            e.message_id
        );
        if !draft {
            assert_eq!(
                m.bool("isDraft"),
                Some(false),
                "{user} {}: isDraft",
                e.message_id
            );
        }
        let flagged = e.flags.iter().any(|f| f.eq_ignore_ascii_case("\\Flagged"));
        let status = m.properties["flag"]["flagStatus"]
            .as_str()
            .unwrap_or("notFlagged");
        assert_eq!(
            status == "flagged",
            flagged,
            "{user} {}: flag",
            e.message_id
        );
        let received = m.str("receivedDateTime").unwrap_or("");
        assert_eq!(
            parse_graph_time(received),
            Some(e.internal_date.unix_seconds()),
            "{user} {}: receivedDateTime {received} is not the source INTERNALDATE",
            e.message_id
        );
        checked += 1;
    }
    checked
}

/// `YYYY-MM-DDTHH:MM:SS[.fff]Z` → Unix seconds.
fn parse_graph_time(s: &str) -> Option<i64> {
    let (date, time) = s.trim_end_matches('Z').split_once('T')?;
    let mut d = date.split('-').map(|x| x.parse::<i64>().ok());
    let (y, m, day) = (d.next()??, d.next()??, d.next()??);
    let mut t = time.split(':');
    let (hh, mm) = (
        t.next()?.parse::<i64>().ok()?,
        t.next()?.parse::<i64>().ok()?,
    );
    let ss = t.next()?.split('.').next()?.parse::<i64>().ok()?;
    let (y2, m2) = if m <= 2 { (y - 1, m + 9) } else { (y, m - 3) };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let doy = (153 * m2 + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400 + hh * 3600 + mm * 60 + ss)
}

fn folder_matches(target: &str, source: &str) -> bool {
    let t = target.trim_start_matches('/').to_ascii_lowercase();
    let s = graph_folder(source).to_ascii_lowercase();
    t == s || t.ends_with(&format!("/{s}")) || t.replace(' ', "") == s.replace(' ', "")
}

/// A small seeded generator for kill moments.
struct Lcg(u64);
impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }
}

fn dump(o: &Out) -> String {
    format!(
        "exit {}\nstdout:\n{}\nstderr:\n{}",
        o.code, o.stdout, o.stderr
    )
}

/// The proof an admin can stake a migration on, to the Graph emulator at Exchange Online's
/// answer time (150 ms) with writes whose answer is lost (504 or a dropped connection after
/// the write was applied) and occasional 429s: a corpus with >3 MB attachments, a root `Files`
/// folder and Message-IDs shared by different bodies, killed 10 times at seeded points of
/// progress, ends with `verify --deep` passing, every message exactly once, and no request
/// sent inside a Retry-After window.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graph_migration_is_exact_resumable_and_secret_free() {
    let users = ["alice", "bob", "carol", "dave", "erin"];
    let env =
        reliability::start_env_with(&users, 400, 9100, DovecotOptions::default(), None, |c| {
            c.latency_ms = 150;
            c.faults = o365_migrate_graph_emulator::Faults {
                seed: 0x9100,
                rate_504_after_write: 0.02,
                rate_reset_after_write: 0.02,
                rate_429: 0.002,
                retry_after_secs: 2,
                ..Default::default()
            };
        })
        .await;
    let corpus_total: usize = env.manifests.values().map(|m| m.len()).sum();
    assert_eq!(corpus_total, 2000);
    let extras = proof::add_extras(&env, "alice").await;
    let total = corpus_total + extras.len();
    let big_attachments: usize = env
        .manifests
        .values()
        .flat_map(|m| m.entries())
        .filter(|e| e.size > 4_300_000)
        .count();
    assert!(
        big_attachments >= 5,
        "the corpus has >3 MB attachments: {big_attachments}"
    );

    let o = env
        .cli(&[
            "credentials",
            "check",
            env.dir.path().join("users.csv").to_str().unwrap(),
            "--json",
        ])
        .await;
    assert_eq!(o.code, 0, "{}", dump(&o));
    let o = env.cli(&["source", "test"]).await;
    assert_eq!(o.code, 0, "{}", dump(&o));
    let o = env.cli(&["target", "test", "--json"]).await;
    assert_eq!(o.code, 0, "{}", dump(&o));
    // The emulator spends 150 ms of each request in the mailbox and none on the way.
    let tested: serde_json::Value = serde_json::from_str(&o.stdout).unwrap();
    let times = &tested["answer_times"];
    let in_mailbox = times["mailbox_ms"].as_u64().unwrap_or(0);
    assert!(
        (140..=230).contains(&in_mailbox) && times["gateway_ms"].as_u64() < Some(60),
        "answer times measured: {times}"
    );
    let o = env.cli(&["match", "--json"]).await;
    assert_eq!(o.code, 0, "{}", dump(&o));
    assert!(o.stdout.contains(&format!("alice@{DOMAIN}")));
    let o = env.cli(&["plan", "--json"]).await;
    assert_eq!(o.code, 0, "{}", dump(&o));
    let plan: serde_json::Value = serde_json::from_str(&o.stdout).unwrap();
    assert_eq!(
        plan["messages"].as_u64(),
        Some(total as u64),
        "plan counts every message"
    );
    // The estimate counts the answer times `target test` kept, per mailbox and for the job.
    assert!(
        plan["estimate_basis"]
            .as_str()
            .is_some_and(|b| b.contains(&format!("+ {in_mailbox} ms in the mailbox"))),
        "{}",
        plan["estimate_basis"]
    );
    let per: Vec<f64> = plan["mailboxes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["estimate_seconds"].as_f64().unwrap_or(0.0))
        .collect();
    assert!(per.iter().all(|s| *s > 0.0), "{per:?}");
    let job = plan["estimate_seconds"].as_f64().unwrap_or(0.0);
    assert!(
        job >= per.iter().copied().fold(0.0, f64::max) && job <= per.iter().sum::<f64>() + 1e-6,
        "the job takes at least its longest mailbox and at most all in a row: {job} {per:?}"
    );
    // For people: sizes in KB/MB/GB, an empty parent folder as structure.
    let o = env.cli(&["plan"]).await;
    assert_eq!(o.code, 0, "{}", dump(&o));
    assert!(
        o.stderr
            .contains("Archive → #Archive#: folder only (2 subfolders below)"),
        "{}",
        o.stderr
    );
    assert!(
        o.stderr.contains(" MB") && !o.stderr.contains(" bytes"),
        "{}",
        o.stderr
    );

    // SIGKILL at 10 seeded points of progress (target items written), each followed by
    // `run` again.
    let in_target = || {
        users
            .iter()
            .map(|u| env.graph.message_count(&format!("{u}@{DOMAIN}")))
            .sum::<usize>()
    };
    let mut landed_between = 0;
    let mut progress = Vec::new();
    for at in proof::kill_points(0x5eed_2026, 10, total) {
        let killed = proof::kill_at(
            env.command(&["run"]),
            in_target,
            at,
            Duration::from_secs(300),
        )
        .await;
        assert!(killed, "the run was still going at {at} items");
        let recorded = env.status_counts().await["migrated"].as_u64().unwrap_or(0);
        let written = in_target();
        if written as u64 > recorded {
            landed_between += 1;
        }
        let in_window: u64 = env
            .graph
            .all_counters()
            .iter()
            .map(|(_, _, c)| c.requests_in_retry_window)
            .sum();
        progress.push((written, recorded, in_window));
    }
    eprintln!(
        "10 kills; (target items, recorded migrated, requests in a Retry-After window) after each: {progress:?}; {landed_between} \
         landed between a write and its record; {} writes answered 504 or cut after they were applied",
        env.graph.after_write_faults()
    );
    assert!(
        landed_between >= 1,
        "no kill landed between a write and its record: {progress:?}"
    );
    let started = std::time::Instant::now();
    let o = env.cli(&["run"]).await;
    assert_eq!(o.code, 0, "{}", dump(&o));
    eprintln!(
        "final run: {} messages left, to the Graph emulator in {:.1?} (5 mailboxes at once)",
        total - progress.last().map(|p| p.0).unwrap_or(0),
        started.elapsed()
    );
    assert!(
        env.graph.after_write_faults() >= 5,
        "writes whose answer was lost: {}",
        env.graph.after_write_faults()
    );

    let started = std::time::Instant::now();
    let o = env.cli(&["verify", "--deep", "--json"]).await;
    assert_eq!(o.code, 0, "verify --deep must pass: {}", dump(&o));
    eprintln!(
        "verify --deep of {total} messages (every body and attachment read back): {:.1?}",
        started.elapsed()
    );
    for u in &users {
        let idx = env.target_index(u);
        let shared: Vec<&str> = extras
            .iter()
            .filter(|e| *u == "alice" && e.message_id.starts_with("<shared-"))
            .map(|e| e.message_id.as_str())
            .collect();
        let dups: Vec<_> = idx
            .iter()
            .filter(|((_, mid), n)| **n > 1 && !(shared.contains(&mid.as_str()) && **n == 2))
            .collect();
        assert!(dups.is_empty(), "{u}: duplicates {dups:?}");
        let checked = check_per_message(&env, u, &[]);
        assert_eq!(checked, env.manifests[*u].len());
    }
    // The extras: `Files` renamed, each shared Message-ID twice with both bodies.
    let alice = env.graph.messages(&format!("alice@{DOMAIN}"));
    for e in &extras {
        let target_folder = match e.folder {
            "Files" => "Files (migrated)",
            _ => "Inbox",
        };
        let copies = alice
            .iter()
            .filter(|m| {
                m.str("internetMessageId") == Some(e.message_id.as_str())
                    && m.folder_path.trim_start_matches('/') == target_folder
            })
            .count();
        let expected = if e.message_id.starts_with("<shared-") {
            2
        } else {
            1
        };
        assert_eq!(copies, expected, "{} in {target_folder}", e.message_id);
    }
    let counts = env.status_counts().await;
    assert_eq!(counts["migrated"].as_u64(), Some(total as u64), "{counts}");
    let listed: usize = users
        .iter()
        .map(|u| env.graph.messages(&format!("{u}@{DOMAIN}")).len())
        .sum();
    assert_eq!(listed, total, "full target listing");
    env.graph
        .assert_limits_respected()
        .expect("no request inside a Retry-After window, never more than 4 in flight");
    eprintln!(
        "crash test: 10 SIGKILLs survived; full target listing {listed} messages: 0 lost, 0 duplicated"
    );

    // One attachment replaced in the target: `verify --deep` names that message.
    let victim = alice
        .iter()
        .find(|m| !m.attachments.is_empty() && m.folder_path.trim_start_matches('/') == "Inbox")
        .expect("a message with an attachment");
    let mid = victim.str("internetMessageId").unwrap().to_owned();
    let subject = victim.str("subject").unwrap_or_default().to_owned();
    let mut bytes = victim.attachments[0].data.to_vec();
    let at = bytes.len() / 2;
    bytes[at] ^= 0x5a;
    assert!(env.graph.replace_attachment(
        &format!("alice@{DOMAIN}"),
        &mid,
        0,
        bytes::Bytes::from(bytes)
    ));
    let o = env.cli(&["verify"]).await;
    assert_eq!(
        o.code,
        0,
        "same names and sizes: only a deep read sees it: {}",
        dump(&o)
    );
    let o = env.cli(&["verify", "--deep"]).await;
    assert_eq!(o.code, 1, "{}", dump(&o));
    assert!(
        o.stderr.contains("content differs") && o.stderr.contains(subject.trim()),
        "verify --deep names {subject:?}: {}",
        dump(&o)
    );
    assert!(env.graph.replace_attachment(
        &format!("alice@{DOMAIN}"),
        &mid,
        0,
        victim.attachments[0].data.clone()
    ));

    // A second run copies nothing.
    let before = env.graph.messages(&format!("alice@{DOMAIN}")).len();
    let o = env.cli(&["run"]).await;
    assert_eq!(o.code, 0, "{}", dump(&o));
    assert!(o.stderr.contains("0 migrated"), "{}", dump(&o));
    assert_eq!(env.graph.messages(&format!("alice@{DOMAIN}")).len(), before);

    // 50 new messages at the source: rescan copies exactly those.
    let extra = Corpus::new(CorpusProfile::realistic(777_001, 50).with_huge_every(None));
    extra.load(&env.source, "bob").await.expect("load 50 more");
    let o = env.cli(&["rescan"]).await;
    assert_eq!(o.code, 0, "{}", dump(&o));
    assert!(o.stderr.contains("50 migrated"), "{}", dump(&o));
    let counts = env.status_counts().await;
    assert_eq!(
        counts["migrated"].as_u64(),
        Some(total as u64 + 50),
        "{counts}"
    );
    let o = env.cli(&["verify"]).await;
    assert_eq!(o.code, 0, "verify after rescan: {}", dump(&o));

    let o = env.cli(&["report", "--format", "html"]).await;
    assert_eq!(o.code, 0, "{}", dump(&o));
    assert!(o.stdout.contains("<html") || o.stdout.contains("<!DOCTYPE"));
    env.graph
        .assert_limits_respected()
        .expect("Graph limits respected");
    env.assert_no_secrets();
}

/// `YYYY-MM-DD` of a Unix time (UTC), and that day's midnight.
fn civil_day(unix: i64) -> (String, i64) {
    let days = unix.div_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    (format!("{y:04}-{m:02}-{d:02}"), days * 86_400)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filters_skip_with_reasons_and_verify_accounts_for_them() {
    let env = Env::start(&["alice"], 300, 4242).await;
    let manifest = env.manifests["alice"].clone();
    let excluded = |f: &str| f == "Junk" || f.starts_with("Projects");
    let in_scope: Vec<_> = manifest
        .entries()
        .iter()
        .filter(|e| !excluded(&e.folder))
        .collect();
    // Cut-offs taken from the corpus itself so that every filter has work to do.
    let mut sizes: Vec<u64> = in_scope.iter().map(|e| e.size).collect();
    sizes.sort_unstable();
    let max_size = sizes[sizes.len() * 9 / 10];
    let mut dates: Vec<i64> = in_scope
        .iter()
        .map(|e| e.internal_date.unix_seconds())
        .collect();
    dates.sort_unstable();
    let (since, since_unix) = civil_day(dates[dates.len() / 5]);
    let (before, before_unix) = civil_day(dates[dates.len() * 4 / 5]);
    env.write_job(&format!(
        "since = \"{since}\"\nbefore = \"{before}\"\nexclude_folders = [\"#JunkEmail#\", \"Projects/**\"]\nmax_message_size = \"{max_size}B\""
    ));
    let o = env.cli(&["run"]).await;
    assert_eq!(o.code, 0, "{}", dump(&o));

    let size_skips = in_scope.iter().filter(|e| e.size > max_size).count() as u64;
    let date_skips = in_scope
        .iter()
        .filter(|e| e.size <= max_size)
        .filter(|e| {
            let t = e.internal_date.unix_seconds();
            t < since_unix || t >= before_unix
        })
        .count() as u64;
    assert!(
        size_skips > 0 && date_skips > 0,
        "{size_skips} {date_skips}"
    );
    let counts = env.status_counts().await;
    assert_eq!(
        counts["skipped"].as_u64(),
        Some(size_skips + date_skips),
        "{counts}"
    );
    assert_eq!(
        counts["migrated"].as_u64(),
        Some(in_scope.len() as u64 - size_skips - date_skips),
        "{counts}"
    );
    assert_eq!(
        env.graph.messages(&format!("alice@{DOMAIN}")).len() as u64,
        in_scope.len() as u64 - size_skips - date_skips
    );
    // Nothing from excluded folders reached the target; the run said why they were skipped.
    for m in env.graph.messages(&format!("alice@{DOMAIN}")) {
        let f = m.folder_path.to_ascii_lowercase();
        assert!(
            !f.contains("junk") && !f.contains("projects"),
            "{}",
            m.folder_path
        );
    }
    assert!(o.stderr.contains("Junk: folder skipped"), "{}", dump(&o));
    // Skipped items are in the item report with their reason.
    let o = env.cli(&["report", "--format", "json"]).await;
    assert_eq!(o.code, 0, "{}", dump(&o));
    let items = find_items_csv(env.dir.path()).expect("items csv");
    let count = |needle: &str| items.lines().filter(|l| l.contains(needle)).count() as u64;
    assert_eq!(
        count("above max_message_size"),
        size_skips,
        "size skips in the item report"
    );
    assert_eq!(
        count("outside the date filter"),
        date_skips,
        "date skips in the item report"
    );
    let o = env.cli(&["verify"]).await;
    assert_eq!(o.code, 0, "verify accounts for skipped items: {}", dump(&o));
    env.assert_no_secrets();
}

fn find_items_csv(dir: &Path) -> std::io::Result<String> {
    for e in std::fs::read_dir(dir.join("report"))?.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.contains("item") && name.ends_with(".csv") {
            return std::fs::read_to_string(e.path());
        }
    }
    Err(std::io::Error::other("no items csv"))
}

/// Removes Dovecot's UID list and indexes of every folder of `user`, so that the next session
/// sees new UIDVALIDITY values and new UIDs for the same messages.
fn reset_uidvalidity(env: &Env, user: &str) -> usize {
    fn walk(dir: &Path, n: &mut usize) {
        let Ok(rd) = std::fs::read_dir(dir) else {
            return;
        };
        for e in rd.flatten() {
            let p = e.path();
            let name = e.file_name().to_string_lossy().into_owned();
            if p.is_dir() {
                walk(&p, n);
            } else if name == "dovecot-uidlist" || name.starts_with("dovecot.index") {
                std::fs::remove_file(&p).expect("remove uid list");
                if name == "dovecot-uidlist" {
                    *n += 1;
                }
            }
        }
    }
    let mut n = 0;
    walk(&env.source.maildir(user), &mut n);
    n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uidvalidity_change_and_ctrl_c_never_duplicate() {
    let env = Env::start(&["alice"], 200, 31337).await;
    // Ctrl-C (SIGINT) once 40 of the 200 messages are in the target: the run takes the
    // interrupt path — it stops taking new items, records every write it made and exits 130.
    let child = env.command(&["run"]).spawn().expect("spawn run");
    let pid = child.id().expect("pid");
    let in_target = || env.graph.message_count(&format!("alice@{DOMAIN}"));
    let started = std::time::Instant::now();
    while in_target() < 40 {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "no progress to 40 messages"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let sent = std::process::Command::new("kill")
        .args(["-INT", &pid.to_string()])
        .status()
        .expect("kill -INT");
    assert!(sent.success());
    let o = child.wait_with_output().await.expect("wait");
    let code = o.status.code().unwrap_or(-1);
    let stderr = String::from_utf8_lossy(&o.stderr).into_owned();
    env.stderr_log.lock().unwrap().push_str(&stderr);
    let written = in_target();
    let recorded = env.status_counts().await["migrated"].as_u64().unwrap_or(0);
    eprintln!("run after SIGINT exited with {code}: {written} in the target, {recorded} recorded");
    assert_eq!(code, 130, "the interrupt path exits 130: {stderr}");
    assert!(stderr.contains("Ctrl-C"), "{stderr}");
    assert!(written < 200, "interrupted before the end: {written}");
    assert_eq!(
        written as u64, recorded,
        "a clean stop records every write it made"
    );
    let o = env.cli(&["run", "--events", "events.jsonl"]).await;
    assert_eq!(o.code, 0, "{}", dump(&o));
    let events = std::fs::read_to_string(env.dir.path().join("events.jsonl")).expect("events");
    let mut kinds = std::collections::BTreeSet::new();
    for line in events.lines() {
        let v: serde_json::Value = serde_json::from_str(line).expect("one JSON object per line");
        kinds.insert(v["event"].as_str().unwrap_or("").to_owned());
    }
    assert!(
        kinds.contains("mailbox_started") && kinds.contains("mailbox_finished"),
        "{kinds:?}"
    );
    let total_target = env.graph.messages(&format!("alice@{DOMAIN}")).len();
    assert_eq!(total_target, 200);

    // New UIDVALIDITY for every folder: the next run must not copy anything again.
    let lists = reset_uidvalidity(&env, "alice");
    assert!(lists > 0, "no dovecot-uidlist found");
    let o = env.cli(&["run"]).await;
    assert_eq!(o.code, 0, "{}", dump(&o));
    assert_eq!(
        env.graph.messages(&format!("alice@{DOMAIN}")).len(),
        200,
        "a UIDVALIDITY change must not duplicate: {}",
        dump(&o)
    );
    let o = env.cli(&["verify"]).await;
    assert_eq!(o.code, 0, "{}", dump(&o));
    // The state saw both UIDVALIDITY values of INBOX (the change really happened).
    let o = env.cli(&["report"]).await;
    assert_eq!(o.code, 0, "{}", dump(&o));
    let items = find_items_csv(env.dir.path()).expect("items csv");
    let inbox_uidvalidities: std::collections::BTreeSet<&str> = items
        .lines()
        .filter_map(|l| {
            let cells: Vec<&str> = l.split(',').collect();
            (cells.get(2) == Some(&"INBOX")).then(|| cells.get(3).copied().unwrap_or(""))
        })
        .collect();
    assert!(
        inbox_uidvalidities.len() >= 2,
        "INBOX UIDVALIDITY did not change: {inbox_uidvalidities:?}"
    );
    let log = std::fs::read_to_string(env.dir.path().join("migrate.log")).unwrap_or_default();
    assert!(
        log.contains("mailbox_started") || log.contains("MailboxStarted"),
        "log file has events"
    );
    env.assert_no_secrets();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dovecot_target_gets_every_message_with_flags_and_dates() {
    let users = ["alice", "bob", "carol", "dave", "erin"];
    let env = Env::start(&users, 400, 5150).await;
    let target = Dovecot::start(
        DovecotOptions::default()
            .with_users(
                users
                    .iter()
                    .map(|u| User::new(*u, format!("target-{u}-pw"))),
            )
            .with_extra_config("mail_fsync = never"),
    )
    .expect("start target Dovecot");
    // Logins without a target column: the target mailbox is the same login on the target.
    let mut csv = String::from("Login,Password\r\n");
    for u in &users {
        csv.push_str(&format!("{u},{}\r\n", password(u)));
    }
    std::fs::write(env.dir.path().join("users.csv"), csv).unwrap();
    let master = target.master_user();
    let job = imap_target_job(
        &env,
        &target,
        &format!(
            "login = \"admin\"\n\n[target.imap.admin]\nuser = \"{}\"\nsecret = \"env:{SECRET_ENV}\"",
            master.name()
        ),
    );
    std::fs::write(env.job_path(), job).unwrap();
    // The master password travels like the Graph secret: by environment reference.
    // verify before anything was copied: all missing, and no folder created in the target.
    let folders = || async {
        let mut c = target.login("alice").await.expect("target login");
        let mut names: Vec<String> = c
            .list()
            .await
            .expect("LIST")
            .into_iter()
            .map(|e| e.name)
            .collect();
        names.sort();
        names
    };
    let before = folders().await;
    let v = {
        let mut c = env.command(&["verify"]);
        c.env(SECRET_ENV, master.password());
        c.output().await.expect("verify")
    };
    assert_eq!(
        v.status.code(),
        Some(1),
        "verify on an empty target reports differences"
    );
    assert_eq!(folders().await, before, "verify created target folders");
    // Ten SIGKILLs at seeded points of progress (messages stored in the target), each
    // checked to have landed while the run was going; the writer's idempotency must hold.
    let extras = proof::add_extras(&env, "alice").await;
    let total = 2000 + extras.len();
    let stored = || {
        users
            .iter()
            .map(|u| proof::maildir_files(&target.maildir(u)))
            .sum::<usize>()
    };
    let mut landed_between = 0;
    let mut progress = Vec::new();
    for at in proof::kill_points(0xd0_5eed, 10, total) {
        let mut cmd = env.command(&["run"]);
        cmd.env(SECRET_ENV, master.password());
        let killed = proof::kill_at(cmd, stored, at, Duration::from_secs(300)).await;
        assert!(killed, "the run was still going at {at} messages");
        let recorded = env.status_counts().await["migrated"].as_u64().unwrap_or(0);
        let written = stored();
        if written as u64 > recorded {
            landed_between += 1;
        }
        progress.push((written, recorded));
    }
    eprintln!(
        "10 kills; (target messages, recorded migrated) after each: {progress:?}; \
         {landed_between} landed between a write and its record"
    );
    assert!(
        landed_between >= 1,
        "no kill landed between a write and its record: {progress:?}"
    );
    let mut cmd = env.command(&["run"]);
    cmd.env(SECRET_ENV, master.password());
    let o = cmd.output().await.expect("run");
    let stderr = String::from_utf8_lossy(&o.stderr).into_owned();
    assert_eq!(o.status.code(), Some(0), "{stderr}");
    let mut cmd = env.command(&["verify", "--json"]);
    cmd.env(SECRET_ENV, master.password());
    let o = cmd.output().await.expect("verify");
    assert_eq!(
        o.status.code(),
        Some(0),
        "verify: {}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    // Per message on the target: same bytes, flags, INTERNALDATE and size, per folder.
    assert_dovecot_holds_the_corpus(&env, &target, &users).await;
    // The extras: `Files` kept (not reserved on Dovecot), each shared Message-ID twice with
    // both bodies, every message once: the target holds exactly what the source holds.
    assert_eq!(stored(), total, "every message once in the target");
    let mut c = target.login("alice").await.expect("target login");
    assert_eq!(c.select("Files").await.expect("Files").exists, 12);
    let o = env.status_counts().await;
    assert_eq!(o["migrated"].as_u64(), Some(total as u64), "{o}");
    // Again: nothing more.
    let mut cmd = env.command(&["run"]);
    cmd.env(SECRET_ENV, master.password());
    let o = cmd.output().await.expect("run");
    let stderr = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(stderr.contains(" 0 migrated"), "{stderr}");
    // verify --deep reads every message back: all the same.
    let deep = || {
        let mut cmd = env.command(&["verify", "--deep"]);
        cmd.env(SECRET_ENV, master.password());
        cmd
    };
    let o = deep().output().await.expect("verify --deep");
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    // One byte of one stored message changed (same size): verify --deep names it.
    let changed = flip_one_byte(&target.maildir(users[0]).join("cur"));
    let o = deep().output().await.expect("verify --deep");
    let stderr = String::from_utf8_lossy(&o.stderr).into_owned();
    assert_eq!(o.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("differs uid") && stderr.contains("content differs"),
        "{changed:?}: {stderr}"
    );
}

/// Every corpus message of every user is in the target Dovecot byte for byte, with its flags,
/// INTERNALDATE and size, in the folder of the same name.
async fn assert_dovecot_holds_the_corpus(env: &Env, target: &Dovecot, users: &[&str]) {
    for u in users {
        let mut client = target.login(u).await.expect("target login");
        let report = env.manifests[*u]
            .verify_mapped(&mut client, |f| f.to_owned())
            .await
            .expect("verify target");
        assert!(
            report.is_ok(),
            "{u}: {:?}",
            report.mismatches.iter().take(5).collect::<Vec<_>>()
        );
        assert_eq!(report.messages_checked, env.manifests[*u].len(), "{u}");
    }
}

/// A job from `env`'s source Dovecot into the `target` Dovecot over STARTTLS; `login` is the
/// `[target.imap]` login line and whatever follows it (e.g. an `[target.imap.admin]` table).
fn imap_target_job(env: &Env, target: &Dovecot, login: &str) -> String {
    format!(
        r#"[source]
host = "127.0.0.1"
port = {sport}
security = "starttls"
ca_file = "{sca}"
credentials = "users.csv"
connections_per_host = 10

[target]
kind = "imap"

[target.imap]
host = "127.0.0.1"
port = {tport}
security = "starttls"
ca_file = "{tca}"
{login}

[limits]
mailboxes_at_once = 5

{JOB_FILES}"#,
        sport = env.source.imap_port(),
        sca = env.source.ca_path().display(),
        tport = target.imap_port(),
        tca = target.ca_path().display(),
    )
}

/// Changes one body byte of the first message file in `dir` (size unchanged); returns its path.
fn flip_one_byte(dir: &Path) -> PathBuf {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("message directory")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    let path = files.first().expect("a message file").clone();
    let mut bytes = std::fs::read(&path).unwrap();
    let at = bytes
        .iter()
        .rposition(|b| b.is_ascii_alphanumeric())
        .expect("a letter to change");
    bytes[at] = if bytes[at] == b'x' { b'y' } else { b'x' };
    std::fs::write(&path, bytes).unwrap();
    path
}

#[test]
fn cli_exit_codes_and_located_errors() {
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        let o = std::process::Command::new(BIN)
            .args(args)
            .current_dir(dir.path())
            .output()
            .expect("run binary");
        (
            o.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&o.stdout).into_owned(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    };
    // No job file: exit 2 with the path and a hint.
    let (code, _, err) = run(&["status"]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("o365-migrate.toml") && err.contains("--config"),
        "{err}"
    );
    // init writes the template once.
    assert_eq!(run(&["init"]).0, 0);
    assert_eq!(run(&["init"]).0, 2);
    // A typo is an error with file:line:column.
    let path = dir.path().join("o365-migrate.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, text.replacen("\nhost = ", "\nhots = ", 1)).unwrap();
    let (code, _, err) = run(&["plan"]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("o365-migrate.toml:") && err.contains("host"),
        "{err}"
    );
    // credentials check: a broken row is exit 1, the password never shown.
    let csv = dir.path().join("users.csv");
    std::fs::write(
        &csv,
        "EmailAddress,UserName,Password\r\nnot-an-address,u1,Sup3rSecretPw!\r\n",
    )
    .unwrap();
    let (code, out, err) = run(&["credentials", "check", csv.to_str().unwrap(), "--json"]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(!out.contains("Sup3rSecretPw!") && !err.contains("Sup3rSecretPw!"));
    assert!(out.contains("\"line\""), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eml_export_verifies_and_reruns_idempotently() {
    let env = Env::start(&["alice"], 150, 6060).await;
    let text = std::fs::read_to_string(env.job_path()).unwrap();
    let start = text.find("[target]").unwrap();
    let end = text.find("[filters]").unwrap();
    let job = format!(
        "{}[target]\nkind = \"eml\"\n\n[target.eml]\ndirectory = \"export\"\n\n{}",
        &text[..start],
        &text[end..]
    );
    std::fs::write(env.job_path(), job).unwrap();
    let o = env.cli(&["run"]).await;
    assert_eq!(o.code, 0, "{}", dump(&o));
    assert!(o.stderr.contains("150 migrated"), "{}", dump(&o));
    let o = env.cli(&["verify"]).await;
    assert_eq!(o.code, 0, "{}", dump(&o));
    let o = env.cli(&["run"]).await;
    assert!(o.stderr.contains(" 0 migrated"), "{}", dump(&o));
    // The export is a Maildir tree: one file per message in each folder's `cur/`.
    fn count_messages(dir: &Path) -> usize {
        std::fs::read_dir(dir)
            .map(|rd| {
                rd.flatten()
                    .map(|e| {
                        let p = e.path();
                        if p.is_dir() {
                            count_messages(&p)
                        } else {
                            usize::from(
                                p.parent()
                                    .and_then(|d| d.file_name())
                                    .is_some_and(|n| n == "cur"),
                            )
                        }
                    })
                    .sum()
            })
            .unwrap_or(0)
    }
    assert_eq!(count_messages(&env.dir.path().join("export")), 150);
    // One byte of one exported message changed (same size): the listing's content keys show
    // it even without --deep.
    fn a_cur_dir(dir: &Path) -> Option<PathBuf> {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
            .ok()?
            .flatten()
            .map(|e| e.path())
            .collect();
        entries.sort();
        for p in entries.iter().filter(|p| p.is_dir()) {
            let has_files = p.file_name().is_some_and(|n| n == "cur")
                && std::fs::read_dir(p).is_ok_and(|mut rd| rd.next().is_some());
            if has_files {
                return Some(p.clone());
            }
            if let Some(found) = a_cur_dir(p) {
                return Some(found);
            }
        }
        None
    }
    let cur = a_cur_dir(&env.dir.path().join("export")).expect("an exported folder");
    let changed = flip_one_byte(&cur);
    let o = env.cli(&["verify"]).await;
    assert_eq!(o.code, 1, "{changed:?}: {}", dump(&o));
    assert!(o.stderr.contains("content differs"), "{}", dump(&o));
    env.assert_no_secrets();
}

/// A mailbox that could not be processed (here: its source login is refused, so not one of its
/// folders or items is ever listed) never reads as done: the report says "incomplete", names
/// the mailbox with its error and exits 1 until a later run gets through it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mailbox_that_failed_before_listing_keeps_the_report_incomplete() {
    let env = Env::start(&["alice", "bob"], 20, 5150).await;
    env.write_job("");
    let csv_path = env.dir.path().join("users.csv");
    let good = std::fs::read_to_string(&csv_path).unwrap();
    let wrong = good.replace(&password("bob"), "not-bobs-password");
    assert_ne!(good, wrong);
    std::fs::write(&csv_path, &wrong).unwrap();
    let o = env.cli(&["run"]).await;
    assert_ne!(o.code, 0, "{}", dump(&o));
    assert_eq!(env.graph.messages(&format!("bob@{DOMAIN}")).len(), 0);

    let o = env.cli(&["report", "--format", "json"]).await;
    assert_eq!(
        o.code,
        1,
        "an unprocessed mailbox must not read as done: {}",
        dump(&o)
    );
    let doc: serde_json::Value = serde_json::from_str(&o.stdout).expect("report json");
    assert_eq!(doc["state"], "incomplete", "{doc}");
    let bob = doc["mailboxes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["source"].as_str().is_some_and(|s| s.starts_with("bob")))
        .expect("bob is in the report");
    assert!(bob["error"].is_string(), "{bob}");
    // Its source login is refused: not even its count can be read.
    assert!(bob["unlisted"].is_null(), "{bob}");
    assert!(o.stderr.contains("(unknown items pending)"), "{}", dump(&o));
    assert!(o.stderr.contains("incomplete: mailbox bob"), "{}", dump(&o));
    let o = env.cli(&["report", "--format", "html"]).await;
    assert_eq!(o.code, 1, "{}", dump(&o));
    assert!(o.stdout.contains("incomplete"), "{}", o.stdout);
    assert!(!o.stdout.contains("Totals: <span class=\"ok\">complete"));

    // With the right password a later run gets through bob: the report is complete again.
    std::fs::write(&csv_path, &good).unwrap();
    let o = env.cli(&["run"]).await;
    assert_eq!(o.code, 0, "{}", dump(&o));
    let o = env.cli(&["report", "--format", "json"]).await;
    assert_eq!(o.code, 0, "{}", dump(&o));
    let doc: serde_json::Value = serde_json::from_str(&o.stdout).expect("report json");
    assert_eq!(doc["state"], "complete", "{doc}");
    env.assert_no_secrets();
}

/// A mailbox stopped before its items were listed (here: its target mailbox is not enabled,
/// after the source was read) shows what its source holds, from STATUS, as pending: the report
/// says how much is waiting, not 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mailbox_stopped_before_listing_shows_what_the_source_holds_as_pending() {
    let env = reliability::start_env_with(
        &["alice", "bob"],
        20,
        5151,
        DovecotOptions::default(),
        None,
        |c| {
            for u in &mut c.tenants[0].users {
                if u.user_principal_name.starts_with("bob@") {
                    u.mailbox = false;
                }
            }
        },
    )
    .await;
    let o = env.cli(&["run"]).await;
    assert_ne!(o.code, 0, "{}", dump(&o));
    let o = env.cli(&["report", "--format", "json"]).await;
    assert_eq!(o.code, 1, "{}", dump(&o));
    let doc: serde_json::Value = serde_json::from_str(&o.stdout).expect("report json");
    assert_eq!(doc["state"], "incomplete", "{doc}");
    let row = |who: &str| {
        doc["mailboxes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["source"].as_str().is_some_and(|s| s.starts_with(who)))
            .cloned()
            .expect("in the report")
    };
    let bob = row("bob");
    assert!(bob["error"].is_string(), "{bob}");
    assert_eq!(bob["unlisted"].as_u64(), Some(20), "{bob}");
    assert_eq!(row("alice")["unlisted"].as_u64(), Some(0));
    assert!(
        o.stderr
            .contains("stopped with an error (20 items pending)"),
        "{}",
        dump(&o)
    );
    let o = env.cli(&["report", "--format", "html"]).await;
    assert!(o.stdout.contains("(20 pending)"), "{}", o.stdout);
}

/// A source folder named `Files` at the top of the mailbox (a name Exchange Online reserves
/// there) is written as `Files (migrated)`, the report names the rename, and the rest of the
/// mailbox is not held back by it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reserved_folder_name_is_renamed_not_a_mailbox_failure() {
    let env = Env::start(&["alice"], 10, 4711).await;
    let mut imap = env.source.login("alice").await.expect("source login");
    imap.create("Files").await.expect("create Files");
    for n in 0..35 {
        let raw = format!(
            "Message-ID: <files-{n}@example.org>\r\nFrom: a@example.org\r\nDate: Tue, 01 Jul 2025 10:00:00 +0000\r\nSubject: file {n}\r\n\r\nbody {n}\r\n"
        );
        imap.append(
            "Files",
            &o365_migrate_testkit::client::AppendRequest::new(raw.into_bytes(), vec![], None),
        )
        .await
        .expect("append");
    }
    // Two source folders whose names differ only in case (Dovecot keeps both; Exchange would
    // see one): each keeps its own messages, the second under a deterministic new name.
    for (folder, n) in [("Work", 3), ("work", 4)] {
        imap.create(folder).await.expect("create");
        for k in 0..n {
            let raw = format!(
                "Message-ID: <{folder}-{k}@example.org>\r\nFrom: a@example.org\r\nDate: Tue, 01 Jul 2025 10:00:00 +0000\r\nSubject: {folder} {k}\r\n\r\nbody\r\n"
            );
            imap.append(
                folder,
                &o365_migrate_testkit::client::AppendRequest::new(raw.into_bytes(), vec![], None),
            )
            .await
            .expect("append");
        }
    }
    imap.logout().await.expect("logout");
    env.write_job("");
    let o = env.cli(&["plan", "--json"]).await;
    assert!(
        o.stdout.contains("\"work (2)\""),
        "the plan shows the name: {}",
        o.stdout
    );
    let o = env.cli(&["run"]).await;
    assert_eq!(o.code, 0, "{}", dump(&o));
    let messages = env.graph.messages(&format!("alice@{DOMAIN}"));
    let in_folder = |f: &str| messages.iter().filter(|m| m.folder_path == f).count();
    assert_eq!(in_folder("Work"), 3);
    assert_eq!(in_folder("work (2)"), 4, "not merged into Work");
    let renamed = messages
        .iter()
        .filter(|m| m.folder_path == "Files (migrated)")
        .count();
    assert_eq!(
        renamed,
        35,
        "{:?}",
        messages
            .iter()
            .map(|m| &m.folder_path)
            .collect::<std::collections::BTreeSet<_>>()
    );
    assert_eq!(messages.len(), 10 + 35 + 7);
    let o = env.cli(&["verify"]).await;
    assert_eq!(o.code, 0, "{}", dump(&o));
    let o = env.cli(&["run"]).await;
    assert!(
        o.stderr.contains(" 0 migrated"),
        "a rerun finds both: {}",
        dump(&o)
    );
    let o = env.cli(&["report", "--format", "html"]).await;
    assert_eq!(o.code, 0, "{}", dump(&o));
    assert!(
        o.stdout.contains("Files (migrated)") && o.stdout.contains("reserved"),
        "the report names the rename: {}",
        o.stdout
    );
    assert!(
        o.stdout.contains("work (2)") && o.stdout.contains("case apart"),
        "the report names the case rename: {}",
        o.stdout
    );
}

/// IMAP to IMAP between two Dovecots whose users are bare names (no `@`), with per-user logins
/// on both sides: the credentials check applies the IMAP-username rule (the job's target kind),
/// the run copies every message byte for byte, and `verify --deep` agrees.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn imap_to_imap_with_bare_usernames_and_per_user_logins() {
    let users = ["alice", "bob"];
    let env = Env::start(&users, 30, 6262).await;
    // The target server has its own passwords: the file's Target Password column.
    let target_password = |u: &str| format!("Tgt-{u}-4Wv!LeakCanary");
    let target = Dovecot::start(
        DovecotOptions::default()
            .with_users(users.iter().map(|u| User::new(*u, target_password(u))))
            .with_extra_config("mail_fsync = never"),
    )
    .expect("start target Dovecot");
    let mut csv = String::from("Login,Password,Target,Target Password\r\n");
    for u in &users {
        csv.push_str(&format!(
            "{u},{},{u},{}\r\n",
            password(u),
            target_password(u)
        ));
    }
    let csv_path = env.dir.path().join("users.csv");
    std::fs::write(&csv_path, csv).unwrap();
    let job = imap_target_job(&env, &target, "login = \"per-user\"");
    std::fs::write(env.job_path(), job).unwrap();
    let csv_arg = csv_path.to_str().unwrap();
    let o = env.cli(&["credentials", "check", csv_arg]).await;
    assert_eq!(
        o.code,
        0,
        "bare IMAP usernames are valid targets: {}",
        dump(&o)
    );
    assert!(o.stderr.contains("an IMAP username"), "{}", dump(&o));
    let o = env
        .cli(&["credentials", "check", csv_arg, "--target-kind", "graph"])
        .await;
    assert_eq!(o.code, 1, "{}", dump(&o));
    assert!(
        o.stderr
            .contains("the target `alice` is not a Microsoft 365 address"),
        "{}",
        dump(&o)
    );
    let o = env.cli(&["run"]).await;
    assert_eq!(o.code, 0, "{}", dump(&o));
    let o = env.cli(&["verify", "--deep"]).await;
    assert_eq!(o.code, 0, "{}", dump(&o));
    assert_dovecot_holds_the_corpus(&env, &target, &users).await;
    env.assert_no_secrets();
    let log = std::fs::read_to_string(env.dir.path().join("migrate.log")).unwrap();
    let stderr = env.stderr_log.lock().unwrap().clone();
    for u in &users {
        let p = target_password(u);
        assert!(
            !log.contains(&p) && !stderr.contains(&p),
            "target password leaked"
        );
    }
}
