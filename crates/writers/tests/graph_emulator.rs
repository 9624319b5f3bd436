//! The Graph writer against the Graph emulator: fidelity, idempotency, throttling, identity.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use bytes::Bytes;
use o365_migrate_graph_emulator::{Emulator, EmulatorConfig, Faults, UserConfig};
use o365_migrate_target::graph::{Budgets, GraphTarget, GraphTargetConfig, RetryPolicy};
use o365_migrate_target::identity::{CertificateCredential, Credential, DeviceCodeOptions};
use o365_migrate_target::{
    Endpoints, Flags, FolderSpec, InternalDate, SecretString, Target, WellKnownFolder, WriteItem,
    WriteOutcome,
};

const SECRET: &str = "emulator-secret";

fn config_with(users: &[String]) -> EmulatorConfig {
    let mut c = EmulatorConfig::default();
    c.tenants[0].users = users
        .iter()
        .map(|u| UserConfig::with_mailbox(u.clone()))
        .collect();
    c.limits.max_message_bytes = 150 * 1024 * 1024;
    c
}

fn target_config(emu: &Emulator, credential: Credential) -> GraphTargetConfig {
    let app = &emu.config().tenants[0].apps[0];
    let mut c = GraphTargetConfig::new(
        emu.tenant_id(),
        app.client_id.clone(),
        credential,
        Endpoints::emulator(emu.url()),
    );
    c.max_message_bytes = 150 * 1024 * 1024;
    c.retry = RetryPolicy {
        max_retry_after: Duration::from_millis(50),
        base_delay: Duration::from_millis(10),
        ..RetryPolicy::default()
    };
    c
}

/// An emulator with `user`'s mailbox and a target signed in to it with the app's secret.
async fn emulator_and_target(
    user: &str,
    adjust: impl FnOnce(&mut GraphTargetConfig),
) -> (Emulator, GraphTarget) {
    let emu = Emulator::start(config_with(&[user.to_string()]))
        .await
        .unwrap();
    let mut tc = target_config(&emu, Credential::ClientSecret(SecretString::new(SECRET)));
    adjust(&mut tc);
    (emu, GraphTarget::new(tc).unwrap())
}

fn b64_lines(data: &[u8]) -> String {
    let enc = base64::engine::general_purpose::STANDARD.encode(data);
    let mut out = String::with_capacity(enc.len() + enc.len() / 76 * 2);
    for chunk in enc.as_bytes().chunks(76) {
        out.push_str(std::str::from_utf8(chunk).unwrap_or_default());
        out.push_str("\r\n");
    }
    out
}

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| {
            (i as u32)
                .wrapping_mul(2_654_435_761)
                .rotate_left(u32::from(seed)) as u8
        })
        .collect()
}

fn rich_message(two_mb: &[u8], thirty_mb: &[u8], png: &[u8]) -> Vec<u8> {
    let mut m = String::new();
    m.push_str("From: Ann Example <ann@example.com>\r\nTo: Bob <bob@contoso.example>\r\n");
    m.push_str(
        "Subject: Quarterly report with pictures\r\nDate: Tue, 01 Jul 2025 10:00:00 +0200\r\n",
    );
    m.push_str("Message-ID: <rich-1@example.com>\r\nMIME-Version: 1.0\r\n");
    m.push_str("Content-Type: multipart/mixed; boundary=\"outer\"\r\n\r\n");
    m.push_str("--outer\r\nContent-Type: multipart/related; boundary=\"rel\"\r\n\r\n");
    m.push_str("--rel\r\nContent-Type: text/html; charset=utf-8\r\n\r\n");
    m.push_str(
        "<html><body><p>Hello <b>Bob</b></p><img src=\"cid:logo@example.com\"></body></html>\r\n",
    );
    m.push_str("--rel\r\nContent-Type: image/png\r\nContent-ID: <logo@example.com>\r\nContent-Disposition: inline; filename=\"logo.png\"\r\nContent-Transfer-Encoding: base64\r\n\r\n");
    m.push_str(&b64_lines(png));
    m.push_str("--rel--\r\n");
    m.push_str("--outer\r\nContent-Type: application/pdf\r\nContent-Disposition: attachment; filename=\"two.pdf\"\r\nContent-Transfer-Encoding: base64\r\n\r\n");
    m.push_str(&b64_lines(two_mb));
    m.push_str("--outer\r\nContent-Type: application/zip\r\nContent-Disposition: attachment; filename=\"thirty.zip\"\r\nContent-Transfer-Encoding: base64\r\n\r\n");
    m.push_str(&b64_lines(thirty_mb));
    m.push_str("--outer--\r\n");
    m.into_bytes()
}

fn item(raw: Vec<u8>, flags: Flags, date: i64) -> WriteItem {
    let id = o365_migrate_mime::fingerprint(&raw);
    WriteItem {
        fingerprint: id.dedupe_key(),
        internet_message_id: id.message_id.clone(),
        raw: Bytes::from(raw),
        flags,
        internal_date: Some(InternalDate::from_unix_utc(date).unwrap()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rich_message_arrives_non_draft_with_every_field_and_only_once() {
    let upn = "bob@contoso.example".to_string();
    let emu = Emulator::start(config_with(std::slice::from_ref(&upn)))
        .await
        .unwrap();
    let target = GraphTarget::new(target_config(
        &emu,
        Credential::ClientSecret(SecretString::new(SECRET)),
    ))
    .unwrap();
    target.check().await.unwrap();
    let writer = target.open_mailbox(&upn).await.unwrap();
    let folders = writer
        .ensure_folders(&[FolderSpec::well_known("INBOX", WellKnownFolder::Inbox)])
        .await
        .unwrap();

    let two = pattern(2 * 1024 * 1024, 3);
    let thirty = pattern(30 * 1024 * 1024, 7);
    let png = pattern(40_000, 11);
    let received = 1_751_400_000; // 2025-07-01T20:00:00Z
    let flags = Flags {
        seen: true,
        flagged: true,
        ..Flags::default()
    };
    let it = item(rich_message(&two, &thirty, &png), flags, received);

    let first = writer.write(&folders[0], &it).await.unwrap();
    assert!(matches!(first, WriteOutcome::Written { .. }), "{first:?}");
    let second = writer.write(&folders[0], &it).await.unwrap();
    assert_eq!(
        second,
        WriteOutcome::AlreadyPresent {
            target_id: first.target_id().to_string()
        }
    );
    // A fresh writer (a new run) finds it too.
    let again = target.open_mailbox(&upn).await.unwrap();
    let f2 = again
        .ensure_folders(&[FolderSpec::well_known("INBOX", WellKnownFolder::Inbox)])
        .await
        .unwrap();
    assert!(matches!(
        again.write(&f2[0], &it).await.unwrap(),
        WriteOutcome::AlreadyPresent { .. }
    ));

    let stored = emu.messages(&upn);
    assert_eq!(stored.len(), 1, "written exactly once");
    let m = &stored[0];
    assert_eq!(m.folder_path, "Inbox");
    assert_eq!(m.bool("isDraft"), Some(false));
    assert_eq!(m.bool("isRead"), Some(true));
    assert_eq!(m.properties["flag"]["flagStatus"], "flagged");
    assert_eq!(m.str("subject"), Some("Quarterly report with pictures"));
    assert_eq!(m.str("internetMessageId"), Some("<rich-1@example.com>"));
    assert_eq!(m.str("receivedDateTime"), Some("2025-07-01T20:00:00Z"));
    assert_eq!(m.str("sentDateTime"), Some("2025-07-01T08:00:00Z"));
    assert_eq!(
        m.properties["from"]["emailAddress"]["address"],
        "ann@example.com"
    );
    assert_eq!(
        m.properties["toRecipients"][0]["emailAddress"]["address"],
        "bob@contoso.example"
    );
    assert_eq!(m.properties["body"]["contentType"], "html");
    assert!(
        m.properties["body"]["content"]
            .as_str()
            .unwrap_or_default()
            .contains("Hello <b>Bob</b>")
    );
    assert_eq!(m.bool("hasAttachments"), Some(true));
    assert_eq!(m.attachments.len(), 3);
    let by_name = |n: &str| m.attachments.iter().find(|a| a.name == n).unwrap();
    let logo = by_name("logo.png");
    assert!(logo.is_inline);
    assert_eq!(logo.content_id.as_deref(), Some("logo@example.com"));
    assert_eq!(logo.data.as_ref(), png.as_slice());
    assert_eq!(by_name("two.pdf").data.as_ref(), two.as_slice());
    let big = by_name("thirty.zip");
    assert_eq!(big.size, thirty.len());
    assert!(
        big.data.as_ref() == thirty.as_slice(),
        "30 MB attachment differs"
    );
    assert!(!big.is_inline);

    // Verify view through the trait.
    assert_eq!(writer.count(&folders[0]).await.unwrap(), 1);
    let listed = writer.list(&folders[0]).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert!(listed[0].is_read && listed[0].flagged && !listed[0].is_draft);
    assert_eq!(
        listed[0].fingerprint.as_deref(),
        Some(it.fingerprint.as_str())
    );
    assert_eq!(
        listed[0].received,
        Some(InternalDate::from_unix_utc(received).unwrap())
    );
    emu.assert_limits_respected().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn folders_are_created_once_and_compared_case_insensitively() {
    let upn = "carol@contoso.example".to_string();
    let (emu, target) = emulator_and_target(&upn, |_| {}).await;
    let w = target.open_mailbox(&upn).await.unwrap();
    let plan = [
        FolderSpec::at_root("Projects/2024", ["Projects", "2024"]),
        FolderSpec::under("INBOX/Receipts", WellKnownFolder::Inbox, ["Receipts"]),
        FolderSpec::at_root("projects/Über", ["projects", "Über"]),
        FolderSpec::well_known("Sent", WellKnownFolder::SentItems),
    ];
    let h = w.ensure_folders(&plan).await.unwrap();
    assert!(h[0].created && h[1].created && h[2].created && !h[3].created);
    // Another writer (a second run) creates nothing new; "projects" is "Projects".
    let w2 = target.open_mailbox(&upn).await.unwrap();
    let h2 = w2.ensure_folders(&plan).await.unwrap();
    assert_eq!(
        h.iter().map(|x| &x.target_id).collect::<Vec<_>>(),
        h2.iter().map(|x| &x.target_id).collect::<Vec<_>>()
    );
    assert!(h2.iter().all(|x| !x.created));
    let paths: Vec<String> = emu.folders(&upn).into_iter().map(|f| f.path).collect();
    for p in [
        "Projects",
        "Projects/2024",
        "Projects/Über",
        "Inbox/Receipts",
    ] {
        assert_eq!(
            paths.iter().filter(|x| x.as_str() == p).count(),
            1,
            "{p} in {paths:?}"
        );
    }
}

fn small_message(mailbox: usize, n: usize) -> Vec<u8> {
    format!(
        "From: sender{n}@example.com\r\nTo: m{mailbox}@contoso.example\r\nSubject: message {n} of mailbox {mailbox}\r\n\
         Date: Wed, 02 Jul 2025 09:{:02}:00 +0000\r\nMessage-ID: <m{mailbox}-{n}@example.com>\r\n\r\nbody {n}\r\n",
        n % 60
    )
    .into_bytes()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_mailboxes_in_parallel_under_throttling_and_faults() {
    let users: Vec<String> = (0..20).map(|i| format!("m{i}@contoso.example")).collect();
    let mut config = config_with(&users);
    // Scaled limits: 40 requests per 1.2 s window per mailbox, so the budget binds.
    config.time_scale = 0.002;
    config.limits.requests_per_window = 40;
    config.faults = Faults {
        seed: 7,
        rate_503: 0.04,
        rate_429: 0.03,
        rate_reset: 0.02,
        rate_slow: 0.05,
        slow_ms: 30,
        retry_after_secs: 1,
        ..Faults::default()
    };
    let emu = Emulator::start(config).await.unwrap();
    let mut tc = target_config(&emu, Credential::ClientSecret(SecretString::new(SECRET)));
    tc.budgets = Budgets {
        requests_per_window: 40,
        ..Budgets::time_scaled(0.002)
    };
    tc.retry.max_attempts = 12;
    let target = Arc::new(GraphTarget::new(tc).unwrap());
    let per_mailbox = 60;
    let mut tasks = Vec::new();
    for (mi, upn) in users.iter().enumerate() {
        let target = target.clone();
        let upn = upn.clone();
        tasks.push(tokio::spawn(async move {
            let w = target.open_mailbox(&upn).await?;
            let f = w
                .ensure_folders(&[FolderSpec::under(
                    "INBOX/Old",
                    WellKnownFolder::Inbox,
                    ["Old"],
                )])
                .await?;
            let folder = f[0].clone();
            // The engine may push many writes at once; the writer keeps 4 in flight.
            let mut set = tokio::task::JoinSet::new();
            for n in 0..per_mailbox {
                let w = w.clone();
                let folder = folder.clone();
                set.spawn(async move {
                    w.write(
                        &folder,
                        &item(small_message(mi, n), Flags::default(), 1_751_446_800),
                    )
                    .await
                });
            }
            let mut failed = Vec::new();
            while let Some(r) = set.join_next().await {
                match r {
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) => failed.push(e.to_string()),
                    Err(e) => failed.push(e.to_string()),
                }
            }
            Ok::<_, o365_migrate_target::Error>((upn, failed))
        }));
    }
    let mut failures = Vec::new();
    for t in tasks {
        let (upn, failed) = t.await.unwrap().unwrap();
        failures.extend(failed.into_iter().map(|f| format!("{upn}: {f}")));
    }
    assert!(
        failures.is_empty(),
        "{} failed items: {:?}",
        failures.len(),
        &failures[..failures.len().min(5)]
    );
    for upn in &users {
        let msgs = emu.messages(upn);
        assert_eq!(msgs.len(), per_mailbox, "{upn}");
        assert!(
            msgs.iter()
                .all(|m| m.bool("isDraft") == Some(false) && m.folder_path == "Inbox/Old")
        );
        let c = emu.counters(upn);
        assert!(c.max_concurrent_seen <= 4, "{upn}: {c:?}");
    }
    emu.assert_limits_respected().unwrap();
    let faults: u64 = users.iter().map(|u| emu.counters(u).faults_injected).sum();
    assert!(
        faults > 0,
        "the faults must have happened for this test to mean something"
    );
    assert!(target.client().throttled_answers() > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificate_assertion_is_accepted_by_the_emulator() {
    let pem = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/test-app.pem"
    ))
    .unwrap();
    let cert_pem = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/test-app.cert.pem"
    ))
    .unwrap();
    use rustls_pki_types::pem::PemObject;
    let der = rustls_pki_types::CertificateDer::from_pem_slice(&cert_pem).unwrap();
    let upn = "dave@contoso.example".to_string();
    let mut config = config_with(std::slice::from_ref(&upn));
    config.tenants[0].apps[0].client_secret = None;
    config.tenants[0].apps[0].certificates_der_base64 =
        vec![base64::engine::general_purpose::STANDARD.encode(der.as_ref())];
    let emu = Emulator::start(config).await.unwrap();
    for alg in [
        o365_migrate_target::identity::AssertionAlgorithm::Ps256,
        o365_migrate_target::identity::AssertionAlgorithm::Rs256,
    ] {
        let cred = CertificateCredential::from_pem(&pem, "test-app.pem")
            .unwrap()
            .with_algorithm(alg);
        let target =
            GraphTarget::new(target_config(&emu, Credential::Certificate(Arc::new(cred)))).unwrap();
        target.check().await.unwrap();
        assert!(target.open_mailbox(&upn).await.is_ok());
    }
    let pfx = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/test-app.pfx"
    ))
    .unwrap();
    let cred =
        CertificateCredential::from_pfx(&pfx, &SecretString::new("test-password"), "test-app.pfx")
            .unwrap();
    let target =
        GraphTarget::new(target_config(&emu, Credential::Certificate(Arc::new(cred)))).unwrap();
    target.check().await.unwrap();
    // A wrong secret is refused with a hint, and the secret is not in the message.
    let bad = GraphTarget::new(target_config(
        &emu,
        Credential::ClientSecret(SecretString::new("guessed-secret-value")),
    ))
    .unwrap();
    let err = bad.check().await.unwrap_err().to_string();
    assert!(
        err.contains("invalid_client") && !err.contains("guessed-secret-value"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_permissions_are_named_with_the_fix() {
    let mut config = config_with(&[]);
    config.tenants[0].apps[0].roles = vec!["User.Read.All".into()];
    let emu = Emulator::start(config).await.unwrap();
    let mut tc = target_config(&emu, Credential::ClientSecret(SecretString::new(SECRET)));
    tc.user_creation = true;
    let err = GraphTarget::new(tc).unwrap().check().await.unwrap_err();
    match &err {
        o365_migrate_target::Error::MissingPermissions { missing, fix } => {
            assert_eq!(
                missing,
                &[
                    "Mail.ReadWrite",
                    "MailboxSettings.ReadWrite",
                    "User.ReadWrite.All",
                    "LicenseAssignment.ReadWrite.All"
                ]
            );
            assert!(fix.contains("Grant admin consent"), "{fix}");
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provisioning_users_licences_and_mailbox_probe() {
    let mut config = config_with(&[]);
    config.time_scale = 0.005; // provisioning takes 60 s × 0.005 = 0.3 s
    let emu = Emulator::start(config).await.unwrap();
    let target = GraphTarget::new(target_config(
        &emu,
        Credential::ClientSecret(SecretString::new(SECRET)),
    ))
    .unwrap();
    let client = target.client();
    let skus = client.subscribed_skus().await.unwrap();
    assert_eq!(skus[0].consumed_units, 0);
    let new = o365_migrate_target::graph::NewUser {
        user_principal_name: "erin@contoso.example".into(),
        display_name: "Erin".into(),
        mail_nickname: "erin".into(),
        password: SecretString::new("Initial-Passw0rd!"),
        usage_location: None,
    };
    let user = client.create_user(&new).await.unwrap();
    assert_eq!(
        client.probe_mailbox(&user.id).await.unwrap(),
        o365_migrate_target::graph::MailboxProbe::NotEnabled
    );
    let err = client
        .assign_license(&user.id, &skus[0].sku_id)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("usage location"), "{err}");
    client.set_usage_location(&user.id, "DE").await.unwrap();
    client
        .assign_license(&user.id, &skus[0].sku_id)
        .await
        .unwrap();
    let mut ready = false;
    for _ in 0..50 {
        if client.probe_mailbox("erin@contoso.example").await.unwrap()
            == o365_migrate_target::graph::MailboxProbe::Ready
        {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(ready, "mailbox never provisioned");
    let users = client
        .list_users(Some("startswith(userPrincipalName,'erin')"))
        .await
        .unwrap();
    assert_eq!(users.len(), 1);
    assert_eq!(users[0].assigned_licenses, vec![skus[0].sku_id.clone()]);
    assert_eq!(
        client
            .probe_mailbox("nobody@contoso.example")
            .await
            .unwrap(),
        o365_migrate_target::graph::MailboxProbe::NoSuchUser
    );
    use o365_migrate_target::graph::MailboxProbe;
    let many: Vec<String> = (0..25)
        .map(|i| {
            if i == 3 {
                "nobody@contoso.example".to_string()
            } else {
                "erin@contoso.example".to_string()
            }
        })
        .collect();
    let refs: Vec<&str> = many.iter().map(String::as_str).collect();
    let probes = client.probe_mailboxes(&refs).await.unwrap();
    assert_eq!(probes.len(), 25);
    assert_eq!(probes[3], MailboxProbe::NoSuchUser);
    assert!(
        probes
            .iter()
            .enumerate()
            .all(|(i, p)| i == 3 || *p == MailboxProbe::Ready)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_are_paged_and_batch_answers_come_back_in_order() {
    let users: Vec<String> = (0..1205)
        .map(|i| format!("u{i:04}@contoso.example"))
        .collect();
    let emu = Emulator::start(config_with(&users)).await.unwrap();
    let target = GraphTarget::new(target_config(
        &emu,
        Credential::ClientSecret(SecretString::new(SECRET)),
    ))
    .unwrap();
    let listed = target.client().list_users(None).await.unwrap();
    assert_eq!(listed.len(), 1205);
    let reqs: Vec<_> = (0..20)
        .map(|i| o365_migrate_target::graph::BatchRequest {
            method: "GET".into(),
            url: format!("/users/u{i:04}@contoso.example/mailFolders/inbox"),
            body: None,
        })
        .collect();
    let answers = target
        .client()
        .batch(Some("u0000@contoso.example"), &reqs)
        .await
        .unwrap();
    assert_eq!(answers.len(), 20);
    assert!(
        answers
            .iter()
            .all(|a| a.status == 200 && a.body["displayName"] == "Inbox")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn device_code_flow_against_the_emulator() {
    let upn = "admin@contoso.example".to_string();
    let emu = Arc::new(
        Emulator::start(config_with(std::slice::from_ref(&upn)))
            .await
            .unwrap(),
    );
    let e2 = emu.clone();
    let opts = DeviceCodeOptions::new(move |p| {
        // The "user" signs in on another device as soon as the code is shown.
        assert!(p.message.contains(&p.user_code));
        let e3 = e2.clone();
        let code = p.user_code.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(200));
            assert!(e3.approve_device_code(&code, "admin@contoso.example"));
        });
    });
    let target = GraphTarget::new(target_config(&emu, Credential::DeviceCode(opts))).unwrap();
    let writer = target.open_mailbox(&upn).await.unwrap();
    assert_eq!(writer.mailbox(), upn);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_half_written_item_from_a_killed_run_is_replaced_not_counted() {
    let upn = "frank@contoso.example".to_string();
    let emu = Emulator::start(config_with(std::slice::from_ref(&upn)))
        .await
        .unwrap();
    let target = GraphTarget::new(target_config(
        &emu,
        Credential::ClientSecret(SecretString::new(SECRET)),
    ))
    .unwrap();
    let att = pattern(4 * 1024 * 1024, 5);
    let raw = rich_message(&pattern(1000, 1), &att, &pattern(100, 2));
    let it = item(raw, Flags::default(), 1_751_400_000);
    // What a run killed during the upload leaves behind: the message with a pending marker and
    // without its large attachment.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let http = reqwest::Client::new();
    let app = &emu.config().tenants[0].apps[0];
    let tok: serde_json::Value = http
        .post(format!(
            "{}/{}/oauth2/v2.0/token",
            emu.url(),
            emu.tenant_id()
        ))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", app.client_id.as_str()),
            ("scope", "https://graph.microsoft.com/.default"),
            ("client_secret", SECRET),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let leftover = serde_json::json!({
        "subject": "Quarterly report with pictures",
        "internetMessageId": "<rich-1@example.com>",
        "singleValueExtendedProperties": [
            {"id": "Integer 0x0E07", "value": "1"},
            {"id": o365_migrate_target::graph::FINGERPRINT_PROPERTY, "value": format!("pending:{}", it.fingerprint)},
        ],
    });
    let r = http
        .post(format!(
            "{}/v1.0/users/{upn}/mailFolders/inbox/messages",
            emu.url()
        ))
        .bearer_auth(tok["access_token"].as_str().unwrap())
        .json(&leftover)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 201);
    assert_eq!(emu.messages(&upn).len(), 1);

    // While the leftover cannot be removed, the item stops with the reason: no full copy is
    // written beside the partial one.
    emu.set_faults(Faults {
        refuse_deletes: true,
        ..Faults::default()
    });
    let w = target.open_mailbox(&upn).await.unwrap();
    let f = w
        .ensure_folders(&[FolderSpec::well_known("INBOX", WellKnownFolder::Inbox)])
        .await
        .unwrap();
    let refused = w.write(&f[0], &it).await;
    assert!(refused.is_err(), "{refused:?}");
    assert_eq!(
        emu.messages(&upn).len(),
        1,
        "no second copy beside the leftover"
    );
    emu.set_faults(Faults::default());
    let w = target.open_mailbox(&upn).await.unwrap();
    let out = w.write(&f[0], &it).await.unwrap();
    assert!(
        matches!(out, WriteOutcome::Written { .. }),
        "the leftover must not count as present: {out:?}"
    );
    let stored = emu.messages(&upn);
    assert_eq!(stored.len(), 1, "leftover replaced, not duplicated");
    let big = stored[0]
        .attachments
        .iter()
        .find(|a| a.name == "thirty.zip")
        .unwrap();
    assert!(big.data.as_ref() == att.as_slice());
    let fp = stored[0]
        .extended_properties
        .iter()
        .find(|(id, _)| id == o365_migrate_target::graph::FINGERPRINT_PROPERTY)
        .map(|(_, v)| v.clone());
    assert_eq!(
        fp.as_deref(),
        Some(it.fingerprint.as_str()),
        "marker completed"
    );
}

/// An emulator with one mailbox and `faults`, a Graph writer for it (its configuration
/// adjusted by `adjust`) and the mailbox's inbox.
async fn one_inbox(
    user: &str,
    faults: Faults,
    adjust: impl FnOnce(&mut GraphTargetConfig),
) -> (
    Emulator,
    String,
    Arc<dyn o365_migrate_target::MailboxWriter>,
    o365_migrate_target::FolderHandle,
) {
    let mut config = config_with(&[user.to_string()]);
    config.faults = faults;
    let emu = Emulator::start(config).await.unwrap();
    let mut tc = target_config(&emu, Credential::ClientSecret(SecretString::new(SECRET)));
    adjust(&mut tc);
    let target = GraphTarget::new(tc).unwrap();
    let (w, folder) = open_inbox(&target, user).await;
    (emu, user.to_string(), w, folder)
}

/// `user`'s writer and inbox.
async fn open_inbox(
    target: &GraphTarget,
    user: &str,
) -> (
    Arc<dyn o365_migrate_target::MailboxWriter>,
    o365_migrate_target::FolderHandle,
) {
    let w = target.open_mailbox(user).await.unwrap();
    let folder = w
        .ensure_folders(&[FolderSpec::well_known("INBOX", WellKnownFolder::Inbox)])
        .await
        .unwrap()
        .remove(0);
    (w, folder)
}

/// Exchange Online refuses every request of a mailbox until a `Retry-After` it gave has
/// passed: a 429 on one request pauses them all (requests already sent excepted), so the
/// emulator, which answers 429 inside the window and counts such requests, counts none.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_after_pauses_every_request_of_the_mailbox() {
    let faults = Faults {
        seed: 11,
        rate_429: 0.05,
        retry_after_secs: 1,
        ..Faults::default()
    };
    let (emu, user, w, folder) = one_inbox("paced@contoso.example", faults, |tc| {
        // Honour the service's 1 s (the other tests cap it to stay fast).
        tc.retry.max_retry_after = Duration::from_secs(5);
        tc.retry.max_attempts = 10;
    })
    .await;
    let mut set = tokio::task::JoinSet::new();
    for n in 0..80 {
        let (w, folder) = (w.clone(), folder.clone());
        set.spawn(async move {
            w.write(
                &folder,
                &item(small_message(0, n), Flags::default(), 1_751_446_800),
            )
            .await
        });
    }
    while let Some(r) = set.join_next().await {
        r.unwrap().unwrap();
    }
    assert_eq!(emu.messages(&user).len(), 80);
    let c = emu.counters(&user);
    assert!(
        c.faults_injected >= 2,
        "the 429s must have happened for this test to mean something: {c:?}"
    );
    assert_eq!(
        c.requests_in_retry_window, 0,
        "requests were sent while the mailbox's Retry-After had not passed: {c:?}"
    );
    let t = w.throttling();
    assert!(t.pauses >= 2 && t.throttled_answers >= t.pauses, "{t:?}");
    emu.assert_limits_respected().unwrap();
}

/// A message with one attachment of `len` bytes (over 3 MB: written through an upload
/// session, the item marked pending until every attachment is there).
fn message_with_attachment(n: usize, len: usize) -> Vec<u8> {
    let mut m = format!(
        "From: a@example.com\r\nTo: lost@contoso.example\r\nSubject: big {n}\r\n\
         Date: Tue, 01 Jul 2025 10:00:00 +0000\r\nMessage-ID: <big-{n}@example.com>\r\n\
         MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b\"\r\n\r\n\
         --b\r\nContent-Type: text/plain\r\n\r\nsee attached\r\n\
         --b\r\nContent-Type: application/octet-stream\r\n\
         Content-Disposition: attachment; filename=\"big.bin\"\r\n\
         Content-Transfer-Encoding: base64\r\n\r\n"
    );
    m.push_str(&b64_lines(&pattern(len, n as u8)));
    m.push_str("--b--\r\n");
    m.into_bytes()
}

/// Writes the service carried out but whose answer was lost (504 Gateway Timeout, a dropped
/// connection) are looked up before anything is sent again: every message exists exactly
/// once, those with attachments over 3 MB too, and no partial copy is left beside one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_lost_after_the_write_never_duplicate() {
    let faults = Faults {
        seed: 0x504,
        rate_504_after_write: 0.15,
        rate_reset_after_write: 0.10,
        ..Faults::default()
    };
    let (emu, user, w, folder) = one_inbox("lost@contoso.example", faults, |tc| {
        tc.retry.max_attempts = 10;
    })
    .await;
    let mut raws: Vec<Vec<u8>> = (0..60).map(|n| small_message(0, n)).collect();
    raws.extend((0..4).map(|n| message_with_attachment(n, 3_500_000)));
    let total = raws.len();
    let mut set = tokio::task::JoinSet::new();
    for raw in raws {
        let (w, folder) = (w.clone(), folder.clone());
        set.spawn(async move {
            let it = item(raw, Flags::default(), 1_751_446_800);
            // As the engine does: a transient failure is tried again.
            let mut last = None;
            for _ in 0..6 {
                match w.write(&folder, &it).await {
                    Ok(o) => return Ok(o),
                    Err(e) if e.is_transient() => last = Some(e),
                    Err(e) => return Err(e),
                }
            }
            Err(last.unwrap())
        });
    }
    while let Some(r) = set.join_next().await {
        r.unwrap().unwrap();
    }
    assert!(
        emu.after_write_faults() >= 5,
        "the lost answers must have happened: {}",
        emu.after_write_faults()
    );
    let msgs = emu.messages(&user);
    let ids: std::collections::BTreeSet<&str> = msgs
        .iter()
        .filter_map(|m| m.str("internetMessageId"))
        .collect();
    assert_eq!(ids.len(), total, "every message is there");
    assert_eq!(
        msgs.len(),
        total,
        "and none twice, no partial copy beside one"
    );
}

/// `read_content` shows what Graph holds of an item: by default its headers and the names and
/// sizes of its attachments, with `deep` also the body text and each attachment's SHA-256 read
/// from `$value`. A replaced attachment of the same size is seen only by the deep read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_content_matches_the_source_and_a_deep_read_sees_a_replaced_attachment() {
    use o365_migrate_target::ContentSummary;
    let (emu, user, w, inbox) = one_inbox("ann@contoso.example", Faults::default(), |_| {}).await;
    let small = pattern(10_000, 3);
    let large = pattern(3 * 1024 * 1024 + 100, 5);
    let raw = format!(
        "From: Ann <ann@example.org>\r\nTo: Bob <bob@example.org>, carl@example.org\r\n\
Cc: dee@example.org\r\nSubject: =?UTF-8?Q?Gr=C3=BC=C3=9Fe?= and files\r\n\
Date: Tue, 01 Jul 2025 10:00:00 +0200\r\nMessage-ID: <content-1@example.org>\r\n\
MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\
Content-Type: text/html; charset=utf-8\r\n\r\n<p>Hello <b>there</b>, see the files.</p>\r\n--b\r\n\
Content-Type: application/octet-stream; name=small.bin\r\nContent-Disposition: attachment; filename=small.bin\r\n\
Content-Transfer-Encoding: base64\r\n\r\n{}--b\r\n\
Content-Type: application/octet-stream; name=large.bin\r\nContent-Disposition: attachment; filename=large.bin\r\n\
Content-Transfer-Encoding: base64\r\n\r\n{}--b--\r\n",
        b64_lines(&small),
        b64_lines(&large)
    );
    let id = o365_migrate_mime::fingerprint(raw.as_bytes());
    let item = WriteItem {
        fingerprint: o365_migrate_mime::item_key(raw.as_bytes(), &id),
        raw: Bytes::from(raw.clone()),
        flags: Flags::default(),
        internal_date: None,
        internet_message_id: None,
    };
    let WriteOutcome::Written { target_id, .. } = w.write(&inbox, &item).await.unwrap() else {
        panic!("written")
    };
    let source = ContentSummary::of_mime(raw.as_bytes());
    assert_eq!(source.attachments.as_ref().map(Vec::len), Some(2));
    for deep in [false, true] {
        let found = w
            .read_content(&inbox, &target_id, deep)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            found.attachments.as_ref().map(Vec::len),
            Some(2),
            "deep {deep}"
        );
        assert_eq!(found.text_sha256.is_some(), deep);
        assert_eq!(
            source.differences(&found),
            Vec::<String>::new(),
            "deep {deep}"
        );
    }
    let mut replaced = small.clone();
    replaced[5000] ^= 0xff;
    assert!(emu.replace_attachment(&user, "<content-1@example.org>", 0, Bytes::from(replaced)));
    let shallow = w
        .read_content(&inbox, &target_id, false)
        .await
        .unwrap()
        .unwrap();
    assert!(
        source.differences(&shallow).is_empty(),
        "same names and sizes"
    );
    let deep = w
        .read_content(&inbox, &target_id, true)
        .await
        .unwrap()
        .unwrap();
    let d = source.differences(&deep);
    assert_eq!(d.len(), 1, "{d:?}");
    assert!(
        d[0].starts_with("attachment \"small.bin\": content differs"),
        "{d:?}"
    );
    assert!(
        w.read_content(&inbox, "no-such-id", true)
            .await
            .unwrap()
            .is_none()
    );
}

/// Small creates that are waiting while a request is in flight leave together in one `$batch`
/// (Graph runs four of its sub-requests at a time): 60 messages written at once take a handful
/// of HTTP requests instead of 60, every one arrives once, non-draft, read as the source had
/// it, and the mailbox never sees more than four requests at a time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn small_creates_travel_in_batches_within_the_mailbox_limits() {
    let user = "batched@contoso.example".to_string();
    let (emu, target) = emulator_and_target(&user, |_| {}).await;
    let w = target.open_mailbox(&user).await.unwrap();
    let folder = w
        .ensure_folders(&[FolderSpec::well_known("INBOX", WellKnownFolder::Inbox)])
        .await
        .unwrap()
        .remove(0);
    let before = target.client().requests_sent();
    let mut set = tokio::task::JoinSet::new();
    for n in 0..60 {
        let (w, folder) = (w.clone(), folder.clone());
        set.spawn(async move {
            let flags = Flags {
                seen: n % 2 == 0,
                ..Flags::default()
            };
            w.write(&folder, &item(small_message(0, n), flags, 1_751_446_800))
                .await
        });
    }
    while let Some(r) = set.join_next().await {
        r.unwrap().unwrap();
    }
    let sent = target.client().requests_sent() - before;
    // The folder index read, one create alone, then groups of up to 20.
    assert!(
        sent <= 12,
        "60 creates took {sent} HTTP requests: they were not batched"
    );
    let msgs = emu.messages(&user);
    assert_eq!(msgs.len(), 60);
    assert!(msgs.iter().all(|m| m.bool("isDraft") == Some(false)));
    assert_eq!(
        msgs.iter()
            .filter(|m| m.bool("isRead") == Some(true))
            .count(),
        30
    );
    let c = emu.counters(&user);
    assert_eq!(c.concurrency_violations, 0, "{c:?}");
    assert!(c.max_concurrent_seen <= 4, "{c:?}");
    emu.assert_limits_respected().unwrap();
}

/// `measure_answer_times` tells the way there and back from the time inside the mailbox: single
/// reads take both, batches of eight the way once and two rounds of four in the mailbox.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answer_times_are_measured_in_their_two_parts() {
    let user = "timed@contoso.example".to_string();
    let mut config = config_with(std::slice::from_ref(&user));
    config.gateway_ms = 200;
    config.latency_ms = 300;
    let emu = Emulator::start(config).await.unwrap();
    let target = GraphTarget::new(target_config(
        &emu,
        Credential::ClientSecret(SecretString::new(SECRET)),
    ))
    .unwrap();
    let t = target.client().measure_answer_times(&user).await.unwrap();
    let (g, m) = (t.gateway.as_millis(), t.mailbox.as_millis());
    assert!((280..=380).contains(&m), "in the mailbox: {m} ms");
    assert!((180..=300).contains(&g), "on the way: {g} ms");
    assert_eq!(emu.counters(&user).concurrency_violations, 0);
}

/// Counts what the client takes from a shared budget.
#[derive(Debug, Default)]
struct CountingBudget {
    requests: std::sync::atomic::AtomicU64,
    bytes: std::sync::atomic::AtomicU64,
}

impl o365_migrate_target::graph::SharedBudget for CountingBudget {
    fn take(
        &self,
        requests: u64,
        upload_bytes: u64,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + '_>> {
        use std::sync::atomic::Ordering;
        self.requests.fetch_add(requests, Ordering::Relaxed);
        self.bytes.fetch_add(upload_bytes, Ordering::Relaxed);
        Box::pin(async {})
    }
}

#[tokio::test]
async fn every_mailbox_request_takes_from_the_shared_budget() {
    use std::sync::atomic::Ordering;
    let upn = "dora@contoso.example".to_string();
    let budget = std::sync::Arc::new(CountingBudget::default());
    let shared: std::sync::Arc<dyn o365_migrate_target::graph::SharedBudget> = budget.clone();
    let (emu, target) = emulator_and_target(&upn, |c| c.shared_budget = Some(shared)).await;
    let w = target.open_mailbox(&upn).await.unwrap();
    let plan = [FolderSpec::at_root("Projects", ["Projects"])];
    w.ensure_folders(&plan).await.unwrap();
    let admitted: u64 = emu.all_counters().iter().map(|(_, _, c)| c.requests).sum();
    assert!(admitted > 0);
    // Every request the emulator counted for the mailbox was taken from the budget (the
    // client's total also has the token and directory calls, which take from it as well).
    let taken = budget.requests.load(Ordering::Relaxed);
    assert!(taken >= admitted, "{taken} < {admitted}");
    assert_eq!(taken, target.client().requests_sent());
    assert!(
        budget.bytes.load(Ordering::Relaxed) > 0,
        "folder creation uploads a body"
    );
}

/// `small_message` `n` carrying the categories `names` (as IMAP keywords).
fn tagged_item(n: usize, names: &[&str]) -> WriteItem {
    let flags = Flags {
        keywords: names.iter().map(|k| k.to_string()).collect(),
        ..Flags::default()
    };
    item(small_message(0, n), flags, 1_751_446_800 + n as i64)
}

fn categories_of(m: &o365_migrate_graph_emulator::StoredMessage) -> Vec<String> {
    m.properties["categories"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn categories_are_made_once_in_the_master_list_with_a_colour() {
    let upn = "carla@contoso.example";
    let (emu, target) = emulator_and_target(upn, |_| {}).await;
    // The user already has `work` (another case than the source's `Work`).
    assert!(emu.add_master_category(upn, "work", "preset3"));
    target.check().await.unwrap();
    let (writer, inbox) = open_inbox(&target, upn).await;
    let names = ["Work", "Clients/ACME", "Reisekosten Über"];
    // 20 messages written at once, sharing the three categories two by two.
    let tasks: Vec<_> = (0..20)
        .map(|n| {
            let (writer, inbox) = (writer.clone(), inbox.clone());
            let it = tagged_item(n, &[names[n % 3], names[(n + 1) % 3]]);
            tokio::spawn(async move { writer.write(&inbox, &it).await })
        })
        .collect();
    let mut ids = Vec::new();
    for t in tasks {
        match t.await.unwrap().unwrap() {
            WriteOutcome::Written { notes, target_id } => {
                assert!(notes.is_empty(), "{notes:?}");
                ids.push(target_id);
            }
            other => panic!("{other:?}"),
        }
    }
    let list = emu.master_categories(upn);
    for (wanted, color) in [
        ("work", Some("preset3")),
        ("Clients/ACME", None),
        ("Reisekosten Über", None),
    ] {
        let same: Vec<_> = list
            .iter()
            .filter(|(n, _)| n.to_lowercase() == wanted.to_lowercase())
            .collect();
        assert_eq!(same.len(), 1, "{wanted} once in {list:?}");
        assert_eq!(same[0].0, wanted, "{list:?}");
        let c = &same[0].1;
        let n: u32 = c.strip_prefix("preset").unwrap().parse().unwrap();
        assert!(n <= 24, "{c}");
        if let Some(color) = color {
            assert_eq!(c, color, "an existing category keeps its colour");
        }
    }
    assert_eq!(
        emu.master_category_conflicts(upn),
        0,
        "each name created once, by one of the 20 writes"
    );
    let messages = emu.messages(upn);
    assert_eq!(messages.len(), 20);
    let spelt = |s: &str| if s == "Work" { "work" } else { s }.to_string();
    for m in &messages {
        let n: usize = m.str("subject").unwrap()["message ".len()..]
            .split(' ')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(
            categories_of(m),
            [spelt(names[n % 3]), spelt(names[(n + 1) % 3])],
            "message {n}"
        );
    }
    // `sync` changing the keywords: the same list, the same spelling.
    let flags = Flags {
        keywords: vec!["WORK".into(), "Neu".into()],
        ..Flags::default()
    };
    assert!(writer.set_flags(&inbox, &ids[0], &flags).await.unwrap());
    let changed = emu
        .messages(upn)
        .into_iter()
        .find(|m| m.id == ids[0])
        .unwrap();
    assert_eq!(categories_of(&changed), ["work", "Neu"]);
    let list = emu.master_categories(upn);
    assert_eq!(
        list.iter()
            .filter(|(n, _)| n.to_lowercase() == "work")
            .count(),
        1
    );
    assert!(list.iter().any(|(n, _)| n == "Neu"), "{list:?}");
    emu.assert_limits_respected().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_category_made_meanwhile_is_taken_and_one_that_cannot_be_made_is_a_note() {
    let upn = "dora@contoso.example";
    let (emu, target) = emulator_and_target(upn, |_| {}).await;
    let (writer, inbox) = open_inbox(&target, upn).await;
    // The writer reads the list with the first message that has categories…
    writer
        .write(&inbox, &tagged_item(0, &["Alpha"]))
        .await
        .unwrap();
    // …then someone else makes `BETA`: the writer's create of `beta` is a duplicate.
    assert!(emu.add_master_category(upn, "BETA", "preset5"));
    match writer
        .write(&inbox, &tagged_item(1, &["beta"]))
        .await
        .unwrap()
    {
        WriteOutcome::Written { notes, .. } => assert!(notes.is_empty(), "{notes:?}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(emu.master_category_conflicts(upn), 1);
    let betas = emu
        .master_categories(upn)
        .into_iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("beta"))
        .count();
    assert_eq!(betas, 1);

    // Without MailboxSettings.ReadWrite a category cannot be made: the message is written all
    // the same, with the category (uncoloured) and a note naming it.
    let mut config = config_with(&[upn.to_string()]);
    config.tenants[0].apps[0]
        .roles
        .retain(|r| r != "MailboxSettings.ReadWrite");
    config.tenants[0].apps[0]
        .roles
        .push("MailboxSettings.Read".into());
    let emu2 = Emulator::start(config).await.unwrap();
    let target2 = GraphTarget::new(target_config(
        &emu2,
        Credential::ClientSecret(SecretString::new(SECRET)),
    ))
    .unwrap();
    let (writer2, inbox2) = open_inbox(&target2, upn).await;
    match writer2
        .write(&inbox2, &tagged_item(2, &["Gamma"]))
        .await
        .unwrap()
    {
        WriteOutcome::Written { notes, .. } => {
            assert_eq!(notes.len(), 1, "{notes:?}");
            assert!(
                notes[0].contains("Gamma") && notes[0].contains("403"),
                "{notes:?}"
            );
        }
        other => panic!("{other:?}"),
    }
    let messages = emu2.messages(upn);
    assert_eq!(messages.len(), 1);
    assert_eq!(categories_of(&messages[0]), ["Gamma"]);
    // …and the permission check names what is missing.
    match target2.check().await.unwrap_err() {
        o365_migrate_target::Error::MissingPermissions { missing, fix } => {
            assert_eq!(missing, ["MailboxSettings.ReadWrite"]);
            assert!(fix.contains("MailboxSettings.ReadWrite"), "{fix}");
        }
        other => panic!("unexpected {other:?}"),
    }
}
