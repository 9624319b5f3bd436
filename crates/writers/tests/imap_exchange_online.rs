//! The IMAP writer's Exchange Online profile against a scripted IMAP peer that behaves as
//! Exchange Online is documented/observed to (imapsync FAQ.Office365, Microsoft docs): XOAUTH2
//! with an app-only token for `https://outlook.office365.com/.default`, `\Flagged` dropped at
//! APPEND, "Request is throttled. Suggested Backoff Time: N milliseconds", lines over ~10,500
//! characters refused, `Files` reserved. The token endpoint is wiremock.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use bytes::Bytes;
use o365_migrate_target::identity::Credential;
use o365_migrate_target::imap::{ClientConfig, ImapTarget, ImapTargetConfig, Security};
use o365_migrate_target::{
    Cloud, Flags, FolderSpec, InternalDate, Target, WellKnownFolder, WriteItem, WriteOutcome,
};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

#[derive(Default, Debug)]
struct State {
    auth: Vec<String>,
    created: Vec<String>,
    /// (mailbox, flags, bytes)
    stored: Vec<(String, Vec<String>, Vec<u8>)>,
    appends: usize,
    throttled: usize,
    stores: Vec<String>,
    connections: usize,
    /// The first APPEND is throttled for 300 ms; APPENDs arriving in that window (after 10 ms
    /// of grace) are refused the same way, as Exchange Online does for the whole mailbox.
    throttle_until: Option<Instant>,
    throttled_at: Option<Instant>,
    /// APPENDs that arrived inside the window more than 10 ms after the throttling answer
    /// (not merely already on their way when it was given).
    sent_inside_window: usize,
}

/// Reads one command line with its literals (LITERAL+ `{n+}` or synchronizing `{n}`).
async fn read_command<R: tokio::io::AsyncBufRead + Unpin, W: AsyncWriteExt + Unpin>(
    r: &mut R,
    w: &mut W,
) -> Option<(String, Vec<Vec<u8>>)> {
    let mut text = String::new();
    let mut literals = Vec::new();
    loop {
        let mut line = Vec::new();
        if r.read_until(b'\n', &mut line).await.ok()? == 0 {
            return None;
        }
        let l = String::from_utf8_lossy(&line).trim_end().to_string();
        if let Some(open) = l.rfind('{')
            && l.ends_with('}')
        {
            let spec = &l[open + 1..l.len() - 1];
            let (n, sync) = match spec.strip_suffix('+') {
                Some(n) => (n, false),
                None => (spec, true),
            };
            let n: usize = n.parse().ok()?;
            if sync {
                w.write_all(b"+ Ready\r\n").await.ok()?;
            }
            let mut lit = vec![0; n];
            r.read_exact(&mut lit).await.ok()?;
            text.push_str(&l[..open]);
            text.push_str("{}");
            literals.push(lit);
            continue;
        }
        text.push_str(&l);
        return Some((text, literals));
    }
}

async fn fake_exchange(listener: TcpListener, state: Arc<Mutex<State>>) {
    loop {
        let Ok((sock, _)) = listener.accept().await else {
            return;
        };
        let state = state.clone();
        tokio::spawn(async move {
            state.lock().unwrap().connections += 1;
            let (rd, mut w) = sock.into_split();
            let mut r = BufReader::new(rd);
            let _ = w
                .write_all(b"* OK The Microsoft Exchange IMAP4 service is ready.\r\n")
                .await;
            while let Some((line, literals)) = read_command(&mut r, &mut w).await {
                let mut parts = line.splitn(3, ' ');
                let tag = parts.next().unwrap_or("*").to_string();
                let cmd = parts.next().unwrap_or("").to_ascii_uppercase();
                let rest = parts.next().unwrap_or("").to_string();
                // Exchange Online takes its time over an APPEND; the answer time decides
                // throttling windows, the arrival time whether a request was sent in one.
                let arrived = Instant::now();
                if cmd == "APPEND" {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                let reply = match cmd.as_str() {
                    "CAPABILITY" => format!(
                        "* CAPABILITY IMAP4 IMAP4rev1 AUTH=PLAIN AUTH=XOAUTH2 SASL-IR UIDPLUS MOVE ID UNSELECT CHILDREN IDLE NAMESPACE LITERAL+\r\n{tag} OK CAPABILITY completed.\r\n"
                    ),
                    "AUTHENTICATE" => {
                        state.lock().unwrap().auth.push(rest.clone());
                        format!("{tag} OK AUTHENTICATE completed.\r\n")
                    }
                    "ID" => format!("* ID NIL\r\n{tag} OK ID completed.\r\n"),
                    "NAMESPACE" => format!(
                        "* NAMESPACE ((\"\" \"/\")) NIL NIL\r\n{tag} OK NAMESPACE completed.\r\n"
                    ),
                    "LIST" if rest.ends_with("\"\"") => format!(
                        "* LIST (\\Noselect \\HasChildren) \"/\" \"\"\r\n{tag} OK LIST completed.\r\n"
                    ),
                    "LIST" => {
                        let mut out = String::new();
                        for n in [
                            "INBOX",
                            "Sent Items",
                            "Deleted Items",
                            "Drafts",
                            "Junk Email",
                        ] {
                            out.push_str(&format!("* LIST (\\HasNoChildren) \"/\" \"{n}\"\r\n"));
                        }
                        for n in &state.lock().unwrap().created {
                            out.push_str(&format!("* LIST (\\HasNoChildren) \"/\" \"{n}\"\r\n"));
                        }
                        format!("{out}{tag} OK LIST completed.\r\n")
                    }
                    "CREATE" => {
                        state
                            .lock()
                            .unwrap()
                            .created
                            .push(rest.trim_matches('"').to_string());
                        format!("{tag} OK CREATE completed.\r\n")
                    }
                    "SELECT" | "EXAMINE" => {
                        let selected = rest.trim_matches('"').to_string();
                        let n = state
                            .lock()
                            .unwrap()
                            .stored
                            .iter()
                            .filter(|s| s.0 == selected)
                            .count();
                        format!(
                            "* {n} EXISTS\r\n* 0 RECENT\r\n* FLAGS (\\Seen \\Answered \\Flagged \\Deleted \\Draft $MDNSent)\r\n* OK [PERMANENTFLAGS (\\Seen \\Answered \\Flagged \\Deleted \\Draft $MDNSent)] Permanent flags\r\n* OK [UIDVALIDITY 14] UIDVALIDITY value\r\n* OK [UIDNEXT {}] The next unique identifier value\r\n{tag} OK [READ-WRITE] SELECT completed.\r\n",
                            n + 1
                        )
                    }
                    "APPEND" => {
                        let mut st = state.lock().unwrap();
                        st.appends += 1;
                        let data = literals.first().cloned().unwrap_or_default();
                        let (mailbox, after) = match rest.strip_prefix('"') {
                            Some(q) => q.split_once('"').unwrap_or((q, "")),
                            None => rest.split_once(' ').unwrap_or((rest.as_str(), "")),
                        };
                        let mailbox = mailbox.to_string();
                        let flags: Vec<String> = after
                            .split_once('(')
                            .and_then(|(_, f)| f.split_once(')'))
                            .map(|(f, _)| {
                                f.split(' ')
                                    .filter(|x| !x.is_empty())
                                    .map(String::from)
                                    .collect()
                            })
                            .unwrap_or_default();
                        let now = Instant::now();
                        // Sent inside the window, beyond what was already on its way when the
                        // throttling answer was given: refused, and counted.
                        let in_window = st.throttle_until.is_some_and(|u| arrived < u)
                            && st.throttled_at.is_some_and(|t| {
                                arrived.saturating_duration_since(t) >= Duration::from_millis(10)
                            });
                        if in_window {
                            st.sent_inside_window += 1;
                        }
                        if st.appends == 1 {
                            st.throttled_at = Some(now);
                            st.throttle_until = Some(now + Duration::from_millis(300));
                        }
                        if st.appends == 1 || in_window {
                            st.throttled += 1;
                            format!(
                                "{tag} NO Request is throttled. Suggested Backoff Time: 300 milliseconds\r\n"
                            )
                        } else if data.split(|b| *b == b'\n').any(|l| l.len() > 10_500) {
                            format!("{tag} NO [TOOBIG] Line too long\r\n")
                        } else {
                            // Exchange Online drops \Flagged given at APPEND.
                            let kept: Vec<String> =
                                flags.into_iter().filter(|f| f != "\\Flagged").collect();
                            st.stored.push((mailbox, kept, data));
                            let uid = st.stored.len();
                            format!("{tag} OK [APPENDUID 14 {uid}] APPEND completed.\r\n")
                        }
                    }
                    "UID" if rest.to_ascii_uppercase().starts_with("FETCH") => {
                        let set = rest.split(' ').nth(1).unwrap_or("");
                        let st = state.lock().unwrap();
                        let mut out = String::new();
                        for u in set.split(',').filter_map(|u| u.parse::<usize>().ok()) {
                            if let Some((_, f, _)) = st.stored.get(u - 1) {
                                out.push_str(&format!(
                                    "* {u} FETCH (UID {u} FLAGS ({}))\r\n",
                                    f.join(" ")
                                ));
                            }
                        }
                        format!("{out}{tag} OK FETCH completed.\r\n")
                    }
                    "UID" if rest.to_ascii_uppercase().starts_with("STORE") => {
                        let mut st = state.lock().unwrap();
                        st.stores.push(rest.clone());
                        let set = rest.split(' ').nth(1).unwrap_or("");
                        for u in set.split(',').filter_map(|u| u.parse::<usize>().ok()) {
                            if let Some(s) = st.stored.get_mut(u - 1) {
                                s.1.push("\\Flagged".into());
                            }
                        }
                        format!("{tag} OK STORE completed.\r\n")
                    }
                    "UID" => format!("* SEARCH\r\n{tag} OK SEARCH completed.\r\n"),
                    "LOGOUT" => format!(
                        "* BYE Microsoft Exchange Server IMAP4 server signing off.\r\n{tag} OK LOGOUT completed.\r\n"
                    ),
                    _ => format!("{tag} OK {cmd} completed.\r\n"),
                };
                if w.write_all(reply.as_bytes()).await.is_err() || cmd == "LOGOUT" {
                    return;
                }
            }
        });
    }
}

/// A token endpoint (wiremock) that hands out `token`, a fake Exchange Online on loopback, and
/// the Exchange Online profile pointed at both.
async fn exchange_online(token: &str) -> (MockServer, Arc<Mutex<State>>, ImapTargetConfig) {
    let idp = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/contoso.onmicrosoft.com/oauth2/v2.0/token"))
        .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({
            "token_type": "Bearer", "expires_in": 3599, "access_token": token
        })))
        .mount(&idp)
        .await;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let state = Arc::new(Mutex::new(State::default()));
    tokio::spawn(fake_exchange(listener, state.clone()));
    let mut endpoints = Cloud::Global.endpoints();
    endpoints.authority = idp.uri();
    let mut config = ImapTargetConfig::exchange_online(
        "contoso.onmicrosoft.com",
        "11111111-2222-3333-4444-555555555555",
        Credential::ClientSecret("app-secret".into()),
        endpoints,
    )
    .unwrap();
    assert_eq!(config.client.host, "outlook.office365.com");
    assert_eq!(config.client.port, 993);
    config.client = ClientConfig::new("127.0.0.1", port, Security::Plaintext);
    (idp, state, config)
}

#[tokio::test]
async fn exchange_online_profile_token_flagged_throttling_long_lines_and_files() {
    let (idp, state, config) = exchange_online("tok-exo-1").await;
    let target = ImapTarget::new(config);
    let caps = target.capabilities();
    assert_eq!(caps.name, "imap-exchange-online");
    assert!(!caps.keeps_raw_bytes);
    assert_eq!(caps.max_message_bytes, Some(35 * 1024 * 1024));

    let writer = target.open_mailbox("alice@contoso.com").await.unwrap();
    // The token was requested for Exchange Online, not Graph.
    let token_req = &idp.received_requests().await.unwrap()[0];
    let form = String::from_utf8_lossy(&token_req.body).into_owned();
    assert!(
        form.contains("scope=https%3A%2F%2Foutlook.office365.com%2F.default"),
        "{form}"
    );
    assert!(form.contains("grant_type=client_credentials"));
    // XOAUTH2 carried the mailbox and the token.
    let auth = state.lock().unwrap().auth[0].clone();
    let b64 = auth.split(' ').nth(1).unwrap();
    let sasl = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .unwrap();
    assert!(auth.starts_with("XOAUTH2 "));
    assert_eq!(
        sasl,
        b"user=alice@contoso.com\x01auth=Bearer tok-exo-1\x01\x01"
    );

    let plan = [
        FolderSpec::at_root("Files", ["Files"]),
        FolderSpec::well_known("Sent", WellKnownFolder::SentItems),
        FolderSpec::well_known("Trash", WellKnownFolder::DeletedItems),
    ];
    let handles = writer.ensure_folders(&plan).await.unwrap();
    assert_eq!(handles[0].target_id, "Files (migrated)");
    assert!(
        handles[0].notes[0].contains("reserved"),
        "{:?}",
        handles[0].notes
    );
    assert!(handles[0].created);
    assert_eq!(handles[1].target_id, "Sent Items");
    assert!(!handles[1].created);
    assert_eq!(handles[2].target_id, "Deleted Items");

    let long_line = "x".repeat(12_000);
    let raw = format!(
        "Message-ID: <long@example.org>\r\nFrom: a@example.org\r\nSubject: long\r\n\r\n{long_line}\r\n"
    );
    let flagged = WriteItem {
        raw: Bytes::from(raw.clone()),
        flags: Flags {
            seen: true,
            flagged: true,
            ..Default::default()
        },
        internal_date: Some(InternalDate::from_unix_utc(1_700_000_000).unwrap()),
        fingerprint: "mid:<long@example.org>".into(),
        internet_message_id: None,
    };
    let plain_raw = b"Message-ID: <p@example.org>\r\nSubject: plain\r\n\r\nhi\r\n";
    let plain = WriteItem {
        raw: Bytes::from_static(plain_raw),
        flags: Flags::default(),
        internal_date: None,
        fingerprint: "mid:<p@example.org>".into(),
        internet_message_id: None,
    };
    let t = Instant::now();
    let out = writer.write(&handles[0], &flagged).await.unwrap();
    let WriteOutcome::Written { target_id, notes } = out else {
        panic!("{out:?}")
    };
    assert!(
        t.elapsed() >= Duration::from_millis(300),
        "back-off honoured"
    );
    assert_eq!(target_id, "14:1");
    assert!(!notes.is_empty(), "the wrapped line is reported");
    writer.write(&handles[1], &plain).await.unwrap();

    let st = state.lock().unwrap();
    assert_eq!(st.throttled, 1);
    assert!(st.connections >= 2, "reconnected after throttling");
    assert_eq!(st.created, ["Files (migrated)"]);
    let (mbox, flags, data) = &st.stored[0];
    assert_eq!(mbox, "Files (migrated)");
    assert!(
        flags.contains(&"\\Flagged".to_string()),
        "re-applied by STORE: {flags:?}"
    );
    assert!(flags.contains(&"\\Seen".to_string()));
    assert_eq!(st.stores.len(), 1);
    assert!(st.stores[0].contains("+FLAGS"), "{}", st.stores[0]);
    assert!(data.split(|b| *b == b'\n').all(|l| l.len() <= 10_002));
    let body_start = data.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    let body_chars = data[body_start..].iter().filter(|b| **b == b'x').count();
    assert_eq!(body_chars, 12_000, "wrapped, not cut");
    // A message with short lines is sent unchanged, and without a STORE.
    assert_eq!(st.stored[1].0, "Sent Items");
    assert_eq!(st.stored[1].2, plain_raw);
}

/// "Suggested Backoff Time" pauses the whole mailbox, not the one connection that got it: with
/// three connections appending at once, no APPEND is sent inside the back-off (beyond those
/// already on their way), and the pause is counted for the report.
#[tokio::test]
async fn suggested_backoff_pauses_every_connection_of_the_mailbox() {
    let (_idp, state, mut config) = exchange_online("tok-exo-2").await;
    config.connections_per_mailbox = 3;
    config.batch = 1;
    let writer = ImapTarget::new(config)
        .open_mailbox("alice@contoso.com")
        .await
        .unwrap();
    let inbox = writer
        .ensure_folders(&[FolderSpec::well_known("INBOX", WellKnownFolder::Inbox)])
        .await
        .unwrap()
        .remove(0);
    let items: Vec<WriteItem> = (0..12)
        .map(|n| {
            let raw = format!("Message-ID: <b{n}@example.org>\r\nSubject: {n}\r\n\r\nbody {n}\r\n");
            WriteItem {
                fingerprint: format!("mid:<b{n}@example.org>"),
                raw: Bytes::from(raw),
                flags: Flags::default(),
                internal_date: None,
                internet_message_id: None,
            }
        })
        .collect();
    let mut writes = tokio::task::JoinSet::new();
    for it in items {
        let (w, h) = (writer.clone(), inbox.clone());
        writes.spawn(async move { w.write(&h, &it).await });
    }
    while let Some(r) = writes.join_next().await {
        let r = r.unwrap();
        assert!(matches!(r, Ok(WriteOutcome::Written { .. })), "{r:?}");
    }
    let st = state.lock().unwrap();
    assert_eq!(st.stored.len(), 12);
    assert!(st.throttled >= 1);
    assert_eq!(
        st.sent_inside_window, 0,
        "APPENDs were sent inside the back-off on other connections"
    );
    let t = writer.throttling();
    assert!(t.pauses >= 1 && t.throttled_answers >= 1, "{t:?}");
}
