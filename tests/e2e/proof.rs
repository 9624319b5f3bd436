//! What the crash tests share: extra source messages that are hard to migrate exactly (a root
//! `Files` folder, Message-IDs shared by different bodies), and kills at seeded points of
//! progress, each checked to have landed while work was going on.

use std::path::Path;
use std::time::{Duration, Instant};

use o365_migrate_testkit::AppendRequest;

use super::{Env, Lcg};

/// A source message added on top of the generated corpus.
pub(super) struct Extra {
    pub(super) folder: &'static str,
    pub(super) message_id: String,
}

/// Adds to `user`'s source mailbox: a root folder `Files` (reserved at the top of an Exchange
/// Online mailbox) with 12 messages: 6 plain ones, and 3 Message-IDs each carried by two
/// different bodies of the same size. Returns what was added.
pub(super) async fn add_extras(env: &Env, user: &str) -> Vec<Extra> {
    let mut imap = env.source.login(user).await.expect("source login");
    imap.create_if_missing("Files").await.expect("create Files");
    let mut added = Vec::new();
    let mut add = async |folder: &'static str, mid: String, body: &str| {
        let raw = format!(
            "Message-ID: {mid}\r\nFrom: Files Owner <owner@example.org>\r\nTo: {user}@example.org\r\n\
Date: Wed, 02 Jul 2025 09:30:00 +0000\r\nSubject: extra {mid}\r\n\r\n{body}\r\n"
        );
        let req = AppendRequest::new(raw.into_bytes(), vec!["\\Seen".to_string()], None);
        imap.append(folder, &req).await.expect("append extra");
        added.push(Extra {
            folder,
            message_id: mid,
        });
    };
    for n in 0..6 {
        add(
            "Files",
            format!("<files-{n}@{user}.example.org>"),
            &format!("file note {n}"),
        )
        .await;
    }
    for n in 0..3 {
        let mid = format!("<shared-{n}@{user}.example.org>");
        add("Files", mid.clone(), &format!("first body {n}")).await;
        add("Files", mid, &format!("other body {n}")).await;
    }
    added
}

/// Seeded progress points for `kills` kills of a run that writes `total` items: strictly
/// increasing, spread over the first 90 %.
pub(super) fn kill_points(seed: u64, kills: usize, total: usize) -> Vec<usize> {
    let mut rng = Lcg(seed);
    let step = total * 9 / 10 / (kills + 1);
    (1..=kills)
        .map(|k| k * step + (rng.next() as usize) % (step / 2).max(1))
        .collect()
}

/// Runs `cmd` and SIGKILLs it as soon as `progress()` reaches `at`; true when the kill landed
/// (the run was still going), false when it ended first. A run that neither ends nor makes
/// the progress within `limit` is a failure.
pub(super) async fn kill_at(
    mut cmd: tokio::process::Command,
    progress: impl Fn() -> usize,
    at: usize,
    limit: Duration,
) -> bool {
    let mut child = cmd.spawn().expect("spawn run");
    let started = Instant::now();
    loop {
        if progress() >= at {
            child.start_kill().expect("SIGKILL");
            let _ = child.wait().await;
            return true;
        }
        if let Ok(Some(_)) = child.try_wait() {
            return false;
        }
        assert!(
            started.elapsed() < limit,
            "the run made no progress to {at} items within {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Message files in a Maildir tree (every `cur` and `new` directory below `root`).
pub(super) fn maildir_files(root: &Path) -> usize {
    let mut n = 0;
    let Ok(rd) = std::fs::read_dir(root) else {
        return 0;
    };
    for e in rd.flatten() {
        let p = e.path();
        if !p.is_dir() {
            continue;
        }
        let name = e.file_name();
        if name == "cur" || name == "new" {
            n += std::fs::read_dir(&p).map(|d| d.count()).unwrap_or(0);
        } else if name != "tmp" {
            n += maildir_files(&p);
        }
    }
    n
}
