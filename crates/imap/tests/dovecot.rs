//! Against real Dovecot (private instances from o365-migrate-testkit on 127.0.0.1).

mod common;

use common::corpus;
use o365_migrate_imap::{
    AppendMessage, Auth, ByteBudget, ClientConfig, Error, FetchItems, FetchOptions, InternalDate,
    Reconnector, SearchKey, Security, Session, SpecialUse,
};
use o365_migrate_testkit::{Dovecot, DovecotOptions};
use std::collections::HashMap;
use std::time::Duration;

fn config(d: &Dovecot, security: Security) -> ClientConfig {
    let port = match security {
        Security::Tls => d.imaps_port().expect("imaps listener"),
        _ => d.imap_port(),
    };
    let mut c = ClientConfig::new(d.host(), port, security);
    c.tls.extra_ca_pem = Some(d.ca_pem().to_vec());
    c
}

fn login(user: &str) -> Auth {
    Auth::Login {
        user: user.into(),
        password: format!("{user}-secret").into(),
    }
}

fn msg(body: &str, flags: &[&str], date: Option<&str>) -> AppendMessage {
    AppendMessage {
        flags: flags.iter().map(|s| (*s).to_owned()).collect(),
        internal_date: date.map(|d| InternalDate::parse_imap(d).unwrap()),
        data: bytes::Bytes::from(format!(
            "From: a@example.com\r\nSubject: {body}\r\n\r\n{body}\r\n"
        )),
    }
}

#[tokio::test]
async fn logins_over_implicit_tls_and_starttls() {
    let d = Dovecot::start(DovecotOptions::default()).unwrap();
    for security in [Security::Tls, Security::StartTls] {
        let cfg = config(&d, security);
        let auths = [
            ("LOGIN", login("alice")),
            (
                "PLAIN",
                Auth::Plain {
                    authorize_as: None,
                    user: "bob".into(),
                    password: "bob-secret".into(),
                },
            ),
            (
                "PLAIN master",
                Auth::Plain {
                    authorize_as: Some("carol".into()),
                    user: "admin".into(),
                    password: "admin-secret".into(),
                },
            ),
            (
                "LOGIN master",
                Auth::Login {
                    user: "alice*admin".into(),
                    password: "admin-secret".into(),
                },
            ),
        ];
        for (what, auth) in auths {
            let mut s = Session::connect(&cfg)
                .await
                .unwrap_or_else(|e| panic!("{security:?} {what}: {e}"));
            let before = s.capabilities().to_vec();
            s.login(&auth)
                .await
                .unwrap_or_else(|e| panic!("{security:?} {what}: {e}"));
            assert_ne!(
                before,
                s.capabilities(),
                "capabilities are refreshed after login"
            );
            assert!(s.has_capability("UIDPLUS"));
            let inbox = s.examine("INBOX").await.unwrap();
            assert!(inbox.read_only && inbox.uid_validity.is_some());
            s.logout().await.unwrap();
        }
        // wrong password → LoginFailed without the secret
        let mut s = Session::connect(&cfg).await.unwrap();
        let e = s
            .login(&Auth::Login {
                user: "alice".into(),
                password: "not-Her-Pa55".into(),
            })
            .await
            .unwrap_err();
        assert!(matches!(e, Error::LoginFailed { .. }), "{e:?}");
        assert!(!format!("{e} {e:?}").contains("not-Her-Pa55"));
        assert!(e.is_fatal());
    }
}

#[tokio::test]
async fn master_user_opens_the_right_mailbox() {
    let d = Dovecot::start(DovecotOptions::default()).unwrap();
    let cfg = config(&d, Security::Tls);
    let mut alice = Session::open(&cfg, &login("alice")).await.unwrap();
    alice
        .append("INBOX", vec![msg("for alice only", &[], None)], 1)
        .await
        .unwrap()[0]
        .as_ref()
        .unwrap();
    let master = Auth::Plain {
        authorize_as: Some("alice".into()),
        user: "admin".into(),
        password: "admin-secret".into(),
    };
    let mut s = Session::open(&cfg, &master).await.unwrap();
    assert_eq!(s.examine("INBOX").await.unwrap().exists, 1);
    let mut bob = Session::open(&cfg, &login("bob")).await.unwrap();
    assert_eq!(bob.examine("INBOX").await.unwrap().exists, 0);
}

#[tokio::test]
async fn untrusted_certificates_are_refused_unless_opted_out() {
    let d = Dovecot::start(DovecotOptions::default().with_untrusted_certificate()).unwrap();
    for security in [Security::Tls, Security::StartTls] {
        let cfg = config(&d, security);
        let e = Session::connect(&cfg).await.unwrap_err();
        assert!(
            matches!(&e, Error::Tls { message, .. } if message.contains("danger_accept_invalid_certificates")),
            "{security:?}: {e:?}"
        );
        assert!(e.is_fatal());
        let mut opted = cfg.clone();
        opted.tls.extra_ca_pem = None;
        opted.tls.danger_accept_invalid_certificates = true;
        let mut s = Session::open(&opted, &login("alice")).await.unwrap();
        s.noop().await.unwrap();
    }
    // A trusted server is still refused when its CA is not added (system store only).
    let good = Dovecot::start(DovecotOptions::default()).unwrap();
    let mut cfg = config(&good, Security::Tls);
    cfg.tls.extra_ca_pem = None;
    assert!(matches!(
        Session::connect(&cfg).await.unwrap_err(),
        Error::Tls { .. }
    ));
}

#[tokio::test]
async fn list_with_special_use_status_namespace_id_enable() {
    let d = Dovecot::start(DovecotOptions::default()).unwrap();
    let mut s = Session::open(&config(&d, Security::Tls), &login("alice"))
        .await
        .unwrap();
    for name in ["Sent", "Drafts", "Trash", "Junk", "Archive"] {
        s.create(name, false).await.unwrap();
    }
    s.append(
        "Sent",
        vec![
            msg("sent one", &["\\Seen"], None),
            msg("sent two", &[], None),
        ],
        4,
    )
    .await
    .unwrap();
    let boxes = s.list_mailboxes(true).await.unwrap();
    let sent = boxes
        .iter()
        .find(|m| m.name == "Sent")
        .expect("Sent listed");
    assert_eq!(sent.special_use, Some(SpecialUse::Sent));
    assert_eq!(sent.delimiter, Some('/'));
    assert_eq!(sent.status.as_ref().and_then(|st| st.messages), Some(2));
    assert!(
        sent.status
            .as_ref()
            .and_then(|st| st.uid_validity)
            .is_some()
    );
    for (n, u) in [
        ("Drafts", SpecialUse::Drafts),
        ("Trash", SpecialUse::Trash),
        ("Junk", SpecialUse::Junk),
        ("Archive", SpecialUse::Archive),
    ] {
        assert_eq!(
            boxes
                .iter()
                .find(|m| m.name == n)
                .and_then(|m| m.special_use),
            Some(u),
            "{n}"
        );
    }
    let inbox = boxes.iter().find(|m| m.name == "INBOX").unwrap();
    assert_eq!(inbox.special_use, None);
    let ns = s.namespace().await.unwrap().expect("Dovecot has NAMESPACE");
    assert_eq!(ns.personal[0].delimiter, Some('/'));
    let id = s.id(vec![("name".into(), "test".into())]).await.unwrap();
    assert!(
        id.iter().any(|(k, v)| k == "name" && v.contains("Dovecot")),
        "{id:?}"
    );
    let enabled = s.enable(&["CONDSTORE"]).await.unwrap();
    assert_eq!(enabled, vec!["CONDSTORE".to_string()]);
    let m = s.examine("Sent").await.unwrap();
    assert!(
        m.highest_modseq.is_some(),
        "HIGHESTMODSEQ after ENABLE CONDSTORE"
    );
    assert!(m.uid_next.is_some());
}

#[tokio::test]
async fn non_ascii_folder_names_round_trip() {
    let d = Dovecot::start(DovecotOptions::default()).unwrap();
    let mut s = Session::open(&config(&d, Security::StartTls), &login("alice"))
        .await
        .unwrap();
    let names = [
        "Entwürfe/Ärger & Co/日本語",
        "Éléments envoyés",
        "Входящие",
        "📧 Emoji & more",
    ];
    for n in names {
        s.create(n, true).await.unwrap();
        s.append(n, vec![msg(n, &[], None)], 1).await.unwrap()[0]
            .as_ref()
            .unwrap();
    }
    let listed: Vec<String> = s
        .list_mailboxes(false)
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.name)
        .collect();
    for n in names {
        assert!(listed.contains(&n.to_string()), "{n} in {listed:?}");
        assert_eq!(s.examine(n).await.unwrap().exists, 1, "{n}");
    }
    assert!(
        listed.contains(&"Entwürfe/Ärger & Co".to_string()),
        "parent created"
    );
    // Cross-check the wire form with testkit's independent client.
    let mut raw = d.login("alice").await.unwrap();
    let (lines, _) = raw.raw("LIST \"\" \"*\"").await.unwrap();
    assert!(
        lines
            .iter()
            .any(|l| l.contains("Entw&APw-rfe/&AMQ-rger &- Co/&ZeVnLIqe-")),
        "{lines:?}"
    );
}

#[tokio::test]
async fn append_keeps_flags_and_internaldate() {
    let d = Dovecot::start(DovecotOptions::default()).unwrap();
    let mut s = Session::open(&config(&d, Security::Tls), &login("alice"))
        .await
        .unwrap();
    s.create("Target", false).await.unwrap();
    s.select("Target").await.unwrap();
    let input = vec![
        msg(
            "one",
            &["\\Seen", "\\Flagged"],
            Some("17-Jul-1996 02:44:25 -0700"),
        ),
        msg(
            "two",
            &["\\Answered", "$Label1", "Work"],
            Some("01-Feb-2024 23:59:59 +0130"),
        ),
        msg("three", &[], Some("29-Feb-2020 12:00:00 +0000")),
        msg("four", &["\\Draft", "\\Seen"], None),
    ];
    let results = s.append("Target", input.clone(), 8).await.unwrap();
    let uids: Vec<u32> = results
        .iter()
        .map(|r| r.as_ref().unwrap().expect("APPENDUID").uid)
        .collect();
    assert_eq!(uids.len(), 4);
    let mut got = HashMap::new();
    {
        let mut st = s.fetch(&uids, FetchOptions::default());
        while let Some(m) = st.next().await {
            let m = m.unwrap();
            got.insert(m.uid, m);
        }
    }
    for (uid, sent) in uids.iter().zip(&input) {
        let m = &got[uid];
        let mut want: Vec<String> = sent.flags.clone();
        let mut have = m.flags.clone();
        want.sort();
        have.sort();
        assert_eq!(have, want, "flags of UID {uid}");
        if let Some(d) = sent.internal_date {
            assert_eq!(
                m.internal_date.unwrap().unix_seconds(),
                d.unix_seconds(),
                "INTERNALDATE instant of UID {uid}"
            );
        }
        assert_eq!(m.body.as_ref().unwrap(), &sent.data, "body of UID {uid}");
        assert_eq!(m.size, Some(sent.data.len() as u32));
    }
    // STORE then read back.
    s.uid_store(
        &o365_migrate_imap::UidSet::from_uids(&uids[2..3]),
        o365_migrate_imap::StoreMode::Add,
        &["\\Flagged".into()],
    )
    .await
    .unwrap();
    let mut st = s.fetch(
        &uids[2..3],
        FetchOptions {
            items: FetchItems {
                body: false,
                ..FetchItems::default()
            },
            ..FetchOptions::default()
        },
    );
    let m = st.next().await.unwrap().unwrap();
    assert_eq!(m.flags, vec!["\\Flagged".to_string()]);
    assert!(st.next().await.is_none());
}

#[tokio::test]
async fn uid_search_since_before_larger() {
    let d = Dovecot::start(DovecotOptions::default()).unwrap();
    let mut s = Session::open(&config(&d, Security::Tls), &login("alice"))
        .await
        .unwrap();
    let dates = [
        "01-Jan-2020 12:00:00 +0000",
        "15-Jun-2021 12:00:00 +0000",
        "10-Mar-2023 12:00:00 +0000",
        "20-Dec-2024 12:00:00 +0000",
    ];
    let mut input: Vec<AppendMessage> = dates.iter().map(|d| msg(d, &[], Some(d))).collect();
    input[3].data = bytes::Bytes::from(format!("Subject: big\r\n\r\n{}\r\n", "x".repeat(50_000)));
    let uids: Vec<u32> = s
        .append("INBOX", input, 8)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.unwrap().unwrap().uid)
        .collect();
    s.examine("INBOX").await.unwrap();
    let day = |d: &str| InternalDate::parse_imap(d).unwrap().unix_seconds();
    let since = s
        .uid_search(&[SearchKey::Since(day("01-Jun-2021 00:00:00 +0000"))])
        .await
        .unwrap();
    assert_eq!(since, uids[1..].to_vec());
    let before = s
        .uid_search(&[SearchKey::Before(day("10-Mar-2023 00:00:00 +0000"))])
        .await
        .unwrap();
    assert_eq!(before, uids[..2].to_vec());
    let both = s
        .uid_search(&[
            SearchKey::Since(day("01-Jun-2021 00:00:00 +0000")),
            SearchKey::Before(day("01-Jan-2024 00:00:00 +0000")),
        ])
        .await
        .unwrap();
    assert_eq!(both, uids[1..3].to_vec());
    assert_eq!(
        s.uid_search(&[SearchKey::Larger(10_000)]).await.unwrap(),
        vec![uids[3]]
    );
    assert_eq!(s.uid_search(&[SearchKey::All]).await.unwrap(), uids);
}

#[tokio::test]
async fn five_thousand_messages_stream_within_the_byte_budget() {
    let d = Dovecot::start(DovecotOptions::default()).unwrap();
    let cfg = config(&d, Security::Tls);
    let mut s = Session::open(&cfg, &login("alice")).await.unwrap();
    s.create("Big", false).await.unwrap();
    s.select("Big").await.unwrap();
    let mut rng = corpus::Rng::new(42);
    let mut sizes = HashMap::new();
    let mut all_uids = Vec::new();
    let total = 5_000;
    let mut batch = Vec::new();
    for i in 0..total {
        let n = corpus::size(&mut rng, 6_000);
        batch.push(AppendMessage {
            flags: vec![],
            internal_date: None,
            data: corpus::message(&mut rng, i, n).into(),
        });
        if batch.len() == 500 || i + 1 == total {
            let lens: Vec<usize> = batch.iter().map(|m| m.data.len()).collect();
            let res = s
                .append("Big", std::mem::take(&mut batch), 32)
                .await
                .unwrap();
            for (r, len) in res.into_iter().zip(lens) {
                let uid = r.unwrap().unwrap().uid;
                sizes.insert(uid, len);
                all_uids.push(uid);
            }
        }
    }
    s.logout().await.unwrap();

    // Fetch on a fresh connection through a small shared budget; a slow consumer holds messages.
    let budget = ByteBudget::new(512 * 1024);
    let mut cfg = cfg.clone();
    cfg.budget = Some(budget.clone());
    let mut s = Session::open(&cfg, &login("alice")).await.unwrap();
    let m = s.examine("Big").await.unwrap();
    assert_eq!(m.exists as usize, total);
    let uids = s.uid_search(&[SearchKey::All]).await.unwrap();
    assert_eq!(uids, all_uids);
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let b2 = budget.clone();
    let consumer = tokio::spawn(async move {
        let mut seen = HashMap::new();
        let mut held = std::collections::VecDeque::new();
        let mut max_seen = 0;
        while let Some(m) = rx.recv().await {
            let m: o365_migrate_imap::FetchedMessage = m;
            max_seen = max_seen.max(b2.in_flight());
            seen.insert(m.uid, m.body.as_ref().map(|b| b.len()).unwrap_or(0));
            held.push_back(m);
            if held.len() > 20 {
                held.pop_front();
                tokio::task::yield_now().await;
            }
        }
        (seen, max_seen)
    });
    let mut stream = s.fetch(
        &uids,
        FetchOptions {
            batch_size: 200,
            ..FetchOptions::default()
        },
    );
    let mut count = 0;
    while let Some(m) = stream.next().await {
        let m = m.unwrap();
        assert!(budget.in_flight() <= budget.capacity());
        count += 1;
        tx.send(m).unwrap();
    }
    drop(stream);
    drop(tx);
    let (seen, max_seen) = consumer.await.unwrap();
    assert_eq!(count, total);
    assert_eq!(seen.len(), total);
    for (uid, len) in &sizes {
        assert_eq!(seen.get(uid), Some(len), "UID {uid} body length");
    }
    assert!(
        budget.peak() <= budget.capacity(),
        "peak {} > budget {}",
        budget.peak(),
        budget.capacity()
    );
    assert!(
        budget.peak() > budget.capacity() / 2,
        "the budget was actually exercised (peak {})",
        budget.peak()
    );
    assert!(max_seen <= budget.capacity());
    assert_eq!(budget.in_flight(), 0, "everything released");
}

#[tokio::test]
async fn reconnector_resumes_after_the_last_uid_seen() {
    let d = Dovecot::start(DovecotOptions::default()).unwrap();
    let cfg = config(&d, Security::Tls);
    let mut s = Session::open(&cfg, &login("alice")).await.unwrap();
    let input: Vec<AppendMessage> = (0..10).map(|i| msg(&format!("m{i}"), &[], None)).collect();
    let uids: Vec<u32> = s
        .append("INBOX", input, 16)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.unwrap().unwrap().uid)
        .collect();
    let validity = s.examine("INBOX").await.unwrap().uid_validity.unwrap();
    drop(s); // connection "lost" after having seen the first 4
    let r = Reconnector::new(cfg.clone(), login("alice"));
    let (mut s2, rest) = r.resume("INBOX", validity, uids[3]).await.unwrap();
    assert_eq!(rest, uids[4..].to_vec());
    let mut st = s2.fetch(&rest, FetchOptions::default());
    let mut n = 0;
    while let Some(m) = st.next().await {
        assert!(m.unwrap().uid > uids[3]);
        n += 1;
    }
    assert_eq!(n, 6);
    // after the last UID: nothing left (the `n:*` quirk is filtered)
    let (_, none) = r
        .resume("INBOX", validity, *uids.last().unwrap())
        .await
        .unwrap();
    assert!(none.is_empty());
    let e = r
        .resume("INBOX", validity.wrapping_add(1), 0)
        .await
        .unwrap_err();
    assert!(matches!(e, Error::UidValidityChanged { .. }));
    let _ = Duration::ZERO;
}

#[tokio::test]
async fn idle_reports_a_new_message() {
    let d = Dovecot::start(DovecotOptions::default()).unwrap();
    let cfg = config(&d, Security::Tls);
    let mut watcher = Session::open(&cfg, &login("alice")).await.unwrap();
    watcher.examine("INBOX").await.unwrap();
    let cfg2 = cfg.clone();
    let writer = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let mut s = Session::open(&cfg2, &login("alice")).await.unwrap();
        s.append("INBOX", vec![msg("wake up", &[], None)], 1)
            .await
            .unwrap();
    });
    let events = watcher.idle(Duration::from_secs(10)).await.unwrap();
    writer.await.unwrap();
    assert!(
        events
            .iter()
            .any(|e| matches!(e, o365_migrate_imap::Untagged::Exists(1))),
        "{events:?}"
    );
    watcher.noop().await.unwrap();
}

#[tokio::test]
async fn dropping_a_fetch_stream_early_keeps_the_session_usable() {
    let d = Dovecot::start(DovecotOptions::default()).unwrap();
    let budget = ByteBudget::new(1024 * 1024);
    let mut cfg = config(&d, Security::Tls);
    cfg.budget = Some(budget.clone());
    let mut s = Session::open(&cfg, &login("alice")).await.unwrap();
    let input: Vec<AppendMessage> = (0..30).map(|i| msg(&format!("m{i}"), &[], None)).collect();
    s.append("INBOX", input, 16).await.unwrap();
    s.examine("INBOX").await.unwrap();
    let uids = s.uid_search(&[SearchKey::All]).await.unwrap();
    {
        let mut st = s.fetch(
            &uids,
            FetchOptions {
                batch_size: 5,
                pipeline: 3,
                ..FetchOptions::default()
            },
        );
        let first = st.next().await.unwrap().unwrap();
        assert_eq!(first.uid, uids[0]);
    } // dropped with two batches in flight
    assert_eq!(s.uid_search(&[SearchKey::All]).await.unwrap(), uids);
    let mut st = s.fetch(&uids[10..12], FetchOptions::default());
    assert_eq!(st.next().await.unwrap().unwrap().uid, uids[10]);
    assert_eq!(st.next().await.unwrap().unwrap().uid, uids[11]);
    assert!(st.next().await.is_none());
    drop(st);
    assert_eq!(budget.in_flight(), 0);
}

/// MULTIAPPEND groups are atomic: when the server refuses one message of a group (Dovecot
/// refuses a 0-byte message), nothing of the group is stored, and the session retries the
/// group one by one, so every other message is stored once and the bad one gets its reason.
#[tokio::test]
async fn a_refused_message_in_a_multiappend_group_fails_alone() {
    let d = Dovecot::start(DovecotOptions::default()).unwrap();
    let mut s = Session::open(&config(&d, Security::Tls), &login("alice"))
        .await
        .unwrap();
    assert!(s.has_capability("MULTIAPPEND"));
    s.create("Group", false).await.unwrap();
    let mut input: Vec<AppendMessage> = (0..6).map(|i| msg(&format!("m{i}"), &[], None)).collect();
    input[2].data = bytes::Bytes::new();
    let results = s.append("Group", input, 4).await.unwrap();
    assert_eq!(results.len(), 6);
    for (i, r) in results.iter().enumerate() {
        if i == 2 {
            let e = r.as_ref().expect_err("the 0-byte message is refused");
            assert!(e.to_string().to_lowercase().contains("zero"), "{e}");
        } else {
            assert!(r.as_ref().is_ok_and(|u| u.is_some()), "message {i}: {r:?}");
        }
    }
    let sel = s.examine("Group").await.unwrap();
    assert_eq!(sel.exists, 5, "five stored, none twice");
}
