//! The hostile corpus loads into a real Dovecot: every case is present (count and names,
//! checked independently over IMAP), the APPEND-refused cases went in as Maildir files,
//! and Dovecot really does refuse what the corpus says it refuses.

use std::collections::BTreeSet;

use o365_migrate_testkit::hostile::{CASE_NAMES, case_name_of};
use o365_migrate_testkit::{
    AppendRequest, Delivery, Dovecot, DovecotOptions, ExpectedOutcome, HostileCorpus,
    HostileOptions,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_corpus_loads_every_case() {
    let dovecot = Dovecot::start(DovecotOptions::default()).expect("start dovecot");
    let corpus = HostileCorpus::new(HostileOptions::default());
    let manifest = corpus
        .load(&dovecot, "alice")
        .await
        .expect("load hostile corpus");
    assert_eq!(manifest.len(), CASE_NAMES.len());
    assert_eq!(manifest.names(), CASE_NAMES.to_vec());

    // Independent check: fetch everything and name each message by its content.
    let mut imap = dovecot.login("alice").await.unwrap();
    let status = imap.status("Hostile").await.unwrap();
    assert_eq!(status.messages, Some(CASE_NAMES.len() as u32));
    imap.examine("Hostile").await.unwrap();
    let fetched = imap.uid_fetch_full("1:*").await.unwrap();
    let names: BTreeSet<String> = fetched
        .iter()
        .map(|m| case_name_of(m.body.as_deref().unwrap_or_default()).expect("a named case"))
        .collect();
    let expected: BTreeSet<String> = CASE_NAMES.iter().map(|s| s.to_string()).collect();
    assert_eq!(names, expected);
    assert_eq!(fetched.len(), CASE_NAMES.len(), "no case twice");

    let over = manifest.get("over-max-size").unwrap();
    assert_eq!(over.size, (4 << 20) + 1);
    assert_eq!(over.expected, ExpectedOutcome::Reported);
    let zero = manifest.get("zero-bytes").unwrap();
    assert_eq!((zero.size, zero.server_size), (0, 0));
    assert_eq!(zero.delivery, Delivery::MaildirFile);
    // Byte-exact where Dovecot does not normalize: the duplicate-ID pair.
    for name in ["duplicate-message-id-a", "duplicate-message-id-b"] {
        let e = manifest.get(name).unwrap();
        let m = fetched.iter().find(|m| m.uid == Some(e.uid)).unwrap();
        assert_eq!(
            o365_migrate_testkit::corpus::sha256(m.body.as_deref().unwrap()),
            e.sha256
        );
    }

    // Dovecot serves bare LF as CRLF (one CR per line added), NUL bytes unchanged.
    let bare = manifest.get("bare-lf").unwrap();
    let lines = corpus
        .case("bare-lf")
        .unwrap()
        .bytes
        .iter()
        .filter(|b| **b == b'\n')
        .count();
    assert_eq!(bare.server_size, bare.size + lines as u64);
    let nul = manifest.get("nul-bytes").unwrap();
    let m = fetched.iter().find(|m| m.uid == Some(nul.uid)).unwrap();
    // Dovecot stores the NULs but serves them as 0x80 (IMAP4rev1 literals may not carry
    // NUL), same size: the source side of a migration never sees a NUL byte.
    let original = corpus.case("nul-bytes").unwrap().bytes;
    let served = m.body.as_deref().unwrap();
    assert_eq!(served.len(), original.len());
    assert!(!served.contains(&0));
    let expected: Vec<u8> = original
        .iter()
        .map(|b| if *b == 0 { 0x80 } else { *b })
        .collect();
    assert_eq!(served, expected.as_slice());
    let report = manifest.verify(&mut imap).await.unwrap();
    assert!(report.is_ok(), "{:#?}", report.mismatches);
    assert_eq!(report.messages_checked, CASE_NAMES.len());
}

/// The reason `zero-bytes` is a Maildir file: Dovecot refuses a 0-byte APPEND.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dovecot_refuses_a_zero_byte_append() {
    let dovecot = Dovecot::start(DovecotOptions::default()).expect("start dovecot");
    let mut imap = dovecot.login("alice").await.unwrap();
    let err = imap
        .append("INBOX", &AppendRequest::new(Vec::new(), Vec::new(), None))
        .await
        .expect_err("Dovecot should refuse an empty message");
    assert!(err.to_string().contains("zero byte"), "{err}");
    let status = imap.status("INBOX").await.unwrap();
    assert_eq!(status.messages, Some(0));
}

/// A Maildir-delivered case lands in INBOX too, and verify notices a missing case.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loads_into_inbox_and_verify_detects_loss() {
    let dovecot = Dovecot::start(DovecotOptions::default()).expect("start dovecot");
    let corpus = HostileCorpus::new(
        HostileOptions::default()
            .with_folder("INBOX")
            .with_max_message_bytes(64 * 1024)
            .with_header_block_bytes(64 * 1024)
            .with_nesting_depth(10),
    );
    let manifest = corpus.load(&dovecot, "bob").await.unwrap();
    assert_eq!(manifest.len(), CASE_NAMES.len());
    let mut imap = dovecot.login("bob").await.unwrap();
    assert!(manifest.verify(&mut imap).await.unwrap().is_ok());
    // Delete one case; verify must say which.
    let victim = manifest.get("headers-only").unwrap().uid;
    imap.select("INBOX").await.unwrap();
    imap.raw(&format!("UID STORE {victim} +FLAGS (\\Deleted)"))
        .await
        .unwrap();
    imap.raw("EXPUNGE").await.unwrap();
    let report = manifest.verify(&mut imap).await.unwrap();
    assert!(!report.is_ok());
    assert!(
        report.mismatches.iter().any(|m| m.contains("headers-only")),
        "{:#?}",
        report.mismatches
    );
}
