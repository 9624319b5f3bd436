//! The emulator's documented behaviours, checked over HTTP.

use std::time::Duration;

use base64::Engine;
use o365_migrate_graph_emulator::{Emulator, EmulatorConfig, Faults, UserConfig};
use serde_json::{Value, json};

const UPN: &str = "alice@contoso.example";

fn http() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder().build().unwrap()
}

async fn start(edit: impl FnOnce(&mut EmulatorConfig)) -> Emulator {
    let mut c = EmulatorConfig::default();
    c.tenants[0].users.push(UserConfig::with_mailbox(UPN));
    edit(&mut c);
    Emulator::start(c).await.unwrap()
}

async fn token(emu: &Emulator, secret: &str) -> (u16, Value) {
    let app = &emu.config().tenants[0].apps[0];
    let r = http()
        .post(format!(
            "{}/{}/oauth2/v2.0/token",
            emu.url(),
            emu.tenant_id()
        ))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", app.client_id.as_str()),
            ("scope", "https://graph.microsoft.com/.default"),
            ("client_secret", secret),
        ])
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

async fn bearer(emu: &Emulator) -> String {
    let (s, v) = token(emu, "emulator-secret").await;
    assert_eq!(s, 200, "{v}");
    v["access_token"].as_str().unwrap().to_string()
}

async fn call(
    emu: &Emulator,
    tok: &str,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> (u16, Value, reqwest::header::HeaderMap) {
    let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let mut rb = http()
        .request(m, format!("{}/v1.0{path}", emu.url()))
        .bearer_auth(tok);
    if let Some(b) = body {
        rb = rb.json(&b);
    }
    let r = rb.send().await.unwrap();
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    (status, r.json().await.unwrap_or(Value::Null), headers)
}

#[tokio::test]
async fn tokens_check_secret_and_scope() {
    let emu = start(|_| {}).await;
    let (s, v) = token(&emu, "wrong").await;
    assert_eq!(s, 401);
    assert_eq!(v["error"], "invalid_client");
    assert!(
        v["error_description"]
            .as_str()
            .unwrap()
            .starts_with("AADSTS7000215")
    );
    let tok = bearer(&emu).await;
    let (s, _, _) = call(&emu, "not-a-token", "GET", "/users", None).await;
    assert_eq!(s, 401);
    let (s, v, _) = call(&emu, &tok, "GET", "/users?$select=userPrincipalName", None).await;
    assert_eq!(s, 200);
    assert_eq!(v["value"][0]["userPrincipalName"], UPN);
    assert!(v["value"][0].get("displayName").is_none());
}

fn message(flags: Option<&str>) -> Value {
    let mut props = vec![
        json!({"id": "SystemTime 0x0E06", "value": "2020-01-02T03:04:05Z"}),
        json!({"id": "SystemTime 0x0039", "value": "2020-01-01T00:00:00Z"}),
    ];
    if let Some(f) = flags {
        props.push(json!({"id": "Integer 0x0E07", "value": f}));
    }
    json!({"subject": "s", "body": {"contentType": "html", "content": "<p>x</p>"}, "internetMessageId": "<x@y>",
        "singleValueExtendedProperties": props})
}

#[tokio::test]
async fn message_flags_decide_draft_and_read_and_dates_are_kept() {
    let emu = start(|_| {}).await;
    let tok = bearer(&emu).await;
    let path = format!("/users/{UPN}/mailFolders/inbox/messages");
    let (s, v, _) = call(&emu, &tok, "POST", &path, Some(message(Some("1")))).await;
    assert_eq!(s, 201, "{v}");
    assert_eq!(
        (v["isDraft"].as_bool(), v["isRead"].as_bool()),
        (Some(false), Some(true))
    );
    assert_eq!(v["receivedDateTime"], "2020-01-02T03:04:05Z");
    assert_eq!(v["sentDateTime"], "2020-01-01T00:00:00Z");
    let (_, v, _) = call(&emu, &tok, "POST", &path, Some(message(Some("0")))).await;
    assert_eq!(
        (v["isDraft"].as_bool(), v["isRead"].as_bool()),
        (Some(false), Some(false))
    );
    let (_, v, _) = call(&emu, &tok, "POST", &path, Some(message(None))).await;
    assert_eq!(v["isDraft"], true, "no 0x0E07 → draft");
    let (_, v, _) = call(&emu, &tok, "POST", &path, Some(message(Some("9")))).await;
    assert_eq!(v["isDraft"], true, "unsent bit → draft");
    // PATCH cannot clear the draft state.
    let id = v["id"].as_str().unwrap().to_string();
    let (s, v, _) = call(
        &emu,
        &tok,
        "PATCH",
        &format!("/users/{UPN}/messages/{id}"),
        Some(json!({"isDraft": false,
        "singleValueExtendedProperties": [{"id": "Integer 0x0E07", "value": "1"}]})),
    )
    .await;
    assert_eq!((s, v["isDraft"].as_bool()), (200, Some(true)));
    // Unknown properties and bad headers are refused.
    let (s, v, _) = call(&emu, &tok, "POST", &path, Some(json!({"subjekt": "x"}))).await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (400, Some("RequestBodyRead"))
    );
    let (s, v, _) = call(
        &emu,
        &tok,
        "POST",
        &path,
        Some(json!({"internetMessageHeaders": [{"name": "Received", "value": "x"}]})),
    )
    .await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (400, Some("InvalidInternetMessageHeader"))
    );
    // Filter, count, paging.
    let (_, v, _) = call(
        &emu,
        &tok,
        "GET",
        &format!(
            "{path}?$filter=internetMessageId%20eq%20'%3Cx@y%3E'&$count=true&$top=2&$select=id"
        ),
        None,
    )
    .await;
    assert_eq!(v["@odata.count"], 4);
    assert_eq!(v["value"].as_array().unwrap().len(), 2);
    assert!(v["@odata.nextLink"].as_str().unwrap().contains("skip=2"));
}

#[tokio::test]
async fn mime_create_is_a_draft_in_drafts_and_refused_on_a_folder() {
    let emu = start(|_| {}).await;
    let tok = bearer(&emu).await;
    let mime = base64::engine::general_purpose::STANDARD
        .encode("Subject: hi\r\nMessage-ID: <m@x>\r\nFrom: a@b.c\r\n\r\nbody\r\n");
    let post = |path: String| {
        http()
            .post(format!("{}/v1.0{path}", emu.url()))
            .bearer_auth(&tok)
            .header("content-type", "text/plain")
            .body(mime.clone())
            .send()
    };
    let r = post(format!("/users/{UPN}/messages")).await.unwrap();
    assert_eq!(r.status().as_u16(), 201);
    let v: Value = r.json().await.unwrap();
    assert_eq!(
        (v["isDraft"].as_bool(), v["subject"].as_str()),
        (Some(true), Some("hi"))
    );
    assert_eq!(emu.messages(UPN)[0].folder_path, "Drafts");
    let r = post(format!("/users/{UPN}/mailFolders/inbox/messages"))
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
}

#[tokio::test]
async fn folders_conflict_case_insensitively() {
    let emu = start(|_| {}).await;
    let tok = bearer(&emu).await;
    let p = format!("/users/{UPN}/mailFolders/inbox/childFolders");
    assert_eq!(
        call(
            &emu,
            &tok,
            "POST",
            &p,
            Some(json!({"displayName": "Receipts"}))
        )
        .await
        .0,
        201
    );
    let (s, v, _) = call(
        &emu,
        &tok,
        "POST",
        &p,
        Some(json!({"displayName": "RECEIPTS"})),
    )
    .await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (409, Some("ErrorFolderExists"))
    );
    let (_, v, _) = call(
        &emu,
        &tok,
        "GET",
        &format!("/users/{UPN}/mailFolders/inbox"),
        None,
    )
    .await;
    assert_eq!(v["childFolderCount"], 1);
}

#[tokio::test]
async fn upload_sessions_check_ranges_order_and_authorization() {
    let emu = start(|_| {}).await;
    let tok = bearer(&emu).await;
    let (_, m, _) = call(
        &emu,
        &tok,
        "POST",
        &format!("/users/{UPN}/mailFolders/inbox/messages"),
        Some(message(Some("1"))),
    )
    .await;
    let id = m["id"].as_str().unwrap();
    let session = |size: usize| {
        let (emu, tok) = (&emu, &tok);
        async move {
            call(
                emu,
                tok,
                "POST",
                &format!("/users/{UPN}/messages/{id}/attachments/createUploadSession"),
                Some(json!({"AttachmentItem": {"attachmentType": "file", "name": "a.bin", "size": size}})),
            )
            .await
        }
    };
    // Under 3 MB an attachment is POSTed whole; Exchange Online refuses an upload session.
    const MIN: usize = 3 * 1024 * 1024;
    let (s, v, _) = session(MIN - 1).await;
    assert_eq!(s, 400, "{v}");
    assert_eq!(
        v["error"]["code"],
        "ErrorAttachmentSizeShouldNotBeLessThanMinimumSize"
    );
    let (s, v, _) = session(150_000_001).await;
    assert_eq!(s, 400, "150 MB is 150,000,000 bytes: {v}");
    let (s, v) = {
        let (s, v, _) = session(MIN).await;
        (s, v)
    };
    assert_eq!(s, 201, "{v}");
    assert_eq!(v["nextExpectedRanges"][0], "0-");
    let url = v["uploadUrl"].as_str().unwrap().to_string();
    let data: Vec<u8> = (0..MIN).map(|i| (i % 251) as u8).collect();
    let half = MIN / 2;
    let put = |range: String, body: Vec<u8>, auth: bool| {
        let mut rb = http().put(&url).header("content-range", range).body(body);
        if auth {
            rb = rb.bearer_auth(&tok);
        }
        rb.send()
    };
    let first = || data[..half].to_vec();
    let second = || data[half..].to_vec();
    let r1 = format!("bytes 0-{}/{MIN}", half - 1);
    let r2 = format!("bytes {half}-{}/{MIN}", MIN - 1);
    assert_eq!(
        put(r1.clone(), first(), true)
            .await
            .unwrap()
            .status()
            .as_u16(),
        401
    );
    assert_eq!(
        put(r2.clone(), second(), false)
            .await
            .unwrap()
            .status()
            .as_u16(),
        416
    );
    assert_eq!(
        put(format!("bytes 0-{half}/{MIN}"), first(), false)
            .await
            .unwrap()
            .status()
            .as_u16(),
        400
    );
    let r = put(r1, first(), false).await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let r = put(r2, second(), false).await.unwrap();
    assert_eq!(r.status().as_u16(), 201);
    assert!(r.headers().get("location").is_some());
    assert!(emu.messages(UPN)[0].attachments[0].data.as_ref() == data.as_slice());
}

/// Six reads of the inbox sent at once; their statuses in the order they were sent.
async fn six_inbox_reads_at_once(emu: &Emulator, tok: &str) -> Vec<u16> {
    let url = format!("{}/v1.0/users/{UPN}/mailFolders/inbox", emu.url());
    let mut handles = Vec::new();
    for _ in 0..6 {
        let (u, t) = (url.clone(), tok.to_owned());
        handles.push(tokio::spawn(async move {
            http()
                .get(u)
                .bearer_auth(t)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }));
    }
    let mut statuses = Vec::new();
    for h in handles {
        statuses.push(h.await.unwrap());
    }
    statuses
}

/// A request is in flight from its arrival until its answer is sent: with the service taking
/// 400 ms per request, six at once on one mailbox are four admitted and two refused.
#[tokio::test]
async fn latency_keeps_requests_in_flight_until_they_are_answered() {
    let emu = start(|c| c.latency_ms = 400).await;
    let tok = bearer(&emu).await;
    let started = std::time::Instant::now();
    let mut statuses = six_inbox_reads_at_once(&emu, &tok).await;
    statuses.sort();
    assert_eq!(statuses, [200, 200, 200, 200, 503, 503]);
    assert!(started.elapsed() >= Duration::from_millis(400));
    let c = emu.counters(UPN);
    assert_eq!(c.concurrency_violations, 2, "{c:?}");
}

#[tokio::test]
async fn over_four_megabytes_is_413() {
    let emu = start(|_| {}).await;
    let tok = bearer(&emu).await;
    let big = json!({"subject": "x".repeat(4 * 1024 * 1024 + 10)});
    let (s, _, _) = call(
        &emu,
        &tok,
        "POST",
        &format!("/users/{UPN}/mailFolders/inbox/messages"),
        Some(big),
    )
    .await;
    assert_eq!(s, 413);
}

#[tokio::test]
async fn budgets_and_concurrency_are_enforced_and_recorded() {
    let emu = start(|c| {
        c.limits.requests_per_window = 6;
        c.faults = Faults {
            rate_slow: 1.0,
            slow_ms: 300,
            ..Faults::default()
        };
    })
    .await;
    let tok = bearer(&emu).await;
    let path = format!("/users/{UPN}/mailFolders/inbox");
    // Five at once: four pass (slowly), one is refused for concurrency (and recorded).
    let mut handles = Vec::new();
    for _ in 0..5 {
        let (u, t) = (format!("{}/v1.0{path}", emu.url()), tok.clone());
        handles.push(tokio::spawn(async move {
            http().get(u).bearer_auth(t).send().await.unwrap()
        }));
    }
    let mut statuses = Vec::new();
    for h in handles {
        let r = h.await.unwrap();
        statuses.push((
            r.status().as_u16(),
            r.headers().get("retry-after").is_some(),
        ));
    }
    statuses.sort();
    assert_eq!(
        statuses.iter().filter(|(s, _)| *s == 200).count(),
        4,
        "{statuses:?}"
    );
    assert!(
        statuses.iter().any(|(s, ra)| *s == 503 && *ra),
        "{statuses:?}"
    );
    let c = emu.counters(UPN);
    assert!(
        c.max_concurrent_seen >= 5 && c.concurrency_violations >= 1,
        "{c:?}"
    );
    assert!(emu.assert_limits_respected().is_err());
    // Two more fit the budget of 6; the next is refused with Retry-After.
    let mut seen = Vec::new();
    for _ in 0..3 {
        let (s, _, h) = call(&emu, &tok, "GET", &path, None).await;
        seen.push((
            s,
            h.get("retry-after")
                .and_then(|v| v.to_str().ok())
                .map(String::from),
        ));
    }
    assert_eq!(seen[0].0, 200);
    assert_eq!(seen[1].0, 200);
    assert_eq!(seen[2].0, 429, "{seen:?}");
    assert!(
        seen[2]
            .1
            .as_deref()
            .and_then(|v| v.parse::<u64>().ok())
            .is_some_and(|s| s >= 1),
        "{seen:?}"
    );
    assert_eq!(emu.counters(UPN).request_budget_refusals, 1);
}

#[tokio::test]
async fn batch_limits_and_sub_request_throttling() {
    let emu = start(|c| c.limits.requests_per_window = 2).await;
    let tok = bearer(&emu).await;
    let reqs: Vec<Value> = (0..21).map(|i| json!({"id": i.to_string(), "method": "GET", "url": format!("/users/{UPN}/mailFolders/inbox")})).collect();
    assert_eq!(
        call(
            &emu,
            &tok,
            "POST",
            "/$batch",
            Some(json!({"requests": reqs}))
        )
        .await
        .0,
        400
    );
    let (s, v, _) = call(
        &emu,
        &tok,
        "POST",
        "/$batch",
        Some(json!({"requests": &reqs[..3]})),
    )
    .await;
    assert_eq!(s, 200);
    let st: Vec<u64> = v["responses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["status"].as_u64().unwrap())
        .collect();
    assert_eq!(st, [200, 200, 429]);
}

#[tokio::test]
async fn unlicensed_users_get_a_mailbox_after_licensing() {
    let emu = start(|c| {
        c.time_scale = 0.001;
        c.tenants[0].users.push(UserConfig {
            user_principal_name: "new@contoso.example".into(),
            mailbox: false,
            usage_location: None,
            ..UserConfig::default()
        });
    })
    .await;
    let tok = bearer(&emu).await;
    let (s, v, _) = call(
        &emu,
        &tok,
        "GET",
        "/users/new@contoso.example/mailboxSettings",
        None,
    )
    .await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (404, Some("MailboxNotEnabledForRESTAPI"))
    );
    let sku = emu.config().tenants[0].skus[0].sku_id.clone();
    let lic = json!({"addLicenses": [{"skuId": sku, "disabledPlans": []}], "removeLicenses": []});
    let (s, v, _) = call(
        &emu,
        &tok,
        "POST",
        "/users/new@contoso.example/assignLicense",
        Some(lic.clone()),
    )
    .await;
    assert_eq!(s, 400, "{v}");
    assert_eq!(
        call(
            &emu,
            &tok,
            "PATCH",
            "/users/new@contoso.example",
            Some(json!({"usageLocation": "FR"}))
        )
        .await
        .0,
        204
    );
    assert_eq!(
        call(
            &emu,
            &tok,
            "POST",
            "/users/new@contoso.example/assignLicense",
            Some(lic)
        )
        .await
        .0,
        200
    );
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        call(
            &emu,
            &tok,
            "GET",
            "/users/new@contoso.example/mailboxSettings",
            None
        )
        .await
        .0,
        200
    );
}

/// Graph runs four sub-requests of a batch at a time: eight reads of one mailbox at 300 ms each
/// are four in flight at once (not one after another, not all eight), none refused.
#[tokio::test]
async fn a_batch_runs_four_sub_requests_at_a_time() {
    let emu = start(|c| c.latency_ms = 300).await;
    let tok = bearer(&emu).await;
    let reqs: Vec<Value> = (0..8).map(|i| json!({"id": i.to_string(), "method": "GET", "url": format!("/users/{UPN}/mailFolders/inbox")})).collect();
    let (s, v, _) = call(
        &emu,
        &tok,
        "POST",
        "/$batch",
        Some(json!({"requests": reqs})),
    )
    .await;
    assert_eq!(s, 200);
    let ids: Vec<&str> = v["responses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            assert_eq!(r["status"], 200, "{r}");
            r["id"].as_str().unwrap()
        })
        .collect();
    assert_eq!(ids, ["0", "1", "2", "3", "4", "5", "6", "7"]);
    let c = emu.counters(UPN);
    assert_eq!((c.max_concurrent_seen, c.concurrency_violations), (4, 0));
}

/// The time on the way (network, gateway) holds no mailbox slot: six requests at once that
/// spend 400 ms there and nothing in the mailbox are all admitted.
#[tokio::test]
async fn gateway_time_holds_no_mailbox_slot() {
    let emu = start(|c| {
        c.latency_ms = 0;
        c.gateway_ms = 400;
    })
    .await;
    let tok = bearer(&emu).await;
    assert_eq!(six_inbox_reads_at_once(&emu, &tok).await, [200; 6]);
    assert_eq!(emu.counters(UPN).concurrency_violations, 0);
}

/// The app-wide limit counts an app's requests over all its mailboxes: with room for three per
/// window, the fourth (to another mailbox) is refused 429 and reported.
#[tokio::test]
async fn the_app_wide_limit_spans_mailboxes() {
    let emu = start(|c| {
        c.limits.app_requests_per_window = 3;
        c.tenants[0]
            .users
            .push(UserConfig::with_mailbox("bob@contoso.example"));
    })
    .await;
    let tok = bearer(&emu).await;
    let mut statuses = Vec::new();
    for user in [UPN, "bob@contoso.example", UPN, "bob@contoso.example"] {
        let (s, _, h) = call(
            &emu,
            &tok,
            "GET",
            &format!("/users/{user}/mailFolders/inbox"),
            None,
        )
        .await;
        statuses.push((s, h.contains_key("retry-after")));
    }
    assert_eq!(
        statuses,
        [(200, false), (200, false), (200, false), (429, true)]
    );
    let app = emu.config().tenants[0].apps[0].client_id.clone();
    assert_eq!(emu.app_window_peak(&app), (3, 1));
    assert!(emu.assert_limits_respected().is_err());
}

/// After `reset_app_window_peak` the peak counts only requests that arrived since, though the
/// window (and the limit) still holds the earlier ones.
#[tokio::test]
async fn the_app_window_peak_starts_over_when_reset() {
    let emu = start(|c| c.limits.app_requests_per_window = 100).await;
    let tok = bearer(&emu).await;
    let app = emu.config().tenants[0].apps[0].client_id.clone();
    let path = format!("/users/{UPN}/mailFolders/inbox");
    let read = || call(&emu, &tok, "GET", &path, None);
    for _ in 0..3 {
        assert_eq!(read().await.0, 200);
    }
    assert_eq!(emu.app_window_peak(&app), (3, 0));
    emu.reset_app_window_peak(&app);
    assert_eq!(emu.app_window_peak(&app), (0, 0));
    for _ in 0..2 {
        assert_eq!(read().await.0, 200);
    }
    assert_eq!(emu.app_window_peak(&app), (2, 0));
}

#[tokio::test]
async fn master_categories_validate_colours_and_refuse_duplicates_in_any_case() {
    let emu = start(|_| {}).await;
    let tok = bearer(&emu).await;
    let path = format!("/users/{UPN}/outlook/masterCategories");
    // A new mailbox holds Outlook's six defaults.
    let (s, v, _) = call(&emu, &tok, "GET", &path, None).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["value"].as_array().unwrap().len(), 6, "{v}");

    let (s, v, _) = call(
        &emu,
        &tok,
        "POST",
        &path,
        Some(json!({"displayName": "Reisekosten Über", "color": "preset24"})),
    )
    .await;
    assert_eq!(s, 201, "{v}");
    assert_eq!(v["displayName"], "Reisekosten Über");
    assert_eq!(v["color"], "preset24");
    let id = v["id"].as_str().unwrap().to_string();

    for bad in [json!("preset25"), json!("Red"), json!("preset01"), json!(3)] {
        let (s, v, _) = call(
            &emu,
            &tok,
            "POST",
            &path,
            Some(json!({"displayName": "Other", "color": bad})),
        )
        .await;
        assert_eq!(s, 400, "{bad}: {v}");
    }
    let (s, _, _) = call(&emu, &tok, "POST", &path, Some(json!({"color": "preset1"}))).await;
    assert_eq!(s, 400, "displayName is required");
    // Unique per mailbox, compared case-insensitively (also beyond ASCII).
    let (s, v, _) = call(
        &emu,
        &tok,
        "POST",
        &path,
        Some(json!({"displayName": "reisekosten über", "color": "preset2"})),
    )
    .await;
    assert_eq!(s, 409, "{v}");
    assert_eq!(v["error"]["code"], "ErrorDuplicateCategory");
    let ours: Vec<_> = emu
        .master_categories(UPN)
        .into_iter()
        .filter(|(n, _)| n.to_lowercase() == "reisekosten über")
        .collect();
    assert_eq!(
        ours,
        [("Reisekosten Über".to_string(), "preset24".to_string())]
    );

    let (s, _, _) = call(&emu, &tok, "DELETE", &format!("{path}/{id}"), None).await;
    assert_eq!(s, 204);
    let (s, _, _) = call(&emu, &tok, "DELETE", &format!("{path}/{id}"), None).await;
    assert_eq!(s, 404);
    assert_eq!(emu.master_categories(UPN).len(), 6);
    emu.assert_limits_respected().unwrap();
    assert!(
        emu.counters(UPN).requests >= 9,
        "category requests are mailbox requests"
    );
}

#[tokio::test]
async fn changing_master_categories_needs_mailbox_settings_read_write() {
    let emu = start(|c| {
        c.tenants[0].apps[0].roles = vec!["Mail.ReadWrite".into(), "MailboxSettings.Read".into()];
    })
    .await;
    let tok = bearer(&emu).await;
    let path = format!("/users/{UPN}/outlook/masterCategories");
    let (s, _, _) = call(&emu, &tok, "GET", &path, None).await;
    assert_eq!(s, 200);
    let (s, v, _) = call(
        &emu,
        &tok,
        "POST",
        &path,
        Some(json!({"displayName": "Work", "color": "preset0"})),
    )
    .await;
    assert_eq!(s, 403, "{v}");
    assert_eq!(v["error"]["code"], "ErrorAccessDenied");
}
