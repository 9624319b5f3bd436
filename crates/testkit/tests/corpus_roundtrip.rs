//! A generated 500-message corpus loaded into one of two side-by-side Dovecots, proven
//! equal to its manifest over IMAP: per folder the count, per message the flags, the
//! INTERNALDATE instant and the SHA-256 of BODY[]. The second instance stays empty.

use std::collections::{BTreeMap, HashMap};

use o365_migrate_testkit::corpus::{Corpus, CorpusProfile, sha256};
use o365_migrate_testkit::{Dovecot, DovecotOptions};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corpus_roundtrip_two_instances() {
    let source = Dovecot::start(DovecotOptions::default()).expect("start source dovecot");
    let target = Dovecot::start(DovecotOptions::default()).expect("start target dovecot");
    assert_ne!(source.imap_port(), target.imap_port());
    assert_ne!(source.dir(), target.dir());

    let corpus = Corpus::new(CorpusProfile::small(2026, 500));
    let manifest = corpus.load(&source, "alice").await.expect("load corpus");
    assert_eq!(manifest.len(), 500);

    // Independent check, written out here (not only via Manifest::verify).
    let mut imap = source.login("alice").await.unwrap();
    let listed: Vec<String> = imap
        .list()
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.name)
        .collect();
    let counts = manifest.folder_counts();
    for (folder, expected) in &counts {
        assert!(
            listed.contains(&folder.to_string()),
            "{folder} not listed: {listed:?}"
        );
        let status = imap.status(folder).await.unwrap();
        assert_eq!(
            status.messages,
            Some(*expected as u32),
            "STATUS count of {folder}"
        );
        let selected = imap.examine(folder).await.unwrap();
        assert_eq!(selected.exists as usize, *expected, "EXISTS of {folder}");
        if *expected == 0 {
            continue;
        }
        let fetched = imap.uid_fetch_full("1:*").await.unwrap();
        assert_eq!(fetched.len(), *expected, "fetched from {folder}");
        let by_uid: HashMap<u32, _> = manifest
            .entries()
            .iter()
            .filter(|e| e.folder == *folder)
            .map(|e| (e.uid.expect("APPENDUID"), e))
            .collect();
        for m in fetched {
            let uid = m.uid.unwrap();
            let e = by_uid
                .get(&uid)
                .unwrap_or_else(|| panic!("{folder} UID {uid} unexpected"));
            let body = m.body.as_deref().expect("BODY[]");
            assert_eq!(sha256(body), e.sha256, "{folder} UID {uid} bytes");
            assert_eq!(m.size, Some(e.size), "{folder} UID {uid} size");
            let mut flags = m.flags.clone();
            flags.sort();
            assert_eq!(flags, e.flags, "{folder} UID {uid} flags");
            let date = m.internal_date.expect("INTERNALDATE");
            assert!(
                date.same_instant(&e.internal_date),
                "{folder} UID {uid}: {date} vs {}",
                e.internal_date
            );
        }
    }
    // Mail files belong to the mail user when the harness runs as root.
    let meta = std::fs::metadata(source.maildir("alice")).expect("alice's Maildir exists");
    let running_as_root = std::fs::metadata("/proc/self")
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0)
        .unwrap_or(false);
    if running_as_root {
        assert_eq!(
            std::os::unix::fs::MetadataExt::uid(&meta),
            8,
            "Maildir owned by mail"
        );
    }
    let total: usize = counts.values().sum();
    assert_eq!(total, 500);
    assert!(
        counts.values().filter(|n| **n > 0).count() >= 10,
        "{counts:?}"
    );

    // The library verifier agrees, and it detects a changed flag, a moved and a deleted message.
    let report = manifest.verify(&mut imap).await.unwrap();
    assert!(report.is_ok(), "{:#?}", report.mismatches);
    assert_eq!(report.messages_checked, 500);

    imap.select("INBOX").await.unwrap();
    imap.raw("UID STORE 1 +FLAGS (\\Flagged $Tampered)")
        .await
        .unwrap();
    imap.raw("UID COPY 2 Trash").await.unwrap();
    imap.raw("UID STORE 3 +FLAGS.SILENT (\\Deleted)")
        .await
        .unwrap();
    imap.raw("EXPUNGE").await.unwrap();
    let report = manifest.verify(&mut imap).await.unwrap();
    let text = report.mismatches.join("\n");
    assert!(
        text.contains("UID 1") && text.contains("$Tampered"),
        "{text}"
    );
    assert!(
        text.contains("\"Trash\": not in the manifest") || text.contains("\"Trash\" UID"),
        "{text}"
    );
    assert!(text.contains("missing"), "{text}");
    assert!(text.contains("\"INBOX\":"), "{text}");

    // The second instance stays empty and independent.
    let mut other = target.login("alice").await.unwrap();
    let st = other.status("INBOX").await.unwrap();
    assert_eq!(st.messages, Some(0));
    let names: Vec<String> = other
        .list()
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.name)
        .collect();
    assert!(
        !names.iter().any(|n| n.starts_with("Projects")),
        "{names:?}"
    );
    let empty = manifest.verify(&mut other).await.unwrap();
    assert!(!empty.is_ok());

    // Loading the same corpus into the target over two parallel connections gives the same
    // manifest (UIDs aside), and it verifies there.
    let again = corpus.load_parallel(&target, "bob", 2).await.unwrap();
    let strip = |m: &o365_migrate_testkit::Manifest| {
        m.entries()
            .iter()
            .map(|e| (e.index, e.sha256, e.flags.clone(), e.folder.clone()))
            .collect::<Vec<_>>()
    };
    assert_eq!(strip(&again), strip(&manifest));
    let mut bob = target.login("bob").await.unwrap();
    assert!(again.verify(&mut bob).await.unwrap().is_ok());
    let by_folder: BTreeMap<&str, usize> = again.folder_counts();
    assert_eq!(by_folder, manifest.folder_counts());
}
