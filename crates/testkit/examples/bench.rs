//! Corpus generation and loading benchmark.
//!
//! `cargo run --release -p o365-migrate-testkit --example bench -- [--messages N]
//! [--seed S] [--small] [--no-load] [--load-messages N] [--connections N]`
//!
//! Generates the corpus (timed, bodies hashed so nothing is optimised away), then loads a
//! part of it into a fresh private Dovecot (timed). The last line is a JSON object.

use std::time::Instant;

use o365_migrate_testkit::corpus::{Corpus, CorpusProfile, sha256};
use o365_migrate_testkit::{Dovecot, DovecotOptions};

fn arg(args: &[String], name: &str) -> Option<u64> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let messages = arg(&args, "--messages").unwrap_or(5000) as usize;
    let seed = arg(&args, "--seed").unwrap_or(1);
    let small = args.iter().any(|a| a == "--small");
    let load = !args.iter().any(|a| a == "--no-load");
    let load_messages = arg(&args, "--load-messages").unwrap_or(1000) as usize;
    let connections = arg(&args, "--connections").unwrap_or(1) as usize;
    let profile = if small {
        CorpusProfile::small(seed, messages)
    } else {
        CorpusProfile::realistic(seed, messages)
    };
    let corpus = Corpus::new(profile.clone());

    let t = Instant::now();
    let mut bytes = 0u64;
    let mut largest = 0usize;
    let mut x = 0u8;
    for m in corpus.iter() {
        bytes += m.bytes.len() as u64;
        largest = largest.max(m.bytes.len());
        x ^= sha256(&m.bytes)[0];
    }
    let gen_s = t.elapsed().as_secs_f64();
    println!(
        "generated {messages} messages, {:.1} MB (largest {:.1} MB) in {gen_s:.2} s incl. SHA-256 ({:.0} MB/s) [{x}]",
        bytes as f64 / 1e6,
        largest as f64 / 1e6,
        bytes as f64 / 1e6 / gen_s
    );

    let mut load_s = 0.0;
    let mut load_bytes = 0u64;
    let n_load = load_messages.min(messages);
    if load {
        let dovecot = Dovecot::start(DovecotOptions::default())?;
        let part = Corpus::new(profile.with_messages(n_load));
        let t = Instant::now();
        let manifest = if connections > 1 {
            part.load_parallel(&dovecot, "alice", connections).await?
        } else {
            part.load(&dovecot, "alice").await?
        };
        load_s = t.elapsed().as_secs_f64();
        load_bytes = manifest.total_bytes();
        println!(
            "loaded {n_load} messages ({:.1} MB) by pipelined APPEND over {connections} connection(s) in {load_s:.2} s: {:.0} msg/s, {:.1} MB/s",
            load_bytes as f64 / 1e6,
            n_load as f64 / load_s,
            load_bytes as f64 / 1e6 / load_s
        );
    }
    println!(
        "{{\"bench\":\"corpus\",\"messages\":{messages},\"bytes\":{bytes},\"generate_seconds\":{gen_s:.3},\"generate_mb_per_s\":{:.1},\"load_messages\":{},\"load_bytes\":{load_bytes},\"load_seconds\":{load_s:.3},\"connections\":{connections},\"load_messages_per_s\":{:.1}}}",
        bytes as f64 / 1e6 / gen_s,
        if load { n_load } else { 0 },
        if load_s > 0.0 {
            n_load as f64 / load_s
        } else {
            0.0
        }
    );
    Ok(())
}
