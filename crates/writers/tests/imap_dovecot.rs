//! The IMAP writer against real Dovecot (testkit): a 2,000-message corpus copied from one
//! Dovecot to another through `ImapTarget`, verified byte for byte; a second run writes nothing.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use o365_migrate_imap::{
    Auth, ClientConfig, FetchOptions, SearchKey, Security, Session, SpecialUse,
};
use o365_migrate_target::imap::{ImapLogin, ImapTarget, ImapTargetConfig, PasswordMechanism};
use o365_migrate_target::{
    Flags, FolderHandle, FolderSpec, InternalDate, MailboxWriter, Target, WellKnownFolder,
    WriteItem, WriteOutcome,
};
use o365_migrate_testkit::{Corpus, CorpusProfile, Dovecot, DovecotOptions};

fn target_config(dovecot: &Dovecot, login: ImapLogin) -> ImapTargetConfig {
    ImapTargetConfig::new(
        ClientConfig::new(dovecot.host(), dovecot.imap_port(), Security::Plaintext),
        login,
    )
}

fn per_user(dovecot: &Dovecot) -> ImapLogin {
    ImapLogin::PerUser {
        passwords: dovecot
            .users()
            .iter()
            .map(|u| (u.name().to_string(), u.password().into()))
            .collect(),
        mechanism: PasswordMechanism::Login,
    }
}

/// A plain write of `raw` with the engine's item key (content-aware).
fn write_item(raw: String) -> WriteItem {
    let id = o365_migrate_mime::fingerprint(raw.as_bytes());
    WriteItem {
        fingerprint: o365_migrate_mime::item_key(raw.as_bytes(), &id),
        raw: Bytes::from(raw),
        flags: Flags::default(),
        internal_date: None,
        internet_message_id: None,
    }
}

fn item_flags(flags: &[String]) -> Flags {
    Flags::from_imap(flags.iter().map(String::as_str))
}

fn spec_for(name: &str, delimiter: char, special: Option<SpecialUse>) -> FolderSpec {
    let well_known = match special {
        Some(SpecialUse::Sent) => Some(WellKnownFolder::SentItems),
        Some(SpecialUse::Trash) => Some(WellKnownFolder::DeletedItems),
        Some(SpecialUse::Junk) => Some(WellKnownFolder::JunkEmail),
        Some(SpecialUse::Drafts) => Some(WellKnownFolder::Drafts),
        Some(SpecialUse::Archive) => Some(WellKnownFolder::Archive),
        _ if name.eq_ignore_ascii_case("INBOX") => Some(WellKnownFolder::Inbox),
        _ => None,
    };
    match well_known {
        Some(k) => FolderSpec::well_known(name, k),
        None => FolderSpec::at_root(name, name.split(delimiter)),
    }
}

#[derive(Debug, Default)]
struct Copied {
    written: usize,
    present: usize,
    failed: Vec<String>,
}

/// What the engine does, in small: list the source, plan folders, stream every message into the
/// writer with many writes in flight.
async fn copy_mailbox(source: &Dovecot, user: &str, writer: Arc<dyn MailboxWriter>) -> Copied {
    let password = source.user(user).unwrap().password().to_string();
    let config = ClientConfig::new(source.host(), source.imap_port(), Security::Plaintext);
    let auth = Auth::Login {
        user: user.into(),
        password: password.into(),
    };
    let mut session = Session::open(&config, &auth).await.unwrap();
    let mailboxes = session.list_mailboxes(false).await.unwrap();
    let selectable: Vec<_> = mailboxes.iter().filter(|m| m.selectable).collect();
    let plan: Vec<FolderSpec> = selectable
        .iter()
        .map(|m| spec_for(&m.name, m.delimiter.unwrap_or('/'), m.special_use))
        .collect();
    let handles = writer.ensure_folders(&plan).await.unwrap();
    let by_source: HashMap<String, FolderHandle> =
        handles.into_iter().map(|h| (h.source.clone(), h)).collect();
    let mut tasks = tokio::task::JoinSet::new();
    let inflight = Arc::new(tokio::sync::Semaphore::new(96));
    for m in &selectable {
        let handle = by_source[&m.name].clone();
        session.examine(&m.name).await.unwrap();
        let uids = session.uid_search(&[SearchKey::All]).await.unwrap();
        let mut stream = session.fetch(&uids, FetchOptions::default());
        while let Some(msg) = stream.next().await {
            let msg = msg.unwrap();
            let raw: Bytes = msg.body.clone().unwrap();
            let item = WriteItem {
                fingerprint: o365_migrate_mime::fingerprint(&raw).dedupe_key(),
                raw,
                flags: item_flags(&msg.flags),
                internal_date: msg.internal_date,
                internet_message_id: None,
            };
            let permit = inflight.clone().acquire_owned().await.unwrap();
            let writer = writer.clone();
            let handle = handle.clone();
            tasks.spawn(async move {
                let r = writer.write(&handle, &item).await;
                drop(permit);
                r.map_err(|e| format!("{}: {e}", handle.display_path))
            });
        }
    }
    let mut out = Copied::default();
    while let Some(r) = tasks.join_next().await {
        match r.unwrap() {
            Ok(WriteOutcome::Written { notes, .. }) => {
                assert!(notes.is_empty(), "generic IMAP changes nothing: {notes:?}");
                out.written += 1
            }
            Ok(WriteOutcome::AlreadyPresent { .. }) => out.present += 1,
            Err(e) => out.failed.push(e),
        }
    }
    session.logout().await.unwrap();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copies_2000_messages_byte_identical_and_a_second_run_copies_none() {
    // The SOURCE is loaded without fsync (test set-up speed only); the target keeps Dovecot's
    // default `mail_fsync = optimized`, so the writer is measured against the real setting.
    let source =
        Dovecot::start(DovecotOptions::default().with_extra_config("mail_fsync = never")).unwrap();
    let target = Dovecot::start(DovecotOptions::default()).unwrap();
    let corpus = Corpus::new(CorpusProfile::realistic(8008, 2000).with_huge_every(None));
    let t = Instant::now();
    let manifest = corpus.load_parallel(&source, "alice", 2).await.unwrap();
    eprintln!(
        "source loaded: {} in {:.1}s",
        manifest.summary().lines().next().unwrap_or_default(),
        t.elapsed().as_secs_f64()
    );
    assert_eq!(manifest.len(), 2000);

    let imap = ImapTarget::new(target_config(&target, per_user(&target)));
    assert_eq!(imap.capabilities().name, "imap");
    assert!(imap.capabilities().keeps_raw_bytes);
    imap.check().await.unwrap();
    let writer = imap.open_mailbox("alice").await.unwrap();
    let t = Instant::now();
    let first = copy_mailbox(&source, "alice", writer.clone()).await;
    let secs = t.elapsed().as_secs_f64();
    eprintln!(
        "first run: {first:?} in {secs:.1}s ({:.0} msg/s)",
        2000.0 / secs
    );
    assert!(first.failed.is_empty(), "{:#?}", first.failed);
    assert_eq!((first.written, first.present), (2000, 0));

    // Byte-identical (SHA-256 per message), same flags, same INTERNALDATE instant, same size,
    // every folder of the source (parents, `Überweisungen/Août`, `Kunden & Partner`) present.
    let mut check = target.login("alice").await.unwrap();
    let report = manifest.verify(&mut check).await.unwrap();
    assert!(report.is_ok(), "{:#?}", report.mismatches);
    assert_eq!(report.messages_checked, 2000);
    let names: Vec<String> = check
        .list()
        .await
        .unwrap()
        .into_iter()
        .map(|l| l.name)
        .collect();
    for f in manifest.folders() {
        assert!(names.contains(f), "folder {f:?} missing in {names:?}");
    }
    assert!(names.iter().any(|n| n == "Überweisungen/Août"));

    // count / list for verify.
    let inbox = FolderSpec::well_known("INBOX", WellKnownFolder::Inbox);
    let h = writer.ensure_folders(&[inbox]).await.unwrap().remove(0);
    let expected_inbox = manifest.folder_counts()["INBOX"];
    assert_eq!(writer.count(&h).await.unwrap(), expected_inbox as u64);
    let listed = writer.list(&h).await.unwrap();
    assert_eq!(listed.len(), expected_inbox);
    for it in &listed {
        let mid = it.internet_message_id.as_deref().unwrap();
        let e = manifest.by_message_id(mid).unwrap();
        assert_eq!(it.size, Some(e.size));
        assert_eq!(
            it.received.map(|r| r.unix_seconds()),
            Some(e.internal_date.unix_seconds())
        );
        assert_eq!(it.is_read, e.flags.iter().any(|f| f == "\\Seen"));
        assert_eq!(it.flagged, e.flags.iter().any(|f| f == "\\Flagged"));
        assert!(it.subject.is_some() && it.from.is_some());
    }

    // Second run with a fresh writer (dedupe cache built from the server): nothing copied.
    let writer2 = imap.open_mailbox("alice").await.unwrap();
    let second = copy_mailbox(&source, "alice", writer2).await;
    eprintln!("second run: {second:?}");
    assert!(second.failed.is_empty(), "{:#?}", second.failed);
    assert_eq!((second.written, second.present), (0, 2000));
    let report = manifest.verify(&mut check).await.unwrap();
    assert!(report.is_ok(), "{:#?}", report.mismatches);
}

#[tokio::test]
async fn master_logins_flags_keywords_size_limit_and_concurrent_duplicates() {
    let target = Dovecot::start(DovecotOptions::default()).unwrap();
    let master = target.master_user();
    let logins = [
        (
            "bob",
            ImapLogin::MasterSeparator {
                master: master.name().into(),
                password: master.password().into(),
                separator: '*',
            },
        ),
        (
            "carol",
            ImapLogin::MasterPlain {
                master: master.name().into(),
                password: master.password().into(),
            },
        ),
    ];
    for (user, login) in logins {
        let mut config = target_config(&target, login);
        config.max_message_bytes = Some(200);
        let imap = ImapTarget::new(config);
        let writer = imap.open_mailbox(user).await.unwrap();
        let h = writer
            .ensure_folders(&[FolderSpec::at_root("Projekte/Größe", ["Projekte", "Größe"])])
            .await
            .unwrap()
            .remove(0);
        assert_eq!(h.target_id, "Projekte/Größe");
        assert!(h.created);
        let raw = format!(
            "Message-ID: <{user}@example.org>\r\nFrom: x@example.org\r\nSubject: hi\r\n\r\nbody\r\n"
        );
        let item = WriteItem {
            fingerprint: o365_migrate_mime::fingerprint(raw.as_bytes()).dedupe_key(),
            raw: Bytes::from(raw),
            flags: Flags {
                answered: true,
                draft: true,
                keywords: vec!["$Forwarded".into(), "Projekt".into()],
                ..Default::default()
            },
            internal_date: Some(InternalDate::new(1_600_000_000, -420).unwrap()),
            internet_message_id: None,
        };
        // The same message written twice at once: one copy.
        let (a, b) = tokio::join!(writer.write(&h, &item), writer.write(&h, &item));
        let outcomes = [a.unwrap(), b.unwrap()];
        assert_eq!(
            outcomes
                .iter()
                .filter(|o| matches!(o, WriteOutcome::Written { .. }))
                .count(),
            1,
            "{outcomes:?}"
        );
        assert_eq!(outcomes[0].target_id(), outcomes[1].target_id());
        let listed = writer.list(&h).await.unwrap();
        assert_eq!(listed.len(), 1);
        let it = &listed[0];
        assert!(it.answered && it.is_draft && !it.is_read && !it.flagged);
        let mut kw = it.keywords.clone();
        kw.sort();
        assert_eq!(kw, ["$Forwarded", "Projekt"]);
        assert_eq!(it.received.map(|r| r.unix_seconds()), Some(1_600_000_000));
        // Above the limit: a typed item-scope error, nothing sent.
        let mut big = item.clone();
        big.raw = Bytes::from(vec![b'a'; 500]);
        big.fingerprint = "hk1:big".into();
        let err = writer.write(&h, &big).await.unwrap_err();
        assert!(
            matches!(
                err,
                o365_migrate_target::Error::TooLarge {
                    size: 500,
                    limit: 200
                }
            ),
            "{err}"
        );
        assert_eq!(err.scope(), o365_migrate_target::ErrorScope::Item);
        assert_eq!(writer.count(&h).await.unwrap(), 1);
    }
}

#[tokio::test]
async fn wrong_password_is_a_mailbox_error_without_the_secret() {
    let target = Dovecot::start(DovecotOptions::default()).unwrap();
    let login = ImapLogin::PerUser {
        passwords: [("alice".to_string(), "wrong-pw-123".into())].into(),
        mechanism: PasswordMechanism::Plain,
    };
    let imap = ImapTarget::new(target_config(&target, login.clone()));
    let err = imap.open("alice").await.unwrap_err();
    assert_eq!(err.scope(), o365_migrate_target::ErrorScope::Mailbox);
    assert!(!err.to_string().contains("wrong-pw-123"));
    assert!(!format!("{login:?}").contains("wrong-pw-123"));
    let err = imap.open("nobody").await.unwrap_err();
    assert!(err.to_string().contains("no password"), "{err}");
}

/// One Message-ID on two different contents of the same size stays two messages, also when the
/// writer knows the folder only from its listing (a restart, a reconnect, an APPEND whose
/// outcome was unknown): a listed header match counts only when the bytes are the same.
#[tokio::test]
async fn a_listed_message_id_match_is_confirmed_by_the_bytes() {
    let target = Dovecot::start(DovecotOptions::default()).unwrap();
    let user = target.users()[0].name().to_string();
    let item = |body: &str| {
        write_item(format!(
            "Message-ID: <same@example.org>\r\nFrom: x@example.org\r\nSubject: s\r\n\r\n{body}\r\n"
        ))
    };
    let (a, b) = (item("first body"), item("other body"));
    assert_eq!(
        a.raw.len(),
        b.raw.len(),
        "same size: only the bytes tell them apart"
    );
    let open = || async {
        ImapTarget::new(target_config(&target, per_user(&target)))
            .open_mailbox(&user)
            .await
            .unwrap()
    };
    let inbox = [FolderSpec::well_known("INBOX", WellKnownFolder::Inbox)];
    let first = open().await;
    let h = first.ensure_folders(&inbox).await.unwrap().remove(0);
    let wrote = first.write(&h, &a).await.unwrap();
    assert!(matches!(wrote, WriteOutcome::Written { .. }), "{wrote:?}");
    // A new writer knows the folder only from its listing.
    let second = open().await;
    let other = second.write(&h, &b).await.unwrap();
    assert!(
        matches!(other, WriteOutcome::Written { .. }),
        "a Message-ID match alone skipped a different message: {other:?}"
    );
    let third = open().await;
    for it in [&a, &b] {
        let again = third.write(&h, it).await.unwrap();
        assert!(
            matches!(again, WriteOutcome::AlreadyPresent { .. }),
            "{again:?}"
        );
    }
    assert_eq!(third.count(&h).await.unwrap(), 2);
}

/// A MULTIAPPEND group whose answer cannot be read (here: real Dovecot commits it, and the
/// proxy garbles the tagged OK) may have been stored: it is not resent message by message
/// but reported unknown, and the writer that writes the group again finds every message by
/// its content instead of storing a second copy.
#[tokio::test]
async fn a_multiappend_group_with_an_unreadable_answer_is_not_resent() {
    use o365_migrate_testkit::fault::{Direction, FaultPlan, FaultProxy};
    let target = Dovecot::start(DovecotOptions::default()).unwrap();
    let user = target.users()[0].name().to_string();
    let items: Vec<WriteItem> = (1..=3)
        .map(|n| {
            write_item(format!(
                "Message-ID: <group-{n}@example.org>\r\nFrom: x@example.org\r\nSubject: g{n}\r\n\r\nbody {n}\r\n"
            ))
        })
        .collect();
    let proxy = FaultProxy::start(
        target.imap_addr(),
        FaultPlan::new().rewriting(Direction::Downstream, b"OK [APPENDUID", b"XX [APPENDUID"),
    )
    .await
    .unwrap();
    let auth = Auth::Login {
        user: user.clone(),
        password: target.users()[0].password().into(),
    };
    let config = ClientConfig::new(target.host(), proxy.port(), Security::Plaintext);
    let mut session = Session::open(&config, &auth).await.unwrap();
    assert!(session.has_capability("MULTIAPPEND"));
    let messages = items
        .iter()
        .map(|it| o365_migrate_imap::AppendMessage {
            flags: Vec::new(),
            internal_date: None,
            data: it.raw.clone(),
        })
        .collect();
    let answer = session.append("INBOX", messages, 3).await;
    assert!(
        answer.is_err(),
        "an unreadable answer leaves the outcome unknown: {answer:?}"
    );
    assert!(
        proxy.stats().rewrites >= 1,
        "the garbled answer must have landed"
    );
    let mut check = target.login(&user).await.unwrap();
    let stored = check.select("INBOX").await.unwrap().exists;
    assert_eq!(stored, 3, "the group was committed once and not resent");
    // The writer, told the outcome is unknown, looks before it writes.
    let writer = ImapTarget::new(target_config(&target, per_user(&target)))
        .open_mailbox(&user)
        .await
        .unwrap();
    let inbox = [FolderSpec::well_known("INBOX", WellKnownFolder::Inbox)];
    let h = writer.ensure_folders(&inbox).await.unwrap().remove(0);
    for it in &items {
        let again = writer.write(&h, it).await.unwrap();
        assert!(
            matches!(again, WriteOutcome::AlreadyPresent { .. }),
            "{again:?}"
        );
    }
    assert_eq!(writer.count(&h).await.unwrap(), 3);
}
