//! State-store write benchmark: plans and records N items in batches (WAL, synchronous = FULL),
//! then measures done-UID lookups and the report build.
//!
//! `cargo run --release -p o365-migrate-engine --example bench -- [items] [batch]`
//! Last line: one JSON object.

use std::time::Instant;

use o365_migrate_engine::report::Report;
use o365_migrate_engine::state::{
    Batch, ItemMeta, ItemOutcome, ItemStatus, PlannedItem, RunKind, RunOutcome, SqlStore,
    StateStore,
};

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let items: u32 = args
        .next()
        .and_then(|a| a.parse().ok())
        .unwrap_or(50_000)
        .clamp(100, 2_000_000);
    let batch: u32 = args
        .next()
        .and_then(|a| a.parse().ok())
        .unwrap_or(500)
        .clamp(1, 10_000);
    let dir = tempfile::tempdir()?;
    let store = SqlStore::open(dir.path().join("bench.db")).await?;
    let run = store.begin_run(RunKind::Run).await?;
    let mb = store
        .upsert_mailbox("bench@example.com", "bench@contoso.com")
        .await?;
    let folder = store.upsert_folder(mb, "INBOX", "#Inbox#", 1).await?;

    let t = Instant::now();
    let mut latencies = Vec::new();
    let mut uid = 0u32;
    while uid < items {
        let n = batch.min(items - uid);
        let uids: Vec<u32> = (uid + 1..=uid + n).collect();
        let meta = |u: u32| ItemMeta {
            size: Some(20_000),
            internal_date: Some(1_700_000_000),
            fingerprint: Some(format!("{u:064x}")),
            message_id: Some(format!("<{u}@bench.example>")),
            subject: Some(format!("Bench message {u}")),
            sender: Some("sender@example.com".into()),
            flags: None,
        };
        let plan: Vec<PlannedItem> = uids
            .iter()
            .map(|u| PlannedItem {
                uid: *u,
                meta: meta(*u),
            })
            .collect();
        let b0 = Instant::now();
        store.mark_planned(folder.id, 1, &plan).await?;
        let outcomes = uids
            .iter()
            .map(|u| ItemOutcome {
                folder: folder.id,
                uidvalidity: 1,
                uid: *u,
                status: ItemStatus::Migrated,
                target_id: Some(format!("AAMkAG{u:016x}")),
                reason: None,
                meta: ItemMeta::default(),
            })
            .collect();
        store
            .record_batch(
                run,
                &Batch {
                    outcomes,
                    events: vec![],
                },
            )
            .await?;
        latencies.push(b0.elapsed().as_secs_f64() * 1000.0);
        uid += n;
    }
    let write_s = t.elapsed().as_secs_f64();
    store.finish_run(run, RunOutcome::Completed).await?;
    latencies.sort_by(|a, b| a.total_cmp(b));
    let p50 = latencies[latencies.len() / 2];
    let p99 = latencies[(latencies.len() * 99 / 100).min(latencies.len() - 1)];

    let t = Instant::now();
    let done = store.done_uids(folder.id).await?;
    let done_ms = t.elapsed().as_secs_f64() * 1000.0;
    assert_eq!(done.done.len(), items as usize);

    let t = Instant::now();
    let hits = store
        .find_by_fingerprint(mb, &format!("{:064x}", items / 2))
        .await?;
    let lookup_us = t.elapsed().as_secs_f64() * 1e6;
    assert_eq!(hits.len(), 1);

    let t = Instant::now();
    let report = Report::build(&store).await?;
    let report_ms = t.elapsed().as_secs_f64() * 1000.0;
    assert_eq!(report.totals.migrated, u64::from(items));

    let rate = f64::from(items) / write_s;
    println!("items: {items}, batch: {batch} (plan + record, WAL, synchronous=FULL)");
    println!(
        "write: {write_s:.2} s, {rate:.0} items/s; per batch p50 {p50:.1} ms, p99 {p99:.1} ms"
    );
    println!(
        "done_uids over {items} items: {done_ms:.1} ms; fingerprint lookup: {lookup_us:.0} µs; report build: {report_ms:.1} ms"
    );
    println!(
        "{{\"bench\":\"state_store\",\"items\":{items},\"batch\":{batch},\"items_per_sec\":{rate:.0},\"batch_p50_ms\":{p50:.2},\"batch_p99_ms\":{p99:.2},\"done_uids_ms\":{done_ms:.2},\"fingerprint_lookup_us\":{lookup_us:.0},\"report_build_ms\":{report_ms:.2}}}"
    );
    Ok(())
}
