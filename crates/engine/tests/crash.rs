//! Crash test: a child process writes batches in a loop and is SIGKILLed at seeded random
//! moments; after each kill the store must open, pass its integrity check (`PRAGMA
//! integrity_check` on SQLite), hold only whole batches, and its per-run counters (written in
//! the same transactions) must add up. The same rounds run on a SQLite file and on a private
//! PostgreSQL cluster (a worker process killed in the middle of a transaction).
//!
//! The child is this test binary re-invoked with `O365_ENGINE_CRASH_CHILD_DB` set (a file, or a
//! `postgres://` URL with the password in `O365_ENGINE_CRASH_CHILD_PG_PASSWORD`).

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use o365_migrate_engine::state::{
    Batch, EventRecord, ItemMeta, ItemOutcome, ItemStatus, PlannedItem, RunKind, Schema, SqlStore,
    StateStore,
};
use o365_migrate_testkit::{Postgres, PostgresOptions};

const ENV: &str = "O365_ENGINE_CRASH_CHILD_DB";
const PG_PASSWORD: &str = "O365_ENGINE_CRASH_CHILD_PG_PASSWORD";
const BATCH: u32 = 50;
const KILLS: usize = 10;

/// xorshift64*: small, seeded, deterministic.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_child() {
    let Ok(db) = std::env::var(ENV) else {
        return; // Only does something when spawned by `sigkill_at_random_moments_loses_no_batch`.
    };
    let store = open(&db).await.expect("open");
    let run = store.begin_run(RunKind::Run).await.expect("run");
    let mb = store
        .upsert_mailbox("crash@example.com", "crash@contoso.com")
        .await
        .expect("mailbox");
    let folder = store
        .upsert_folder(mb, "INBOX", "#Inbox#", 1)
        .await
        .expect("folder");
    let done = store.done_uids(folder.id).await.expect("done");
    let mut next = done.done.last().map(|u| u / BATCH).unwrap_or(0);
    let deadline = Instant::now() + Duration::from_secs(30); // bounded: stops by itself
    let mut announced = false;
    while Instant::now() < deadline && next < 100_000 {
        let uids: Vec<u32> = (0..BATCH).map(|i| next * BATCH + i + 1).collect();
        let plan: Vec<PlannedItem> = uids
            .iter()
            .map(|u| PlannedItem {
                uid: *u,
                meta: ItemMeta {
                    size: Some(1000),
                    ..Default::default()
                },
            })
            .collect();
        store.mark_planned(folder.id, 1, &plan).await.expect("plan");
        let batch = Batch {
            outcomes: uids
                .iter()
                .map(|u| ItemOutcome {
                    folder: folder.id,
                    uidvalidity: 1,
                    uid: *u,
                    status: ItemStatus::Migrated,
                    target_id: Some(format!("t{u}")),
                    reason: None,
                    meta: ItemMeta {
                        fingerprint: Some(format!("fp{u}")),
                        ..Default::default()
                    },
                })
                .collect(),
            events: vec![EventRecord {
                mailbox: Some(mb),
                kind: "batch".into(),
                detail: format!("{next}"),
            }],
        };
        store.record_batch(run, &batch).await.expect("batch");
        if !announced {
            // Tell the parent a batch is committed, so later kills land mid-stream.
            println!("\nO365_CRASH_CHILD_READY");
            announced = true;
        }
        next += 1;
    }
}

/// Opens the store `target` names: a SQLite file, or a PostgreSQL URL (schema migrated).
async fn open(target: &str) -> o365_migrate_engine::Result<SqlStore> {
    if target.starts_with("postgres://") {
        let password = std::env::var(PG_PASSWORD).ok();
        SqlStore::connect_postgres(target, password.as_deref(), Schema::Migrate).await
    } else {
        SqlStore::open(target).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_at_random_moments_loses_no_batch_on_sqlite() {
    if std::env::var(ENV).is_ok() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("crash.db");
    crash_rounds(db.to_str().unwrap(), None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_at_random_moments_loses_no_batch_on_postgres() {
    if std::env::var(ENV).is_ok() {
        return;
    }
    let pg = Postgres::start(PostgresOptions::default()).expect("start PostgreSQL");
    let url = format!("{}?sslmode=disable", pg.url());
    crash_rounds(&url, Some(pg.password())).await;
}

async fn crash_rounds(db: &str, password: Option<&str>) {
    let seed: u64 = std::env::var("O365_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5EED_CAFE);
    let mut rng = Rng(seed);
    let exe = std::env::current_exe().unwrap();
    let mut last_migrated = 0u64;
    let mut progressed = 0;
    for round in 0..KILLS {
        let mut child = Command::new(&exe);
        child
            .args(["crash_child", "--exact", "--nocapture", "--test-threads=1"])
            .env(ENV, db)
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        if let Some(p) = password {
            child.env(PG_PASSWORD, p);
        }
        let mut child = child.spawn().unwrap();
        let wait = if round == 0 {
            // Anywhere, including while the file is created and the schema migrated.
            rng.range(5, 120)
        } else {
            // After the first committed batch of this child, at a random point in the stream.
            let stdout = child.stdout.take().unwrap();
            let ready = tokio::task::spawn_blocking(move || {
                use std::io::BufRead;
                std::io::BufReader::new(stdout)
                    .lines()
                    .map_while(Result::ok)
                    .any(|l| l.contains("O365_CRASH_CHILD_READY"))
            });
            let ready = tokio::time::timeout(Duration::from_secs(60), ready).await;
            assert!(
                matches!(ready, Ok(Ok(true))),
                "round {round}: child never committed a batch"
            );
            rng.range(0, 400)
        };
        tokio::time::sleep(Duration::from_millis(wait)).await;
        child.kill().unwrap(); // SIGKILL on Unix
        let status = child.wait().unwrap();
        assert!(
            !status.success(),
            "round {round}: child finished before the kill; raise its work"
        );

        let store = if let Some(p) = password {
            SqlStore::connect_postgres(db, Some(p), Schema::Migrate).await
        } else {
            SqlStore::open(db).await
        }
        .unwrap_or_else(|e| panic!("round {round} (seed {seed}): {e}"));
        assert!(
            store.integrity_check().await.unwrap(),
            "round {round}: integrity"
        );
        let counts = store.counts(None).await.unwrap();
        assert_eq!(counts.failed + counts.skipped, 0);
        assert_eq!(
            counts.migrated % u64::from(BATCH),
            0,
            "round {round} (seed {seed}): partial batch: {counts:?}"
        );
        // Planned-but-unrecorded items only from the batch in flight at the kill.
        assert!(
            counts.planned <= u64::from(BATCH),
            "round {round}: {counts:?}"
        );
        // Per-run counters are updated in the same transaction as the items.
        let runs = store.runs().await.unwrap();
        let run_total: u64 = runs.iter().map(|r| r.counts.migrated).sum();
        assert_eq!(
            run_total, counts.migrated,
            "round {round}: run counters disagree with items"
        );
        // Every migrated batch is whole and the UIDs are exactly 1..=n (no gaps, no duplicates).
        let mb = store.mailboxes().await.unwrap();
        // (A kill between the child's first two statements leaves a mailbox without folders.)
        let folders = match mb.first() {
            Some(m) => store.folders(m.id).await.unwrap(),
            None => Vec::new(),
        };
        if let Some(f) = folders.first() {
            let d = store.done_uids(f.id).await.unwrap();
            let expect: Vec<u32> = (1..=u32::try_from(counts.migrated).unwrap()).collect();
            assert_eq!(d.done, expect, "round {round}");
            assert!(d.watermark >= u32::try_from(counts.migrated).unwrap());
        }
        if counts.migrated > last_migrated {
            progressed += 1;
        }
        assert!(counts.migrated >= last_migrated, "round {round}: data lost");
        last_migrated = counts.migrated;
        store.close().await;
    }
    assert!(
        progressed >= KILLS / 2,
        "children made progress in only {progressed} rounds"
    );
    eprintln!(
        "crash test: {KILLS} kills survived, {last_migrated} items in whole batches, seed {seed}"
    );
}
