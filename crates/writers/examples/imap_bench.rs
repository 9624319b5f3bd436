//! `cargo run --release -p o365-migrate-target --example imap_bench -- [--messages N] [--connections C]`
//!
//! Writes a generated corpus (testkit's realistic profile without the 20 MB messages, held in
//! memory, so only the writer is measured) through `ImapTarget` into a private Dovecot with its
//! default `mail_fsync = optimized`, then writes it again (every message must come back
//! AlreadyPresent). Prints both rates; the last line is one JSON object
//! `{"bench":"imap-writer", ...}`.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use o365_migrate_target::imap::{
    ClientConfig, ImapLogin, ImapTarget, ImapTargetConfig, PasswordMechanism, Security,
};
use o365_migrate_target::{
    Flags, FolderSpec, InternalDate, MailboxWriter, Target, WellKnownFolder, WriteItem,
    WriteOutcome,
};
use o365_migrate_testkit::{Corpus, CorpusProfile, Dovecot, DovecotOptions};

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn flags(list: &[String]) -> Flags {
    Flags::from_imap(list.iter().map(String::as_str))
}

async fn run(
    writer: &Arc<dyn MailboxWriter>,
    items: &[(usize, WriteItem)],
    handles: &[o365_migrate_target::FolderHandle],
) -> (f64, usize, usize) {
    let t = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    let sem = Arc::new(tokio::sync::Semaphore::new(128));
    for (f, item) in items {
        let permit = sem.clone().acquire_owned().await.expect("semaphore");
        let (w, h, item) = (writer.clone(), handles[*f].clone(), item.clone());
        tasks.spawn(async move {
            let r = w.write(&h, &item).await;
            drop(permit);
            r
        });
    }
    let (mut written, mut present) = (0, 0);
    while let Some(r) = tasks.join_next().await {
        match r.expect("task") {
            Ok(WriteOutcome::Written { .. }) => written += 1,
            Ok(WriteOutcome::AlreadyPresent { .. }) => present += 1,
            Err(e) => eprintln!("failed: {e}"),
        }
    }
    (t.elapsed().as_secs_f64(), written, present)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let n = arg("--messages", 2000);
    let connections = arg("--connections", 2);
    let dovecot = Dovecot::start(DovecotOptions::default()).expect("Dovecot");
    let corpus = Corpus::new(CorpusProfile::realistic(4242, n).with_huge_every(None));
    let folders = corpus.folders();
    let plan: Vec<FolderSpec> = folders
        .iter()
        .map(|f| match f.as_str() {
            "INBOX" => FolderSpec::well_known(f.as_str(), WellKnownFolder::Inbox),
            _ => FolderSpec::at_root(f.as_str(), f.split('/')),
        })
        .collect();
    let items: Vec<(usize, WriteItem)> = corpus
        .iter()
        .map(|m| {
            let raw = Bytes::from(m.bytes);
            let folder = folders
                .iter()
                .position(|f| *f == m.meta.folder)
                .unwrap_or(0);
            (
                folder,
                WriteItem {
                    fingerprint: o365_migrate_mime::fingerprint(&raw).dedupe_key(),
                    raw,
                    flags: flags(&m.meta.flags),
                    internal_date: Some(
                        InternalDate::new(
                            m.meta.internal_date.unix_seconds(),
                            m.meta.internal_date.offset_minutes(),
                        )
                        .unwrap(),
                    ),
                    internet_message_id: None,
                },
            )
        })
        .collect();
    let bytes: usize = items.iter().map(|(_, i)| i.raw.len()).sum();
    let mut config = ImapTargetConfig::new(
        ClientConfig::new(dovecot.host(), dovecot.imap_port(), Security::Plaintext),
        ImapLogin::PerUser {
            passwords: [("alice".to_string(), "alice-secret".into())].into(),
            mechanism: PasswordMechanism::Login,
        },
    );
    config.connections_per_mailbox = connections;
    let target = ImapTarget::new(config);
    let writer = target.open_mailbox("alice").await.expect("open");
    let handles = writer.ensure_folders(&plan).await.expect("folders");
    let (secs, written, _) = run(&writer, &items, &handles).await;
    let mb = bytes as f64 / 1e6;
    println!(
        "first run: {written}/{n} messages, {mb:.1} MB in {secs:.2}s: {:.0} msg/s, {:.1} MB/s ({connections} connections, mail_fsync = optimized)",
        written as f64 / secs,
        mb / secs
    );
    let writer2 = target.open_mailbox("alice").await.expect("open");
    let handles2 = writer2.ensure_folders(&plan).await.expect("folders");
    let (secs2, written2, present2) = run(&writer2, &items, &handles2).await;
    println!(
        "second run: {present2} already present, {written2} written in {secs2:.2}s ({:.0} msg/s, header fetch included)",
        present2 as f64 / secs2
    );
    println!(
        "{{\"bench\":\"imap-writer\",\"messages\":{n},\"megabytes\":{mb:.1},\"connections\":{connections},\"write_msg_per_s\":{:.1},\"write_mb_per_s\":{:.2},\"rerun_msg_per_s\":{:.1},\"written\":{written},\"rerun_written\":{written2}}}",
        written as f64 / secs,
        mb / secs,
        present2 as f64 / secs2
    );
}
