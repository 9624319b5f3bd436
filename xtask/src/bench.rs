//! `cargo xtask bench`: runs each benchmark example in release mode and collects the
//! JSON line each prints last.

use anyhow::{Context, Result, bail};
use std::process::{Command, Stdio};

/// Benchmark name → package and example that carry it.
const BENCHES: &[(&str, &str, &str)] = &[
    ("imap", "o365-migrate-imap", "bench"),
    ("mime", "o365-migrate-mime", "bench"),
    ("csv", "o365-migrate-credentials", "bench"),
    ("automatch", "o365-migrate-automatch", "bench"),
    ("graph", "o365-migrate-target", "bench"),
    ("imap-writer", "o365-migrate-target", "imap_bench"),
    ("corpus", "o365-migrate-testkit", "bench"),
    ("state", "o365-migrate-engine", "bench"),
];

pub(crate) fn bench(args: &[String]) -> Result<()> {
    let names: Vec<&str> = if args.is_empty() || args.iter().any(|a| a == "all") {
        BENCHES.iter().map(|(n, _, _)| *n).collect()
    } else {
        args.iter().map(String::as_str).collect()
    };
    let out_dir = crate::root().join("target/bench");
    std::fs::create_dir_all(&out_dir).context("creating target/bench")?;
    let mut results = Vec::new();
    for name in names {
        let Some((_, package, example)) = BENCHES.iter().find(|(n, _, _)| *n == name) else {
            let known: Vec<&str> = BENCHES.iter().map(|(n, _, _)| *n).collect();
            bail!("unknown benchmark `{name}`; known: {}", known.join(", "));
        };
        if name.starts_with("imap") {
            crate::setup::ensure_demo_prerequisites()?;
        }
        eprintln!("== bench {name} ({package})");
        let output = Command::new("cargo")
            .args([
                "run",
                "--quiet",
                "--release",
                "-p",
                package,
                "--example",
                example,
            ])
            .current_dir(crate::root())
            .stderr(Stdio::inherit())
            .output()
            .with_context(|| format!("could not run the {name} benchmark"))?;
        let stdout = String::from_utf8_lossy(&output.stdout);
        print!("{stdout}");
        if !output.status.success() {
            bail!("benchmark `{name}` failed ({})", output.status);
        }
        let last = stdout
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or_default();
        let json: serde_json::Value = serde_json::from_str(last).with_context(|| {
            format!("benchmark `{name}` did not end with a JSON line; its last line was `{last}`")
        })?;
        std::fs::write(out_dir.join(format!("{name}.json")), format!("{json:#}\n"))?;
        results.push(json);
    }
    eprintln!("\n== results");
    for r in &results {
        println!("{r}");
    }
    Ok(())
}
