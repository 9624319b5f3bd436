//! Time-bounded fuzzing of every target on stable Rust (`cargo xtask fuzz --seconds N` runs
//! this): each target for N seconds, starting from its seeds and the regression fixtures in
//! `fixtures/fuzz/<target>/`. Prints executions per target; a panicking input is saved to
//! `fixtures/fuzz/<target>/crash-<n>.bin` (keep it there as a regression fixture once fixed)
//! and the exit code is 1.
//!
//! `cargo run --release -p o365-migrate-engine --example fuzz -- --seconds 60 [--seed S]`

use std::path::PathBuf;
use std::time::{Duration, Instant};

use o365_migrate_engine::fuzzing::{fuzz_for, load_fixtures, targets};

fn main() {
    let mut seconds = 10u64;
    let mut seed = 0x0365_f022u64;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let v = args.next().and_then(|v| v.parse::<u64>().ok());
        match (a.as_str(), v) {
            ("--seconds", Some(v)) => seconds = v,
            ("--seed", Some(v)) => seed = v,
            _ => {
                eprintln!("usage: fuzz [--seconds N] [--seed S]");
                std::process::exit(2);
            }
        }
    }
    let fixtures = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/fuzz");
    // Findings are reported by fuzz_for; keep the default hook from printing each one.
    std::panic::set_hook(Box::new(|_| {}));
    let mut failed = false;
    let mut total = 0u64;
    for t in targets() {
        let extra: Vec<Vec<u8>> = load_fixtures(&fixtures, &t)
            .into_iter()
            .map(|(_, b)| b)
            .collect();
        let started = Instant::now();
        let stats = fuzz_for(&t, Duration::from_secs(seconds), seed, &extra);
        let secs = started.elapsed().as_secs_f64();
        total += stats.executions;
        println!(
            "{:<16} {:>10} executions in {:>5.1} s ({:>8.0}/s), {} fixtures, largest input {} bytes",
            t.name,
            stats.executions,
            secs,
            stats.executions as f64 / secs.max(1e-9),
            extra.len(),
            stats.max_input
        );
        if let Some((input, msg)) = stats.crash {
            failed = true;
            let dir = fixtures.join(t.name);
            let _ = std::fs::create_dir_all(&dir);
            let path = (0..)
                .map(|n| dir.join(format!("crash-{n}.bin")))
                .find(|p| !p.exists())
                .unwrap_or_else(|| dir.join("crash.bin"));
            let _ = std::fs::write(&path, &input);
            println!(
                "  FINDING in {}: {msg}\n  input saved to {}",
                t.name,
                path.display()
            );
        }
    }
    println!(
        "{{\"bench\":\"fuzz\",\"seconds_per_target\":{seconds},\"executions\":{total},\"findings\":{}}}",
        u8::from(failed)
    );
    if failed {
        std::process::exit(1);
    }
}
