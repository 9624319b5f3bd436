//! `cargo xtask screenshots`: the dashboard's overview and a mailbox page, as an admin sees
//! them after a real migration of the demo's mailboxes (source Dovecot → Graph emulator, a
//! size filter so some items are skipped), taken in headless Chromium and written to
//! docs/images/.

use std::time::Duration;

use anyhow::{Context, Result};
use o365_migrate_testkit::Browser;
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::demo;

/// Files written, relative to the repository root.
const OVERVIEW: &str = "docs/images/dashboard-overview.png";
const MAILBOX: &str = "docs/images/dashboard-mailbox.png";

pub(crate) fn screenshots(_args: &[String]) -> Result<()> {
    demo::runtime()?.block_on(async {
        let servers = demo::start_servers().await?;
        let bin = demo::build_cli()?;
        let dir = tempfile_dir()?;
        let r = take(&servers, &bin, &dir).await;
        let _ = std::fs::remove_dir_all(&dir);
        r
    })
}

fn tempfile_dir() -> Result<std::path::PathBuf> {
    let dir = std::env::temp_dir().join(format!("o365-migrate-shots-{}", std::process::id()));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    Ok(dir)
}

async fn take(
    servers: &demo::LocalServers,
    bin: &std::path::Path,
    dir: &std::path::Path,
) -> Result<()> {
    let (config, secret) = demo::write_job(servers, dir, "max_message_size = \"150KB\"")?;
    let cli = |args: &[&str]| {
        let mut c = tokio::process::Command::new(bin);
        c.arg("--config")
            .arg(&config)
            .args(args)
            .current_dir(dir)
            .env("DEMO_GRAPH_CLIENT_SECRET", &secret)
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true);
        c
    };
    for args in [&["run"][..], &["verify"][..]] {
        let o = cli(args).output().await.context("starting o365-migrate")?;
        anyhow::ensure!(
            o.status.success(),
            "o365-migrate {args:?} failed: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
    let mut serve = cli(&["serve", "--listen", "127.0.0.1:0"])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .context("starting o365-migrate serve")?;
    let mut lines = BufReader::new(serve.stderr.take().context("serve's stderr")?).lines();
    let url = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(l) = lines.next_line().await? {
            if let Some(u) = l.strip_prefix("dashboard: ") {
                return Ok(u.split_whitespace().next().unwrap_or_default().to_owned());
            }
        }
        anyhow::bail!("serve ended before it said where it listens")
    })
    .await
    .context("waiting for serve")??;
    let b = Browser::start().await?;
    let wait = Duration::from_secs(60);
    b.goto(&url).await?;
    b.wait_for_text("#count-done", "3", wait).await?;
    b.wait_until("document.querySelectorAll('#chart rect').length > 0", wait)
        .await?;
    b.wait_until("document.querySelectorAll('#events li').length > 0", wait)
        .await?;
    let root = crate::root();
    std::fs::create_dir_all(root.join("docs/images"))?;
    b.screenshot_png(root.join(OVERVIEW)).await?;
    b.find("#mailboxes tr[data-source='alice'] a")
        .await?
        .click()
        .await?;
    b.wait_for_text("#mb-title", "alice", wait).await?;
    b.find("#q-text")
        .await?
        .send_keys("max_message_size")
        .await?;
    b.find("#q-go").await?.click().await?;
    b.wait_for_text("#ledger-count", "items match", wait)
        .await?;
    b.screenshot_png(root.join(MAILBOX)).await?;
    drop(b);
    let _ = serve.kill().await;
    println!("wrote {OVERVIEW} and {MAILBOX}");
    Ok(())
}
