//! The fault proxy against a real Dovecot behind it: every fault is really injected and
//! observed by the testkit IMAP client (or a raw socket where the exact bytes matter), and
//! the counters match what happened.

use std::time::{Duration, Instant};

use o365_migrate_testkit::fault::{Action, BYE_LINE, Fault, FaultPlan, FaultProxy};
use o365_migrate_testkit::{AppendRequest, Client, Dovecot, DovecotOptions, Error};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const BODY_LINES: usize = 800;

/// A ~50 KB message (CRLF).
fn message() -> Vec<u8> {
    let mut m = b"From: a@example.test\r\nTo: b@example.test\r\nSubject: proxied\r\nMessage-ID: <proxied@example.test>\r\n\r\n".to_vec();
    for i in 0..BODY_LINES {
        m.extend_from_slice(
            format!("line {i:05} of a message fetched through the fault proxy\r\n").as_bytes(),
        );
    }
    m
}

/// A Dovecot whose alice has `message()` in INBOX (loaded directly, not via the proxy).
async fn dovecot_with_message() -> Dovecot {
    let dovecot = Dovecot::start(DovecotOptions::default()).expect("start dovecot");
    let mut imap = dovecot.login("alice").await.unwrap();
    imap.append("INBOX", &AppendRequest::new(message(), Vec::new(), None))
        .await
        .unwrap();
    imap.logout().await.unwrap();
    dovecot
}

async fn login_via(proxy: &FaultProxy) -> Result<Client, Error> {
    let mut c = Client::connect_plain(proxy.host(), proxy.port()).await?;
    c.login("alice", "alice-secret").await?;
    Ok(c)
}

async fn fetch_via(proxy: &FaultProxy) -> Result<Vec<u8>, Error> {
    let mut c = login_via(proxy).await?;
    c.select("INBOX").await?;
    let mut m = c.uid_fetch_full("1:*").await?;
    let body = m.pop().and_then(|m| m.body).unwrap_or_default();
    c.logout().await?;
    Ok(body)
}

/// Waits until every accepted connection's task has ended.
async fn settle(proxy: &FaultProxy) {
    for _ in 0..500 {
        let s = proxy.stats();
        if s.connections_closed == s.connections_accepted {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("connections did not end: {:?}", proxy.stats());
}

fn is_io(err: &Error, kind: std::io::ErrorKind) -> bool {
    matches!(err, Error::Io { source, .. } if source.kind() == kind)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transparent_without_faults_and_counts_exact_bytes() {
    let dovecot = dovecot_with_message().await;
    let proxy = FaultProxy::start(dovecot.imap_addr(), FaultPlan::new())
        .await
        .unwrap();
    assert_eq!(fetch_via(&proxy).await.unwrap(), message());

    // Exact byte counts with a raw socket.
    let mut s = TcpStream::connect(proxy.addr()).await.unwrap();
    let sent = b"a1 LOGIN alice alice-secret\r\na2 LOGOUT\r\n";
    s.write_all(sent).await.unwrap();
    let mut received = Vec::new();
    s.read_to_end(&mut received).await.unwrap();
    assert!(received.windows(5).any(|w| w == b"a2 OK"));
    settle(&proxy).await;
    let before = proxy.stats();
    assert_eq!(before.connections_accepted, 2);
    assert_eq!(before.faults_injected(), 0);
    // A third connection whose bytes alone we can attribute.
    let mut s = TcpStream::connect(proxy.addr()).await.unwrap();
    s.write_all(sent).await.unwrap();
    let mut received = Vec::new();
    s.read_to_end(&mut received).await.unwrap();
    settle(&proxy).await;
    let after = proxy.stats();
    assert_eq!(
        after.bytes_upstream - before.bytes_upstream,
        sent.len() as u64
    );
    assert_eq!(
        after.bytes_downstream - before.bytes_downstream,
        received.len() as u64
    );
    assert!(before.bytes_downstream > message().len() as u64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cut_mid_literal_fails_the_fetch_then_the_next_connection_succeeds() {
    let dovecot = dovecot_with_message().await;
    let cut = Fault::cut().in_literal(b"BODY[] {", 1000);
    let plan = FaultPlan::new()
        .on_connection(0, cut.clone())
        .on_connection(1, cut);
    let proxy = FaultProxy::start(dovecot.imap_addr(), plan).await.unwrap();

    let mut c = login_via(&proxy).await.unwrap();
    c.select("INBOX").await.unwrap();
    let err = c.uid_fetch_full("1:*").await.expect_err("cut mid-literal");
    assert!(is_io(&err, std::io::ErrorKind::UnexpectedEof), "{err}");
    settle(&proxy).await;
    let s = proxy.stats();
    assert_eq!(s.cuts, 1);
    // The client got the literal header and exactly 1,000 bytes of the literal, no more.
    assert!(s.bytes_downstream < message().len() as u64);

    // Connection 1, on a raw socket: exactly 1,000 bytes of the literal, then EOF.
    let mut s = TcpStream::connect(proxy.addr()).await.unwrap();
    s.write_all(
        b"a1 LOGIN alice alice-secret\r\na2 SELECT INBOX\r\na3 UID FETCH 1:* BODY.PEEK[]\r\n",
    )
    .await
    .unwrap();
    let mut received = Vec::new();
    s.read_to_end(&mut received).await.unwrap();
    let header = received
        .windows(8)
        .position(|w| w == b"BODY[] {")
        .expect("literal header forwarded");
    let line_end = header + received[header..].iter().position(|b| *b == b'\n').unwrap() + 1;
    assert_eq!(received.len() - line_end, 1000);
    let body_start = message();
    assert_eq!(&received[line_end..], &body_start[..1000]);

    // Connection 2 has no fault: a retry gets the whole message.
    assert_eq!(fetch_via(&proxy).await.unwrap(), message());
    assert_eq!(proxy.stats().connections_accepted, 3);
    assert_eq!(proxy.stats().cuts, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bye_injection_is_seen_by_the_client() {
    let dovecot = dovecot_with_message().await;
    // Connection 0: BYE as soon as the client sends NOOP (instead of Dovecot's answer).
    let plan =
        FaultPlan::new().on_connection(0, Fault::bye().after_pattern(b"NOOP\r\n", 0).upstream());
    let proxy = FaultProxy::start(dovecot.imap_addr(), plan).await.unwrap();
    let mut c = login_via(&proxy).await.unwrap();
    let err = c.noop().await.expect_err("BYE then close");
    assert!(is_io(&err, std::io::ErrorKind::UnexpectedEof), "{err}");

    // Connection 1: a live injection seen byte-exact on a raw socket after the greeting.
    let mut s = TcpStream::connect(proxy.addr()).await.unwrap();
    let mut greeting = vec![0u8; 4096];
    let n = s.read(&mut greeting).await.unwrap();
    assert!(greeting[..n].starts_with(b"* OK"));
    assert_eq!(proxy.apply_now(Action::Inject(BYE_LINE.to_vec())).await, 1);
    let mut rest = Vec::new();
    s.read_to_end(&mut rest).await.unwrap();
    assert_eq!(rest, BYE_LINE);
    settle(&proxy).await;
    assert_eq!(proxy.stats().injections, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stall_triggers_the_client_timeout_and_a_short_stall_only_delays() {
    let dovecot = dovecot_with_message().await;
    let plan = FaultPlan::new().on_connection(
        0,
        Fault::stall(Duration::from_secs(30)).in_literal(b"BODY[] {", 10),
    );
    let proxy = FaultProxy::start(dovecot.imap_addr(), plan).await.unwrap();
    let mut c = login_via(&proxy).await.unwrap();
    c.set_timeout(Duration::from_secs(1));
    c.select("INBOX").await.unwrap();
    let started = Instant::now();
    let err = c
        .uid_fetch_full("1:*")
        .await
        .expect_err("stalled past the timeout");
    assert!(matches!(err, Error::Timeout { .. }), "{err}");
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(proxy.stats().stalls, 1);
    drop(c);

    // A live 1.5 s stall on an idle connection: NOOP waits it out with a longer timeout.
    let mut c = login_via(&proxy).await.unwrap();
    c.set_timeout(Duration::from_secs(10));
    assert!(
        proxy
            .apply_now(Action::Stall(Duration::from_millis(1500)))
            .await
            >= 1
    );
    let started = Instant::now();
    c.noop().await.unwrap();
    assert!(
        started.elapsed() >= Duration::from_millis(1400),
        "{:?}",
        started.elapsed()
    );
    assert!(proxy.stats().stalls >= 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trickle_slows_but_completes() {
    let dovecot = dovecot_with_message().await;
    let plan = FaultPlan::new().on_connection(
        0,
        Fault::trickle(8 * 1024, Duration::from_millis(100)).in_literal(b"BODY[] {", 0),
    );
    let proxy = FaultProxy::start(dovecot.imap_addr(), plan).await.unwrap();
    let started = Instant::now();
    let body = fetch_via(&proxy).await.unwrap();
    let slow = started.elapsed();
    assert_eq!(body, message());
    // ~50 KB at 8 KB per 100 ms: at least 6 pauses.
    assert!(slow >= Duration::from_millis(600), "{slow:?}");
    let started = Instant::now();
    assert_eq!(fetch_via(&proxy).await.unwrap(), message());
    assert!(started.elapsed() < slow, "the untrickled fetch is faster");
    assert_eq!(proxy.stats().trickles, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reset_gives_connection_reset() {
    let dovecot = dovecot_with_message().await;
    let plan = FaultPlan::new().on_connection(0, Fault::reset().in_literal(b"BODY[] {", 100));
    let proxy = FaultProxy::start(dovecot.imap_addr(), plan).await.unwrap();
    let mut c = login_via(&proxy).await.unwrap();
    c.select("INBOX").await.unwrap();
    let err = c.uid_fetch_full("1:*").await.expect_err("reset");
    assert!(is_io(&err, std::io::ErrorKind::ConnectionReset), "{err:?}");
    settle(&proxy).await;
    assert_eq!(proxy.stats().resets, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cut_mid_append_upload_stores_nothing() {
    let dovecot = dovecot_with_message().await;
    let plan =
        FaultPlan::new().on_connection(0, Fault::cut().in_literal(b"APPEND", 5000).upstream());
    let proxy = FaultProxy::start(dovecot.imap_addr(), plan).await.unwrap();
    let mut c = login_via(&proxy).await.unwrap();
    let err = c
        .append("INBOX", &AppendRequest::new(message(), Vec::new(), None))
        .await
        .expect_err("cut mid-upload");
    assert!(matches!(err, Error::Io { .. }), "{err}");
    let mut direct = dovecot.login("alice").await.unwrap();
    assert_eq!(direct.status("INBOX").await.unwrap().messages, Some(1));
    assert_eq!(proxy.stats().cuts, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refuse_for_refuses_then_listens_again() {
    let dovecot = Dovecot::start(DovecotOptions::default()).unwrap();
    let proxy = FaultProxy::start(dovecot.imap_addr(), FaultPlan::new())
        .await
        .unwrap();
    login_via(&proxy).await.unwrap();
    proxy.refuse_for(Duration::from_millis(800)).await;
    assert!(!proxy.is_listening());
    let err = login_via(&proxy).await.expect_err("refused");
    assert!(is_io(&err, std::io::ErrorKind::ConnectionRefused), "{err}");
    tokio::time::sleep(Duration::from_millis(800)).await;
    for _ in 0..500 {
        if proxy.is_listening() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    login_via(&proxy).await.unwrap();
    let s = proxy.stats();
    assert_eq!((s.refusals, s.connections_accepted), (1, 2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seeded_random_cuts_hit_exactly_the_predicted_connections() {
    let dovecot = dovecot_with_message().await;
    let plan = FaultPlan::new().with_random_cuts(2026, 3, 4000);
    let predicted: Vec<bool> = (0..15).map(|i| !plan.faults_for(i).is_empty()).collect();
    assert!(predicted.iter().any(|p| *p) && predicted.iter().any(|p| !*p));
    let proxy = FaultProxy::start(dovecot.imap_addr(), plan).await.unwrap();
    let mut failed = Vec::new();
    for _ in 0..15 {
        // Each session reads far more than 4,000 bytes, so every planned cut fires.
        failed.push(fetch_via(&proxy).await.is_err());
        settle(&proxy).await;
    }
    assert_eq!(failed, predicted);
    let cuts = predicted.iter().filter(|p| **p).count() as u64;
    assert_eq!(proxy.stats().cuts, cuts);
    assert_eq!(proxy.stats().connections_accepted, 15);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn set_plan_applies_to_new_connections_and_live_cut_reaches_open_ones() {
    let dovecot = dovecot_with_message().await;
    let proxy = FaultProxy::start(dovecot.imap_addr(), FaultPlan::new())
        .await
        .unwrap();
    let mut open = login_via(&proxy).await.unwrap();
    proxy.set_plan(FaultPlan::new().on_every_connection(Fault::cut().after_bytes(0)));
    assert!(
        login_via(&proxy).await.is_err(),
        "new connections are cut at once"
    );
    open.noop().await.unwrap();
    assert_eq!(proxy.apply_now(Action::Cut).await, 1);
    assert!(open.noop().await.is_err());
    settle(&proxy).await;
    assert_eq!(proxy.stats().cuts, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_proxy_ends_its_connections() {
    let dovecot = dovecot_with_message().await;
    let proxy = FaultProxy::start(dovecot.imap_addr(), FaultPlan::new())
        .await
        .unwrap();
    let addr = proxy.addr();
    let mut c = login_via(&proxy).await.unwrap();
    c.set_timeout(Duration::from_secs(20));
    proxy
        .apply_now(Action::Stall(Duration::from_secs(60)))
        .await;
    let started = Instant::now();
    drop(proxy);
    let err = c.noop().await.expect_err("proxy gone");
    assert!(!matches!(err, Error::Timeout { .. }), "{err}");
    assert!(started.elapsed() < Duration::from_secs(5));
    // The listener is gone too.
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(TcpStream::connect(addr).await.is_err());
}
