//! IMAP FETCH benchmark: one connection streams a generated 5,000-message (~700 MB) mailbox
//! out of a private Dovecot (started by o365-migrate-testkit on 127.0.0.1).
//!
//! `cargo run --release -p o365-migrate-imap --example bench -- [--messages N] [--mean-size BYTES]
//!  [--batch N] [--pipeline N] [--budget-mb N] [--rounds N]`
//!
//! The corpus is generated deterministically and loaded with pipelined APPEND; the loaded Maildir
//! is cached under `$CARGO_TARGET_DIR/imap-bench-cache/` and copied into the next run's fresh
//! Dovecot (`--fresh` reloads). Every run checks the count and total bytes fetched. The FETCH is measured over implicit TLS and over plaintext, `--rounds` times each
//! (the best round is reported as well as the mean). The last line is JSON.

#[path = "../tests/common/corpus.rs"]
mod corpus;

use o365_migrate_imap::{
    AppendMessage, Auth, ByteBudget, ClientConfig, FetchItems, FetchOptions, SearchKey, Security,
    Session,
};
use o365_migrate_testkit::{Dovecot, DovecotOptions};
use std::time::Instant;

fn arg(args: &[String], name: &str, default: usize) -> usize {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let n = arg(&args, "--messages", 5_000);
    let mean = arg(&args, "--mean-size", 152_000);
    let batch = arg(&args, "--batch", 500);
    let pipeline = arg(&args, "--pipeline", 2);
    let budget_mb = arg(&args, "--budget-mb", 64);
    let rounds = arg(&args, "--rounds", 3).max(1);

    let d = Dovecot::start(DovecotOptions::default())?;
    let mut tls = ClientConfig::new(
        d.host(),
        d.imaps_port().ok_or("no imaps port")?,
        Security::Tls,
    );
    tls.tls.extra_ca_pem = Some(d.ca_pem().to_vec());
    let plain = ClientConfig::new(d.host(), d.imap_port(), Security::Plaintext);
    let auth = Auth::Login {
        user: "alice".into(),
        password: "alice-secret".into(),
    };

    // Generate and load, or restore a Maildir this bench loaded before (same parameters).
    let target = std::env::var("CARGO_TARGET_DIR").unwrap_or_else(|_| "target".into());
    let cache =
        std::path::PathBuf::from(target).join(format!("imap-bench-cache/n{n}-mean{mean}-seed7"));
    let manifest = cache.join("manifest");
    let fresh = args.iter().any(|a| a == "--fresh");
    let cached: Option<u64> = if fresh {
        None
    } else {
        std::fs::read_to_string(&manifest)
            .ok()
            .and_then(|s| s.trim().parse().ok())
    };
    let maildir = d.maildir("alice");
    let mut append_rate = None;
    let total_bytes = if let Some(total) = cached {
        let t = Instant::now();
        std::fs::create_dir_all(&maildir)?;
        let ok = std::process::Command::new("cp")
            .arg("-a")
            .arg(cache.join("Maildir/."))
            .arg(&maildir)
            .status()?;
        if !ok.success() {
            return Err("restoring the cached Maildir failed; rerun with --fresh".into());
        }
        println!(
            "restored the cached {n}-message Maildir ({:.1} MB) in {:.1} s (use --fresh to reload by APPEND)",
            total as f64 / 1e6,
            t.elapsed().as_secs_f64()
        );
        total
    } else {
        let t = Instant::now();
        let mut rng = corpus::Rng::new(7);
        let mut s = Session::open(&plain, &auth).await?;
        s.create("Bench", false).await?;
        s.select("Bench").await?;
        let mut total_bytes = 0u64;
        let mut batch_msgs = Vec::new();
        let mut append_secs = 0.0;
        for i in 0..n {
            let size = corpus::size(&mut rng, mean);
            let data = corpus::message(&mut rng, i, size);
            total_bytes += data.len() as u64;
            batch_msgs.push(AppendMessage {
                flags: vec!["\\Seen".into()],
                internal_date: None,
                data: data.into(),
            });
            if batch_msgs.len() == 250 || i + 1 == n {
                let ta = Instant::now();
                for r in s
                    .append("Bench", std::mem::take(&mut batch_msgs), 32)
                    .await?
                {
                    r?;
                }
                append_secs += ta.elapsed().as_secs_f64();
            }
        }
        s.logout().await?;
        append_rate = Some((n as f64 / append_secs).round());
        println!(
            "loaded {n} messages, {:.1} MB in {:.1} s (APPEND {:.0} msg/s)",
            total_bytes as f64 / 1e6,
            t.elapsed().as_secs_f64(),
            n as f64 / append_secs
        );
        // Build the cache beside it and rename into place, so a concurrent run never sees half of it.
        let staging = cache.with_extension(format!("tmp{}", std::process::id()));
        std::fs::create_dir_all(&staging)?;
        let ok = std::process::Command::new("cp")
            .arg("-a")
            .arg(&maildir)
            .arg(staging.join("Maildir"))
            .status()?;
        if ok.success() {
            std::fs::write(staging.join("manifest"), total_bytes.to_string())?;
            let _ = std::fs::remove_dir_all(&cache);
            if std::fs::rename(&staging, &cache).is_err() {
                let _ = std::fs::remove_dir_all(&staging);
            }
        } else {
            let _ = std::fs::remove_dir_all(&staging);
        }
        total_bytes
    };

    let mut results = Vec::new();
    let modes: Vec<(&str, &ClientConfig)> = match () {
        _ if args.iter().any(|a| a == "--plain-only") => vec![("plain", &plain)],
        _ if args.iter().any(|a| a == "--tls-only") => vec![("tls", &tls)],
        _ => vec![("tls", &tls), ("plain", &plain)],
    };
    for (label, cfg) in modes {
        let mut cfg = cfg.clone();
        let budget = ByteBudget::new(budget_mb * 1024 * 1024);
        cfg.budget = Some(budget.clone());
        let mut secs_all = Vec::new();
        for _ in 0..rounds {
            let mut s = Session::open(&cfg, &auth).await?;
            s.examine("Bench").await?;
            let uids = s.uid_search(&[SearchKey::All]).await?;
            let t = Instant::now();
            let mut count = 0usize;
            let mut bytes = 0u64;
            {
                let opts = FetchOptions {
                    items: FetchItems {
                        header_fields: vec!["Message-ID".into()],
                        ..FetchItems::default()
                    },
                    batch_size: batch,
                    pipeline,
                };
                let mut st = s.fetch(&uids, opts);
                while let Some(m) = st.next().await {
                    let m = m?;
                    bytes += m.body.as_ref().map(|b| b.len() as u64).unwrap_or(0);
                    count += 1;
                }
            }
            let secs = t.elapsed().as_secs_f64();
            if count != n || bytes != total_bytes {
                return Err(format!(
                    "fetched {count} messages / {bytes} bytes, expected {n} / {total_bytes}"
                )
                .into());
            }
            println!(
                "{label}: {count} messages, {:.1} MB in {secs:.2} s → {:.0} msg/s, {:.0} MB/s (peak in flight {:.1} MB of {budget_mb} MB)",
                bytes as f64 / 1e6,
                count as f64 / secs,
                bytes as f64 / 1e6 / secs,
                budget.peak() as f64 / 1e6
            );
            secs_all.push(secs);
            s.logout().await?;
        }
        let best = secs_all.iter().cloned().fold(f64::INFINITY, f64::min);
        let mean_s = secs_all.iter().sum::<f64>() / secs_all.len() as f64;
        results.push((label, best, mean_s, budget.peak()));
    }
    let mut json = serde_json::json!({
        "bench": "imap",
        "messages": n,
        "mb": total_bytes as f64 / 1e6,
        "batch": batch,
        "pipeline": pipeline,
        "budget_mb": budget_mb,
        "rounds": rounds,
        "append_msgs_per_s": append_rate,
        "corpus_from_cache": cached.is_some(),
    });
    for (label, best, mean_s, peak) in results {
        json[format!("{label}_msgs_per_s")] = serde_json::json!((n as f64 / mean_s).round());
        json[format!("{label}_mb_per_s")] =
            serde_json::json!((total_bytes as f64 / 1e6 / mean_s).round());
        json[format!("{label}_best_msgs_per_s")] = serde_json::json!((n as f64 / best).round());
        json[format!("{label}_best_mb_per_s")] =
            serde_json::json!((total_bytes as f64 / 1e6 / best).round());
        json[format!("{label}_peak_in_flight_bytes")] = serde_json::json!(peak);
    }
    println!("{json}");
    Ok(())
}
