//! The Gmail IMAP stand-in, driven by the project's own IMAP client.

use o365_migrate_imap::{
    Auth, ClientConfig, Error as ImapError, FetchItems, FetchOptions, SearchKey, Security, Session,
    SpecialUse, StaticToken,
};
use o365_migrate_testkit::gmail::{BANDWIDTH_EXCEEDED, INVALID_CREDENTIALS, MAIL_SCOPE};
use o365_migrate_testkit::google_token::{CLIENT_ID, key_file, new_rsa_pem};
use o365_migrate_testkit::{
    GmailMessage, GmailOptions, GmailServer, GoogleTokenStandIn, TokenConfig,
};
use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

const ALICE: &str = "alice@example.com";

fn raw(n: usize, body_len: usize) -> Vec<u8> {
    format!(
        "From: Bob <bob@example.net>\r\nTo: {ALICE}\r\nSubject: test {n}\r\nMessage-ID: <m{n}@example.net>\r\n\r\n{}\r\n",
        "x".repeat(body_len)
    )
    .into_bytes()
}

fn config(server: &GmailServer, tls: bool) -> ClientConfig {
    let security = if tls {
        Security::Tls
    } else {
        Security::Plaintext
    };
    let mut c = ClientConfig::new("127.0.0.1", server.port(), security);
    c.tls.extra_ca_pem = server.ca_pem();
    c.client_id = None;
    c
}

fn app_password(pw: &str) -> Auth {
    Auth::Login {
        user: ALICE.into(),
        password: pw.into(),
    }
}

async fn login(server: &GmailServer, auth: &Auth) -> Result<Session, ImapError> {
    Session::open(&config(server, false), auth).await
}

/// A token stand-in delegating the mail scope, and a token for alice from it.
async fn stand_in_and_token() -> (GoogleTokenStandIn, String) {
    let pem = new_rsa_pem().unwrap();
    let stand_in = GoogleTokenStandIn::start(
        &pem,
        TokenConfig {
            users: HashSet::from([ALICE.to_owned()]),
            delegation: HashMap::from([(CLIENT_ID.to_owned(), vec![MAIL_SCOPE.to_owned()])]),
            refresh: HashMap::new(),
            desktop_clients: HashMap::new(),
        },
    )
    .unwrap();
    let key =
        o365_migrate_google::ServiceAccountKey::from_json(&key_file(&pem, stand_in.url())).unwrap();
    let tokens = o365_migrate_google::GoogleTokens::service_account(
        key,
        o365_migrate_google::TokenOptions::default(),
    )
    .unwrap();
    let token = tokens
        .access_token(ALICE)
        .await
        .unwrap()
        .expose()
        .to_owned();
    (stand_in, token)
}

fn xoauth2(token: &str) -> Auth {
    Auth::XOAuth2 {
        user: ALICE.into(),
        tokens: std::sync::Arc::new(StaticToken(token.to_owned().into())),
    }
}

#[tokio::test]
async fn xoauth2_with_a_stand_in_token_and_gmails_refusals() {
    let (stand_in, token) = stand_in_and_token().await;
    let server = GmailServer::start(GmailOptions {
        tls: true,
        tokens: Some(stand_in.registry()),
        ..Default::default()
    })
    .unwrap();
    server.add_user(ALICE);
    let s = Session::open(&config(&server, true), &xoauth2(&token))
        .await
        .unwrap();
    assert!(s.has_capability("X-GM-EXT-1"));
    s.logout().await.unwrap();
    // A token nobody issued, then the real one expired: Gmail's failure.
    for bad in ["ya29.forged", token.as_str()] {
        if bad == token {
            assert!(stand_in.registry().expire(&token));
        }
        let e = Session::open(&config(&server, true), &xoauth2(bad))
            .await
            .unwrap_err();
        assert!(
            matches!(&e, ImapError::LoginFailed { text, .. } if INVALID_CREDENTIALS.ends_with(text.as_str()) || text.contains("Invalid credentials")),
            "{e:?}"
        );
    }
    let stats = server.stats(ALICE).unwrap();
    assert_eq!((stats.logins, stats.failed_logins), (1, 2));
}

#[tokio::test]
async fn labels_are_folders_with_one_msgid() {
    let server = GmailServer::start(GmailOptions::default()).unwrap();
    server.add_user(ALICE);
    server.set_app_password(ALICE, "app-pw").unwrap();
    let bytes = raw(1, 300);
    let id = server
        .append(
            ALICE,
            GmailMessage::new(bytes.clone())
                .labels(&["\\Inbox", "Clients/ACME", "Reisekosten Über"])
                .flags(&["\\Seen"]),
        )
        .unwrap();
    server
        .append(ALICE, GmailMessage::new(raw(2, 10)).labels(&["\\Sent"]))
        .unwrap();
    let mut s = login(&server, &app_password("app-pw")).await.unwrap();
    let boxes = s.list_mailboxes(false).await.unwrap();
    let by_use = |u: SpecialUse| {
        boxes
            .iter()
            .find(|m| m.special_use == Some(u))
            .map(|m| m.name.clone())
    };
    assert_eq!(by_use(SpecialUse::All).as_deref(), Some("[Gmail]/All Mail"));
    assert_eq!(
        by_use(SpecialUse::Sent).as_deref(),
        Some("[Gmail]/Sent Mail")
    );
    assert_eq!(by_use(SpecialUse::Junk).as_deref(), Some("[Gmail]/Spam"));
    assert_eq!(by_use(SpecialUse::Trash).as_deref(), Some("[Gmail]/Trash"));
    let gmail = boxes.iter().find(|m| m.name == "[Gmail]").unwrap();
    assert!(!gmail.selectable);
    assert!(boxes.iter().any(|m| m.name == "Clients" && m.selectable));

    let mut seen = Vec::new();
    for folder in [
        "INBOX",
        "Clients/ACME",
        "Reisekosten Über",
        "[Gmail]/All Mail",
    ] {
        s.examine(folder).await.unwrap();
        let uids = s.uid_search(&[SearchKey::All]).await.unwrap();
        let items = FetchItems {
            gmail: true,
            ..FetchItems::default()
        };
        let mut stream = s.fetch(
            &uids,
            FetchOptions {
                items,
                ..Default::default()
            },
        );
        while let Some(m) = stream.next().await {
            let m = m.unwrap();
            if m.gmail_msgid == Some(id) {
                assert_eq!(m.body.as_deref(), Some(&bytes[..]), "{folder}");
                assert!(m.flags.contains(&"\\Seen".to_owned()));
                seen.push((folder, m.gmail_labels.unwrap()));
            }
        }
    }
    assert_eq!(seen.len(), 4, "{seen:?}");
    let all_mail_labels = &seen[3].1;
    assert!(
        all_mail_labels.contains(&"\\Inbox".to_owned()),
        "{all_mail_labels:?}"
    );
    assert!(
        all_mail_labels.contains(&"Clients/ACME".to_owned()),
        "{all_mail_labels:?}"
    );
    // User labels in modified UTF-7, like folder names.
    assert!(
        all_mail_labels.contains(&"Reisekosten &ANw-ber".to_owned()),
        "{all_mail_labels:?}"
    );
    // Like Gmail, the selected folder's own label is left out.
    assert!(!seen[0].1.contains(&"\\Inbox".to_owned()), "{seen:?}");
    assert_eq!(
        server.folder_uids(ALICE, "[Gmail]/All Mail").unwrap().len(),
        2
    );
    s.logout().await.unwrap();
}

#[tokio::test]
async fn bandwidth_alert_then_locked_until_the_window_reopens() {
    let server = GmailServer::start(GmailOptions::default()).unwrap();
    server.add_user(ALICE);
    server.set_app_password(ALICE, "pw").unwrap();
    for n in 0..5 {
        server
            .append(ALICE, GmailMessage::new(raw(n, 1000)))
            .unwrap();
    }
    let window = Duration::from_secs(2);
    server.set_download_limit(2500, window);
    let mut s = login(&server, &app_password("pw")).await.unwrap();
    s.examine("[Gmail]/All Mail").await.unwrap();
    let uids = s.uid_search(&[SearchKey::All]).await.unwrap();
    let started = Instant::now();
    let mut got = 0;
    let mut refused = None;
    let mut stream = s.fetch(
        &uids,
        FetchOptions {
            items: FetchItems::body_only(),
            batch_size: 1,
            pipeline: 1,
        },
    );
    while let Some(m) = stream.next().await {
        match m {
            Ok(_) => got += 1,
            Err(e) => {
                refused = Some(format!("{e}"));
                break;
            }
        }
    }
    drop(stream);
    assert_eq!(got, 2, "two 1 KB messages fit in 2,500 bytes");
    let text = refused.expect("the third FETCH is refused");
    assert!(
        text.contains("Account exceeded command or bandwidth limits"),
        "{text}"
    );
    let e = login(&server, &app_password("pw")).await.unwrap_err();
    assert!(format!("{e}").contains("bandwidth limits"), "{e}");
    let stats = server.stats(ALICE).unwrap();
    assert_eq!(stats.bandwidth_alerts, 2);
    assert!(
        stats.bytes_served > 2000 && stats.bytes_served <= 2500,
        "{stats:?}"
    );
    assert!(BANDWIDTH_EXCEEDED.contains("OVERQUOTA"));
    // Wait out the (measured) window: sign-in works again.
    tokio::time::sleep(window.saturating_sub(started.elapsed()) + Duration::from_millis(100)).await;
    login(&server, &app_password("pw")).await.unwrap();
}

#[tokio::test]
async fn connection_cap_refuses_like_gmail() {
    let server = GmailServer::start(GmailOptions::default()).unwrap();
    server.add_user(ALICE);
    server.set_app_password(ALICE, "pw").unwrap();
    server.set_connection_cap(3);
    let mut open = Vec::new();
    for _ in 0..3 {
        open.push(login(&server, &app_password("pw")).await.unwrap());
    }
    let e = login(&server, &app_password("pw")).await.unwrap_err();
    assert!(
        format!("{e}").contains("Too many simultaneous connections"),
        "{e}"
    );
    assert!(login(&server, &app_password("wrong")).await.is_err());
    let stats = server.stats(ALICE).unwrap();
    assert_eq!(
        (
            stats.connections,
            stats.peak_connections,
            stats.too_many_connections
        ),
        (3, 3, 1)
    );
    open.pop().unwrap().logout().await.unwrap();
    // The server notices the closed connection.
    let deadline = Instant::now() + Duration::from_secs(5);
    while server.stats(ALICE).unwrap().connections != 2 {
        assert!(
            Instant::now() < deadline,
            "the closed connection was not counted off"
        );
        tokio::task::yield_now().await;
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    login(&server, &app_password("pw")).await.unwrap();
}
