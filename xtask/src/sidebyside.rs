//! `cargo xtask bench side-by-side`: o365-migrate, mbsync (Debian `isync`) and the raw server
//! floor ([`crate::floor`]) copy the same generated corpus from one source Dovecot to a fresh,
//! empty target Dovecot, alternating A B C for N rounds. Every contender runs as a child process
//! under GNU `time`, which reports its wall time, CPU seconds (user + system) and peak RSS the same
//! way for all three. After every run the target's per-folder counts are checked against the
//! corpus manifest; a mismatch stops the benchmark.
//!
//! Then: 8 mailboxes in parallel through o365-migrate, and an RSS run with 25 MB messages
//! (8 mailboxes, a small `in_flight_bytes`).
//!
//! Both Dovecots run with `mail_fsync = never` so the figures measure the clients, not this
//! VM's disk flushes; all contenders use the same servers.

use anyhow::{Context, Result, bail, ensure};
use o365_migrate_testkit::{
    AppendRequest, Corpus, CorpusProfile, Dovecot, DovecotOptions, Manifest, User,
};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

/// Fixed corpus seed.
const SEED: u64 = 10_2026;
/// The contenders, in the order they run in each round.
const CONTENDERS: [&str; 3] = ["o365-migrate", "mbsync", "floor"];
/// Users for the parallel and the big-message runs.
const PARALLEL: usize = 8;
const MB: usize = 1024 * 1024;

/// Options: `--rounds N` (3), `--messages N` (5000), `--parallel-messages N` (per mailbox, 625),
/// `--parallel-in-flight S` (the parallel run's `in_flight_bytes`; default: none written, so
/// the job file's default applies), `--big-mb N` (25), `--big-per-mailbox N` (3),
/// `--in-flight S` (the big run's `in_flight_bytes`, "40MB").
struct Options {
    rounds: usize,
    messages: usize,
    parallel_messages: usize,
    parallel_in_flight: Option<String>,
    big_mb: usize,
    big_per_mailbox: usize,
    in_flight: String,
    contenders: Vec<String>,
}

fn parse(args: &[String]) -> Result<Options> {
    let mut o = Options {
        rounds: 3,
        messages: 5000,
        parallel_messages: 625,
        parallel_in_flight: None,
        big_mb: 25,
        big_per_mailbox: 3,
        in_flight: "40MB".to_owned(),
        contenders: CONTENDERS.iter().map(|c| (*c).to_owned()).collect(),
    };
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let value = it
            .next()
            .with_context(|| format!("`{flag}` needs a value"))?;
        let n = || -> Result<usize> {
            value
                .parse()
                .with_context(|| format!("`{flag}` takes a whole number, got `{value}`"))
        };
        match flag.as_str() {
            "--rounds" => o.rounds = n()?.max(1),
            "--messages" => o.messages = n()?.max(1),
            "--parallel-messages" => o.parallel_messages = n()?,
            "--big-mb" => o.big_mb = n()?.max(1),
            "--big-per-mailbox" => o.big_per_mailbox = n()?,
            "--contenders" => {
                o.contenders = value.split(',').map(str::to_owned).collect();
                if let Some(bad) = o
                    .contenders
                    .iter()
                    .find(|c| !CONTENDERS.contains(&c.as_str()))
                {
                    bail!(
                        "unknown contender `{bad}` (known: {})",
                        CONTENDERS.join(", ")
                    );
                }
            }
            "--in-flight" => o.in_flight = value.clone(),
            "--parallel-in-flight" => o.parallel_in_flight = Some(value.clone()),
            // The sync and ledger benchmarks'.
            "--sync-messages" | "--ledger-items" | "--ledger-reps" => {}
            other => bail!(
                "unknown option `{other}` (known: --rounds, --messages, --parallel-messages, \
                 --parallel-in-flight, --big-mb, --big-per-mailbox, --in-flight, --contenders)"
            ),
        }
    }
    Ok(o)
}

/// What GNU `time` says about one child process.
#[derive(Debug, Clone, Copy)]
struct Usage {
    wall_s: f64,
    cpu_s: f64,
    max_rss_kib: u64,
}

/// Runs `program args` under `/usr/bin/time`, output to `log`; fails when it fails.
fn run_timed(
    name: &str,
    program: &Path,
    args: &[String],
    envs: &[(&str, &str)],
    dir: &Path,
) -> Result<Usage> {
    let usage_file = dir.join(format!("{name}.time"));
    let log = dir.join(format!("{name}.log"));
    let log_file = std::fs::File::create(&log)?;
    let mut cmd = Command::new("/usr/bin/time");
    cmd.arg("-f").arg("%e %U %S %M").arg("-o").arg(&usage_file);
    // For profiling only: `O365_MIGRATE_BENCH_WRAP="perf record -g --"` runs o365-migrate
    // under that command (its figures then include the wrapper's).
    if name == "o365-migrate"
        && let Ok(wrap) = std::env::var("O365_MIGRATE_BENCH_WRAP")
    {
        cmd.args(wrap.split_whitespace());
    }
    cmd.arg(program)
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(log_file.try_clone()?)
        .stderr(log_file);
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let status = cmd
        .status()
        .with_context(|| format!("starting {name} under /usr/bin/time"))?;
    let tail = || {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(15)..].join("\n")
    };
    ensure!(
        status.success(),
        "{name} failed ({status}); its log ({}) ends:\n{}",
        log.display(),
        tail()
    );
    let text = std::fs::read_to_string(&usage_file)?;
    let last = text.lines().last().unwrap_or_default();
    let f: Vec<&str> = last.split_whitespace().collect();
    let num = |i: usize| -> Result<f64> {
        f.get(i)
            .and_then(|s| s.parse::<f64>().ok())
            .with_context(|| format!("cannot read /usr/bin/time output `{last}`"))
    };
    Ok(Usage {
        wall_s: num(0)?,
        cpu_s: num(1)? + num(2)?,
        max_rss_kib: num(3)? as u64,
    })
}

fn all_users() -> Vec<User> {
    let mut users = vec![User::new("alice", "alice-secret")];
    for i in 1..=PARALLEL {
        users.push(User::new(format!("p{i}"), format!("p{i}-secret")));
        users.push(User::new(format!("h{i}"), format!("h{i}-secret")));
    }
    users
}

fn dovecot() -> Result<Dovecot> {
    Ok(Dovecot::start(
        DovecotOptions::default()
            .without_tls()
            .with_users(all_users())
            .with_extra_config("mail_fsync = never"),
    )?)
}

/// Copies a user's home into another user's (before that user ever logs in): message files are
/// hard links (Maildir files are never rewritten), Dovecot's own files are copied.
pub(crate) fn clone_home(from: &Path, to: &Path) -> Result<()> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(from)?;
    std::fs::create_dir_all(to)?;
    std::os::unix::fs::chown(to, Some(meta.uid()), Some(meta.gid()))?;
    std::fs::set_permissions(to, meta.permissions())?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let src = entry.path();
        let dst = to.join(entry.file_name());
        let ty = entry.file_type()?;
        if ty.is_dir() {
            clone_home(&src, &dst)?;
        } else if entry.file_name().to_string_lossy().starts_with("dovecot") {
            std::fs::copy(&src, &dst)?;
            let m = entry.metadata()?;
            std::os::unix::fs::chown(&dst, Some(m.uid()), Some(m.gid()))?;
        } else {
            std::fs::hard_link(&src, &dst)?;
        }
    }
    Ok(())
}

pub(crate) fn home(dc: &Dovecot, user: &str) -> PathBuf {
    dc.maildir(user)
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

/// One 25 MB-class message: a text part and a base64 attachment of pseudo-random bytes.
fn big_message(i: usize, bytes: usize) -> Vec<u8> {
    let mut m = format!(
        "From: Big Sender <big@example.org>\r\nTo: h@example.net\r\nSubject: big message {i}\r\n\
         Date: Mon, 01 Jan 2024 10:00:00 +0000\r\nMessage-ID: <big-{i}@bench.example>\r\n\
         MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b\"\r\n\r\n--b\r\n\
         Content-Type: text/plain; charset=us-ascii\r\n\r\nSee attachment.\r\n--b\r\n\
         Content-Type: application/octet-stream; name=\"data{i}.bin\"\r\n\
         Content-Transfer-Encoding: base64\r\n\r\n"
    )
    .into_bytes();
    const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15 ^ i as u64;
    while m.len() + 78 < bytes {
        for _ in 0..76 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            m.push(B64[(x & 63) as usize]);
        }
        m.extend_from_slice(b"\r\n");
    }
    m.extend_from_slice(b"--b--\r\n");
    m
}

/// Checks the target's per-folder counts against the expectation and that nothing else is there.
async fn verify(target: &Dovecot, user: &str, expected: &BTreeMap<String, usize>) -> Result<()> {
    let mut c = target.login(user).await?;
    let mut total = 0usize;
    for entry in c.list().await? {
        let st = c.status(&entry.name).await;
        if let Ok(st) = st {
            total += st.messages.unwrap_or(0) as usize;
        }
    }
    for (folder, want) in expected {
        let got = c
            .status(folder)
            .await
            .with_context(|| format!("{user}: target folder {folder:?} is missing"))?
            .messages
            .unwrap_or(0) as usize;
        ensure!(
            got == *want,
            "{user}: target folder {folder:?} has {got} messages, the source {want}"
        );
    }
    let want_total: usize = expected.values().sum();
    ensure!(
        total == want_total,
        "{user}: the target holds {total} messages in all, the source {want_total}"
    );
    c.logout().await.ok();
    Ok(())
}

fn counts(m: &Manifest) -> BTreeMap<String, usize> {
    m.folder_counts()
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
}

/// The job file for o365-migrate against these two servers.
pub(crate) fn job(
    source: &Dovecot,
    target: &Dovecot,
    at_once: usize,
    in_flight: Option<&str>,
) -> String {
    let in_flight = in_flight
        .map(|b| format!("in_flight_bytes = \"{b}\"\n"))
        .unwrap_or_default();
    format!(
        r#"[source]
host = "127.0.0.1"
port = {sport}
security = "none"
credentials = "users.csv"
connections_per_host = 16

[target]
kind = "imap"

[target.imap]
host = "127.0.0.1"
port = {tport}
security = "none"
login = "admin"
connections_per_host = 16

[target.imap.admin]
user = "{master}"
secret = "env:BENCH_TARGET_SECRET"

[filters]
exclude_folders = []

[limits]
mailboxes_at_once = {at_once}
{in_flight}
[state]
path = "state.db"

[report]
directory = "report"

[log]
file = "migrate.log"
level = "warn"
"#,
        sport = source.imap_port(),
        tport = target.imap_port(),
        master = target.master_user().name(),
    )
}

/// Runs o365-migrate for `users` into a fresh target; returns its usage.
fn run_o365(
    bin: &Path,
    source: &Dovecot,
    target: &Dovecot,
    users: &[&str],
    at_once: usize,
    in_flight: Option<&str>,
    run_dir: &Path,
) -> Result<Usage> {
    std::fs::create_dir_all(run_dir)?;
    let mut csv = String::from("Login,Password\r\n");
    for u in users {
        let user = source.user(u).context("no such source user")?;
        csv.push_str(&format!("{},{}\r\n", user.name(), user.password()));
    }
    std::fs::write(run_dir.join("users.csv"), csv)?;
    std::fs::write(
        run_dir.join("job.toml"),
        job(source, target, at_once, in_flight),
    )?;
    let args: Vec<String> = ["--config", "job.toml", "run"]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
    run_timed(
        "o365-migrate",
        bin,
        &args,
        &[("BENCH_TARGET_SECRET", target.master_user().password())],
        run_dir,
    )
}

fn run_mbsync(source: &Dovecot, target: &Dovecot, run_dir: &Path) -> Result<Usage> {
    let state = run_dir.join("state");
    std::fs::create_dir_all(&state)?;
    let config = format!(
        "IMAPAccount src\nHost 127.0.0.1\nPort {sport}\nUser alice\nPass alice-secret\n\
         SSLType None\nAuthMechs LOGIN\n\n\
         IMAPStore src\nAccount src\n\n\
         IMAPAccount dst\nHost 127.0.0.1\nPort {tport}\nUser alice\nPass alice-secret\n\
         SSLType None\nAuthMechs LOGIN\n\n\
         IMAPStore dst\nAccount dst\n\n\
         Channel bench\nFar :src:\nNear :dst:\nPatterns *\nCreate Near\nSync Pull\n\
         CopyArrivalDate yes\nExpunge None\nRemove None\nSyncState {state}/\n",
        sport = source.imap_port(),
        tport = target.imap_port(),
        state = state.display(),
    );
    let cfg = run_dir.join("mbsyncrc");
    std::fs::write(&cfg, config)?;
    let args = vec![
        "-c".to_owned(),
        cfg.display().to_string(),
        "-q".to_owned(),
        "bench".to_owned(),
    ];
    run_timed("mbsync", Path::new("/usr/bin/mbsync"), &args, &[], run_dir)
}

fn run_floor(source: &Dovecot, target: &Dovecot, run_dir: &Path) -> Result<Usage> {
    std::fs::create_dir_all(run_dir)?;
    let me = std::env::current_exe().context("locating the xtask binary")?;
    let args: Vec<String> = vec![
        "bench-floor".to_owned(),
        source.imap_port().to_string(),
        "alice".to_owned(),
        "alice-secret".to_owned(),
        target.imap_port().to_string(),
        "alice".to_owned(),
        "alice-secret".to_owned(),
    ];
    run_timed("floor", &me, &args, &[], run_dir)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n == 0 {
        return 0.0;
    }
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// The release binary: `$O365_MIGRATE_BENCH_BIN` when set (a binary built elsewhere, e.g. from
/// another checkout), else built here.
pub(crate) fn build_cli() -> Result<PathBuf> {
    if let Some(bin) = std::env::var_os("O365_MIGRATE_BENCH_BIN") {
        let bin = PathBuf::from(bin);
        ensure!(
            bin.exists(),
            "O365_MIGRATE_BENCH_BIN: no file {}",
            bin.display()
        );
        eprintln!("side-by-side: using {}", bin.display());
        return Ok(bin);
    }
    crate::sh(
        "cargo",
        &["build", "--quiet", "--release", "-p", "o365-migrate"],
    )?;
    let target_dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| crate::root().join("target"));
    let bin = target_dir.join("release").join("o365-migrate");
    ensure!(bin.exists(), "cannot find {}", bin.display());
    Ok(bin)
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// The whole side-by-side benchmark; returns its JSON figures.
pub(crate) fn run(args: &[String]) -> Result<Value> {
    let o = parse(args)?;
    crate::setup::ensure_packages(&[
        ("dovecot", "dovecot-imapd"),
        ("mbsync", "isync"),
        ("time", "time"),
    ])?;
    let bin = build_cli()?;
    let dir = tempfile_dir()?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let result = run_in(&o, &bin, &dir, &rt);
    if result.is_ok() {
        if std::env::var_os("O365_MIGRATE_BENCH_KEEP").is_none() {
            let _ = std::fs::remove_dir_all(&dir);
        } else {
            eprintln!("side-by-side: logs kept in {}", dir.display());
        }
    } else {
        eprintln!("side-by-side: logs kept in {}", dir.display());
    }
    result
}

pub(crate) fn tempfile_dir() -> Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("o365-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

fn run_in(o: &Options, bin: &Path, dir: &Path, rt: &tokio::runtime::Runtime) -> Result<Value> {
    let source = dovecot().context("starting the source Dovecot")?;
    let t0 = Instant::now();
    let corpus = Corpus::new(CorpusProfile::realistic(SEED, o.messages));
    let manifest = rt.block_on(corpus.load_parallel(&source, "alice", 2))?;
    let expected = counts(&manifest);
    let bytes = manifest.total_bytes();
    let n = manifest.len();
    eprintln!(
        "side-by-side: loaded {n} messages ({:.0} MB) into the source in {:.0?}",
        bytes as f64 / 1e6,
        t0.elapsed()
    );

    // A B C, A B C, ...
    let mut usages: BTreeMap<&str, Vec<Usage>> = BTreeMap::new();
    for round in 1..=o.rounds {
        for name in CONTENDERS {
            if !o.contenders.iter().any(|c| c == name) {
                continue;
            }
            let target = dovecot().context("starting a target Dovecot")?;
            let run_name = format!("{name}-{round}");
            let run_dir = dir.join(&run_name);
            let u = match name {
                "o365-migrate" => run_o365(
                    bin,
                    &source,
                    &target,
                    &["alice"],
                    1,
                    Some("256MB"),
                    &run_dir,
                )?,
                "mbsync" => run_mbsync(&source, &target, &run_dir)?,
                _ => run_floor(&source, &target, &run_dir)?,
            };
            rt.block_on(verify(&target, "alice", &expected))
                .with_context(|| format!("after {run_name}"))?;
            eprintln!(
                "side-by-side: round {round} {name}: {:.1} s, {:.0} msg/s, {:.1} MB/s, {:.1} CPU s, \
                 {:.1} MiB peak RSS; target verified",
                u.wall_s,
                n as f64 / u.wall_s,
                bytes as f64 / 1e6 / u.wall_s,
                u.cpu_s,
                u.max_rss_kib as f64 / 1024.0
            );
            usages.entry(name).or_default().push(u);
            drop(target);
        }
    }
    let mut contenders = serde_json::Map::new();
    let mut msgs_per_s = BTreeMap::new();
    for (name, us) in &usages {
        let rate = median(us.iter().map(|u| n as f64 / u.wall_s).collect());
        msgs_per_s.insert(*name, rate);
        contenders.insert(
            (*name).to_owned(),
            json!({
                "runs": us.len(),
                "wall_s": us.iter().map(|u| u.wall_s).collect::<Vec<_>>(),
                "median_messages_per_s": round2(rate),
                "median_mb_per_s": round2(median(us.iter().map(|u| bytes as f64 / 1e6 / u.wall_s).collect())),
                "median_cpu_s": round2(median(us.iter().map(|u| u.cpu_s).collect())),
                "median_peak_rss_mib": round2(median(us.iter().map(|u| u.max_rss_kib as f64 / 1024.0).collect())),
            }),
        );
    }
    let ratio = |other: &str| -> Value {
        match (msgs_per_s.get("o365-migrate"), msgs_per_s.get(other)) {
            (Some(a), Some(b)) => json!(round2(a / b)),
            _ => Value::Null,
        }
    };
    let commit = Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .current_dir(crate::root())
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    let mut out = json!({
        "bench": "side-by-side",
        "binary": bin.display().to_string(),
        "commit": commit,
        "seed": SEED,
        "rounds": o.rounds,
        "messages": n,
        "bytes": bytes,
        "servers": "two private Dovecot instances on 127.0.0.1, plaintext, mail_fsync = never; a fresh target per run",
        "contenders": contenders,
        "ratio_vs_mbsync": ratio("mbsync"),
        "ratio_vs_floor": ratio("floor"),
    });
    if o.parallel_messages > 0 {
        out["parallel"] = parallel_run(o, bin, &source, dir, rt)?;
    }
    if o.big_per_mailbox > 0 {
        out["big"] = big_run(o, bin, &source, dir, rt)?;
    }
    Ok(out)
}

/// 8 mailboxes in parallel: one corpus loaded once, hard-linked into the other seven homes.
fn parallel_run(
    o: &Options,
    bin: &Path,
    source: &Dovecot,
    dir: &Path,
    rt: &tokio::runtime::Runtime,
) -> Result<Value> {
    let t0 = Instant::now();
    let pcorpus = Corpus::new(CorpusProfile::realistic(SEED + 1, o.parallel_messages));
    let pmanifest = rt.block_on(corpus_load(&pcorpus, source, "p1"))?;
    for i in 2..=PARALLEL {
        clone_home(&home(source, "p1"), &home(source, &format!("p{i}")))?;
    }
    eprintln!(
        "side-by-side: {PARALLEL} mailboxes of {} messages ready in {:.0?}",
        pmanifest.len(),
        t0.elapsed()
    );
    let pusers: Vec<String> = (1..=PARALLEL).map(|i| format!("p{i}")).collect();
    let prefs: Vec<&str> = pusers.iter().map(String::as_str).collect();
    let target = dovecot()?;
    let pu = run_o365(
        bin,
        source,
        &target,
        &prefs,
        PARALLEL,
        o.parallel_in_flight.as_deref(),
        &dir.join("parallel"),
    )?;
    let pexpected = counts(&pmanifest);
    for u in &prefs {
        rt.block_on(verify(&target, u, &pexpected))
            .with_context(|| format!("after the parallel run, mailbox {u}"))?;
    }
    drop(target);
    let pn = pmanifest.len() * PARALLEL;
    let pbytes = pmanifest.total_bytes() * PARALLEL as u64;
    eprintln!(
        "side-by-side: {PARALLEL} mailboxes in parallel: {pn} messages in {:.1} s, {:.0} msg/s, \
         {:.1} MiB peak RSS; target verified",
        pu.wall_s,
        pn as f64 / pu.wall_s,
        pu.max_rss_kib as f64 / 1024.0
    );
    Ok(json!({
        "mailboxes": PARALLEL,
        "in_flight_bytes": o.parallel_in_flight.as_deref().unwrap_or("the job file's default"),
        "messages": pn,
        "bytes": pbytes,
        "wall_s": pu.wall_s,
        "messages_per_s": round2(pn as f64 / pu.wall_s),
        "mb_per_s": round2(pbytes as f64 / 1e6 / pu.wall_s),
        "cpu_s": round2(pu.cpu_s),
        "peak_rss_mib": round2(pu.max_rss_kib as f64 / 1024.0),
    }))
}

/// Big messages, 8 mailboxes at once, a small in-flight budget: the peak-RSS goal.
fn big_run(
    o: &Options,
    bin: &Path,
    source: &Dovecot,
    dir: &Path,
    rt: &tokio::runtime::Runtime,
) -> Result<Value> {
    let big_bytes = o.big_mb * MB;
    rt.block_on(async {
        let mut c = source.login("h1").await?;
        for i in 0..o.big_per_mailbox {
            c.append(
                "INBOX",
                &AppendRequest::new(big_message(i, big_bytes), vec![], None),
            )
            .await?;
        }
        c.logout().await?;
        anyhow::Ok(())
    })?;
    for i in 2..=PARALLEL {
        clone_home(&home(source, "h1"), &home(source, &format!("h{i}")))?;
    }
    let husers: Vec<String> = (1..=PARALLEL).map(|i| format!("h{i}")).collect();
    let hrefs: Vec<&str> = husers.iter().map(String::as_str).collect();
    let target = dovecot()?;
    let hu = run_o365(
        bin,
        source,
        &target,
        &hrefs,
        PARALLEL,
        Some(&o.in_flight),
        &dir.join("big"),
    )?;
    let hexpected = BTreeMap::from([("INBOX".to_owned(), o.big_per_mailbox)]);
    for u in &hrefs {
        rt.block_on(verify(&target, u, &hexpected))
            .with_context(|| format!("after the big-message run, mailbox {u}"))?;
    }
    drop(target);
    eprintln!(
        "side-by-side: {} messages of {} MB over {PARALLEL} mailboxes (in_flight_bytes {}): \
         {:.1} s, {:.1} MiB peak RSS; target verified",
        o.big_per_mailbox * PARALLEL,
        o.big_mb,
        o.in_flight,
        hu.wall_s,
        hu.max_rss_kib as f64 / 1024.0
    );
    Ok(json!({
        "mailboxes": PARALLEL,
        "messages": o.big_per_mailbox * PARALLEL,
        "message_mb": o.big_mb,
        "in_flight_bytes": o.in_flight,
        "wall_s": hu.wall_s,
        "cpu_s": round2(hu.cpu_s),
        "peak_rss_mib": round2(hu.max_rss_kib as f64 / 1024.0),
    }))
}

async fn corpus_load(corpus: &Corpus, source: &Dovecot, user: &str) -> Result<Manifest> {
    Ok(corpus.load_parallel(source, user, 2).await?)
}
