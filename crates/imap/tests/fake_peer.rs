//! A scripted fake server on 127.0.0.1 drives the tokio session into every failure path:
//! truncated responses, malformed responses, a 4 GB literal announcement, unexpected BYE
//! (with and without Exchange's back-off), failed logins. Each must give a typed error,
//! never a panic and never a huge allocation.

use o365_migrate_imap::{Auth, ByteBudget, ClientConfig, Error, FetchOptions, Security, Session};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

/// Starts a peer that sends `greeting`, then for each client line sends the next reply.
/// `{tag}` in a reply is replaced by the tag of the line it answers.
async fn peer(greeting: &'static str, replies: Vec<&'static str>) -> ClientConfig {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        let (sock, _) = listener.accept().await.unwrap();
        let (r, mut w) = sock.into_split();
        let mut r = BufReader::new(r);
        w.write_all(greeting.as_bytes()).await.unwrap();
        for reply in replies {
            let mut line = String::new();
            if r.read_line(&mut line).await.unwrap_or(0) == 0 {
                return;
            }
            let tag = line.split(' ').next().unwrap_or("").to_owned();
            let _ = w.write_all(reply.replace("{tag}", &tag).as_bytes()).await;
        }
        let _ = w.shutdown().await;
        // keep the socket open briefly so the client sees data before EOF
        tokio::time::sleep(Duration::from_millis(50)).await;
    });
    let mut c = ClientConfig::new("127.0.0.1", port, Security::Plaintext);
    c.client_id = None;
    c.timeouts.read = Duration::from_secs(5);
    c
}

const GREETING: &str = "* OK [CAPABILITY IMAP4rev1 LITERAL+ AUTH=PLAIN SASL-IR] fake ready\r\n";

async fn fetch_one(cfg: &ClientConfig) -> Result<(), Error> {
    let mut s = Session::connect(cfg).await?;
    let mut st = s.fetch(&[1], FetchOptions::default());
    while let Some(m) = st.next().await {
        m?;
    }
    Ok(())
}

#[tokio::test]
async fn truncated_literal_then_close_is_connection_closed() {
    let cfg = peer(
        GREETING,
        vec!["* 1 FETCH (UID 1 BODY[] {100}\r\nonly thirty bytes of the body"],
    )
    .await;
    let e = fetch_one(&cfg).await.unwrap_err();
    assert!(matches!(e, Error::ConnectionClosed), "{e:?}");
    assert!(e.is_retryable());
}

#[tokio::test]
async fn four_gigabyte_literal_is_refused_before_allocating() {
    let mut cfg = peer(
        GREETING,
        vec!["* 1 FETCH (UID 1 BODY[] {4294967296}\r\nxxxx"],
    )
    .await;
    let budget = ByteBudget::new(8 * 1024 * 1024);
    cfg.budget = Some(budget.clone());
    cfg.max_literal = 64 * 1024 * 1024;
    let e = fetch_one(&cfg).await.unwrap_err();
    assert!(
        matches!(
            e,
            Error::LiteralTooLarge {
                size: 4_294_967_296,
                ..
            }
        ),
        "{e:?}"
    );
    assert!(e.is_fatal());
    assert_eq!(
        budget.peak(),
        0,
        "nothing was reserved for the refused literal"
    );
}

#[tokio::test]
async fn malformed_fetch_is_a_protocol_error() {
    let cfg = peer(
        GREETING,
        vec!["* 1 FETCH (UID 1 BODY[] {3}\r\nab)\r\n{tag} OK done\r\n"],
    )
    .await;
    let e = fetch_one(&cfg).await.unwrap_err();
    assert!(matches!(e, Error::Protocol { .. }), "{e:?}");
    let cfg = peer(
        GREETING,
        vec!["* 1 FETCH (UID 1 FLAGS (\\Seen) RFC822.SIZE 3)\r\n{tag} OK done\r\n"],
    )
    .await;
    let e = fetch_one(&cfg).await.unwrap_err();
    assert!(
        matches!(e, Error::Protocol { .. }),
        "FETCH without the asked-for body must not be skipped: {e:?}"
    );
}

#[tokio::test]
async fn unexpected_bye_with_exchange_backoff_is_throttled() {
    let cfg = peer(
        GREETING,
        vec!["* BYE Request is throttled. Suggested Backoff Time: 299961 milliseconds\r\n"],
    )
    .await;
    let e = fetch_one(&cfg).await.unwrap_err();
    assert_eq!(
        e.retry_after(),
        Some(Duration::from_millis(299_961)),
        "{e:?}"
    );
    assert!(e.is_retryable());
    let cfg = peer(GREETING, vec!["* BYE server shutting down\r\n"]).await;
    let e = fetch_one(&cfg).await.unwrap_err();
    assert!(
        matches!(&e, Error::Bye { text } if text == "server shutting down"),
        "{e:?}"
    );
}

#[tokio::test]
async fn bye_greeting_and_garbage_greeting() {
    let cfg = peer("* BYE too many connections\r\n", vec![]).await;
    assert!(matches!(
        Session::connect(&cfg).await.unwrap_err(),
        Error::Throttled { .. } | Error::Bye { .. }
    ));
    let cfg = peer("HTTP/1.1 400 Bad Request\r\n\r\n", vec![]).await;
    assert!(matches!(
        Session::connect(&cfg).await.unwrap_err(),
        Error::Protocol { .. }
    ));
}

#[tokio::test]
async fn failed_login_names_the_user_but_never_the_secret() {
    let cfg = peer(
        GREETING,
        vec!["{tag} NO [AUTHENTICATIONFAILED] Authentication failed.\r\n"],
    )
    .await;
    let mut s = Session::connect(&cfg).await.unwrap();
    let auth = Auth::Plain {
        authorize_as: Some("alice".into()),
        user: "admin".into(),
        password: "Sup3r-S3cret!".into(),
    };
    let e = s.login(&auth).await.unwrap_err();
    let shown = format!("{e} {e:?}");
    assert!(matches!(e, Error::LoginFailed { .. }), "{e:?}");
    assert!(shown.contains("alice"));
    assert!(!shown.contains("Sup3r-S3cret!"), "{shown}");
    // base64 of the SASL message must not leak either
    assert!(!shown.contains("U3VwMy1TM2NyZXQh"));
}

#[tokio::test]
async fn silent_server_times_out() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let _keep = tokio::spawn(async move {
        let (_s, _) = listener.accept().await.unwrap();
        tokio::time::sleep(Duration::from_secs(10)).await;
    });
    let mut cfg = ClientConfig::new("127.0.0.1", port, Security::Plaintext);
    cfg.timeouts.read = Duration::from_millis(200);
    let e = Session::connect(&cfg).await.unwrap_err();
    assert!(matches!(e, Error::Timeout { .. }), "{e:?}");
}

#[tokio::test]
async fn pipelined_append_captures_appenduid_and_honours_appendlimit() {
    let cfg = peer(
        "* OK [CAPABILITY IMAP4rev1 LITERAL+ UIDPLUS APPENDLIMIT=100] ready\r\n",
        vec!["{tag} OK [APPENDUID 77 5] done\r\n"],
    )
    .await;
    let mut s = Session::connect(&cfg).await.unwrap();
    assert_eq!(s.append_limit(), Some(100));
    let small = o365_migrate_imap::AppendMessage {
        flags: vec!["\\Seen".into()],
        internal_date: None,
        data: bytes::Bytes::from_static(b"Subject: a\r\n\r\nb\r\n"),
    };
    let big = o365_migrate_imap::AppendMessage {
        flags: vec![],
        internal_date: None,
        data: bytes::Bytes::from(vec![b'x'; 200]),
    };
    let r = s.append("INBOX", vec![big, small], 8).await.unwrap();
    assert!(matches!(
        r[0],
        Err(Error::AppendTooLarge {
            size: 200,
            limit: 100
        })
    ));
    assert_eq!(
        r[1].as_ref().unwrap().unwrap(),
        o365_migrate_imap::AppendUid {
            uid_validity: 77,
            uid: 5
        }
    );
}

/// A peer accepting `conns` connections, each answering AUTHENTICATE with OK and recording
/// the lines it received.
async fn auth_peer(conns: usize) -> (ClientConfig, tokio::sync::mpsc::UnboundedReceiver<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        for _ in 0..conns {
            let (sock, _) = listener.accept().await.unwrap();
            let (r, mut w) = sock.into_split();
            let mut r = BufReader::new(r);
            w.write_all(
                b"* OK [CAPABILITY IMAP4rev1 SASL-IR AUTH=XOAUTH2 AUTH=OAUTHBEARER] ready\r\n",
            )
            .await
            .unwrap();
            let mut line = String::new();
            r.read_line(&mut line).await.unwrap();
            tx.send(line.clone()).unwrap();
            let tag = line.split(' ').next().unwrap().to_owned();
            w.write_all(
                format!("{tag} OK [CAPABILITY IMAP4rev1 IDLE] authenticated\r\n").as_bytes(),
            )
            .await
            .unwrap();
        }
    });
    let mut c = ClientConfig::new("127.0.0.1", port, Security::Plaintext);
    c.client_id = None;
    (c, rx)
}

struct CountingTokens(std::sync::atomic::AtomicUsize);

impl o365_migrate_imap::TokenProvider for CountingTokens {
    fn token(&self) -> o365_migrate_imap::TokenFuture<'_> {
        let n = self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Box::pin(async move { Ok(o365_migrate_imap::Secret::new(format!("token-{n}"))) })
    }
}

#[tokio::test]
async fn oauth_logins_fetch_a_fresh_token_on_every_connection() {
    use base64::Engine as _;
    let (cfg, mut lines) = auth_peer(3).await;
    let tokens = std::sync::Arc::new(CountingTokens(0.into()));
    let r = o365_migrate_imap::Reconnector::new(
        cfg.clone(),
        Auth::XOAuth2 {
            user: "u@example.com".into(),
            tokens: tokens.clone(),
        },
    );
    let s1 = r.connect().await.unwrap();
    assert!(
        s1.has_capability("IDLE"),
        "capabilities after login come from the OK code"
    );
    let _s2 = r.connect().await.unwrap();
    let decode = |line: String| {
        let b64 = line.trim_end().rsplit(' ').next().unwrap().to_owned();
        String::from_utf8(
            base64::engine::general_purpose::STANDARD
                .decode(b64)
                .unwrap(),
        )
        .unwrap()
    };
    let l1 = lines.recv().await.unwrap();
    assert!(l1.contains("AUTHENTICATE XOAUTH2 "), "{l1}");
    assert_eq!(
        decode(l1),
        "user=u@example.com\x01auth=Bearer token-0\x01\x01"
    );
    assert_eq!(
        decode(lines.recv().await.unwrap()),
        "user=u@example.com\x01auth=Bearer token-1\x01\x01"
    );
    let mut s3 = Session::connect(&cfg).await.unwrap();
    s3.login(&Auth::OAuthBearer {
        user: "u@example.com".into(),
        tokens: tokens.clone(),
    })
    .await
    .unwrap();
    assert_eq!(
        decode(lines.recv().await.unwrap()),
        "n,a=u@example.com,\x01auth=Bearer token-2\x01\x01"
    );
}

#[tokio::test]
async fn synchronizing_literal_waits_for_continuation() {
    // No LITERAL+: the 8-bit password goes as {N} and must wait for "+".
    let cfg = peer(
        "* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN] ready\r\n",
        vec![
            "+ go ahead\r\n",
            "A1 OK [CAPABILITY IMAP4rev1] logged in\r\n",
        ],
    )
    .await;
    let mut s = Session::connect(&cfg).await.unwrap();
    s.login(&Auth::Login {
        user: "u".into(),
        password: "pässwörd".into(),
    })
    .await
    .unwrap();
    assert_eq!(s.capabilities(), ["IMAP4rev1".to_string()]);
}

#[tokio::test]
async fn throttled_append_reports_every_message_exactly() {
    // Window 2. Each APPEND is two lines on the wire (command line, literal + CRLF).
    // A1 succeeds → A3 is sent; A2 is throttled, A3 still completes; A4 must not be sent.
    let cfg = peer(
        "* OK [CAPABILITY IMAP4rev1 LITERAL+ UIDPLUS] ready\r\n",
        vec![
            "",
            "",
            "",
            "A1 OK [APPENDUID 9 1] done\r\n",
            "",
            "A2 NO [UNAVAILABLE] Request is throttled. Suggested Backoff Time: 1500 milliseconds\r\nA3 OK [APPENDUID 9 2] done\r\n",
        ],
    )
    .await;
    let mut s = Session::connect(&cfg).await.unwrap();
    let m = |t: &'static str| o365_migrate_imap::AppendMessage {
        flags: vec![],
        internal_date: None,
        data: bytes::Bytes::from_static(t.as_bytes()),
    };
    let r = s
        .append("INBOX", vec![m("one"), m("two"), m("three"), m("four")], 2)
        .await
        .unwrap();
    assert_eq!(r[0].as_ref().unwrap().unwrap().uid, 1);
    assert_eq!(
        r[1].as_ref().unwrap_err().retry_after(),
        Some(Duration::from_millis(1500))
    );
    assert_eq!(r[2].as_ref().unwrap().unwrap().uid, 2);
    assert!(
        matches!(&r[3], Err(Error::Throttled { text, .. }) if text.starts_with("not sent")),
        "{:?}",
        r[3]
    );
}
