//! Installs what the tests, the demo and the benchmarks need, only when it is missing.

use anyhow::{Context, Result, bail};
use std::process::Command;

/// Debian packages the tests and the demo need, with the binary that shows each is installed.
const TEST_PACKAGES: &[(&str, &str)] = &[
    ("dovecot", "dovecot-imapd"),
    ("openssl", "openssl"),
    // The DNS server `cutover check` is tested against (private instances on 127.0.0.1).
    ("dnsmasq", "dnsmasq"),
];

/// What only the tests need besides [`TEST_PACKAGES`].
const MORE_TEST_PACKAGES: &[(&str, &str)] = &[
    // The dashboard's API test calls every route with curl.
    ("curl", "curl"),
    // The job store's PostgreSQL tests start private clusters (testkit::Postgres).
    ("pg_ctlcluster", "postgresql"),
    // The DAV client's tests run private Radicale servers (testkit::Radicale).
    ("radicale", "radicale"),
    // The dashboard's browser tests: headless Chromium through chromedriver (same version).
    ("chromium", "chromium"),
    ("chromedriver", "chromium-driver"),
];

/// Makes sure the servers and tools the tests start (Dovecot, OpenSSL, dnsmasq, curl,
/// PostgreSQL, Radicale, Chromium and chromedriver), cargo-nextest and cargo-deny are present.
pub(crate) fn ensure_test_prerequisites() -> Result<()> {
    ensure_packages(TEST_PACKAGES)?;
    ensure_packages(MORE_TEST_PACKAGES)?;
    ensure_cargo_tool("cargo-nextest", "cargo-nextest")?;
    ensure_cargo_tool("cargo-deny", "cargo-deny")
}

/// Makes sure what the demo and `servers` need is present.
pub(crate) fn ensure_demo_prerequisites() -> Result<()> {
    ensure_packages(TEST_PACKAGES)
}

/// Installs the Debian packages whose binaries are missing (apt-get; through sudo when not root).
pub(crate) fn ensure_packages(wanted: &[(&str, &str)]) -> Result<()> {
    let missing: Vec<&str> = wanted
        .iter()
        .filter(|(bin, _)| !have_binary(bin))
        .map(|(_, pkg)| *pkg)
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    if !have_binary("apt-get") {
        bail!(
            "missing: {}. This machine has no apt-get; install them with your package manager",
            missing.join(", ")
        );
    }
    let root = is_root();
    if !root && !have_binary("sudo") {
        bail!(
            "missing: {}; run `apt-get install {}` as root",
            missing.join(", "),
            missing.join(" ")
        );
    }
    eprintln!("xtask: installing {} (apt-get)", missing.join(", "));
    let apt = |args: &[&str]| -> Result<()> {
        let mut cmd = if root {
            Command::new("apt-get")
        } else {
            Command::new("sudo")
        };
        if !root {
            cmd.arg("apt-get");
        }
        let status = cmd
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .status()
            .context("could not run apt-get")?;
        if !status.success() {
            bail!("`apt-get {}` failed ({status})", args.join(" "));
        }
        Ok(())
    };
    apt(&["update", "-qq"])?;
    let mut install = vec!["install", "-y", "-qq", "--no-install-recommends"];
    install.extend(&missing);
    apt(&install)?;
    // Installing the package may start the system's own Dovecot on ports 143/993; ours never use
    // those ports, so it does no harm, but stop it to leave the machine as it was.
    if missing.contains(&"dovecot-imapd") {
        let _ = Command::new("doveadm").arg("stop").status();
    }
    // Likewise the system's dnsmasq (port 53); the tests start their own.
    if missing.contains(&"dnsmasq") {
        let stopped = Command::new("systemctl")
            .args(["disable", "--now", "dnsmasq"])
            .status()
            .is_ok_and(|s| s.success());
        if !stopped {
            let _ = Command::new("pkill").args(["-x", "dnsmasq"]).status();
        }
    }
    Ok(())
}

fn ensure_cargo_tool(bin: &str, krate: &str) -> Result<()> {
    let present = Command::new(bin)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
        || Command::new("cargo")
            .args([bin.trim_start_matches("cargo-"), "--version"])
            .output()
            .is_ok_and(|o| o.status.success());
    if present {
        return Ok(());
    }
    eprintln!("xtask: installing {krate} (cargo install --locked)");
    crate::sh("cargo", &["install", "--locked", krate])
}

pub(crate) fn have_binary(name: &str) -> bool {
    let Some(path) = std::env::var_os("PATH") else {
        return false;
    };
    std::env::split_paths(&path)
        .chain(["/usr/sbin".into(), "/sbin".into()])
        .any(|dir| dir.join(name).is_file())
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}
