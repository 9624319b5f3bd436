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

/// The benchmark that drives the binary against mbsync and the raw floor (in xtask itself).
const SIDE_BY_SIDE: &str = "side-by-side";

/// `sync` of a 100,000-message mailbox after 100 changes (in xtask itself).
const SYNC: &str = "sync";

/// The item-ledger search of a 200,000-item state store (in xtask itself, release build).
const LEDGER: &str = "ledger";
/// `o365-migrate worker` processes sharing 1,000 mailboxes through PostgreSQL.
const WORKERS: &str = "workers";

pub(crate) fn bench(args: &[String]) -> Result<()> {
    // Names first; options for side-by-side follow `--` (or start with `--`).
    let split = args
        .iter()
        .position(|a| a.starts_with("--"))
        .unwrap_or(args.len());
    let (name_args, options) = args.split_at(split);
    let options: Vec<String> = options.iter().skip_while(|a| *a == "--").cloned().collect();
    let everything = name_args.is_empty() || name_args.iter().any(|a| a == "all");
    let names: Vec<&str> = if everything {
        BENCHES
            .iter()
            .map(|(n, _, _)| *n)
            .chain([SIDE_BY_SIDE, SYNC, LEDGER, WORKERS])
            .collect()
    } else {
        name_args.iter().map(String::as_str).collect()
    };
    let machine = crate::benchdoc::Machine::now();
    let started = std::time::Instant::now();
    let out_dir = crate::root().join("target/bench");
    std::fs::create_dir_all(&out_dir).context("creating target/bench")?;
    let mut results = Vec::new();
    for name in names {
        if name == SIDE_BY_SIDE {
            eprintln!("== bench {name} (xtask)");
            let json = crate::sidebyside::run(&options)?;
            println!("{json}");
            std::fs::write(out_dir.join(format!("{name}.json")), format!("{json:#}\n"))?;
            results.push(json);
            continue;
        }
        if name == SYNC {
            eprintln!("== bench {name} (xtask)");
            let json = crate::syncbench::run(&options)?;
            println!("{json}");
            std::fs::write(out_dir.join(format!("{name}.json")), format!("{json:#}\n"))?;
            results.push(json);
            continue;
        }
        if name == WORKERS {
            eprintln!("== bench {name} (xtask)");
            let json = crate::workerbench::run(&options)?;
            println!("{json}");
            std::fs::write(out_dir.join(format!("{name}.json")), format!("{json:#}\n"))?;
            results.push(json);
            continue;
        }
        if name == LEDGER {
            eprintln!("== bench {name} (xtask, release)");
            let json = crate::ledgerbench::run(&options)?;
            std::fs::write(out_dir.join(format!("{name}.json")), format!("{json:#}\n"))?;
            results.push(json);
            continue;
        }
        let Some((_, package, example)) = BENCHES.iter().find(|(n, _, _)| *n == name) else {
            let known: Vec<&str> = BENCHES
                .iter()
                .map(|(n, _, _)| *n)
                .chain([SIDE_BY_SIDE, SYNC, LEDGER, WORKERS])
                .collect();
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
    if everything {
        let doc = crate::benchdoc::render(&machine, started.elapsed(), &results);
        let path = crate::root().join("docs/benchmarks.md");
        std::fs::write(&path, doc).with_context(|| format!("writing {}", path.display()))?;
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}
