//! `cargo run --release -p o365-migrate-target --example bench -- [--quick]`
//!
//! Writes messages through the Graph writer into the Graph emulator running Microsoft's real
//! per-mailbox limits (10,000 requests / 10 min, 4 concurrent, 150 MB uploaded / 5 min) with time
//! scaled down, and reports how much of each budget the writer actually used:
//!
//! * phase "upload": 200 KB messages, so the upload budget binds;
//! * phase "requests": 1 KB messages, so the request budget binds;
//! * phase "requests_300ms": the same at 300 ms answers, where 4 slots bind before the budget.
//!
//! The emulator's answer time (150 ms, 300 ms) is scaled with the windows.
//!
//! The share is what the emulator admitted over an interval of whole windows (the run starts
//! with the first request), divided by what the limits allow in that interval: at most one
//! budget per window, whatever the client does. Goal: at least 90 % of the binding budget. The last line is
//! one JSON object `{"bench":"graph", ...}`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use bytes::Bytes;
use o365_migrate_graph_emulator::{Emulator, EmulatorConfig, UserConfig};
use o365_migrate_target::graph::{Budgets, GraphTarget, GraphTargetConfig, RetryPolicy};
use o365_migrate_target::identity::Credential;
use o365_migrate_target::{
    Endpoints, Flags, FolderSpec, InternalDate, SecretString, Target, WellKnownFolder, WriteItem,
};

struct Phase {
    name: &'static str,
    scale: f64,
    /// The service's answer time this phase models, in real milliseconds (Exchange Online:
    /// 100–300 ms); the emulator answers after it, scaled like the windows.
    latency_ms: u64,
    attachment_bytes: usize,
    mailboxes: usize,
    /// Run length in request windows.
    request_windows: f64,
}

struct Outcome {
    requests_share: f64,
    upload_share: f64,
    messages: u64,
    failed: u64,
    seconds: f64,
    max_concurrent: u32,
    throttled: u64,
}

fn message(mailbox: usize, n: u64, attachment_b64: &str) -> Vec<u8> {
    let mut m = format!(
        "From: bench@example.com\r\nTo: m{mailbox}@contoso.example\r\nSubject: bench {n}\r\n\
         Date: Wed, 02 Jul 2025 09:00:00 +0000\r\nMessage-ID: <bench-{mailbox}-{n}@example.com>\r\nMIME-Version: 1.0\r\n"
    );
    if attachment_b64.is_empty() {
        m.push_str("Content-Type: text/plain\r\n\r\nshort body of a small message, about one kilobyte in all. ");
        m.push_str(&"lorem ipsum dolor sit amet ".repeat(30));
        m.push_str("\r\n");
    } else {
        m.push_str("Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nsee attachment\r\n");
        m.push_str("--b\r\nContent-Type: application/octet-stream\r\nContent-Disposition: attachment; filename=\"a.bin\"\r\nContent-Transfer-Encoding: base64\r\n\r\n");
        m.push_str(attachment_b64);
        m.push_str("\r\n--b--\r\n");
    }
    m.into_bytes()
}

async fn run(p: &Phase) -> Outcome {
    let users: Vec<String> = (0..p.mailboxes)
        .map(|i| format!("m{i}@contoso.example"))
        .collect();
    let mut config = EmulatorConfig::default();
    config.tenants[0].users = users
        .iter()
        .map(|u| UserConfig::with_mailbox(u.clone()))
        .collect();
    config.time_scale = p.scale;
    // Exchange Online's typical answer time for a create (150 ms), scaled like Microsoft's
    // windows: with the windows compressed and the latency not, 4 slots × latency would bind
    // 1/scale times harder than against the service.
    config.latency_ms = scaled_latency(p);
    config.limits.max_message_bytes = 150 * 1024 * 1024;
    let emu = match Emulator::start(config).await {
        Ok(e) => e,
        Err(e) => {
            eprintln!("emulator: {e}");
            std::process::exit(1)
        }
    };
    let app = emu.config().tenants[0].apps[0].clone();
    let mut tc = GraphTargetConfig::new(
        emu.tenant_id(),
        app.client_id.clone(),
        Credential::ClientSecret(SecretString::new(
            app.client_secret.clone().unwrap_or_default(),
        )),
        Endpoints::emulator(emu.url()),
    );
    tc.budgets = Budgets::time_scaled(p.scale);
    tc.max_message_bytes = 150 * 1024 * 1024;
    tc.retry = RetryPolicy {
        max_retry_after: Duration::from_millis(200),
        base_delay: Duration::from_millis(20),
        ..RetryPolicy::default()
    };
    let window = tc.budgets.request_window;
    let upload_window = tc.budgets.upload_window;
    let target = match GraphTarget::new(tc) {
        Ok(t) => Arc::new(t),
        Err(e) => {
            eprintln!("target: {e}");
            std::process::exit(1)
        }
    };
    let attachment_b64 = if p.attachment_bytes == 0 {
        String::new()
    } else {
        let data: Vec<u8> = (0..p.attachment_bytes)
            .map(|i| (i as u32).wrapping_mul(2_654_435_761) as u8)
            .collect();
        let enc = base64::engine::general_purpose::STANDARD.encode(data);
        enc.as_bytes()
            .chunks(76)
            .map(|c| String::from_utf8_lossy(c).into_owned())
            .collect::<Vec<_>>()
            .join("\r\n")
    };
    let attachment_b64 = Arc::new(attachment_b64);
    let run_for = window.mul_f64(p.request_windows);
    let start = Instant::now();
    let deadline = start + run_for;
    let mut tasks = Vec::new();
    for (mi, upn) in users.iter().enumerate() {
        let target = target.clone();
        let upn = upn.clone();
        let att = attachment_b64.clone();
        tasks.push(tokio::spawn(async move {
            let mut written = 0u64;
            let mut failed = 0u64;
            let Ok(w) = target.open_mailbox(&upn).await else {
                return (0, 1);
            };
            let Ok(f) = w
                .ensure_folders(&[FolderSpec::well_known("INBOX", WellKnownFolder::Inbox)])
                .await
            else {
                return (0, 1);
            };
            let folder = f[0].clone();
            let mut set = tokio::task::JoinSet::new();
            let mut n = 0u64;
            loop {
                while set.len() < 12 && Instant::now() < deadline {
                    let w = w.clone();
                    let folder = folder.clone();
                    let raw = message(mi, n, &att);
                    n += 1;
                    set.spawn(async move {
                        let id = o365_migrate_mime::fingerprint(&raw);
                        let item = WriteItem {
                            fingerprint: id.dedupe_key(),
                            internet_message_id: id.message_id,
                            raw: Bytes::from(raw),
                            flags: Flags {
                                seen: true,
                                ..Flags::default()
                            },
                            internal_date: Some(
                                InternalDate::from_unix_utc(1_751_446_800).unwrap(),
                            ),
                        };
                        // Stop at the deadline: what is not sent by then does not count.
                        tokio::time::timeout_at(deadline.into(), w.write(&folder, &item)).await
                    });
                }
                match set.join_next().await {
                    Some(Ok(Ok(Ok(_)))) => written += 1,
                    Some(Ok(Ok(Err(_)))) | Some(Err(_)) => failed += 1,
                    Some(Ok(Err(_elapsed))) => {}
                    None => break,
                }
            }
            (written, failed)
        }));
    }
    let mut messages = 0;
    let mut failed = 0;
    for t in tasks {
        if let Ok((w, f)) = t.await {
            messages += w;
            failed += f;
        }
    }
    let seconds = start.elapsed().as_secs_f64();
    let limits = emu.config().limits.clone();
    let mut req_share = 0.0;
    let mut up_share = 0.0;
    let mut max_concurrent = 0;
    for u in &users {
        let c = emu.counters(u);
        let allowed_requests =
            limits.requests_per_window as f64 * (run_for.as_secs_f64() / window.as_secs_f64());
        let allowed_upload = limits.upload_bytes_per_window as f64
            * (run_for.as_secs_f64() / upload_window.as_secs_f64());
        req_share += c.requests as f64 / allowed_requests / users.len() as f64;
        up_share += c.upload_bytes as f64 / allowed_upload / users.len() as f64;
        max_concurrent = max_concurrent.max(c.max_concurrent_seen);
    }
    if let Err(e) = emu.assert_limits_respected() {
        eprintln!("limit violated: {e}");
    }
    Outcome {
        requests_share: req_share,
        upload_share: up_share,
        messages,
        failed,
        seconds,
        max_concurrent,
        throttled: target.client().throttled_answers(),
    }
}

/// A phase's latency in the emulator's scaled time, in whole milliseconds.
fn scaled_latency(p: &Phase) -> u64 {
    (p.latency_ms as f64 * p.scale).round() as u64
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let phases = [
        Phase {
            name: "upload",
            scale: 0.02,
            latency_ms: 150,
            attachment_bytes: 200 * 1024,
            mailboxes: 2,
            request_windows: if quick { 0.5 } else { 1.0 },
        },
        // Two whole request windows: the second is paced by the sliding window, not a burst.
        Phase {
            name: "requests",
            // 0.04: the scaled latencies are whole milliseconds (6 and 12).
            scale: 0.04,
            latency_ms: 150,
            attachment_bytes: 0,
            mailboxes: 1,
            request_windows: if quick { 1.0 } else { 2.0 },
        },
        // Exchange Online's slow end: 4 slots × 300 ms = 13.3 requests/s, below the budget's
        // 16.7/s, unless the writer batches or overlaps.
        Phase {
            name: "requests_300ms",
            scale: 0.04,
            latency_ms: 300,
            attachment_bytes: 0,
            mailboxes: 1,
            request_windows: 1.0,
        },
    ];
    let mut json = serde_json::json!({"bench": "graph"});
    let mut bindings = Vec::new();
    for p in &phases {
        let o = run(p).await;
        let binding = o.requests_share.max(o.upload_share);
        bindings.push(binding);
        println!(
            "phase {:<8} scale {:<5} {} mailbox(es): {} messages in {:.1} s, {} failed; request budget used {:.1} %, upload budget used {:.1} %, max {} in flight, {} throttled answers",
            p.name,
            p.scale,
            p.mailboxes,
            o.messages,
            o.seconds,
            o.failed,
            o.requests_share * 100.0,
            o.upload_share * 100.0,
            o.max_concurrent,
            o.throttled
        );
        json[p.name] = serde_json::json!({
            "time_scale": p.scale, "latency_ms_real": p.latency_ms, "latency_ms_scaled": scaled_latency(p), "mailboxes": p.mailboxes, "messages": o.messages, "failed": o.failed,
            "seconds": (o.seconds * 10.0).round() / 10.0,
            "request_budget_share": (o.requests_share * 1000.0).round() / 1000.0,
            "upload_budget_share": (o.upload_share * 1000.0).round() / 1000.0,
            "binding_share": (binding * 1000.0).round() / 1000.0,
            "max_in_flight": o.max_concurrent, "throttled_answers": o.throttled,
        });
    }
    let worst = bindings.iter().copied().fold(f64::INFINITY, f64::min);
    json["min_binding_share"] = serde_json::json!((worst * 1000.0).round() / 1000.0);
    json["goal"] = serde_json::json!(0.9);
    println!("{json}");
}
