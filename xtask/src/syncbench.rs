//! `cargo xtask bench sync`: `o365-migrate sync` of one 100,000-message mailbox after 100
//! changes (80 flag changes, 10 moves between folders, 10 new messages), from a source Dovecot
//! that offers CONDSTORE/QRESYNC and from one that does not (the same mailbox: its files are
//! hard-linked into the second server before it is opened), each into its own target Dovecot.
//! The mailbox is written as Maildir files (the generated corpus, each message's folder, flags
//! and arrival time as Dovecot reads them from a Maildir): loading 100,000 messages by APPEND
//! takes this VM half an hour, writing them a few seconds; Dovecot indexes them at the first
//! `run`, which is not what is measured.
//!
//! Per source: `run` copies the mailbox; the changes are made through a plain IMAP connection;
//! `sync --json` is timed (wall clock around the process) and says what it changed and how
//! many IMAP commands it sent to find the changes; a second `sync` (nothing changed) likewise;
//! then `verify` must exit 0 (every message, its folder and its read/flag state). A sync that
//! does not find exactly the 100 changes stops the benchmark.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{Context, Result, ensure};
use o365_migrate_testkit::{Corpus, CorpusProfile, Dovecot, DovecotOptions, User};
use serde_json::{Value, json};

/// Fixed corpus seed.
const SEED: u64 = 19_2026;
const USER: &str = "alice";
const FLAG_CHANGES: usize = 80;
const MOVES: usize = 10;
const NEW: usize = 10;

fn server(without_condstore: bool) -> Result<Dovecot> {
    let mut o = DovecotOptions::default()
        .without_tls()
        .with_users([User::new(USER, "alice-secret")])
        .with_extra_config("mail_fsync = never");
    if without_condstore {
        o = o.without_condstore();
    }
    Ok(Dovecot::start(o)?)
}

/// `--sync-messages N` (100000); the side-by-side benchmark's options are left to it.
pub(crate) fn run(args: &[String]) -> Result<Value> {
    let mut messages = 100_000usize;
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let value = it
            .next()
            .with_context(|| format!("`{flag}` needs a value"))?;
        if flag == "--sync-messages" {
            messages = value
                .parse()
                .with_context(|| format!("`{flag}` takes a whole number"))?;
        }
    }
    crate::setup::ensure_packages(&[("dovecot", "dovecot-imapd")])?;
    let bin = crate::sidebyside::build_cli()?;
    let dir = crate::sidebyside::tempfile_dir()?.join("sync");
    std::fs::create_dir_all(&dir)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let r = run_in(messages, &bin, &dir, &rt);
    if r.is_ok() {
        let _ = std::fs::remove_dir_all(&dir);
    } else {
        eprintln!("bench sync: logs kept in {}", dir.display());
    }
    r
}

fn run_in(messages: usize, bin: &Path, dir: &Path, rt: &tokio::runtime::Runtime) -> Result<Value> {
    let with = server(false).context("starting the CONDSTORE source")?;
    let without = server(true).context("starting the plain source")?;
    let profile = CorpusProfile::small(SEED, messages)
        .with_attachment_per_mille(0)
        .with_max_message_bytes(Some(6 * 1024));
    let corpus = Corpus::new(profile);
    eprintln!("bench sync: writing {messages} messages");
    let t = Instant::now();
    let per_folder = write_maildir(&with, &corpus)?;
    eprintln!("bench sync: written in {:.0} s", t.elapsed().as_secs_f64());
    // The same mailbox in the second server, before anything there opened it.
    crate::sidebyside::clone_home(
        &crate::sidebyside::home(&with, USER),
        &crate::sidebyside::home(&without, USER),
    )?;
    let mut rows = serde_json::Map::new();
    for (name, source) in [("condstore", &with), ("plain", &without)] {
        let target = server(false).context("starting a target")?;
        let run_dir = dir.join(name);
        let row = one(bin, source, &target, &per_folder, &run_dir, rt)
            .with_context(|| format!("bench sync ({name})"))?;
        eprintln!("bench sync: {name}: {row}");
        rows.insert(name.to_owned(), row);
    }
    let bytes: u64 = per_folder.values().map(|(_, b)| b).sum();
    Ok(json!({
        "bench": "sync",
        "messages": messages,
        "folders": per_folder.len(),
        "mb": (bytes as f64 / 1e6 * 10.0).round() / 10.0,
        "changes": { "flags": FLAG_CHANGES, "moves": MOVES, "new": NEW },
        "servers": "Dovecot 2.3, plaintext on 127.0.0.1, mail_fsync = never; a target Dovecot per row",
        "condstore": rows.remove("condstore"),
        "plain": rows.remove("plain"),
    }))
}

struct Timed {
    seconds: f64,
    code: i32,
    stdout: String,
    stderr: String,
}

fn cli(bin: &Path, run_dir: &Path, target: &Dovecot, args: &[&str]) -> Result<Timed> {
    let t = Instant::now();
    let o = Command::new(bin)
        .args(["--config", "job.toml"])
        .args(args)
        .current_dir(run_dir)
        .env("BENCH_TARGET_SECRET", target.master_user().password())
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running o365-migrate {args:?}"))?;
    Ok(Timed {
        seconds: t.elapsed().as_secs_f64(),
        code: o.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
    })
}

fn sync(bin: &Path, run_dir: &Path, target: &Dovecot) -> Result<(f64, Value)> {
    let t = cli(bin, run_dir, target, &["sync", "--json"])?;
    ensure!(t.code == 0, "sync exit {}: {}", t.code, t.stderr);
    let line = t.stdout.lines().last().unwrap_or_default();
    let v: Value = serde_json::from_str(line).with_context(|| format!("sync JSON: {line}"))?;
    Ok((t.seconds, v))
}

fn one(
    bin: &Path,
    source: &Dovecot,
    target: &Dovecot,
    per_folder: &Folders,
    run_dir: &Path,
    rt: &tokio::runtime::Runtime,
) -> Result<Value> {
    std::fs::create_dir_all(run_dir)?;
    let user = source.user(USER).context("no source user")?;
    std::fs::write(
        run_dir.join("users.csv"),
        format!("Login,Password\r\n{},{}\r\n", user.name(), user.password()),
    )?;
    std::fs::write(
        run_dir.join("job.toml"),
        crate::sidebyside::job(source, target, 1, None),
    )?;
    let first = cli(bin, run_dir, target, &["run"])?;
    ensure!(first.code == 0, "run exit {}: {}", first.code, first.stderr);
    rt.block_on(change(source, per_folder))?;
    let (seconds, v) = sync(bin, run_dir, target)?;
    let s = &v["sync"];
    let found = (
        v["migrated"].as_u64(),
        s["flags"].as_u64(),
        s["moved"].as_u64(),
        s["failed"].as_u64(),
    );
    ensure!(
        found
            == (
                Some(NEW as u64),
                Some(FLAG_CHANGES as u64),
                Some(MOVES as u64),
                Some(0)
            ),
        "sync did not carry exactly the changes (migrated, flags, moved, failed): {found:?}"
    );
    let (noop_seconds, noop) = sync(bin, run_dir, target)?;
    ensure!(
        noop["migrated"].as_u64() == Some(0) && noop["sync"]["flags"].as_u64() == Some(0),
        "a second sync changed something: {noop}"
    );
    let verify = cli(bin, run_dir, target, &["verify"])?;
    ensure!(
        verify.code == 0,
        "verify exit {}: {}",
        verify.code,
        verify.stderr
    );
    Ok(json!({
        "first_run_s": round1(first.seconds),
        "sync_s": round1(seconds),
        "sync_source_commands": s["source_commands"],
        "noop_sync_s": round1(noop_seconds),
        "noop_source_commands": noop["sync"]["source_commands"],
        "verify_s": round1(verify.seconds),
        "verify_ok": true,
    }))
}

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

/// Messages and bytes per folder.
type Folders = std::collections::BTreeMap<String, (usize, u64)>;

/// Writes the corpus into `user`'s Maildir as files Dovecot has not seen yet (Maildir++
/// folders, flags in the file name, INTERNALDATE as the file's mtime), owned like the
/// server's mail directory.
fn write_maildir(dc: &Dovecot, corpus: &Corpus) -> Result<Folders> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let maildir = dc.maildir(USER);
    let mail_root = maildir
        .parent()
        .and_then(Path::parent)
        .context("the Maildir has no mail root")?;
    let meta = std::fs::metadata(mail_root)?;
    let (uid, gid) = (meta.uid(), meta.gid());
    let own = |p: &Path, mode: u32| -> Result<()> {
        std::os::unix::fs::chown(p, Some(uid), Some(gid))?;
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode))?;
        Ok(())
    };
    let home = maildir.parent().context("no home")?;
    for d in [home, maildir.as_path()] {
        std::fs::create_dir_all(d)?;
        own(d, 0o700)?;
    }
    let mut made: std::collections::HashSet<std::path::PathBuf> = Default::default();
    let mut folders = Folders::new();
    for (i, m) in corpus.iter().enumerate() {
        let dir = if m.meta.folder.eq_ignore_ascii_case("INBOX") {
            maildir.clone()
        } else {
            let name: Vec<String> = m
                .meta
                .folder
                .split('/')
                .map(o365_migrate_testkit::utf7::encode)
                .collect();
            maildir.join(format!(".{}", name.join(".")))
        };
        if made.insert(dir.clone()) {
            std::fs::create_dir_all(&dir)?;
            own(&dir, 0o700)?;
            for sub in ["cur", "new", "tmp"] {
                let p = dir.join(sub);
                std::fs::create_dir_all(&p)?;
                own(&p, 0o700)?;
            }
            if dir != maildir {
                let f = dir.join("maildirfolder");
                std::fs::write(&f, b"")?;
                own(&f, 0o600)?;
            }
        }
        let mut info = String::new();
        for (flag, c) in [
            ("\\Draft", 'D'),
            ("\\Flagged", 'F'),
            ("\\Answered", 'R'),
            ("\\Seen", 'S'),
        ] {
            if m.meta.flags.iter().any(|f| f.eq_ignore_ascii_case(flag)) {
                info.push(c);
            }
        }
        let arrived = m.meta.internal_date.unix_seconds();
        let path = dir.join("cur").join(format!(
            "{arrived}.M{i}P1.bench,S={}:2,{info}",
            m.bytes.len()
        ));
        std::fs::write(&path, &m.bytes)?;
        let f = std::fs::File::options().write(true).open(&path)?;
        f.set_modified(
            std::time::UNIX_EPOCH + std::time::Duration::from_secs(arrived.max(0) as u64),
        )?;
        drop(f);
        own(&path, 0o600)?;
        let e = folders.entry(m.meta.folder.clone()).or_default();
        e.0 += 1;
        e.1 += m.bytes.len() as u64;
    }
    Ok(folders)
}

/// The 100 changes, made the same way on either source (by the position of a message in its
/// folder, read from that server).
async fn change(source: &Dovecot, per_folder: &Folders) -> Result<()> {
    let mut folders: Vec<(&String, usize)> = per_folder
        .iter()
        .map(|(f, (n, _))| (f, *n))
        .filter(|(f, _)| {
            let l = f.to_ascii_lowercase();
            !["trash", "junk", "spam", "draft"]
                .iter()
                .any(|s| l.contains(s))
        })
        .collect();
    folders.sort_by_key(|(f, n)| (std::cmp::Reverse(*n), (*f).clone()));
    ensure!(folders.len() >= 2, "the corpus has too few folders");
    let (from, to) = (folders[0].0.as_str(), folders[1].0.as_str());
    let mut c = source.login(USER).await?;
    c.select(from).await?;
    let list = c.uid_fetch_meta("1:*").await?;
    ensure!(
        list.len() >= FLAG_CHANGES + MOVES,
        "folder {from} is too small"
    );
    // Spread over the folder: every n-th message.
    let step = list.len() / (FLAG_CHANGES + MOVES);
    let picked: Vec<_> = (0..FLAG_CHANGES + MOVES).map(|i| &list[i * step]).collect();
    for m in &picked[..FLAG_CHANGES] {
        let flagged = m.flags.iter().any(|f| f.eq_ignore_ascii_case("\\Flagged"));
        let op = if flagged {
            "-FLAGS.SILENT"
        } else {
            "+FLAGS.SILENT"
        };
        c.raw(&format!(
            "UID STORE {} {op} (\\Flagged)",
            m.uid.unwrap_or(0)
        ))
        .await?;
    }
    for m in &picked[FLAG_CHANGES..] {
        c.raw(&format!("UID MOVE {} \"{to}\"", m.uid.unwrap_or(0)))
            .await?;
    }
    let _ = c.logout().await;
    Corpus::new(CorpusProfile::small(SEED + 1, NEW).with_attachment_per_mille(0))
        .load(source, USER)
        .await?;
    Ok(())
}
