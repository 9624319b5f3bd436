//! `sync`: after a first run, flag changes, moves, new messages and deletions at the source
//! reach the target exactly — on the Graph emulator and on a Dovecot target, from a Dovecot
//! that offers CONDSTORE/QRESYNC and from one that does not; deletions only when asked.

use std::collections::HashMap;

use o365_migrate_testkit::{Client, Corpus, CorpusProfile, Dovecot, DovecotOptions, User};

use super::{DOMAIN, Env, SECRET_ENV, dump, folder_matches, imap_target_job, password};

const USER: &str = "alice";
const KEYWORD: &str = "Projekt";

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Target {
    Graph,
    Dovecot,
}

/// A target message: folder, Message-ID, read, keywords / categories.
type Seen = (String, String, bool, Vec<String>);

/// What the test changed at the source.
struct Changes {
    /// Message-ID → the source's read state after the change (100).
    flagged: HashMap<String, bool>,
    /// Message-ID → (from folder, to folder) (20).
    moved: HashMap<String, (String, String)>,
    /// Message-IDs deleted at the source (10).
    deleted: Vec<String>,
}

async fn sync_json(env: &Env, extra: &[&str]) -> serde_json::Value {
    let mut args = vec!["sync", "--json"];
    args.extend_from_slice(extra);
    let o = env.cli(&args).await;
    assert_eq!(o.code, 0, "sync {extra:?}: {}", dump(&o));
    let line = o.stdout.lines().last().unwrap_or_default();
    serde_json::from_str(line).unwrap_or_else(|e| panic!("sync JSON {e}: {}", dump(&o)))
}

fn assert_sync(
    v: &serde_json::Value,
    migrated: u64,
    flags: u64,
    moved: u64,
    deleted: u64,
    kept: u64,
) {
    let s = &v["sync"];
    let got = (
        v["migrated"].as_u64(),
        s["flags"].as_u64(),
        s["moved"].as_u64(),
        s["deleted"].as_u64(),
        s["kept"].as_u64(),
        s["failed"].as_u64(),
        v["failed"].as_u64(),
    );
    assert_eq!(
        got,
        (
            Some(migrated),
            Some(flags),
            Some(moved),
            Some(deleted),
            Some(kept),
            Some(0),
            Some(0)
        ),
        "(migrated, flags, moved, deleted, kept, failed changes, failed items): {v}"
    );
}

/// Makes the changes at the source through its own IMAP connection.
async fn change_source(env: &Env) -> Changes {
    let manifest = &env.manifests[USER];
    // Messages whose Message-ID is unique in the corpus, by folder.
    let mut count: HashMap<&str, usize> = HashMap::new();
    for e in manifest.entries() {
        *count.entry(e.message_id.as_str()).or_default() += 1;
    }
    let mut by_folder: HashMap<&str, Vec<&o365_migrate_testkit::ManifestEntry>> = HashMap::new();
    for e in manifest.entries() {
        if count[e.message_id.as_str()] == 1
            && e.uid.is_some()
            && !e.message_id.is_empty()
            && !e.flags.iter().any(|f| f.eq_ignore_ascii_case("\\Draft"))
        {
            by_folder.entry(e.folder.as_str()).or_default().push(e);
        }
    }
    let mut folders: Vec<&str> = by_folder
        .keys()
        .copied()
        .filter(|f| {
            let l = f.to_ascii_lowercase();
            !["trash", "junk", "spam", "draft"]
                .iter()
                .any(|s| l.contains(s))
        })
        .collect();
    folders.sort_by_key(|f| std::cmp::Reverse(by_folder[f].len()));
    assert!(
        folders.len() >= 2,
        "the corpus has too few folders: {folders:?}"
    );
    let (from, to) = (folders[0], folders[1]);
    let mut pool: Vec<&o365_migrate_testkit::ManifestEntry> = folders
        .iter()
        .flat_map(|f| by_folder[f].iter().copied())
        .collect();
    pool.sort_by_key(|e| e.index);
    let movers: Vec<_> = by_folder[from].iter().rev().take(20).copied().collect();
    assert_eq!(movers.len(), 20, "folder {from} has too few messages");
    let moving: std::collections::HashSet<usize> = movers.iter().map(|e| e.index).collect();
    let rest: Vec<_> = pool
        .into_iter()
        .filter(|e| !moving.contains(&e.index))
        .collect();
    assert!(rest.len() >= 110, "corpus too small: {}", rest.len());
    let (flag_set, rest) = rest.split_at(100);
    let delete_set = &rest[rest.len() - 10..];

    let mut c: Client = env.source.login(USER).await.expect("source login");
    let mut changes = Changes {
        flagged: HashMap::new(),
        moved: HashMap::new(),
        deleted: Vec::new(),
    };
    let mut by_f: HashMap<&str, Vec<(usize, &o365_migrate_testkit::ManifestEntry)>> =
        HashMap::new();
    for (i, e) in flag_set.iter().enumerate() {
        by_f.entry(e.folder.as_str()).or_default().push((i, e));
    }
    for (folder, list) in by_f {
        c.select(folder).await.expect("select");
        for (i, e) in list {
            let seen = e.flags.iter().any(|f| f.eq_ignore_ascii_case("\\Seen"));
            let uid = e.uid.unwrap();
            let op = if seen {
                "-FLAGS.SILENT"
            } else {
                "+FLAGS.SILENT"
            };
            c.raw(&format!("UID STORE {uid} {op} (\\Seen)"))
                .await
                .expect("store");
            if i % 4 == 0 {
                c.raw(&format!("UID STORE {uid} +FLAGS.SILENT ({KEYWORD})"))
                    .await
                    .expect("store keyword");
            }
            changes.flagged.insert(e.message_id.clone(), !seen);
        }
    }
    c.select(from).await.expect("select");
    for e in &movers {
        c.raw(&format!("UID MOVE {} \"{to}\"", e.uid.unwrap()))
            .await
            .expect("move");
        changes
            .moved
            .insert(e.message_id.clone(), (from.to_owned(), to.to_owned()));
    }
    for e in delete_set {
        c.select(&e.folder).await.expect("select");
        let uid = e.uid.unwrap();
        c.raw(&format!("UID STORE {uid} +FLAGS.SILENT (\\Deleted)"))
            .await
            .expect("delete");
        c.raw(&format!("UID EXPUNGE {uid}")).await.expect("expunge");
        changes.deleted.push(e.message_id.clone());
    }
    let _ = c.logout().await;
    // 50 new messages.
    Corpus::new(CorpusProfile::realistic(424_242, 50).with_huge_every(None))
        .load(&env.source, USER)
        .await
        .expect("load 50 new");
    changes
}

/// Every message in the target: (folder, Message-ID, read, keywords/categories).
async fn target_messages(env: &Env, target: Option<&Dovecot>) -> Vec<Seen> {
    let Some(t) = target else {
        return env
            .graph
            .messages(&format!("{USER}@{DOMAIN}"))
            .into_iter()
            .map(|m| {
                let cats = m.properties["categories"]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(|c| c.as_str().map(String::from))
                            .collect()
                    })
                    .unwrap_or_default();
                (
                    m.folder_path.clone(),
                    m.str("internetMessageId").unwrap_or_default().to_owned(),
                    m.bool("isRead").unwrap_or(false),
                    cats,
                )
            })
            .collect();
    };
    let mut c = t.login(USER).await.expect("target login");
    let names: Vec<String> = c
        .list()
        .await
        .expect("LIST")
        .into_iter()
        .map(|e| e.name)
        .collect();
    let mut out = Vec::new();
    for name in names {
        let Ok(sel) = c.examine(&name).await else {
            continue;
        };
        if sel.exists == 0 {
            continue;
        }
        let mut v = Vec::new();
        c.uid_fetch_each(
            "1:*",
            "(UID FLAGS BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])",
            |m| v.push(m),
        )
        .await
        .expect("fetch");
        for m in v {
            let header =
                String::from_utf8_lossy(m.body.as_deref().unwrap_or_default()).into_owned();
            let mid = header
                .split_once(':')
                .map(|(_, v)| v.trim().to_owned())
                .unwrap_or_default();
            out.push((
                name.clone(),
                mid,
                m.flags.iter().any(|f| f.eq_ignore_ascii_case("\\Seen")),
                m.flags
                    .iter()
                    .filter(|f| !f.starts_with('\\'))
                    .cloned()
                    .collect(),
            ));
        }
    }
    out
}

async fn sync_case(condstore: bool, target_kind: Target) {
    let opts = if condstore {
        DovecotOptions::default()
    } else {
        DovecotOptions::default().without_condstore()
    };
    let env = super::reliability::start_env(&[USER], 400, 60_601, opts, None).await;
    {
        let c = env.source.login(USER).await.expect("source login");
        assert_eq!(
            c.has_capability("CONDSTORE"),
            condstore,
            "{:?}",
            c.capabilities()
        );
    }
    let dovecot = match target_kind {
        Target::Graph => None,
        Target::Dovecot => {
            let t = Dovecot::start(
                DovecotOptions::default()
                    .with_users([User::new(USER, format!("target-{USER}-pw"))])
                    .with_extra_config("mail_fsync = never"),
            )
            .expect("start target Dovecot");
            std::fs::write(
                env.dir.path().join("users.csv"),
                format!("Login,Password\r\n{USER},{}\r\n", password(USER)),
            )
            .unwrap();
            let master = t.master_user();
            let (name, pw) = (master.name().to_owned(), master.password().to_owned());
            let job = imap_target_job(
                &env,
                &t,
                &format!(
                    "login = \"admin\"\n\n[target.imap.admin]\nuser = \"{name}\"\nsecret = \"env:{SECRET_ENV}\""
                ),
            );
            std::fs::write(env.job_path(), job).unwrap();
            Some((t, pw))
        }
    };
    // The master password travels like the Graph secret, by environment reference.
    let env = match &dovecot {
        Some((_, pw)) => Env {
            client_secret: pw.clone(),
            ..env
        },
        None => env,
    };
    let target = dovecot.as_ref().map(|(t, _)| t);

    let o = env.cli(&["run"]).await;
    assert_eq!(o.code, 0, "run: {}", dump(&o));
    let before = target_messages(&env, target).await;

    let changes = change_source(&env).await;
    let v = sync_json(&env, &[]).await;
    assert_sync(&v, 50, 100, 20, 0, 10);

    let after = target_messages(&env, target).await;
    assert_eq!(
        after.len(),
        before.len() + 50,
        "moves must not copy, deletions are kept"
    );
    let mut by_mid: HashMap<&str, Vec<&Seen>> = HashMap::new();
    for m in &after {
        by_mid.entry(m.1.as_str()).or_default().push(m);
    }
    for (mid, (_, to)) in &changes.moved {
        let found = by_mid.get(mid.as_str()).cloned().unwrap_or_default();
        assert_eq!(found.len(), 1, "moved {mid}: {found:?}");
        let folder = &found[0].0;
        let ok = match target_kind {
            Target::Graph => folder_matches(folder, to),
            Target::Dovecot => folder.eq_ignore_ascii_case(to),
        };
        assert!(ok, "moved {mid} is in {folder}, not {to}");
    }
    for (mid, seen) in &changes.flagged {
        let found = by_mid.get(mid.as_str()).cloned().unwrap_or_default();
        assert_eq!(found.len(), 1, "{mid}: {found:?}");
        assert_eq!(found[0].2, *seen, "read state of {mid}");
    }
    let with_keyword = after
        .iter()
        .filter(|m| m.3.iter().any(|k| k == KEYWORD))
        .count();
    assert_eq!(with_keyword, 25, "{KEYWORD} as a category / keyword");
    for mid in &changes.deleted {
        assert_eq!(
            by_mid.get(mid.as_str()).map(Vec::len),
            Some(1),
            "deleted at the source, kept in the target: {mid}"
        );
    }

    let o = env.cli(&["verify"]).await;
    assert_eq!(o.code, 0, "verify after sync: {}", dump(&o));

    // Nothing changed since: a second sync changes nothing.
    let v = sync_json(&env, &[]).await;
    assert_sync(&v, 0, 0, 0, 0, 0);
    assert_eq!(target_messages(&env, target).await.len(), after.len());

    // Deletions when asked: exactly the 10.
    let v = sync_json(&env, &["--propagate-deletes"]).await;
    assert_sync(&v, 0, 0, 0, 10, 0);
    let last = target_messages(&env, target).await;
    assert_eq!(last.len(), after.len() - 10);
    for mid in &changes.deleted {
        assert!(
            !last.iter().any(|m| &m.1 == mid),
            "{mid} deleted at the source is still in the target"
        );
    }
    let o = env.cli(&["verify"]).await;
    assert_eq!(o.code, 0, "verify after deletions: {}", dump(&o));
    let v = sync_json(&env, &["--propagate-deletes"]).await;
    assert_sync(&v, 0, 0, 0, 0, 0);
    env.assert_no_secrets();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sync_to_graph_with_condstore() {
    sync_case(true, Target::Graph).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sync_to_graph_without_condstore() {
    sync_case(false, Target::Graph).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sync_to_dovecot_with_condstore() {
    sync_case(true, Target::Dovecot).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sync_to_dovecot_without_condstore() {
    sync_case(false, Target::Dovecot).await;
}

/// `sync --final`: passes until nothing changes, `verify --deep`, and a receipt naming the
/// last message the source received and its id in the target.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sync_final_writes_a_receipt_naming_the_last_message() {
    let env =
        super::reliability::start_env(&[USER], 150, 60_602, DovecotOptions::default(), None).await;
    let t = Dovecot::start(
        DovecotOptions::default()
            .with_users([User::new(USER, format!("target-{USER}-pw"))])
            .with_extra_config("mail_fsync = never"),
    )
    .expect("start target Dovecot");
    std::fs::write(
        env.dir.path().join("users.csv"),
        format!("Login,Password\r\n{USER},{}\r\n", password(USER)),
    )
    .unwrap();
    let master = t.master_user();
    let job = imap_target_job(
        &env,
        &t,
        &format!(
            "login = \"admin\"\n\n[target.imap.admin]\nuser = \"{}\"\nsecret = \"env:{SECRET_ENV}\"",
            master.name()
        ),
    );
    std::fs::write(env.job_path(), job).unwrap();
    let env = Env {
        client_secret: master.password().to_owned(),
        ..env
    };
    let o = env.cli(&["run"]).await;
    assert_eq!(o.code, 0, "run: {}", dump(&o));
    // Mail that arrives after the MX switch was started: the newest INTERNALDATE (now).
    let subject = "The last one before the cut-over";
    let mut c = env.source.login(USER).await.expect("source login");
    let msg = format!(
        "From: a@example.org\r\nTo: {USER}@example.org\r\nSubject: {subject}\r\n\
         Message-ID: <last-one@example.org>\r\nDate: Wed, 02 Dec 2026 10:00:00 +0000\r\n\r\nbye\r\n"
    );
    c.append(
        "INBOX",
        &o365_migrate_testkit::AppendRequest::new(msg.into_bytes(), Vec::new(), None),
    )
    .await
    .expect("append");
    let _ = c.logout().await;

    let o = env.cli(&["sync", "--final"]).await;
    assert_eq!(o.code, 0, "sync --final: {}", dump(&o));
    assert!(o.stderr.contains("nothing left behind"), "{}", dump(&o));
    let receipt: serde_json::Value = serde_json::from_slice(
        &std::fs::read(env.dir.path().join("report/final-receipt.json")).expect("receipt"),
    )
    .expect("receipt JSON");
    assert_eq!(receipt["stable"], true, "{receipt}");
    assert_eq!(receipt["verify_ok"], true, "{receipt}");
    let last = &receipt["mailboxes"][0]["last_message"];
    assert_eq!(last["subject"], subject, "{receipt}");
    assert_eq!(last["folder"], "INBOX", "{receipt}");
    let id = last["target_id"].as_str().unwrap_or_default();
    assert!(
        id.contains(':'),
        "an IMAP target id (uidvalidity:uid): {receipt}"
    );
    assert_eq!(
        receipt["mailboxes"][0]["counts"]["migrated"].as_u64(),
        Some(env.manifests[USER].len() as u64 + 1),
        "{receipt}"
    );
}
