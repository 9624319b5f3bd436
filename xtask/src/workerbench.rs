//! `cargo xtask bench workers`: 1,000 small mailboxes (3 messages each, from one source
//! Dovecot) into the Graph emulator through `o365-migrate worker` processes sharing one
//! PostgreSQL: 1, 2 and 4 workers of 4 lanes each, then 4 workers under a fleet-wide cap on
//! requests per second (half of what the 4 uncapped workers sent).
//!
//! Per row: a fresh emulator (50 ms in each mailbox request, Microsoft's limits) and a fresh
//! database; `state migrate` and `match` first (not timed); the workers are timed from the
//! first start to the last exit (wall clock around the processes); then `verify` must exit 0
//! — every message, its folder and read/flag state — like every other benchmark's rows.
//! Reported: messages and mailboxes per second, the time the workers spent taking and ending
//! leases per mailbox (from their `--json` totals), the requests the emulator admitted, and
//! for the capped row the busiest 10-second window the emulator saw (its app-wide window)
//! against the cap.

use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result, ensure};
use o365_migrate_graph_emulator::{Emulator, EmulatorConfig, UserConfig};
use o365_migrate_testkit::{Corpus, CorpusProfile, Dovecot, DovecotOptions, Postgres, User};
use serde_json::{Value, json};

const SEED: u64 = 20_2026;
const DOMAIN: &str = "contoso.example";
const PER_MAILBOX: usize = 3;
const LANES: usize = 4;
const LATENCY_MS: u64 = 50;

fn user(i: usize) -> String {
    format!("w{i:04}")
}

/// `--worker-mailboxes N` (1000); other benchmarks' options are left to them.
pub(crate) fn run(args: &[String]) -> Result<Value> {
    let mut mailboxes = 1000usize;
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        if flag == "--worker-mailboxes" {
            let v = it.next().context("`--worker-mailboxes` needs a value")?;
            mailboxes = v
                .parse()
                .context("`--worker-mailboxes` takes a whole number")?;
        }
    }
    crate::setup::ensure_packages(&[
        ("dovecot", "dovecot-imapd"),
        ("pg_ctlcluster", "postgresql"),
    ])?;
    let bin = crate::sidebyside::build_cli()?;
    let dir = crate::sidebyside::tempfile_dir()?.join("workers");
    std::fs::create_dir_all(&dir)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let r = rt.block_on(run_in(mailboxes, &bin, &dir));
    if r.is_ok() {
        let _ = std::fs::remove_dir_all(&dir);
    } else {
        eprintln!("workers: files kept in {}", dir.display());
    }
    r
}

async fn run_in(mailboxes: usize, bin: &Path, dir: &Path) -> Result<Value> {
    let users: Vec<User> = (0..mailboxes)
        .map(|i| User::new(user(i), format!("pw-{i}-secret")))
        .collect();
    let source = Dovecot::start(
        DovecotOptions::default()
            .with_users(users.clone())
            .with_extra_config("mail_fsync = never"),
    )?;
    let t0 = Instant::now();
    let mut total = 0usize;
    for chunk in (0..mailboxes).collect::<Vec<_>>().chunks(16) {
        let loads = chunk.iter().map(|i| {
            let source = &source;
            async move {
                Corpus::new(CorpusProfile::small(SEED + *i as u64, PER_MAILBOX))
                    .load(source, &user(*i))
                    .await
            }
        });
        for m in futures_util::future::join_all(loads).await {
            total += m?.len();
        }
    }
    eprintln!(
        "workers: {mailboxes} mailboxes, {total} messages loaded in {:.0} s",
        t0.elapsed().as_secs_f64()
    );
    let mut csv = String::from("EmailAddress,UserName,Password\r\n");
    for u in &users {
        csv.push_str(&format!(
            "{}@{DOMAIN},{},{}\r\n",
            u.name(),
            u.name(),
            u.password()
        ));
    }
    std::fs::write(dir.join("users.csv"), csv)?;
    let pg = Postgres::start(Default::default())?;
    let mut rows = Vec::new();
    let mut uncapped_4_rate = 0.0_f64;
    for (n, (workers, capped)) in [(1, false), (2, false), (4, false), (4, true)]
        .into_iter()
        .enumerate()
    {
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let cap = capped.then(|| ((uncapped_4_rate / 2.0).round() as u64).max(1));
        let row = one_row(
            bin,
            dir,
            &source,
            &pg,
            &format!("bench{n}"),
            mailboxes,
            total,
            workers,
            cap,
        )
        .await?;
        if workers == 4 && !capped {
            uncapped_4_rate = row["requests_per_second"].as_f64().unwrap_or(0.0);
        }
        eprintln!("workers: {row}");
        rows.push(row);
    }
    Ok(json!({
        "bench": "workers",
        "mailboxes": mailboxes,
        "messages": total,
        "lanes_per_worker": LANES,
        "emulator_latency_ms": LATENCY_MS,
        "rows": rows,
    }))
}

#[allow(clippy::too_many_arguments)]
async fn one_row(
    bin: &Path,
    dir: &Path,
    source: &Dovecot,
    pg: &Postgres,
    db: &str,
    mailboxes: usize,
    messages: usize,
    workers: usize,
    cap: Option<u64>,
) -> Result<Value> {
    let mut config = EmulatorConfig {
        latency_ms: LATENCY_MS,
        ..EmulatorConfig::default()
    };
    let tenant = config.tenants.first_mut().context("tenant")?;
    for i in 0..mailboxes {
        tenant
            .users
            .push(UserConfig::with_mailbox(format!("{}@{DOMAIN}", user(i))));
    }
    let graph = Emulator::start(config).await?;
    let app = graph.config().tenants[0].apps[0].clone();
    let secret = app.client_secret.clone().context("app secret")?;
    let url = pg.create_database(db)?;
    let fleet = cap.map_or(String::new(), |c| {
        format!("[fleet]\nrequests_per_second = {c}\n")
    });
    let job = format!(
        r#"[source]
host = "127.0.0.1"
port = {port}
security = "starttls"
ca_file = "{ca}"
credentials = "users.csv"
connections_per_host = 64

[target]
kind = "graph"

[target.graph]
tenant = "{tenant}"
client_id = "{client_id}"
client_secret = "env:BENCH_GRAPH_SECRET"
authority_url = "{gurl}"
graph_url = "{gurl}"

[limits]
# Workers run --lanes {LANES}; this is how many mailboxes `verify` checks at once.
mailboxes_at_once = 32

{fleet}
[state]
url = "{url}?sslmode=disable"
password = "env:BENCH_PG_PASSWORD"

[log]
file = "{db}.log"
level = "warn"
"#,
        port = source.imap_port(),
        ca = source.ca_path().display(),
        tenant = graph.tenant_id(),
        client_id = app.client_id,
        gurl = graph.url(),
    );
    let job_path = dir.join(format!("{db}.toml"));
    std::fs::write(&job_path, job)?;
    let cmd = |args: &[&str]| {
        let mut c = tokio::process::Command::new(bin);
        c.arg("--config")
            .arg(&job_path)
            .args(args)
            .current_dir(dir)
            .env("BENCH_GRAPH_SECRET", &secret)
            .env("BENCH_PG_PASSWORD", pg.password())
            .env_remove("RUST_LOG")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true);
        c
    };
    for step in [&["state", "migrate"][..], &["match"][..]] {
        let o = cmd(step).output().await?;
        ensure!(
            o.status.success(),
            "{step:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
    let mailbox_requests =
        |g: &Emulator| -> u64 { g.all_counters().iter().map(|(_, _, c)| c.requests).sum() };
    let before = mailbox_requests(&graph);
    // The busiest window is the workers' own: `match` came before them.
    graph.reset_app_window_peak(&app.client_id);
    let t0 = Instant::now();
    let mut children = Vec::new();
    for w in 0..workers {
        let id = format!("w{w}");
        let lanes = LANES.to_string();
        children.push(
            cmd(&[
                "worker",
                "--id",
                &id,
                "--lanes",
                &lanes,
                "--lease-seconds",
                "30",
                "--json",
            ])
            .spawn()?,
        );
    }
    let mut totals = Vec::new();
    // All at once: a worker whose output pipe nobody reads stops at its next line.
    for o in
        futures_util::future::join_all(children.into_iter().map(|c| c.wait_with_output())).await
    {
        let o = o?;
        ensure!(
            o.status.success(),
            "a worker failed: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        let v: Value = serde_json::from_slice(&o.stdout).context("worker --json")?;
        totals.push(v);
    }
    let secs = t0.elapsed().as_secs_f64();
    // Read before `verify`, whose reads are no worker's.
    let requests = mailbox_requests(&graph) - before;
    let (peak_10s, refusals) = graph.app_window_peak(&app.client_id);
    let o = cmd(&["verify"]).output().await?;
    ensure!(
        o.status.success(),
        "verify after {workers} workers: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let sum = |k: &str| {
        totals
            .iter()
            .map(|t| t[k].as_u64().unwrap_or(0))
            .sum::<u64>()
    };
    ensure!(
        sum("migrated") == messages as u64 && sum("done") == mailboxes as u64,
        "the workers migrated {} messages in {} mailboxes, not {messages} in {mailboxes}",
        sum("migrated"),
        sum("done")
    );
    #[allow(clippy::cast_precision_loss)]
    let (messages_f, mailboxes_f, requests_f, peak_f) = (
        messages as f64,
        mailboxes as f64,
        requests as f64,
        peak_10s as f64,
    );
    let mut row = json!({
        "workers": workers,
        "lanes": workers * LANES,
        "seconds": round2(secs),
        "messages_per_second": round2(messages_f / secs),
        "mailboxes_per_second": round2(mailboxes_f / secs),
        "lease_ms_per_mailbox": round2(sum("lease_ms") as f64 / mailboxes_f),
        "requests": requests,
        "requests_per_second": round2(requests_f / secs),
        "busiest_10s_requests_per_second": round2(peak_f / 10.0),
        "app_wide_refusals": refusals,
        "verify": "exit 0",
    });
    if let Some(c) = cap {
        #[allow(clippy::cast_precision_loss)]
        let ratio = peak_f / 10.0 / c as f64;
        row["cap_requests_per_second"] = json!(c);
        row["busiest_10s_over_cap"] = json!(round2(ratio));
        row["budget_wait_ms"] = json!(sum("budget_wait_ms"));
        ensure!(
            ratio <= 1.05,
            "the fleet went over its cap: busiest 10 s at {:.1} requests/s against {c}",
            peak_f / 10.0
        );
    }
    graph.shutdown();
    Ok(row)
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}
