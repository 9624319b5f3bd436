//! The dashboard (`o365-migrate serve`) and pause / resume, against a real migration (Dovecot
//! → Graph emulator): every `/api/` route through `curl`, the access rules (another address
//! needs the token; POSTs need the CSRF token; read-only refuses actions), a headless
//! Chromium that reads the overview, finds a skipped item by its reason and pauses and resumes
//! a running migration, and `o365-migrate pause` holding a CLI run in another process.

use std::collections::HashMap;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use o365_migrate_testkit::{Browser, DovecotOptions};
use tokio::io::{AsyncBufReadExt, BufReader};

use super::{DOMAIN, Env, dump, password};

/// A running `o365-migrate serve`.
struct Served {
    _child: tokio::process::Child,
    url: String,
    port: u16,
    token: String,
    stderr: Arc<Mutex<String>>,
}

/// Starts `serve` on a free loopback port and reads its URL and token from stderr.
async fn serve(env: &Env, extra: &[&str]) -> Served {
    let mut args = vec!["serve", "--listen", "127.0.0.1:0"];
    args.extend_from_slice(extra);
    let mut child = env.command(&args).spawn().expect("start serve");
    let mut lines = BufReader::new(child.stderr.take().expect("stderr")).lines();
    let stderr = Arc::new(Mutex::new(String::new()));
    let mut token = String::new();
    let url = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(l) = lines.next_line().await.expect("read serve's stderr") {
            stderr.lock().unwrap().push_str(&format!("{l}\n"));
            if let Some(t) = l.split("only its hash is kept): ").nth(1) {
                token = t.trim().to_owned();
            }
            if let Some(u) = l.strip_prefix("dashboard: ") {
                return u.split_whitespace().next().unwrap_or_default().to_owned();
            }
        }
        panic!("serve ended: {}", stderr.lock().unwrap());
    })
    .await
    .expect("serve printed its address");
    let keep = stderr.clone();
    tokio::spawn(async move {
        while let Ok(Some(l)) = lines.next_line().await {
            keep.lock().unwrap().push_str(&format!("{l}\n"));
        }
    });
    let port = url
        .trim_end_matches('/')
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("port in the URL");
    Served {
        _child: child,
        url,
        port,
        token,
        stderr,
    }
}

/// What curl got: status and body.
struct Got {
    status: u16,
    body: String,
    headers: String,
}

impl Got {
    fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

/// `curl` with `args` (plus -s and the status / header capture) against `path`.
async fn curl(s: &Served, path: &str, args: &[&str]) -> Got {
    let dir = tempfile::tempdir().unwrap();
    let headers = dir.path().join("h");
    let o = tokio::process::Command::new("curl")
        .args(["-s", "--max-time", "30", "-D"])
        .arg(&headers)
        .args(["-o", "-", "-w", "\n%{http_code}"])
        .args(args)
        .arg(format!("http://127.0.0.1:{}{path}", s.port))
        .stdin(Stdio::null())
        .output()
        .await
        .expect("curl (Debian package curl)");
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    let (body, code) = out.rsplit_once('\n').unwrap_or(("", &out));
    Got {
        status: code.trim().parse().unwrap_or(0),
        body: body.to_owned(),
        headers: std::fs::read_to_string(&headers).unwrap_or_default(),
    }
}

async fn csrf(s: &Served) -> String {
    let g = curl(s, "/api/session", &[]).await;
    assert_eq!(g.status, 200, "{}", g.body);
    g.json()["csrf_token"].as_str().unwrap().to_owned()
}

/// Waits until `f` holds for the overview (polled; the server answers within a second of a
/// change), or fails with the last overview.
async fn wait_overview(
    s: &Served,
    what: &str,
    f: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let o = curl(s, "/api/overview", &[]).await.json();
        if f(&o) {
            return o;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}: {o}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Items the size filter skips per user (`max_message_size` at the corpus's 90th percentile).
fn size_filter(env: &Env) -> (u64, HashMap<String, u64>) {
    let mut sizes: Vec<u64> = env
        .manifests
        .values()
        .flat_map(|m| m.entries().iter().map(|e| e.size))
        .collect();
    sizes.sort_unstable();
    let max = sizes[sizes.len() * 9 / 10];
    let per = env
        .manifests
        .iter()
        .map(|(u, m)| {
            let n = m.entries().iter().filter(|e| e.size > max).count() as u64;
            (u.clone(), n)
        })
        .collect();
    (max, per)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_api_route_answers_and_other_addresses_need_the_token() {
    let env = Env::start(&["anna", "ben"], 120, 9090).await;
    let (max, skips) = size_filter(&env);
    env.write_job(&format!("max_message_size = \"{max}B\""));
    let o = env.cli(&["run"]).await;
    assert_eq!(o.code, 0, "{}", dump(&o));
    let o = env.cli(&["verify"]).await;
    assert_eq!(o.code, 0, "{}", dump(&o));
    let status = env.status_counts().await;
    let s = serve(&env, &[]).await;
    assert!(
        !s.token.is_empty(),
        "the first start shows the token: {}",
        s.stderr.lock().unwrap()
    );
    let mut bodies = String::new();

    // Every route, from this machine.
    let g = curl(&s, "/api/session", &[]).await;
    assert_eq!(g.status, 200);
    assert!(
        g.headers
            .to_ascii_lowercase()
            .contains("content-security-policy: default-src 'none'"),
        "{}",
        g.headers
    );
    bodies += &g.body;
    let ov = curl(&s, "/api/overview", &[]).await.json();
    for k in ["migrated", "skipped", "failed", "planned"] {
        assert_eq!(ov["totals"][k], status[k], "{k}: {ov}");
    }
    assert_eq!(ov["states"]["done"], 2, "{ov}");
    assert_eq!(ov["running"], false);
    assert_eq!(ov["verify"]["ok"], true, "{ov}");
    bodies += &ov.to_string();
    let mbs = curl(&s, "/api/mailboxes", &[]).await.json();
    let mbs = mbs.as_array().unwrap().clone();
    assert_eq!(mbs.len(), 2);
    for m in &mbs {
        let user = m["source"]
            .as_str()
            .unwrap()
            .split('@')
            .next()
            .unwrap()
            .to_owned();
        let id = m["id"].as_i64().unwrap();
        let d = curl(&s, &format!("/api/mailboxes/{id}"), &[]).await.json();
        let folders = d["folders"].as_array().unwrap();
        assert!(!folders.is_empty(), "{d}");
        let sum: u64 = folders
            .iter()
            .map(|f| f["counts"]["migrated"].as_u64().unwrap())
            .sum();
        assert_eq!(sum, m["counts"]["migrated"].as_u64().unwrap(), "{d}");
        assert_eq!(d["verify"]["ok"], true, "{d}");
        bodies += &d.to_string();
        // The ledger: the size skips of this mailbox, by reason, in pages of 7.
        let mut seen = 0;
        let mut after = 0;
        loop {
            let p = curl(
                &s,
                &format!("/api/items?mailbox={id}&reason=max_message_size&limit=7&after={after}"),
                &[],
            )
            .await
            .json();
            assert_eq!(p["total"].as_u64(), Some(skips[&user]), "{user}: {p}");
            for it in p["items"].as_array().unwrap() {
                assert_eq!(it["status"], "skipped");
                assert!(
                    it["reason"].as_str().unwrap().contains("max_message_size"),
                    "{it}"
                );
                seen += 1;
            }
            match p["next_after"].as_i64() {
                Some(a) => after = a,
                None => break,
            }
        }
        assert_eq!(seen, skips[&user], "{user}");
    }
    let g = curl(&s, "/api/items?status=lost", &[]).await;
    assert_eq!(g.status, 400, "{}", g.body);
    assert!(
        g.json()["hint"]
            .as_str()
            .unwrap()
            .contains("planned, migrated"),
        "{}",
        g.body
    );
    let g = curl(&s, "/api/items?since=yesterday", &[]).await;
    assert_eq!(g.status, 400, "{}", g.body);
    let runs = curl(&s, "/api/runs", &[]).await.json();
    assert!(!runs.as_array().unwrap().is_empty());
    let recent = curl(&s, "/api/events/recent", &[]).await;
    assert_eq!(recent.status, 200);
    assert!(recent.body.contains("mailbox_completed"), "{}", recent.body);
    let sse = curl(&s, "/api/events", &["-N", "--max-time", "3"]).await;
    assert!(sse.body.contains("event: overview"), "SSE: {}", sse.body);
    assert!(sse.body.contains("event: stored"), "SSE: {}", sse.body);
    bodies += &sse.body;
    let rep = curl(&s, "/api/reports/report.json", &[]).await.json();
    assert_eq!(rep["totals"]["migrated"], status["migrated"]);
    let html = curl(&s, "/api/reports/report.html", &[]).await;
    assert!(html.body.contains("<html"), "{}", html.body);
    assert!(
        html.headers
            .contains("attachment; filename=\"report.html\""),
        "{}",
        html.headers
    );
    let total: u64 = ["migrated", "skipped", "failed", "planned"]
        .iter()
        .map(|k| status[k].as_u64().unwrap())
        .sum();
    let csv = curl(&s, "/api/reports/items.csv", &[]).await;
    assert_eq!(
        csv.body.lines().count() as u64,
        total + 1,
        "one line per item and a header"
    );
    let js = curl(&s, "/api/reports/items.json", &[]).await;
    assert_eq!(js.status, 200);
    assert_eq!(curl(&s, "/api/reports/secrets.txt", &[]).await.status, 404);
    bodies += &rep.to_string();
    bodies += &html.body;
    bodies += &csv.body;
    bodies += &js.body;
    let page = curl(&s, "/", &[]).await;
    assert!(page.body.contains("/assets/app.js"));
    assert_eq!(curl(&s, "/assets/app.js", &[]).await.status, 200);

    // Actions: CSRF token and Origin needed from a browser's session; bearer token from scripts.
    let t = csrf(&s).await;
    let post = |h: Vec<String>| {
        let mut a = vec![
            "-X".to_owned(),
            "POST".to_owned(),
            "-H".to_owned(),
            "Content-Type: application/json".to_owned(),
            "--data".to_owned(),
            "{}".to_owned(),
        ];
        for x in h {
            a.push("-H".to_owned());
            a.push(x);
        }
        a
    };
    let call = |path: &'static str, a: Vec<String>| {
        let s = &s;
        async move {
            let a: Vec<&str> = a.iter().map(String::as_str).collect();
            curl(s, path, &a).await
        }
    };
    assert_eq!(
        call("/api/pause", post(vec![])).await.status,
        403,
        "no CSRF token"
    );
    assert_eq!(
        call("/api/pause", post(vec!["X-CSRF-Token: wrong".into()]))
            .await
            .status,
        403
    );
    assert_eq!(
        call(
            "/api/pause",
            post(vec![
                format!("X-CSRF-Token: {t}"),
                "Origin: http://evil.example".into()
            ])
        )
        .await
        .status,
        403,
        "a cross-site Origin"
    );
    let g = call(
        "/api/pause",
        post(vec![
            format!("X-CSRF-Token: {t}"),
            format!("Origin: http://127.0.0.1:{}", s.port),
        ]),
    )
    .await;
    assert_eq!(g.status, 200, "{}", g.body);
    assert_eq!(
        curl(&s, "/api/overview", &[]).await.json()["paused"]["by"],
        "dashboard"
    );
    let o = env.cli(&["resume"]).await;
    assert!(o.stderr.contains("resumed"), "{}", dump(&o));
    // Another process's resume reaches the overview (within its one-second cache).
    wait_overview(&s, "the resume", |o| o["paused"].is_null()).await;
    // A rescan started from the API runs in the server and ends.
    let g = call("/api/runs", {
        let mut a = post(vec![format!("X-CSRF-Token: {t}")]);
        a[5] = r#"{"kind":"rescan"}"#.into();
        a
    })
    .await;
    assert_eq!(g.status, 202, "{}", g.body);
    let ov = wait_overview(&s, "the rescan to finish", |o| {
        !o["started_here"]["outcome"].is_null()
    })
    .await;
    assert_eq!(ov["started_here"]["outcome"], "completed", "{ov}");
    assert_eq!(
        ov["totals"]["migrated"], status["migrated"],
        "a rescan copies nothing again"
    );
    let g = call("/api/runs", {
        let mut a = post(vec![format!("X-CSRF-Token: {t}")]);
        a[5] = r#"{"kind":"format-c"}"#.into();
        a
    })
    .await;
    assert_eq!(g.status, 400, "{}", g.body);

    // DNS rebinding: a page that names another host is not "this machine".
    let g = curl(
        &s,
        "/api/overview",
        &["-H", &format!("Host: attacker.example:{}", s.port)],
    )
    .await;
    assert_eq!(g.status, 403, "{}", g.body);

    // From another address (127.0.0.2 → 127.0.0.1): the token or nothing.
    let other = ["--interface", "127.0.0.2"];
    for path in [
        "/api/overview",
        "/api/items?reason=max",
        "/api/events/recent",
        "/api/reports/items.csv",
        "/",
    ] {
        let g = curl(&s, path, &other).await;
        assert_eq!(g.status, 403, "{path} without the token: {}", g.body);
        assert!(
            !g.body.contains("anna@"),
            "{path}: nothing of the migration without the token"
        );
    }
    let wrong = curl(
        &s,
        "/api/overview",
        &[
            "--interface",
            "127.0.0.2",
            "-H",
            "Authorization: Bearer not-the-token",
        ],
    )
    .await;
    assert_eq!(wrong.status, 403);
    let bearer = format!("Authorization: Bearer {}", s.token);
    let g = curl(
        &s,
        "/api/overview",
        &["--interface", "127.0.0.2", "-H", &bearer],
    )
    .await;
    assert_eq!(g.status, 200, "{}", g.body);
    assert_eq!(g.json()["totals"]["migrated"], status["migrated"]);
    // Scripts with the token need no CSRF token.
    let g = curl(
        &s,
        "/api/pause",
        &["--interface", "127.0.0.2", "-X", "POST", "-H", &bearer],
    )
    .await;
    assert_eq!(g.status, 200, "{}", g.body);
    let g = curl(
        &s,
        "/api/resume",
        &["--interface", "127.0.0.2", "-X", "POST", "-H", &bearer],
    )
    .await;
    assert_eq!(g.status, 200, "{}", g.body);
    // Browsers sign in once; the cookie carries the token.
    let g = curl(
        &s,
        "/login",
        &[
            "--interface",
            "127.0.0.2",
            "--data-urlencode",
            "token=wrong",
        ],
    )
    .await;
    assert_eq!(g.status, 403);
    let g = curl(
        &s,
        "/login",
        &[
            "--interface",
            "127.0.0.2",
            "--data-urlencode",
            &format!("token={}", s.token),
        ],
    )
    .await;
    assert_eq!(g.status, 303, "{}", g.headers);
    assert!(
        g.headers.contains("HttpOnly; SameSite=Strict"),
        "{}",
        g.headers
    );
    let cookie = format!("Cookie: o365m_token={}", s.token);
    let g = curl(
        &s,
        "/api/mailboxes",
        &["--interface", "127.0.0.2", "-H", &cookie],
    )
    .await;
    assert_eq!(g.status, 200, "{}", g.body);

    // The token is kept hashed, never in the state file; a restart does not show it again.
    let state = std::fs::read(env.dir.path().join("state.db")).unwrap();
    let wal = std::fs::read(env.dir.path().join("state.db-wal")).unwrap_or_default();
    for f in [&state, &wal] {
        assert!(
            !super::contains(f, s.token.as_bytes()),
            "the token is in the state store"
        );
    }
    drop(s);
    let ro = serve(&env, &["--read-only"]).await;
    assert!(
        ro.token.is_empty(),
        "shown once: {}",
        ro.stderr.lock().unwrap()
    );
    let t = csrf(&ro).await;
    let g = curl(
        &ro,
        "/api/pause",
        &["-X", "POST", "-H", &format!("X-CSRF-Token: {t}")],
    )
    .await;
    assert_eq!(g.status, 403, "read-only: {}", g.body);
    assert!(g.body.contains("read-only"), "{}", g.body);
    bodies += &ro.stderr.lock().unwrap();

    // No secret in anything served or printed.
    let mut needles: Vec<String> = env.users.iter().map(|u| password(u)).collect();
    needles.push(env.client_secret.clone());
    for n in &needles {
        assert!(
            !bodies.contains(n.as_str()),
            "a secret reached the dashboard's output"
        );
    }
    env.assert_no_secrets();
}

/// Slow enough that a run of 3 × 150 messages takes several seconds.
async fn slow_env(seed: u64) -> Env {
    super::reliability::start_env_with(
        &["anna", "ben", "carl"],
        150,
        seed,
        DovecotOptions::default(),
        None,
        |c| c.latency_ms = 40,
    )
    .await
}

/// Migrated items as `status --json` reads them from the state store.
async fn migrated(env: &Env) -> u64 {
    env.status_counts().await["migrated"].as_u64().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_in_chromium_counts_finds_skips_and_pauses_a_run() {
    let env = slow_env(5151).await;
    let (max, skips) = size_filter(&env);
    env.write_job(&format!("max_message_size = \"{max}B\""));
    let s = serve(&env, &[]).await;
    let b = Browser::start().await.expect("headless Chromium");
    let wait = Duration::from_secs(90);
    b.goto(&s.url).await.unwrap();
    b.wait_for_text("#run-state", "idle", wait).await.unwrap();

    // Start a run from the page; pause it once items arrive.
    b.find("#start-run").await.unwrap().click().await.unwrap();
    b.wait_until(
        "Number(document.getElementById('total-migrated').textContent.replace(/,/g, '')) >= 30",
        wait,
    )
    .await
    .unwrap();
    b.find("#pause").await.unwrap().click().await.unwrap();
    b.wait_for_text("#run-state", "paused", wait).await.unwrap();
    // The engine says it paused once the items in flight are recorded.
    b.wait_for_text("#events", "paused", wait).await.unwrap();
    let at_pause = migrated(&env).await;
    // Observe a while: nothing moves while paused.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let later = migrated(&env).await;
    let total: u64 = env
        .manifests
        .values()
        .map(|m| m.entries().len() as u64)
        .sum();
    let skipped_total: u64 = skips.values().sum();
    assert_eq!(at_pause, later, "items were migrated while paused");
    assert!(
        at_pause < total - skipped_total,
        "the run finished before the pause took hold"
    );
    let rendered = b
        .find("#total-migrated")
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    b.screenshot_png(env.dir.path().join("paused.png"))
        .await
        .unwrap();

    // Resume: the same run goes on to the end.
    b.find("#resume").await.unwrap().click().await.unwrap();
    b.wait_for_text("#count-done", "3", wait).await.unwrap();
    b.wait_for_text("#run-state", "idle", wait).await.unwrap();
    let status = env.status_counts().await;
    assert_eq!(
        status["migrated"].as_u64(),
        Some(total - skipped_total),
        "{status}"
    );
    assert_eq!(status["skipped"].as_u64(), Some(skipped_total), "{status}");
    assert!(
        rendered.replace(',', "").parse::<u64>().unwrap() <= at_pause,
        "the page showed {rendered} at the pause"
    );
    // The overview shows the store's counts.
    for (id, k) in [
        ("#total-migrated", "migrated"),
        ("#total-skipped", "skipped"),
        ("#total-failed", "failed"),
    ] {
        let want = status[k].as_u64().unwrap();
        b.wait_until(
            &format!("document.querySelector('{id}').textContent.replace(/,/g, '') === '{want}'"),
            wait,
        )
        .await
        .unwrap_or_else(|e| panic!("{k}: {e}"));
    }
    b.screenshot_png(env.dir.path().join("overview.png"))
        .await
        .unwrap();

    // A mailbox page: search the ledger for the size skips by their reason.
    let link = b.find("#mailboxes tr[data-source^='ben'] a").await.unwrap();
    link.click().await.unwrap();
    b.wait_for_text("#mb-title", "ben", wait).await.unwrap();
    let q = b.find("#q-text").await.unwrap();
    q.send_keys("max_message_size").await.unwrap();
    b.find("#q-go").await.unwrap().click().await.unwrap();
    let want = skips["ben"];
    b.wait_for_text("#ledger-count", &format!("{want} items match"), wait)
        .await
        .unwrap();
    let reasons = b.find_all("#ledger .reason").await.unwrap();
    assert_eq!(reasons.len() as u64, want.min(50));
    for r in reasons {
        let t = r.text().await.unwrap();
        assert!(t.contains("above max_message_size"), "{t}");
    }
    b.screenshot_png(env.dir.path().join("mailbox.png"))
        .await
        .unwrap();
    drop(b);
    let o = env.cli(&["verify"]).await;
    assert_eq!(o.code, 0, "{}", dump(&o));
    let log = s.stderr.lock().unwrap().clone();
    for u in &env.users {
        assert!(!log.contains(&password(u)), "a password in serve's output");
    }
    env.assert_no_secrets();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_from_another_process_holds_a_cli_run_until_resume() {
    let env = slow_env(6161).await;
    let mut run = env.command(&["run"]).spawn().expect("start run");
    let mut lines = BufReader::new(run.stderr.take().unwrap()).lines();
    let deadline = Instant::now() + Duration::from_secs(120);
    while migrated(&env).await < 30 {
        if Instant::now() > deadline || run.try_wait().unwrap().is_some() {
            let _ = run.start_kill();
            let mut all = String::new();
            while let Ok(Some(l)) = lines.next_line().await {
                all.push_str(&l);
                all.push('\n');
            }
            panic!("the run copies nothing: {all}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let o = env.cli(&["pause"]).await;
    assert_eq!(o.code, 0, "{}", dump(&o));
    assert!(
        o.stderr.contains("records the items in flight and waits"),
        "{}",
        dump(&o)
    );
    // The run says it paused once its items in flight are recorded.
    let said = tokio::time::timeout(Duration::from_secs(60), async {
        let mut all = String::new();
        while let Some(l) = lines.next_line().await.unwrap() {
            all.push_str(&l);
            all.push('\n');
            if l.contains("paused (asked by cli)") {
                return all;
            }
        }
        panic!("the run ended without pausing: {all}");
    })
    .await
    .expect("the run paused");
    assert!(said.contains("waiting for `o365-migrate resume`"), "{said}");
    let at_pause = migrated(&env).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        migrated(&env).await,
        at_pause,
        "items were migrated while paused"
    );
    assert!(
        run.try_wait().unwrap().is_none(),
        "the paused run keeps waiting"
    );
    // Another run cannot start meanwhile: the paused one keeps the lock.
    let o = env.cli(&["run"]).await;
    assert_ne!(o.code, 0, "{}", dump(&o));
    assert!(
        o.stderr.contains("another o365-migrate run"),
        "{}",
        dump(&o)
    );
    let o = env.cli(&["resume"]).await;
    assert_eq!(o.code, 0, "{}", dump(&o));
    let status = tokio::time::timeout(Duration::from_secs(120), run.wait())
        .await
        .expect("the run finished after resume")
        .unwrap();
    assert_eq!(status.code(), Some(0));
    let total: u64 = env
        .manifests
        .values()
        .map(|m| m.entries().len() as u64)
        .sum();
    let counts = env.status_counts().await;
    assert_eq!(counts["migrated"].as_u64(), Some(total), "{counts}");
    for u in &env.users {
        assert_eq!(
            env.graph.messages(&format!("{u}@{DOMAIN}")).len(),
            env.manifests[u].entries().len(),
            "{u}: each message once"
        );
    }
    let o = env.cli(&["verify"]).await;
    assert_eq!(o.code, 0, "{}", dump(&o));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_serves_https_with_the_printed_certificate_and_refuses_plain_http() {
    let env = Env::start(&["anna"], 0, 1).await;
    let s = serve(&env, &["--tls-self-signed"]).await;
    assert!(s.url.starts_with("https://127.0.0.1:"), "{}", s.url);
    let log = s.stderr.lock().unwrap().clone();
    let fp = log
        .lines()
        .find_map(|l| l.strip_prefix("TLS certificate SHA-256: "))
        .unwrap_or_else(|| panic!("no fingerprint: {log}"))
        .replace(':', "")
        .to_ascii_lowercase();
    let cert = env
        .dir
        .path()
        .join("state.db.dashboard-tls")
        .join("cert.pem");
    // The certificate made once is kept (the key owner-only) and is the one printed.
    let key = env
        .dir
        .path()
        .join("state.db.dashboard-tls")
        .join("key.pem");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
    let der = std::process::Command::new("openssl")
        .args(["x509", "-outform", "der", "-in"])
        .arg(&cert)
        .output()
        .expect("openssl");
    let digest = std::process::Command::new("openssl")
        .args(["dgst", "-sha256", "-r"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin.take().unwrap().write_all(&der.stdout)?;
            c.wait_with_output()
        })
        .expect("openssl dgst");
    let digest = String::from_utf8_lossy(&digest.stdout);
    assert_eq!(digest.split_whitespace().next(), Some(fp.as_str()));
    // HTTPS verified against that certificate answers; plain HTTP on the port does not.
    let o = tokio::process::Command::new("curl")
        .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "--cacert"])
        .arg(&cert)
        .arg(format!("https://127.0.0.1:{}/api/session", s.port))
        .output()
        .await
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&o.stdout), "200");
    let g = curl(&s, "/api/session", &[]).await;
    assert_ne!(g.status, 200, "plain HTTP on a TLS port: {}", g.body);
    drop(s);
    // A restart keeps the certificate.
    let again = serve(&env, &["--tls-self-signed"]).await;
    let log = again.stderr.lock().unwrap().clone();
    assert!(
        log.replace(':', "").to_ascii_lowercase().contains(&fp),
        "the same certificate after a restart: {log}"
    );
}
