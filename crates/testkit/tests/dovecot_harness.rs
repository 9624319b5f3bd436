//! The Dovecot harness against the real `dovecot` binary.

use std::path::Path;

use o365_migrate_testkit::{
    AppendRequest, Client, Dovecot, DovecotOptions, Error, ImapDate, TlsTrust, User,
};

fn processes_named(instance: &str) -> Vec<String> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return out;
    };
    for e in entries.flatten() {
        let Ok(cmd) = std::fs::read(e.path().join("cmdline")) else {
            continue;
        };
        let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
        if cmd.contains(instance) {
            out.push(cmd);
        }
    }
    out
}

#[tokio::test]
async fn starts_logs_in_and_stops_without_stray_processes() {
    let d = Dovecot::start_default().expect("start dovecot");
    let instance = d.instance_name().to_owned();
    let conf = d.config_path().to_path_buf();
    assert_eq!(d.host(), "127.0.0.1");
    assert!(d.imaps_port().is_some());
    let mut c = match d.login("alice").await {
        Ok(c) => c,
        Err(e) => panic!("login alice: {e}\n{}", d.log_tail(40)),
    };
    assert!(c.has_capability("IMAP4REV1"));
    assert!(c.greeting().contains(&instance), "{}", c.greeting());
    let sel = c.select("INBOX").await.unwrap();
    assert_eq!(sel.exists, 0);
    let names: Vec<String> = c
        .list()
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.name)
        .collect();
    for want in ["INBOX", "Sent", "Drafts", "Trash", "Junk", "Archive"] {
        // Special-use folders exist once created; create them to prove the names are accepted.
        if !names.iter().any(|n| n == want) {
            c.create_if_missing(want).await.unwrap();
        }
    }
    let list = c.list().await.unwrap();
    let sent = list.iter().find(|e| e.name == "Sent").expect("Sent listed");
    assert!(sent.attributes.iter().any(|a| a == "\\Sent"), "{sent:?}");
    assert_eq!(sent.delimiter, Some('/'));
    c.logout().await.unwrap();
    // Wrong password is refused.
    let mut c = d.connect_plain().await.unwrap();
    let err = c.login("alice", "wrong").await.unwrap_err();
    assert!(matches!(err, Error::Refused { .. }), "{err}");
    assert!(!err.to_string().contains("wrong"));
    drop(c);
    assert!(!processes_named(&instance).is_empty() || Path::new(&conf).exists());
    d.stop().expect("clean stop");
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert_eq!(processes_named(&instance), Vec::<String>::new());
    assert!(!conf.exists(), "temp dir removed");
}

#[tokio::test]
async fn implicit_tls_and_starttls_verify_with_generated_ca() {
    let d = Dovecot::start_default().unwrap();
    let mut c = d.connect_tls().await.expect("implicit TLS with harness CA");
    assert!(c.is_tls());
    c.login("bob", "bob-secret").await.unwrap();
    c.noop().await.unwrap();
    let mut s = d
        .connect_starttls()
        .await
        .expect("STARTTLS with harness CA");
    assert!(s.is_tls());
    assert!(!s.has_capability("STARTTLS"));
    s.login("carol", "carol-secret").await.unwrap();

    // A client trusting a different CA refuses the server.
    let other = Dovecot::start_default().unwrap();
    let err = Client::connect_tls(
        d.host(),
        d.imaps_port().unwrap(),
        TlsTrust::Pem(other.ca_pem()),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, Error::Tls { .. }), "{err}");
    assert!(
        err.to_string().contains("invalid peer certificate"),
        "{err}"
    );
}

#[tokio::test]
async fn untrusted_certificate_is_refused_by_verifying_client() {
    let d = Dovecot::start(DovecotOptions::default().with_untrusted_certificate()).unwrap();
    let err = d.connect_tls().await.unwrap_err();
    assert!(matches!(err, Error::Tls { .. }), "{err}");
    let err = d.connect_starttls().await.unwrap_err();
    assert!(matches!(err, Error::Tls { .. }), "{err}");
}

#[tokio::test]
async fn without_tls_offers_no_starttls() {
    let d = Dovecot::start(DovecotOptions::default().without_tls()).unwrap();
    assert_eq!(d.imaps_port(), None);
    let mut c = d.connect_plain().await.unwrap();
    let caps = c.capability().await.unwrap();
    assert!(!caps.iter().any(|c| c == "STARTTLS"), "{caps:?}");
    assert!(d.connect_starttls().await.is_err());
    c.login("alice", "alice-secret").await.unwrap();
}

#[tokio::test]
async fn master_user_logins() {
    let d = Dovecot::start(
        DovecotOptions::default()
            .with_users([User::new("dave", "dave-pw")])
            .with_master_user(User::new("root-admin", "m4ster")),
    )
    .unwrap();
    let mut c = d.connect_plain().await.unwrap();
    c.login(&d.master_login_name("dave"), "m4ster")
        .await
        .unwrap();
    c.create("FromAdmin").await.unwrap();
    let mut c2 = d.connect_plain().await.unwrap();
    c2.authenticate_plain("dave", "root-admin", "m4ster")
        .await
        .unwrap();
    let names: Vec<String> = c2
        .list()
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.name)
        .collect();
    assert!(names.contains(&"FromAdmin".to_owned()), "{names:?}");
    // The master password does not work as a normal login.
    let mut c3 = d.connect_plain().await.unwrap();
    assert!(c3.login("dave", "m4ster").await.is_err());
    // Nor does a wrong master password.
    let mut c4 = d.connect_plain().await.unwrap();
    assert!(c4.login("dave*root-admin", "nope").await.is_err());
}

#[tokio::test]
async fn append_fetch_roundtrip_with_non_ascii_folder() {
    let d = Dovecot::start_default().unwrap();
    let mut c = d.login("alice").await.unwrap();
    let folder = "Überweisungen/Août";
    c.create_if_missing("Überweisungen").await.unwrap();
    c.create(folder).await.unwrap();
    let list = c.list().await.unwrap();
    let e = list.iter().find(|e| e.name == folder).expect("listed");
    assert_eq!(e.raw_name, "&ANw-berweisungen/Ao&APs-t");
    let date = ImapDate::parse("03-Feb-2019 21:15:01 -0800").unwrap();
    let msg = b"From: a@example.org\r\nSubject: hi\r\n\r\nbody \xc3\xa9\r\n".to_vec();
    let uid = c
        .append(
            folder,
            &AppendRequest::new(
                msg.clone(),
                vec!["\\Seen".into(), "$Label1".into()],
                Some(date),
            ),
        )
        .await
        .unwrap();
    assert_eq!(uid, Some(1));
    c.select(folder).await.unwrap();
    let uids = c
        .append_pipelined(
            folder,
            (0..20).map(|i| {
                AppendRequest::new(
                    format!("Subject: {i}\r\n\r\nx\r\n").into_bytes(),
                    vec![],
                    None,
                )
            }),
        )
        .await
        .unwrap();
    assert_eq!(uids, (2..22).map(Some).collect::<Vec<_>>());
    let st = c.status("INBOX").await.unwrap();
    assert_eq!(st.messages, Some(0));
    let sel = c.examine(folder).await.unwrap();
    assert_eq!(sel.exists, 21);
    let all = c.uid_fetch_full("1:*").await.unwrap();
    assert_eq!(all.len(), 21);
    let first = &all[0];
    assert_eq!(first.body.as_deref(), Some(&msg[..]));
    assert_eq!(first.size, Some(msg.len() as u64));
    assert!(first.internal_date.unwrap().same_instant(&date));
    let mut flags = first.flags.clone();
    flags.sort();
    assert_eq!(flags, vec!["$Label1", "\\Seen"]);
}

#[test]
fn missing_binary_names_the_install_command() {
    let err =
        Dovecot::start(DovecotOptions::default().with_binary("/nonexistent/dovecot")).unwrap_err();
    assert!(matches!(err, Error::DovecotMissing { .. }));
    let text = err.to_string();
    assert!(
        text.contains("sudo apt-get install dovecot-imapd"),
        "{text}"
    );
    assert!(text.contains("/nonexistent/dovecot"), "{text}");
}

#[test]
fn bad_extra_config_fails_with_log_tail() {
    let err =
        Dovecot::start(DovecotOptions::default().with_extra_config("this_is_not_a_setting = 1"))
            .unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, Error::DovecotStart { .. }), "{text}");
    assert!(text.contains("this_is_not_a_setting"), "{text}");
}

#[test]
fn debug_hides_passwords() {
    let d = Dovecot::start_default().unwrap();
    let dbg = format!("{d:?} {:?}", d.master_user());
    assert!(!dbg.contains("secret"), "{dbg}");
}

#[tokio::test]
async fn pipelined_append_refusal_is_reported_and_connection_stays_usable() {
    let d = Dovecot::start_default().unwrap();
    let mut c = d.login("alice").await.unwrap();
    assert!(c.has_capability("LITERAL+"));
    let err = c
        .append_pipelined(
            "NoSuchFolder",
            (0..5).map(|i| {
                AppendRequest::new(
                    format!("Subject: {i}\r\n\r\nx\r\n").into_bytes(),
                    vec![],
                    None,
                )
            }),
        )
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, Error::Refused { .. }), "{text}");
    assert!(
        text.contains("NoSuchFolder") && text.contains("TRYCREATE"),
        "{text}"
    );
    // Every in-flight command completed: the next command gets its own response.
    c.noop().await.unwrap();
    c.create("NoSuchFolder").await.unwrap();
    assert_eq!(c.status("NoSuchFolder").await.unwrap().messages, Some(0));
}

#[test]
fn handles_are_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<Dovecot>();
    check::<Client>();
    check::<o365_migrate_testkit::Manifest>();
    check::<o365_migrate_testkit::Corpus>();
}

#[tokio::test]
async fn utf8_password_and_special_characters() {
    let d = Dovecot::start(
        DovecotOptions::default().with_user(User::new("erin@example.org", "pä\"ss wörd\\1")),
    )
    .unwrap();
    let mut c = d.login("erin@example.org").await.unwrap();
    c.noop().await.unwrap();
    let mut c = d.connect_plain().await.unwrap();
    c.authenticate_plain("", "erin@example.org", "pä\"ss wörd\\1")
        .await
        .unwrap();
}

/// Helper for `no_stray_dovecot_when_the_test_process_dies`: only acts when re-executed
/// with `O365MT_ABORT_CHILD=1`; then it starts a Dovecot, prints its instance name and
/// aborts (no destructors run).
#[test]
fn abort_child_helper() {
    if std::env::var_os("O365MT_ABORT_CHILD").is_none() {
        return;
    }
    let d = Dovecot::start_default().unwrap();
    println!(
        "INSTANCE={} PID={}",
        d.instance_name(),
        d.pid().unwrap_or(0)
    );
    use std::io::Write as _;
    std::io::stdout().flush().unwrap();
    std::process::abort();
}

#[test]
fn no_stray_dovecot_when_the_test_process_dies() {
    let exe = std::env::current_exe().unwrap();
    let out = std::process::Command::new(exe)
        .args([
            "--exact",
            "abort_child_helper",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("O365MT_ABORT_CHILD", "1")
        .output()
        .unwrap();
    assert!(!out.status.success(), "the helper must abort");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let instance = stdout
        .split_whitespace()
        .find_map(|w| w.strip_prefix("INSTANCE="))
        .unwrap_or_else(|| panic!("no instance printed: {stdout}"))
        .to_owned();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    loop {
        let left = processes_named(&instance);
        if left.is_empty() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "Dovecot outlived its aborted test process: {left:?}"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}
