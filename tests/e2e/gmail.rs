//! Gmail as a source (issue 17), through the binary against testkit's Gmail-flavoured IMAP
//! server and the Graph emulator: each message once with its labels, Google sign-in with the
//! fix named for each refusal, and the daily download limit as a pause.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use o365_migrate_testkit::gmail::{GmailMessage, GmailOptions, GmailServer, Place};
use o365_migrate_testkit::{Corpus, CorpusProfile};

use super::{DOMAIN, Env, dump, password, reliability};

/// User labels the corpus draws from: nested ones, a space, `&` and non-ASCII.
const LABELS: [&str; 8] = [
    "Clients/ACME",
    "Clients/Globex",
    "Projects/2026/Q1",
    "Reisekosten Über",
    "Family & Friends",
    "Receipts",
    "Travel",
    "Newsletters",
];

/// One generated Gmail message and what the test expects of it.
struct Mail {
    message_id: String,
    labels: Vec<String>,
    raw: Vec<u8>,
    place: Place,
}

/// A small deterministic generator (xorshift) so the labels do not depend on the engine.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// `n` messages from the testkit corpus with unique Message-IDs: 40 % with 2–5 user labels,
/// the others 0–1; `\Inbox` 35 %, `\Sent` 20 % (5 % both), `\Starred` 5 %, `\Important`
/// 20 %; every
/// 100th in Spam or Trash.
fn gmail_corpus(seed: u64, n: usize, skip: usize) -> Vec<Mail> {
    let corpus = Corpus::new(CorpusProfile::small(seed, n + skip + n / 5).with_huge_every(None));
    let mut rng = Rng(seed | 1);
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for g in corpus.iter().skip(skip) {
        if out.len() == n {
            break;
        }
        let id = g.meta.message_id.clone();
        if id.is_empty() || !seen.insert(id.clone()) {
            continue;
        }
        let mut labels = BTreeSet::new();
        let user = if rng.below(100) < 40 {
            2 + rng.below(4)
        } else {
            rng.below(2)
        };
        while (labels.len() as u64) < user {
            labels.insert(LABELS[rng.below(LABELS.len() as u64) as usize].to_owned());
        }
        // 35 % in the Inbox, 15 % sent; of these 5 % both (mail to oneself).
        let r = rng.below(100);
        if r < 35 {
            labels.insert("\\Inbox".into());
        }
        if (30..50).contains(&r) {
            labels.insert("\\Sent".into());
        }
        if rng.below(100) < 5 {
            labels.insert("\\Starred".into());
        }
        if rng.below(100) < 20 {
            labels.insert("\\Important".into());
        }
        let place = match out.len() % 100 {
            7 => Place::Spam,
            8 => Place::Trash,
            _ => Place::AllMail,
        };
        if place != Place::AllMail {
            labels.clear();
        }
        out.push(Mail {
            message_id: id,
            labels: labels.into_iter().collect(),
            raw: g.bytes,
            place,
        });
    }
    assert_eq!(out.len(), n, "the corpus has enough unique messages");
    out
}

fn load(server: &GmailServer, user: &str, mails: &[Mail]) -> Vec<u64> {
    mails
        .iter()
        .map(|m| {
            let labels: Vec<&str> = m.labels.iter().map(String::as_str).collect();
            let mut g = GmailMessage::new(m.raw.clone()).labels(&labels);
            g.place = m.place;
            server.append(user, g).expect("append")
        })
        .collect()
}

/// The rule of the issue, written independently of the engine: Inbox if `\Inbox`, else Sent
/// Items if `\Sent`, else the first user label by name (case-insensitive), else Archive;
/// Spam and Trash stay where they are. Returns (folder, categories, flagged).
fn expected(m: &Mail, labels: &[String]) -> (String, BTreeSet<String>, bool) {
    let mut user: Vec<&String> = labels.iter().filter(|l| !l.starts_with('\\')).collect();
    user.sort_by_key(|l| l.to_lowercase());
    let has = |l: &str| labels.iter().any(|x| x == l);
    let flagged = has("\\Starred");
    match m.place {
        Place::Spam => return ("Junk Email".into(), BTreeSet::new(), flagged),
        Place::Trash => return ("Deleted Items".into(), BTreeSet::new(), flagged),
        Place::AllMail => {}
    }
    let (folder, by) = if has("\\Inbox") {
        ("Inbox".to_owned(), None)
    } else if has("\\Sent") {
        ("Sent Items".to_owned(), None)
    } else if let Some(first) = user.first() {
        ((*first).clone(), Some((*first).clone()))
    } else {
        ("Archive".to_owned(), None)
    };
    let categories = user
        .into_iter()
        .filter(|l| Some(*l) != by.as_ref())
        .cloned()
        .collect();
    (folder, categories, flagged)
}

/// Points the job's `[source]` at the Gmail stand-in (implicit TLS with its CA).
fn use_gmail_source(env: &Env, server: &GmailServer, extra: &str) {
    reliability::rewrite_source(env, server.port(), "tls", extra);
    let ca = server.ca_path().expect("TLS is on");
    reliability::set_job_line(env, "ca_file", &format!("\"{}\"", ca.display()));
}

fn append_to_job(env: &Env, section: &str) {
    let mut text = std::fs::read_to_string(env.job_path()).unwrap();
    text.push_str(section);
    std::fs::write(env.job_path(), text).unwrap();
}

/// An environment whose source is the Gmail stand-in (implicit TLS), with `users` signing in
/// with app passwords (the credentials file's passwords).
async fn gmail_env(users: &[&str], seed: u64) -> (Env, GmailServer) {
    let env = reliability::start_env_with(users, 0, seed, Default::default(), None, |_| {}).await;
    let server = GmailServer::start(GmailOptions {
        tls: true,
        ..Default::default()
    })
    .expect("start the Gmail stand-in");
    for u in users {
        server.add_user(u);
        server
            .set_app_password(u, &password(u))
            .expect("app password");
    }
    use_gmail_source(&env, &server, "");
    (env, server)
}

/// An environment whose source is the Gmail stand-in signing `alice` in with tokens from a
/// token-endpoint stand-in configured by `edit`: (env, the service account's key, the token
/// stand-in, the Gmail stand-in).
async fn google_env(
    seed: u64,
    edit: impl FnOnce(&mut o365_migrate_testkit::google_token::TokenConfig),
) -> (
    Env,
    String,
    o365_migrate_testkit::google_token::GoogleTokenStandIn,
    GmailServer,
) {
    use o365_migrate_testkit::google_token::{self, GoogleTokenStandIn, TokenConfig};
    let env =
        reliability::start_env_with(&["alice"], 0, seed, Default::default(), None, |_| {}).await;
    let pem = google_token::new_rsa_pem().expect("openssl");
    let mut config = TokenConfig::default();
    config.users.insert("alice".into());
    edit(&mut config);
    let tokens = GoogleTokenStandIn::start(&pem, config).expect("token stand-in");
    let server = GmailServer::start(GmailOptions {
        tls: true,
        tokens: Some(tokens.registry()),
        ..Default::default()
    })
    .expect("start the Gmail stand-in");
    server.add_user("alice");
    use_gmail_source(&env, &server, "");
    (env, pem, tokens, server)
}

fn migrated(stderr: &str) -> u64 {
    super::pim::migrated(stderr)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gmail_labels_each_message_once_in_the_rule_folder_with_categories_and_rescan() {
    let (env, server) = gmail_env(&["alice"], 17_017).await;
    let mails = gmail_corpus(17, 2_000, 0);
    let multi = mails
        .iter()
        .filter(|m| m.labels.iter().filter(|l| !l.starts_with('\\')).count() >= 2)
        .filter(|m| m.place == Place::AllMail)
        .count();
    assert!(
        (700..=900).contains(&multi),
        "about 40 % multi-labelled: {multi}"
    );
    let ids = load(&server, "alice", &mails);

    // plan: every message once, the days Google's limit makes it take.
    let o = env.cli(&["plan", "--json"]).await;
    assert_eq!(o.code, 0, "{}", dump(&o));
    let plan: serde_json::Value = serde_json::from_str(&o.stdout).unwrap();
    let mb = &plan["mailboxes"][0];
    assert_eq!(mb["messages"].as_u64(), Some(2_000), "{mb}");
    assert_eq!(mb["gmail"]["days"].as_u64(), Some(1), "{}", mb["gmail"]);
    assert_eq!(
        mb["gmail"]["multi_labelled"].as_u64(),
        Some(multi as u64),
        "{}",
        mb["gmail"]
    );

    let o = env.cli(&["run"]).await;
    assert_eq!(o.code, 0, "{}", dump(&o));
    assert_eq!(migrated(&o.stderr), 2_000, "{}", o.stderr);

    let check = |mails: &[Mail], label_of: &dyn Fn(usize) -> Vec<String>| {
        let stored = env.graph.messages(&format!("alice@{DOMAIN}"));
        let mut by_id: BTreeMap<String, Vec<_>> = BTreeMap::new();
        for s in &stored {
            by_id
                .entry(s.str("internetMessageId").unwrap_or("").to_owned())
                .or_default()
                .push(s);
        }
        for (i, m) in mails.iter().enumerate() {
            let found = by_id.get(&m.message_id).map(Vec::as_slice).unwrap_or(&[]);
            assert_eq!(found.len(), 1, "{} copied once: {found:?}", m.message_id);
            let (folder, categories, flagged) = expected(m, &label_of(i));
            let t = found[0];
            assert_eq!(t.folder_path, folder, "{} {:?}", m.message_id, m.labels);
            let got: BTreeSet<String> = t.properties["categories"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|c| c.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default();
            assert_eq!(got, categories, "{} {:?}", m.message_id, m.labels);
            assert_eq!(
                t.properties["flag"]["flagStatus"] == "flagged",
                flagged,
                "{} {:?}",
                m.message_id,
                m.labels
            );
            assert_eq!(t.properties["isDraft"], false);
        }
        stored.len()
    };
    assert_eq!(check(&mails, &|i| mails[i].labels.clone()), 2_000);

    let o = env.cli(&["verify"]).await;
    assert_eq!(o.code, 0, "verify: {}", dump(&o));

    // Labels added later copy nothing again; 50 new messages are copied, exactly.
    let labelled_before = server.stats("alice").unwrap().bytes_served;
    for id in ids.iter().step_by(40) {
        server
            .add_labels("alice", *id, &["Travel", "Receipts"])
            .expect("add labels");
    }
    let new = gmail_corpus(17, 50, 2_600);
    assert!(
        new.iter()
            .all(|n| mails.iter().all(|m| m.message_id != n.message_id))
    );
    load(&server, "alice", &new);
    let o = env.cli(&["rescan"]).await;
    assert_eq!(o.code, 0, "{}", dump(&o));
    assert_eq!(migrated(&o.stderr), 50, "{}", o.stderr);
    assert_eq!(check(&new, &|i| new[i].labels.clone()), 2_050);
    let served = server.stats("alice").unwrap().bytes_served - labelled_before;
    let new_bytes: u64 = new.iter().map(|m| m.raw.len() as u64).sum();
    assert!(
        served < new_bytes + 2_100 * 1_024,
        "only the new bodies were downloaded again: {served} bytes for {new_bytes}"
    );
    let o = env.cli(&["source", "test"]).await;
    assert_eq!(o.code, 0, "{}", dump(&o));
    assert!(
        server.stats("alice").unwrap().peak_connections <= 15,
        "Gmail's 15 connections per user"
    );
}

/// Every byte the tool wrote besides the secret files the test itself planted: its log, the
/// state store, the reports.
fn artefacts(env: &Env) -> Vec<(String, Vec<u8>)> {
    let mut files = Vec::new();
    reliability::files_under(env.dir.path(), &mut files);
    files
        .into_iter()
        .filter(|p| {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
            !(name.ends_with(".json") && name.starts_with("key")
                || name.ends_with(".token")
                || name == "google-client-secret")
        })
        .map(|p| {
            (
                p.display().to_string(),
                std::fs::read(&p).unwrap_or_default(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn google_sign_in_migrates_and_each_refusal_names_its_fix_without_a_secret() {
    use o365_migrate_testkit::google_token::{self, CLIENT_ID, MAIL_SCOPE, RefreshGrant};
    const REFRESH: &str = "1//0refresh-alice-Marker-LeakCanary";
    const CLIENT_SECRET: &str = "GOCSPX-client-Marker-LeakCanary";
    const DESKTOP_CLIENT: &str = "998877-desktop.apps.googleusercontent.com";
    let (env, pem, tokens, server) = google_env(17_117, |config| {
        config
            .delegation
            .insert(CLIENT_ID.into(), vec![MAIL_SCOPE.into()]);
        config.refresh.insert(
            REFRESH.into(),
            RefreshGrant {
                client_id: DESKTOP_CLIENT.into(),
                client_secret: CLIENT_SECRET.into(),
                user: "alice".into(),
                scopes: vec![MAIL_SCOPE.into()],
                revoked: false,
            },
        );
    })
    .await;
    let mails = gmail_corpus(117, 40, 0);
    load(&server, "alice", &mails);
    let dir = env.dir.path();
    std::fs::write(
        dir.join("key.json"),
        google_token::key_file(&pem, tokens.url()),
    )
    .unwrap();
    let service = "\n[source.google]\nservice_account_key = \"file:key.json\"\n";
    append_to_job(&env, service);
    // No password anywhere: the credentials file lists the mailboxes only.
    std::fs::write(
        dir.join("users.csv"),
        format!("EmailAddress,UserName\r\nalice@{DOMAIN},alice\r\n"),
    )
    .unwrap();

    // The service account signs every user in: test, run, verify.
    let o = env.cli(&["source", "test"]).await;
    assert_eq!(o.code, 0, "{}", dump(&o));
    let o = env.cli(&["run"]).await;
    assert_eq!(o.code, 0, "{}", dump(&o));
    assert_eq!(migrated(&o.stderr), 40, "{}", o.stderr);
    let o = env.cli(&["verify"]).await;
    assert_eq!(o.code, 0, "{}", dump(&o));
    assert!(server.stats("alice").unwrap().logins >= 3);
    let claims = tokens.last_claims().expect("an assertion was verified");
    assert!(claims.contains("\"sub\":\"alice\""), "{claims}");

    // Delegation missing: the fix names the admin console page, the client ID and the scope.
    tokens.update_config(|c| c.delegation.clear());
    let o = env.cli(&["source", "test"]).await;
    assert_eq!(o.code, 1, "{}", dump(&o));
    for part in ["Domain-wide delegation", CLIENT_ID, MAIL_SCOPE] {
        assert!(o.stderr.contains(part), "{part} in {}", o.stderr);
    }
    tokens.update_config(|c| {
        c.delegation
            .insert(CLIENT_ID.into(), vec![MAIL_SCOPE.into()]);
    });

    // A key that is not the service account's: create a new key.
    let other = google_token::new_rsa_pem().expect("openssl");
    std::fs::write(
        dir.join("key.json"),
        google_token::key_file(&other, tokens.url()),
    )
    .unwrap();
    let o = env.cli(&["source", "test"]).await;
    assert_eq!(o.code, 1, "{}", dump(&o));
    assert!(
        o.stderr
            .contains("not (or no longer) the service account's")
            && o.stderr.contains("Keys"),
        "{}",
        o.stderr
    );

    // Per-user refresh tokens, referenced per login; then revoked: sign the user in again.
    std::fs::create_dir_all(dir.join("tokens")).unwrap();
    std::fs::write(dir.join("tokens/alice.token"), REFRESH).unwrap();
    std::fs::write(dir.join("google-client-secret"), CLIENT_SECRET).unwrap();
    let job = std::fs::read_to_string(env.job_path()).unwrap();
    let refresh = format!(
        "\n[source.google]\nclient_id = \"{DESKTOP_CLIENT}\"\nclient_secret = \"file:google-client-secret\"\nrefresh_token = \"file:tokens/{{login}}.token\"\ntoken_endpoint = \"{}\"\n",
        tokens.url()
    );
    std::fs::write(env.job_path(), job.replace(service, &refresh)).unwrap();
    let o = env.cli(&["source", "test"]).await;
    assert_eq!(o.code, 0, "{}", dump(&o));
    tokens.update_config(|c| {
        if let Some(g) = c.refresh.get_mut(REFRESH) {
            g.revoked = true;
        }
    });
    let o = env.cli(&["source", "test"]).await;
    assert_eq!(o.code, 1, "{}", dump(&o));
    assert!(
        o.stderr.contains("has been expired or revoked")
            && o.stderr.contains("sign the user in again"),
        "{}",
        o.stderr
    );

    // No key, refresh token, client secret or access token in any output or file.
    let pem_line = pem.lines().nth(5).expect("a PEM body line").to_owned();
    let mut needles = vec![pem_line, REFRESH.to_owned(), CLIENT_SECRET.to_owned()];
    needles.extend(tokens.registry().issued().into_iter().map(|t| t.token));
    assert!(needles.len() > 4, "access tokens were issued");
    let stderr = env.stderr_log.lock().unwrap().clone();
    for n in &needles {
        assert!(!stderr.contains(n.as_str()), "a secret in the output");
        for (name, bytes) in artefacts(&env) {
            assert!(
                !bytes.windows(n.len()).any(|w| w == n.as_bytes()),
                "a secret in {name}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daily_download_limit_pauses_one_mailbox_and_a_later_run_completes_it() {
    let (env, server) = gmail_env(&["alice", "bob"], 17_217).await;
    let big = gmail_corpus(217, 120, 0);
    let small = gmail_corpus(218, 15, 0);
    load(&server, "alice", &big);
    load(&server, "bob", &small);
    let big_bytes: u64 = big.iter().map(|m| m.raw.len() as u64).sum();
    let small_bytes: u64 = small.iter().map(|m| m.raw.len() as u64).sum();
    // A day scaled to 4 s, an allowance of 40 % of alice's mail (bob's fits in it).
    let allowance = big_bytes * 2 / 5;
    assert!(small_bytes < allowance);
    append_to_job(
        &env,
        &format!("\n[gmail]\ndaily_download = \"{allowance}\"\ndownload_window_seconds = 4\n"),
    );
    let o = env.cli(&["plan", "--json"]).await;
    assert_eq!(o.code, 0, "{}", dump(&o));
    let plan: serde_json::Value = serde_json::from_str(&o.stdout).unwrap();
    assert_eq!(plan["mailboxes"][0]["gmail"]["days"].as_u64(), Some(3));
    assert_eq!(plan["mailboxes"][1]["gmail"]["days"].as_u64(), Some(1));

    // What `plan` read (header fields) is not part of the runs' window.
    let planned = server.bytes_served("alice").unwrap();
    let o = env.cli(&["run"]).await;
    assert_eq!(o.code, 4, "paused, the rest done: {}", dump(&o));
    assert!(
        o.stderr.contains("mailbox paused: alice: paused until"),
        "{}",
        o.stderr
    );
    let count = |u: &str| env.graph.messages(&format!("{u}@{DOMAIN}")).len();
    assert_eq!(count("bob"), 15, "bob finished");
    let first = count("alice");
    assert!(first > 0 && first < 120, "alice part-way: {first}");
    let served = server.bytes_served("alice").unwrap() - planned;
    assert!(
        served <= allowance && served > allowance / 2,
        "alice's downloads kept within the allowance: {served} of {allowance}"
    );

    // Within the window: alice waits without signing in again.
    let logins = server.stats("alice").unwrap().logins;
    let until = paused_until(&o.stderr);
    let o = env.cli(&["run"]).await;
    if unix_now() < until {
        assert_eq!(o.code, 4, "{}", dump(&o));
        assert_eq!(server.stats("alice").unwrap().logins, logins, "no sign-in");
        assert_eq!(count("alice"), first);
    }

    // After each window (4 s) a run goes on where the last stopped, until alice is complete.
    run_after_each_window(&env, until, 3).await;
    assert_eq!(count("alice"), 120);
    assert_eq!(count("bob"), 15);
    let o = env.cli(&["verify"]).await;
    assert_eq!(o.code, 0, "{}", dump(&o));
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// The time a paused mailbox's window reopens, from the run's message.
fn paused_until(stderr: &str) -> i64 {
    stderr
        .split("paused until ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no pause in {stderr}"))
}

/// A label as the IMAP keyword the copy carries (written out here, independent of the engine).
fn keyword(label: &str) -> String {
    match label {
        "Family & Friends" => "Family_&-_Friends".into(),
        "Reisekosten Über" => "Reisekosten_&ANw-ber".into(),
        other => other.into(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gmail_labels_to_dovecot_each_message_once_with_keywords() {
    let (env, server) = gmail_env(&["alice"], 17_317).await;
    let mails = gmail_corpus(17, 2_000, 0);
    load(&server, "alice", &mails);
    let target = reliability::use_imap_target(&env, "alice");
    let master = target.master_user();
    std::fs::write(
        env.dir.path().join("users.csv"),
        format!("Login,Password\r\nalice,{}\r\n", password("alice")),
    )
    .unwrap();
    let run = |args: &'static [&'static str]| {
        let mut c = env.command(args);
        c.env(super::SECRET_ENV, master.password());
        async move {
            let o = c.output().await.expect("run");
            super::Out {
                code: o.status.code().unwrap_or(-1),
                stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
                stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
            }
        }
    };
    let o = run(&["run"]).await;
    assert_eq!(o.code, 0, "{}", dump(&o));
    assert_eq!(migrated(&o.stderr), 2_000, "{}", o.stderr);
    let o = run(&["verify"]).await;
    assert_eq!(o.code, 0, "verify: {}", dump(&o));

    // Every copy in the target, by Message-ID: (folder, keywords, flagged).
    let mut imap = target.login("alice").await.expect("target login");
    let mut found: BTreeMap<String, Vec<(String, BTreeSet<String>, bool)>> = BTreeMap::new();
    let mut kinds: BTreeMap<&str, String> = BTreeMap::new();
    for entry in imap.list().await.expect("LIST") {
        if entry
            .attributes
            .iter()
            .any(|a| a.eq_ignore_ascii_case("\\Noselect"))
        {
            continue;
        }
        let shown = match entry.delimiter {
            Some(d) => entry.name.replace(d, "/"),
            None => entry.name.clone(),
        };
        for (attr, kind) in [
            ("\\Sent", "Sent Items"),
            ("\\Archive", "Archive"),
            ("\\Junk", "Junk Email"),
            ("\\Trash", "Deleted Items"),
        ] {
            if entry
                .attributes
                .iter()
                .any(|a| a.eq_ignore_ascii_case(attr))
            {
                kinds.insert(kind, shown.clone());
            }
        }
        let sel = imap.select(&entry.name).await.expect("SELECT");
        if sel.exists == 0 {
            continue;
        }
        for m in imap.uid_fetch_full("1:*").await.expect("FETCH") {
            let body = m.body.unwrap_or_default();
            let head = String::from_utf8_lossy(&body);
            let id = head
                .lines()
                .find_map(|l| {
                    l.strip_prefix("Message-ID:")
                        .or_else(|| l.strip_prefix("Message-Id:"))
                })
                .map(|v| v.trim().to_owned())
                .unwrap_or_default();
            let keywords = m
                .flags
                .iter()
                .filter(|f| !f.starts_with('\\') && !f.starts_with('$'))
                .cloned()
                .collect();
            let flagged = m.flags.iter().any(|f| f.eq_ignore_ascii_case("\\Flagged"));
            found
                .entry(id)
                .or_default()
                .push((shown.clone(), keywords, flagged));
        }
    }
    let folder_name = |graph: &str| match graph {
        "Inbox" => "INBOX".to_owned(),
        other => kinds
            .get(other)
            .cloned()
            .unwrap_or_else(|| other.to_owned()),
    };
    for m in &mails {
        let copies = found.get(&m.message_id).cloned().unwrap_or_default();
        assert_eq!(copies.len(), 1, "{} copied once: {copies:?}", m.message_id);
        let (folder, categories, flagged) = expected(m, &m.labels);
        let keywords: BTreeSet<String> = categories.iter().map(|c| keyword(c)).collect();
        assert_eq!(
            copies[0],
            (folder_name(&folder), keywords, flagged),
            "{} {:?}",
            m.message_id,
            m.labels
        );
    }
}

/// A browser's GET, by hand: the status line and the `Location` header of the answer.
async fn browser_get(url: &str) -> (String, Option<String>) {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let rest = url.strip_prefix("http://").expect("an http:// address");
    let (host, path) = rest
        .split_once('/')
        .map_or((rest, "/".to_owned()), |(h, p)| (h, format!("/{p}")));
    let mut s = tokio::net::TcpStream::connect(host).await.expect("connect");
    let req = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    let _ = s.read_to_end(&mut answer).await;
    let text = String::from_utf8_lossy(&answer).into_owned();
    let status = text.lines().next().unwrap_or("").to_owned();
    let location = text
        .lines()
        .find_map(|l| {
            l.strip_prefix("location: ")
                .or_else(|| l.strip_prefix("Location: "))
        })
        .map(str::to_owned);
    (status, location)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn google_authorize_gets_a_refresh_token_through_the_browser_and_it_signs_in() {
    use std::os::unix::fs::PermissionsExt as _;
    use tokio::io::AsyncBufReadExt as _;
    const DESKTOP_CLIENT: &str = "556677-desktop.apps.googleusercontent.com";
    const CLIENT_SECRET: &str = "GOCSPX-authorize-Marker-LeakCanary";
    let (env, _pem, tokens, server) = google_env(17_417, |config| {
        config
            .desktop_clients
            .insert(DESKTOP_CLIENT.into(), CLIENT_SECRET.into());
    })
    .await;
    load(&server, "alice", &gmail_corpus(417, 10, 0));
    let dir = env.dir.path();
    std::fs::write(dir.join("google-client-secret"), CLIENT_SECRET).unwrap();
    std::fs::write(
        dir.join("users.csv"),
        format!("EmailAddress,UserName\r\nalice@{DOMAIN},alice\r\n"),
    )
    .unwrap();
    append_to_job(
        &env,
        &format!(
            "\n[source.google]\nclient_id = \"{DESKTOP_CLIENT}\"\nclient_secret = \"file:google-client-secret\"\nrefresh_token = \"file:tokens/{{login}}.token\"\ntoken_endpoint = \"{}\"\nauth_endpoint = \"{}\"\n",
            tokens.url(),
            tokens.auth_url()
        ),
    );
    // Before: no token, so `source test` names the file it misses.
    let o = env.cli(&["source", "test"]).await;
    assert_eq!(o.code, 1, "{}", dump(&o));
    assert!(o.stderr.contains("alice.token"), "{}", o.stderr);

    let mut child = env
        .command(&[
            "google",
            "authorize",
            "--login",
            "alice",
            "--timeout-seconds",
            "60",
        ])
        .spawn()
        .expect("start google authorize");
    let mut lines = tokio::io::BufReader::new(child.stderr.take().unwrap()).lines();
    let mut said = String::new();
    let url = loop {
        let line = lines
            .next_line()
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("no address in {said}"));
        said.push_str(&line);
        said.push('\n');
        if line.starts_with("http://") {
            break line;
        }
    };
    assert!(
        url.contains("code_challenge_method=S256") && url.contains("login_hint=alice"),
        "{url}"
    );
    // The browser: Google's consent page redirects to the tool's listener with a code.
    let (status, location) = browser_get(&url).await;
    assert!(status.contains(" 30"), "{status}");
    let location = location.expect("a redirect");
    assert!(location.starts_with("http://127.0.0.1:"), "{location}");
    let (status, _) = browser_get(&location).await;
    assert!(status.contains("200"), "{status}");
    while let Some(line) = lines.next_line().await.unwrap() {
        said.push_str(&line);
        said.push('\n');
    }
    let code = child.wait().await.unwrap().code();
    assert_eq!(code, Some(0), "{said}");
    let file = dir.join("tokens/alice.token");
    let token = std::fs::read_to_string(&file).expect("the refresh token file");
    assert!(token.starts_with("1//standin-refresh-"), "a refresh token");
    let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "owner-only");
    assert!(!said.contains(&token), "the token is never shown");
    assert!(!said.contains("4/standin-code-"), "the code is never shown");

    // With it, the user signs in and the mail moves.
    let o = env.cli(&["source", "test"]).await;
    assert_eq!(o.code, 0, "{}", dump(&o));
    let o = env.cli(&["run"]).await;
    assert_eq!(o.code, 0, "{}", dump(&o));
    assert_eq!(migrated(&o.stderr), 10, "{}", o.stderr);
    for (name, bytes) in artefacts(&env) {
        assert!(
            !bytes.windows(token.len()).any(|w| w == token.as_bytes()),
            "the refresh token in {name}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gmails_own_bandwidth_alert_pauses_the_mailbox_until_its_window_reopens() {
    let (env, server) = gmail_env(&["carol"], 17_517).await;
    let mails = gmail_corpus(517, 60, 0);
    load(&server, "carol", &mails);
    let total: u64 = mails.iter().map(|m| m.raw.len() as u64).sum();
    // Gmail's own limit (30 % of the mail per 3 s) is the one that bites: ours is not reached.
    server.set_download_limit(total * 3 / 10, Duration::from_secs(3));
    append_to_job(&env, "\n[gmail]\ndownload_window_seconds = 3\n");
    let o = env.cli(&["run"]).await;
    assert_eq!(o.code, 4, "{}", dump(&o));
    assert!(
        o.stderr.contains("Gmail refused more downloads") && o.stderr.contains("bandwidth limits"),
        "{}",
        o.stderr
    );
    let alerts = server.stats("carol").unwrap().bandwidth_alerts;
    assert!(alerts >= 1, "the server's alert was what stopped it");
    let count = || env.graph.messages(&format!("carol@{DOMAIN}")).len();
    let first = count();
    assert!(first < 60, "part-way: {first}");
    // Inside the window: no new sign-in (Google would extend the lock).
    let logins = server.stats("carol").unwrap().logins;
    let until = paused_until(&o.stderr);
    let o = env.cli(&["run"]).await;
    if unix_now() < until {
        assert_eq!(o.code, 4, "{}", dump(&o));
        assert_eq!(server.stats("carol").unwrap().logins, logins, "no sign-in");
    }
    run_after_each_window(&env, until, 7).await;
    assert_eq!(count(), 60);
    // verify downloads too, and Gmail's limit counts it: lifted here to compare.
    server.set_download_limit(u64::MAX / 2, Duration::from_secs(3));
    let o = env.cli(&["verify"]).await;
    assert_eq!(o.code, 0, "{}", dump(&o));
}

/// Runs once after each download window reopens (`until`: when the first does, as printed)
/// until a run completes (exit 0); at most `windows` runs, each else paused again (exit 4).
async fn run_after_each_window(env: &Env, mut until: i64, windows: usize) {
    for _ in 0..windows {
        // The window reopens within the second after the one printed.
        let wait = (until + 1 - unix_now()).max(0) as u64;
        tokio::time::sleep(Duration::from_millis(wait * 1000 + 200)).await;
        let o = env.cli(&["run"]).await;
        if o.code == 0 {
            return;
        }
        assert_eq!(o.code, 4, "{}", dump(&o));
        until = paused_until(&o.stderr);
    }
    panic!("not complete after {windows} more windows");
}
