use super::*;
use crate::state::{Batch, ItemMeta, ItemOutcome, PlannedItem, RunKind, RunOutcome, SqlStore};
use crate::test_backends::{Home, Kind, on_both, store_on};

on_both!(
    report_counts_per_mailbox,
    the_last_plan_counts_as_planned_until_a_run_lists_the_mailbox,
    item_reports_stream_every_item_escaped,
    html_is_self_contained_and_escaped,
    write_reports_creates_owner_only_files,
    mailbox_errors_throttling_and_folder_notes_come_from_the_events,
);

async fn populated(kind: Kind) -> (Home, SqlStore) {
    let (home, s) = store_on(kind).await;
    let run = s.begin_run(RunKind::Run).await.unwrap();
    let a = s
        .upsert_mailbox("alice@src.example", "alice@contoso.com")
        .await
        .unwrap();
    let b = s
        .upsert_mailbox("bob@src.example", "bob@contoso.com")
        .await
        .unwrap();
    let fa = s.upsert_folder(a, "INBOX", "#Inbox#", 1).await.unwrap();
    let fb = s.upsert_folder(b, "Sent", "#SentItems#", 9).await.unwrap();
    let plan = |n: u32| -> Vec<PlannedItem> {
        (1..=n)
            .map(|u| PlannedItem {
                uid: u,
                meta: ItemMeta {
                    size: Some(1024),
                    internal_date: Some(1_700_000_000),
                    subject: Some(format!("<script>alert({u})</script> & \"quotes\", commas")),
                    sender: Some("=cmd|' /C calc'!A0".into()),
                    flags: None,
                    message_id: Some(format!("<{u}@x>")),
                    fingerprint: Some(format!("{u:064x}")),
                },
            })
            .collect()
    };
    s.mark_planned(fa.id, 1, &plan(4)).await.unwrap();
    s.mark_planned(fb.id, 9, &plan(2)).await.unwrap();
    let o = |f, uv, uid, status, reason: Option<&str>| ItemOutcome {
        folder: f,
        uidvalidity: uv,
        uid,
        status,
        target_id: (status == ItemStatus::Migrated).then(|| format!("AAMk{uid}")),
        reason: reason.map(str::to_owned),
        meta: ItemMeta::default(),
    };
    s.record_batch(
        run,
        &Batch {
            outcomes: vec![
                o(fa.id, 1, 1, ItemStatus::Migrated, None),
                o(
                    fa.id,
                    1,
                    2,
                    ItemStatus::Skipped,
                    Some("larger than max_message_size (35MB)"),
                ),
                o(
                    fa.id,
                    1,
                    3,
                    ItemStatus::Failed,
                    Some("Graph 413 <too large>"),
                ),
                o(fb.id, 9, 1, ItemStatus::Migrated, None),
                o(fb.id, 9, 2, ItemStatus::Migrated, None),
            ],
            events: vec![],
        },
    )
    .await
    .unwrap();
    s.finish_run(run, RunOutcome::Completed).await.unwrap();
    (home, s)
}

async fn report_counts_per_mailbox(kind: Kind) {
    let (_d, s) = populated(kind).await;
    let r = Report::build(&s).await.unwrap();
    assert_eq!(r.mailboxes.len(), 2);
    assert_eq!(r.mailboxes[0].source, "alice@src.example");
    let c = r.mailboxes[0].counts;
    assert_eq!((c.migrated, c.skipped, c.failed, c.planned), (1, 1, 1, 1));
    assert_eq!(r.mailboxes[1].counts.migrated, 2);
    assert_eq!(r.totals.migrated, 3);
    assert_eq!(r.totals.migrated_bytes, 3 * 1024);
    assert_eq!(r.problems.len(), 2);
    assert_eq!(r.problems_total, 2);
    assert_eq!(r.runs.len(), 1);

    let json: serde_json::Value = serde_json::from_str(&r.mailboxes_json()).unwrap();
    assert_eq!(json["totals"]["migrated"], 3);
    assert_eq!(json["mailboxes"][1]["target"], "bob@contoso.com");
    assert_eq!(json["runs"][0]["outcome"], "completed");

    let csv = r.mailboxes_csv();
    let lines: Vec<&str> = csv.split("\r\n").filter(|l| !l.is_empty()).collect();
    assert_eq!(lines.len(), 3);
    assert_eq!(
        lines[1],
        "alice@src.example,alice@contoso.com,1,,,1,0,1,1,1,1024,0,"
    );
    // An item still pending: not done.
    assert_eq!(r.state, ReportState::Incomplete);
    assert_eq!(json["state"], "incomplete");
}

async fn the_last_plan_counts_as_planned_until_a_run_lists_the_mailbox(kind: Kind) {
    let (_d, s) = populated(kind).await;
    // alice was run; carol was only planned.
    s.upsert_mailbox("carol@src.example", "carol@contoso.com")
        .await
        .unwrap();
    s.put_record(
        crate::plan::PLAN_RECORD,
        Some(r#"{"alice@src.example":{"messages":9,"bytes":9000},"carol@src.example":{"messages":7,"bytes":7000}}"#),
    )
    .await
    .unwrap();
    let r = Report::build(&s).await.unwrap();
    let carol = r
        .mailboxes
        .iter()
        .find(|m| m.source.starts_with("carol"))
        .unwrap();
    assert_eq!(
        (carol.plan_messages, carol.plan_bytes),
        (Some(7), Some(7000))
    );
    assert_eq!(carol.pending(), Some(7));
    let alice = r
        .mailboxes
        .iter()
        .find(|m| m.source.starts_with("alice"))
        .unwrap();
    // Listed by a run: its own records count, not the plan's figure.
    assert_eq!(alice.plan_messages, Some(9));
    assert_eq!(alice.pending(), Some(alice.counts.planned));
    let csv = r.mailboxes_csv();
    assert!(
        csv.contains("carol@src.example,carol@contoso.com,0,7,7000,7,7,0,0,0,0,0,\r\n"),
        "{csv}"
    );
    assert_eq!(r.pending(), 7 + alice.counts.planned);
    assert!(
        r.html().contains(&format!("{} items pending", r.pending())),
        "{}",
        r.html()
    );
}

async fn item_reports_stream_every_item_escaped(kind: Kind) {
    let (_d, s) = populated(kind).await;
    let mut csv = Vec::new();
    assert_eq!(write_items_csv(&s, &mut csv).await.unwrap(), 6);
    let csv = String::from_utf8(csv).unwrap();
    assert!(csv.starts_with(ITEM_CSV_HEADER));
    // Quoted cell with doubled quotes; formula guard on the sender.
    assert!(
        csv.contains("\"<script>alert(1)</script> & \"\"quotes\"\", commas\""),
        "{csv}"
    );
    assert!(csv.contains("'=cmd|' /C calc'!A0"), "{csv}");
    assert!(csv.contains("larger than max_message_size (35MB)"));
    assert!(csv.contains("2023-11-14T22:13:20Z"));

    let mut js = Vec::new();
    assert_eq!(write_items_json(&s, &mut js).await.unwrap(), 6);
    let v: serde_json::Value = serde_json::from_slice(&js).unwrap();
    let arr = v.as_array().unwrap();
    assert_eq!(arr.len(), 6);
    assert_eq!(arr[0]["mailbox"], "alice@src.example");
    assert_eq!(arr[0]["status"], "migrated");
    assert_eq!(arr[2]["reason"], "Graph 413 <too large>");
}

async fn html_is_self_contained_and_escaped(kind: Kind) {
    let (_d, s) = populated(kind).await;
    let html = Report::build(&s).await.unwrap().html();
    assert!(html.starts_with("<!DOCTYPE html>"));
    assert!(!html.contains("<script>"), "unescaped subject");
    assert!(html.contains("&lt;script&gt;alert(2)&lt;/script&gt; &amp; &quot;quotes&quot;"));
    assert!(html.contains("Graph 413 &lt;too large&gt;"));
    for external in ["src=", "href=", "http://", "https://", "@import"] {
        assert!(!html.contains(external), "external resource: {external}");
    }
    // Failed items, and one still pending: the page says it is not done, and why.
    assert!(
        html.contains("incomplete") && html.contains("items pending"),
        "{html}"
    );
    assert!(html.contains("alice@src.example"));
}

async fn write_reports_creates_owner_only_files(kind: Kind) {
    use std::os::unix::fs::PermissionsExt;
    let (_home, s) = populated(kind).await;
    let d = tempfile::tempdir().unwrap();
    let out_dir = d.path().join("reports");
    let w = write_reports(&s, &out_dir).await.unwrap();
    for p in [
        &w.mailboxes_json,
        &w.mailboxes_csv,
        &w.items_json,
        &w.items_csv,
        &w.html,
    ] {
        let m = std::fs::metadata(p).unwrap();
        assert!(m.len() > 0, "{}", p.display());
        assert_eq!(m.permissions().mode() & 0o777, 0o600, "{}", p.display());
    }
}

#[test]
fn json_lines_reporter_writes_one_object_per_event() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.jsonl");
    let r = JsonLinesReporter::create(&path).unwrap();
    let events = [
        Event::MailboxStarted {
            mailbox: "a@x".into(),
            target: "a@y".into(),
        },
        Event::FolderSkipped {
            mailbox: "a@x".into(),
            folder: "Outbox".into(),
            reason: "system folder".into(),
        },
        Event::ItemMigrated {
            mailbox: "a@x".into(),
            folder: "INBOX".into(),
            uid: 7,
            size: 10,
        },
        Event::ItemSkipped {
            mailbox: "a@x".into(),
            folder: "INBOX".into(),
            uid: 8,
            reason: "too big".into(),
        },
        Event::ItemFailed {
            mailbox: "a@x".into(),
            folder: "INBOX".into(),
            uid: 9,
            reason: "413".into(),
        },
        Event::Throttled {
            mailbox: None,
            wait_ms: 3000,
            reason: "429".into(),
        },
        Event::FolderProgress {
            mailbox: "a@x".into(),
            folder: "INBOX".into(),
            done: 3,
            total: 3,
            bytes: 10,
        },
        Event::MailboxFinished {
            mailbox: "a@x".into(),
            migrated: 1,
            skipped: 1,
            failed: 1,
            bytes: 10,
        },
    ];
    let fan = FanOut(vec![Box::new(NullReporter)]);
    for e in &events {
        r.report(e);
        fan.report(e);
    }
    r.finish().unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), events.len());
    assert_eq!(lines[0]["event"], "mailbox_started");
    assert_eq!(lines[2]["event"], "item_migrated");
    assert_eq!(lines[2]["uid"], 7);
    assert_eq!(lines[5]["event"], "throttled");
    assert_eq!(lines[5]["wait_ms"], 3000);
    assert!(lines[0]["ts"].as_str().unwrap().ends_with('Z'));
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o600
    );
}

#[test]
fn json_lines_reporter_keeps_write_errors() {
    struct Broken;
    impl Write for Broken {
        fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
            Err(std::io::Error::other("disk full"))
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let r = JsonLinesReporter::from_writer(Box::new(Broken), "stdout");
    r.report(&Event::Throttled {
        mailbox: None,
        wait_ms: 1,
        reason: "x".into(),
    });
    let e = r.finish().unwrap_err().to_string();
    assert!(e.contains("disk full") && e.contains("stdout"), "{e}");
}

#[test]
fn csv_and_html_escaping() {
    assert_eq!(
        csv_row(&["a", "b,c", "d\"e", "-5", "-x", "@sum", "+1"]),
        "a,\"b,c\",\"d\"\"e\",-5,'-x,'@sum,+1\r\n"
    );
    assert_eq!(
        esc("<a href='x'>&</a>"),
        "&lt;a href=&#39;x&#39;&gt;&amp;&lt;/a&gt;"
    );
    assert_eq!(human_bytes(512), "512 B");
    assert_eq!(human_bytes(35 << 20), "35.0 MB");
}

async fn mailbox_errors_throttling_and_folder_notes_come_from_the_events(kind: Kind) {
    use crate::state::EventRecord;
    let (_home, s) = store_on(kind).await;
    let run = s.begin_run(RunKind::Run).await.unwrap();
    let a = s.upsert_mailbox("a@src", "a@dst").await.unwrap();
    let b = s.upsert_mailbox("b@src", "b@dst").await.unwrap();
    let ev = |m, kind: &str, detail: &str| EventRecord {
        mailbox: Some(m),
        kind: kind.into(),
        detail: detail.into(),
    };
    let events = vec![
        ev(a, "mailbox_error", "source login a@src: refused"),
        ev(a, "mailbox_completed", ""),
        ev(b, "mailbox_completed", ""),
        ev(b, "mailbox_error", "target mailbox b@dst: gone"),
        ev(
            a,
            "target_throttled",
            r#"{"throttled_answers":3,"pauses":2}"#,
        ),
        ev(
            a,
            "target_throttled",
            r#"{"throttled_answers":1,"pauses":1}"#,
        ),
        ev(a, "folder_note", "Files → Files (migrated): reserved"),
        ev(a, "folder_note", "Files → Files (migrated): reserved"),
    ];
    s.record_batch(
        run,
        &Batch {
            outcomes: vec![],
            events,
        },
    )
    .await
    .unwrap();
    s.finish_run(run, RunOutcome::Failed).await.unwrap();
    let r = Report::build(&s).await.unwrap();
    let (ra, rb) = (&r.mailboxes[0], &r.mailboxes[1]);
    // A later completed pass clears an earlier error; a later error stands.
    assert_eq!(ra.error, None);
    assert_eq!(rb.error.as_deref(), Some("target mailbox b@dst: gone"));
    assert_eq!(r.state, ReportState::Incomplete);
    assert_eq!((ra.throttled_answers, ra.throttle_pauses), (4, 3));
    assert_eq!(ra.folder_notes, ["Files → Files (migrated): reserved"]);
    let html = r.html();
    assert!(html.contains("b@src") && html.contains("gone"), "{html}");
    assert!(html.contains("Folder changes"), "{html}");
}

#[test]
fn sizes_and_durations_for_people() {
    use std::time::Duration;
    assert_eq!(human_duration(Duration::from_secs(12)), "12s");
    assert_eq!(human_duration(Duration::from_secs(200)), "3m 20s");
    assert_eq!(human_duration(Duration::from_secs(3900)), "1h 05m");
    assert_eq!(
        human_duration(Duration::from_secs(2 * 86_400 + 4 * 3600)),
        "2d 04h"
    );
    assert_eq!(human_bytes(812), "812 B");
    assert_eq!(human_bytes(2_692_513), "2.6 MB");
    assert_eq!(human_bytes(3 * 1024 * 1024 * 1024), "3.0 GB");
}
