//! EML / Maildir export: round trip of a generated corpus (export, read back, compare SHA-256,
//! flags, keywords, received dates), idempotent second export, hostile folder names.

use std::collections::HashMap;
use std::path::Path;

use bytes::Bytes;
use o365_migrate_target::eml::EmlTarget;
use o365_migrate_target::{
    Flags, FolderSpec, InternalDate, Target, WellKnownFolder, WriteItem, WriteOutcome,
};
use o365_migrate_testkit::corpus::sha256;
use o365_migrate_testkit::{Corpus, CorpusProfile};

fn item_flags(flags: &[String]) -> Flags {
    Flags::from_imap(flags.iter().map(String::as_str))
}

fn spec(folder: &str) -> FolderSpec {
    match folder {
        "INBOX" => FolderSpec::well_known(folder, WellKnownFolder::Inbox),
        "Sent" => FolderSpec::well_known(folder, WellKnownFolder::SentItems),
        _ => FolderSpec::at_root(folder, folder.split('/')),
    }
}

#[tokio::test]
async fn export_round_trip_keeps_bytes_flags_and_dates_and_is_idempotent() {
    let dir = tempfile::tempdir().unwrap();
    let target = EmlTarget::new(dir.path().join("export"));
    target.check().await.unwrap();
    assert!(target.capabilities().keeps_raw_bytes);
    let writer = target.open_mailbox("alice@example.com").await.unwrap();
    let corpus = Corpus::new(CorpusProfile::small(77, 300));
    let messages: Vec<_> = corpus.iter().collect();
    let folders: Vec<String> = corpus.folders();
    let plan: Vec<FolderSpec> = folders.iter().map(|f| spec(f)).collect();
    let handles = writer.ensure_folders(&plan).await.unwrap();
    let by_folder: HashMap<&str, _> = folders.iter().map(String::as_str).zip(&handles).collect();
    let items: Vec<(&str, WriteItem)> = messages
        .iter()
        .map(|m| {
            let raw = Bytes::from(m.bytes.clone());
            (
                m.meta.folder.as_str(),
                WriteItem {
                    fingerprint: o365_migrate_mime::fingerprint(&raw).dedupe_key(),
                    raw,
                    flags: item_flags(&m.meta.flags),
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
    for (folder, item) in &items {
        let out = writer.write(by_folder[folder], item).await.unwrap();
        assert!(matches!(out, WriteOutcome::Written { .. }), "{out:?}");
    }
    // Second export: nothing written.
    let again = target.open_mailbox("alice@example.com").await.unwrap();
    for (folder, item) in &items {
        let out = again.write(by_folder[folder], item).await.unwrap();
        assert!(
            matches!(out, WriteOutcome::AlreadyPresent { .. }),
            "{out:?}"
        );
    }
    // Read back: per folder count, and per message the bytes' SHA-256, flags, keywords, date.
    let mailbox_dir = dir.path().join("export").join("alice@example.com");
    let mut checked = 0;
    for (folder, handle) in &by_folder {
        let expected: Vec<_> = messages
            .iter()
            .filter(|m| m.meta.folder == *folder)
            .collect();
        assert_eq!(
            again.count(handle).await.unwrap(),
            expected.len() as u64,
            "{folder}"
        );
        let listed = again.list(handle).await.unwrap();
        assert_eq!(listed.len(), expected.len());
        for it in listed {
            let m = expected
                .iter()
                .find(|m| Some(&m.meta.message_id) == it.internet_message_id.as_ref())
                .unwrap();
            let path = mailbox_dir.join(&handle.target_id).join(&it.id);
            let bytes = std::fs::read(&path).unwrap();
            assert_eq!(sha256(&bytes), sha256(&m.bytes), "{}", path.display());
            assert_eq!(it.size, Some(m.bytes.len() as u64));
            assert_eq!(
                it.received.map(|r| r.unix_seconds()),
                Some(m.meta.internal_date.unix_seconds())
            );
            let f = item_flags(&m.meta.flags);
            assert_eq!(
                (it.is_read, it.flagged, it.answered, it.is_draft),
                (f.seen, f.flagged, f.answered, f.draft)
            );
            let mut kw = it.keywords.clone();
            kw.sort();
            let mut want = f.keywords.clone();
            want.sort();
            assert_eq!(kw, want);
            checked += 1;
        }
    }
    assert_eq!(checked, 300);
    assert!(mailbox_dir.join("Überweisungen/Août/cur").is_dir());
    assert!(mailbox_dir.join("Inbox/cur").is_dir());
    // Nothing left behind in tmp/.
    for h in &handles {
        let tmp = mailbox_dir.join(&h.target_id).join("tmp");
        assert_eq!(
            std::fs::read_dir(&tmp).unwrap().count(),
            0,
            "{}",
            tmp.display()
        );
    }
}

fn all_paths(root: &Path, out: &mut Vec<std::path::PathBuf>) {
    for e in std::fs::read_dir(root).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            all_paths(&p, out);
        }
        out.push(p);
    }
}

#[tokio::test]
async fn hostile_folder_and_mailbox_names_stay_inside_the_root() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("export");
    let target = EmlTarget::new(&root);
    let writer = target.open_mailbox("../../evil").await.unwrap();
    let plan = vec![
        FolderSpec::at_root("a", ["..", "../../etc", "passwd"]),
        FolderSpec::at_root("b", ["/abs", "C:\\win", "CON", "cur"]),
        FolderSpec::at_root("c", ["x\0y", "what?*<>|\""]),
    ];
    let handles = writer.ensure_folders(&plan).await.unwrap();
    assert!(handles.iter().all(|h| !h.notes.is_empty()));
    let item = WriteItem {
        raw: Bytes::from_static(b"Subject: x\r\n\r\nbody\r\n"),
        flags: Flags::default(),
        internal_date: None,
        fingerprint: "hk1:abc".into(),
        internet_message_id: None,
    };
    for h in &handles {
        writer.write(h, &item).await.unwrap();
    }
    let mut paths = Vec::new();
    all_paths(dir.path(), &mut paths);
    let canon_root = root.canonicalize().unwrap();
    for p in &paths {
        assert!(
            p.canonicalize().unwrap().starts_with(&canon_root),
            "{}",
            p.display()
        );
    }
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    // A forged handle pointing outside is refused.
    let mut forged = handles[0].clone();
    forged.target_id = "../../outside".into();
    let err = writer.write(&forged, &item).await.unwrap_err();
    assert_eq!(err.scope(), o365_migrate_target::ErrorScope::Folder);
}
