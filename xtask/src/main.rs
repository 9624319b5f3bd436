//! Project automation for o365-migrate. Run `cargo xtask help`.
//!
//! Every command installs what it needs when it is missing (Debian packages through apt-get,
//! cargo tools through `cargo install`), so the README's two commands work on a fresh machine.

mod bench;
mod benchdoc;
mod demo;
mod floor;
mod ledgerbench;
mod screenshots;
mod setup;
mod sidebyside;
mod syncbench;
mod workerbench;

use anyhow::{Context, Result, bail};
use std::path::{Path, PathBuf};
use std::process::Command;

const HELP: &str = "\
cargo xtask <command>

Commands:
  ci                  fmt check, clippy (warnings denied), all tests through nextest, doc tests,
                      cargo-deny. Installs Dovecot and cargo tools when missing.
  demo                the main job end to end against local servers, then prints the report
  servers [--seconds N]
                      start a source Dovecot with a generated corpus, a target Dovecot and the
                      Graph emulator for manual use; print addresses and credentials
  bench [NAME...] [-- OPTIONS]
                      run benchmarks (imap, mime, csv, automatch, graph, imap-writer,
                      corpus, state, side-by-side, sync, ledger; default: all) and print
                      their figures; results also go to target/bench/NAME.json. Running all
                      of them also writes docs/benchmarks.md. side-by-side options:
                      --rounds N (3), --messages N (5000), --parallel-messages N (625 per
                      mailbox), --big-mb N (25), --big-per-mailbox N (3), --in-flight SIZE
                      (40MB); sync: --sync-messages N (100000); ledger (item-ledger search
                      of the state store): --ledger-items N (200000), --ledger-reps N (20)
  screenshots         the dashboard after a demo migration, in headless Chromium:
                      docs/images/dashboard-overview.png and dashboard-mailbox.png
  fuzz [--seconds N]  run every fuzz target for N seconds each (default 60)
  help                this text
";

fn main() {
    if let Err(err) = run() {
        eprintln!("xtask: error: {err:#}");
        std::process::exit(1);
    }
}

fn run() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let cmd = args.next().unwrap_or_else(|| "help".to_owned());
    let rest: Vec<String> = args.collect();
    match cmd.as_str() {
        "ci" => ci(&rest),
        "demo" => demo::demo(&rest),
        "servers" => demo::servers(&rest),
        "bench" => bench::bench(&rest),
        // The raw floor of `bench side-by-side`, run as its own process (not in the help).
        "bench-floor" => floor::main(&rest),
        // The measurement of `bench ledger`, run from a release build (not in the help).
        "bench-ledger" => ledgerbench::main(&rest),
        "screenshots" => screenshots::screenshots(&rest),
        "fuzz" => fuzz(&rest),
        "help" | "--help" | "-h" => {
            print!("{HELP}");
            Ok(())
        }
        other => bail!("unknown command `{other}`\n\n{HELP}"),
    }
}

/// The workspace root (xtask lives one level below it).
pub(crate) fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

/// Runs a command in the workspace root, echoing it to stderr; fails when it exits non-zero.
pub(crate) fn sh(program: &str, args: &[&str]) -> Result<()> {
    eprintln!("$ {program} {}", args.join(" "));
    let status = Command::new(program)
        .args(args)
        .current_dir(root())
        .status()
        .with_context(|| format!("could not start `{program}`"))?;
    if !status.success() {
        bail!("`{program} {}` failed ({status})", args.join(" "));
    }
    Ok(())
}

fn ci(args: &[String]) -> Result<()> {
    if let Some(extra) = args.first() {
        bail!("`cargo xtask ci` takes no arguments (got `{extra}`)");
    }
    setup::ensure_test_prerequisites()?;
    let started = std::time::Instant::now();
    sh("cargo", &["fmt", "--all", "--check"])?;
    sh(
        "cargo",
        &[
            "clippy",
            "--workspace",
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ],
    )?;
    sh(
        "cargo",
        &["nextest", "run", "--workspace", "--profile", "ci"],
    )?;
    sh("cargo", &["test", "--workspace", "--doc"])?;
    deny()?;
    eprintln!("xtask ci: all checks passed in {:.0?}", started.elapsed());
    Ok(())
}

/// cargo-deny: licences, bans and sources always; advisories only when the advisory database is
/// on this machine (it is fetched from GitHub, which this build machine cannot reach).
fn deny() -> Result<()> {
    sh("cargo", &["deny", "check", "bans", "licenses", "sources"])?;
    let db = home().join(".cargo/advisory-db");
    if db.is_dir() {
        sh("cargo", &["deny", "check", "--disable-fetch", "advisories"])
    } else {
        eprintln!(
            "xtask ci: advisories not checked: no advisory database at {} and it cannot be \
             fetched from here.\n  hint: where github.com is reachable, run `cargo deny check \
             advisories`",
            db.display()
        );
        Ok(())
    }
}

pub(crate) fn home() -> PathBuf {
    std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/root"))
}

fn fuzz(args: &[String]) -> Result<()> {
    let seconds = parse_seconds(args, 60)?;
    // cargo-fuzz needs a nightly toolchain, which cannot be installed here. Every fuzz target's
    // body (CSV reader, IMAP responses, MIME normalize, job file) is a plain function, so:
    // 1. a time-bounded mutation fuzzer runs each target for N seconds and prints executions
    //    (a finding is saved under fixtures/fuzz/<target>/ and fails the command);
    // 2. the proptests whose names say `never_panic(s)` run with a case count scaled to N.
    let secs = seconds.to_string();
    eprintln!("xtask fuzz: every target for {seconds} s (crates/engine/examples/fuzz.rs)");
    sh(
        "cargo",
        &[
            "run",
            "--release",
            "-p",
            "o365-migrate-engine",
            "--example",
            "fuzz",
            "--",
            "--seconds",
            &secs,
        ],
    )?;
    let cases = (seconds * 200).to_string();
    eprintln!("xtask fuzz: the never-panic properties with PROPTEST_CASES={cases}");
    let status = Command::new("cargo")
        .args([
            "nextest",
            "run",
            "--workspace",
            "--release",
            "-E",
            "test(/never_panic/)",
        ])
        .env("PROPTEST_CASES", &cases)
        .current_dir(root())
        .status()
        .context("could not start cargo nextest")?;
    if !status.success() {
        bail!("fuzz properties failed ({status}); the failing input is printed above");
    }
    Ok(())
}

pub(crate) fn parse_seconds(args: &[String], default: u64) -> Result<u64> {
    match args {
        [] => Ok(default),
        [flag, n] if flag == "--seconds" => n
            .parse()
            .with_context(|| format!("--seconds takes a whole number, got `{n}`")),
        _ => bail!("expected `--seconds N`, got `{}`", args.join(" ")),
    }
}
