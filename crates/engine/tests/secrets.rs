//! Planted secrets never reach Debug output, errors, the state database or any report.

use o365_migrate_engine::config::Job;
use o365_migrate_engine::report::{self, Event, JsonLinesReporter, Reporter};
use o365_migrate_engine::state::{
    Batch, EventRecord, ItemMeta, ItemOutcome, ItemStatus, PlannedItem, RunKind, SqlStore,
    StateStore,
};

const ADMIN: &str = "ADMIN-MARKER-7f3a9c-secret";
const CLIENT: &str = "CLIENT-MARKER-51e0d2-secret";

fn contains(hay: &[u8], needle: &str) -> bool {
    hay.windows(needle.len()).any(|w| w == needle.as_bytes())
}

#[tokio::test]
async fn planted_secrets_appear_nowhere() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("admin.secret"), format!("{ADMIN}\n")).unwrap();
    std::fs::write(dir.path().join("client.secret"), CLIENT).unwrap();
    let text = r#"
[source]
host = "imap.example.com"
credentials = "users.csv"
login = "admin"
[source.admin]
user = "admin@example.com"
secret = "file:admin.secret"
[target]
kind = "graph"
[target.graph]
tenant = "contoso.onmicrosoft.com"
client_id = "00000000-0000-0000-0000-000000000000"
client_secret = "file:client.secret"
"#;
    let job = Job::parse(text, dir.path().join("job.toml")).unwrap();
    let resolved: Vec<_> = job
        .secret_refs()
        .iter()
        .map(|r| r.resolve().unwrap())
        .collect();
    assert_eq!(resolved[0].expose(), ADMIN);
    assert_eq!(resolved[1].expose(), CLIENT);
    let debug = format!("{job:?} {resolved:?}");
    assert!(!debug.contains(ADMIN) && !debug.contains(CLIENT), "{debug}");

    // A literal secret in the job file: the error does not repeat it.
    let literal = text.replace("\"file:client.secret\"", &format!("\"{CLIENT}\""));
    let err = Job::parse(&literal, "job.toml").unwrap_err();
    let shown = format!("{err} {err:?}");
    assert!(!shown.contains(CLIENT), "{shown}");

    // Drive the store and reports the way the pipeline does.
    let db = dir.path().join("state.db");
    let store = SqlStore::open(&db).await.unwrap();
    let run = store.begin_run(RunKind::Run).await.unwrap();
    let mb = store
        .upsert_mailbox("alice@example.com", "alice@contoso.com")
        .await
        .unwrap();
    let f = store
        .upsert_folder(mb, "INBOX", "#Inbox#", 3)
        .await
        .unwrap();
    let plan: Vec<PlannedItem> = (1..=5)
        .map(|u| PlannedItem {
            uid: u,
            meta: ItemMeta {
                size: Some(10),
                subject: Some(format!("s{u}")),
                ..Default::default()
            },
        })
        .collect();
    store.mark_planned(f.id, 3, &plan).await.unwrap();
    let outcomes = (1..=5)
        .map(|u| ItemOutcome {
            folder: f.id,
            uidvalidity: 3,
            uid: u,
            status: if u == 5 {
                ItemStatus::Failed
            } else {
                ItemStatus::Migrated
            },
            target_id: Some(format!("id{u}")),
            reason: (u == 5).then(|| "401 from token endpoint (client secret rejected)".to_owned()),
            meta: ItemMeta::default(),
        })
        .collect();
    let events = vec![EventRecord {
        mailbox: Some(mb),
        kind: "login".into(),
        detail: "admin login as admin@example.com".into(),
    }];
    store
        .record_batch(run, &Batch { outcomes, events })
        .await
        .unwrap();
    let events_path = dir.path().join("events.jsonl");
    let rep = JsonLinesReporter::create(&events_path).unwrap();
    rep.report(&Event::MailboxStarted {
        mailbox: "alice@example.com".into(),
        target: "alice@contoso.com".into(),
    });
    rep.finish().unwrap();
    let out = report::write_reports(&store, &dir.path().join("reports"))
        .await
        .unwrap();
    store.close().await;

    let mut files = vec![
        db.clone(),
        events_path,
        out.mailboxes_json,
        out.mailboxes_csv,
        out.items_json,
        out.items_csv,
        out.html,
    ];
    for suffix in ["-wal", "-shm"] {
        let p = dir.path().join(format!("state.db{suffix}"));
        if p.exists() {
            files.push(p);
        }
    }
    for p in files {
        // The -wal / -shm files may be removed by SQLite's final checkpoint between the
        // `exists` above and this read; a file that is gone holds no secret.
        let bytes = match std::fs::read(&p) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => panic!("{}: {e}", p.display()),
        };
        assert!(
            !bytes.is_empty() || p.to_string_lossy().ends_with("-wal"),
            "{}",
            p.display()
        );
        assert!(!contains(&bytes, ADMIN), "admin secret in {}", p.display());
        assert!(
            !contains(&bytes, CLIENT),
            "client secret in {}",
            p.display()
        );
    }
}
