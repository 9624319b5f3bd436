//! `o365-migrate`: the command-line tool. Wiring only; the work lives in `o365-migrate-engine`.
//!
//! Exit codes:
//! - 0: success (for `verify`: everything matches)
//! - 1: the command ran but found problems (items failed, `verify` found differences,
//!   `credentials check` found errors, a connection test failed)
//! - 2: bad usage, job file, credentials file or state store
//! - 3: a mailbox could not be processed (source or target unreachable, login refused)
//! - 4: Gmail mailboxes paused for Google's download limit (the rest is done); run again after
//!   the time shown
//! - 130: stopped by Ctrl-C (in-flight items were recorded first)

mod progress;
mod window;

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result};
use clap::{Parser, Subcommand, ValueEnum};
use o365_migrate_engine::config::{Job, TEMPLATE, TargetKind};
use o365_migrate_engine::report::{
    FanOut, JsonLinesReporter, Report, Reporter, human_bytes, human_duration,
};
use o365_migrate_engine::state::{RunKind, Schema, SqlStore, StateStore};
use o365_migrate_engine::{Engine, StopFlag};

/// Migrate mailboxes from any IMAP server into Microsoft 365 / Exchange Online.
#[derive(Debug, Parser)]
#[command(name = "o365-migrate", version, about, after_help = EXIT_CODES)]
struct Cli {
    /// The job file.
    #[arg(long, global = true, default_value = "o365-migrate.toml")]
    config: PathBuf,
    #[command(subcommand)]
    command: Command,
}

const EXIT_CODES: &str = "Exit codes: 0 success; 1 problems found (failed items, verify differences, \
credential errors, failed tests); 2 bad usage, job file, credentials or state; 3 a mailbox could not \
be processed; 4 Gmail mailboxes paused for Google's download limit (run again after the time shown); 130 stopped by Ctrl-C.";

#[derive(Debug, Subcommand)]
enum Command {
    /// Write a commented job-file template.
    Init {
        /// Where (default: the --config path).
        path: Option<PathBuf>,
    },
    /// Cutover commands (no job file needed).
    Cutover {
        #[command(subcommand)]
        command: CutoverCommand,
    },
    /// Credentials-file commands.
    Credentials {
        #[command(subcommand)]
        command: CredentialsCommand,
    },
    /// Google sign-in for Gmail sources.
    Google {
        #[command(subcommand)]
        command: GoogleCommand,
    },
    /// Source commands.
    Source {
        #[command(subcommand)]
        command: TestCommand,
    },
    /// Target commands.
    Target {
        #[command(subcommand)]
        command: TestCommand,
    },
    /// Automatch source mailboxes to target users ([matching] rules against the target
    /// directory); manual pairs from the mapping file and the credentials file win.
    Match {
        /// Machine-readable output on stdout.
        #[arg(long)]
        json: bool,
        /// Write the mapping CSV (source,target,rule,status,note) here; edit it and name it in
        /// [matching] pairs_file.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Create missing target users, assign the licence, wait until their mailboxes answer
    /// (Graph target; needs [matching] allow_create and/or licence_sku).
    Provision {
        /// Show what would be created and licensed; change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Longest wait for new mailboxes, in seconds.
        #[arg(long, default_value_t = 1800)]
        wait: u64,
        /// Machine-readable output on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Microsoft's own IMAP migration instead: write its CSV (EmailAddress, UserName, Password
    /// [, UserRoot]) and a PowerShell script (New-MigrationEndpoint -IMAP, New-MigrationBatch)
    /// for the job's pairing, with a README comparing what each path keeps.
    ExportBatch {
        /// Directory to write into (created if needed). The CSV files hold passwords.
        #[arg(long)]
        out: PathBuf,
        /// Machine-readable output on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Folders, counts, sizes, the folder map, oversize items and a duration estimate.
    Plan {
        /// Machine-readable output on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Migrate (resumable: run again after any interruption).
    Run {
        /// Only these mailboxes (source or target address); repeatable.
        #[arg(long = "mailbox")]
        mailboxes: Vec<String>,
        /// Show the plan and write nothing.
        #[arg(long)]
        dry_run: bool,
        /// Work only inside this daily window (local time), e.g. 22:00-06:00: wait for its
        /// start, pause cleanly at its end, resume at the next start, until done.
        #[arg(long, value_parser = parse_window)]
        window: Option<window::Window>,
        /// Write one JSON line per event to this file.
        #[arg(long)]
        events: Option<PathBuf>,
    },
    /// Copy what arrived since the last run, and retry failed items.
    Rescan {
        /// Write one JSON line per event to this file.
        #[arg(long)]
        events: Option<PathBuf>,
    },
    /// Keep the target in step until cutover: new items as `rescan` copies them, plus read,
    /// flag and keyword changes, moves between folders and (only with --propagate-deletes)
    /// deletions since the last pass.
    Sync {
        /// Only these mailboxes (source or target address); repeatable.
        #[arg(long = "mailbox")]
        mailboxes: Vec<String>,
        /// Also delete in the target what was deleted at the source (never by default; each
        /// deletion is recorded per item).
        #[arg(long)]
        propagate_deletes: bool,
        /// Run again every DURATION (e.g. 15m, 1h, 90s) until Ctrl-C; a pass that takes
        /// longer starts the next at once.
        #[arg(long, value_parser = parse_every, conflicts_with = "final_pass")]
        every: Option<std::time::Duration>,
        /// After the MX switch: sync until a pass finds nothing more (at most 10 passes),
        /// then `verify --deep`, and write a "nothing left behind" receipt per mailbox
        /// (report directory, final-receipt.json). Exit 0 only when all of it holds.
        #[arg(long = "final")]
        final_pass: bool,
        /// Print each pass's totals as one JSON line on stdout.
        #[arg(long)]
        json: bool,
        /// Write one JSON line per event to this file.
        #[arg(long)]
        events: Option<PathBuf>,
    },
    /// Compare source and target per folder and per message; exit 0 only when all match.
    Verify {
        /// Machine-readable output on stdout.
        #[arg(long)]
        json: bool,
        /// Also read every message back from targets that keep the raw message (IMAP, EML)
        /// and compare its content byte for byte (by content tag).
        #[arg(long)]
        deep: bool,
    },
    /// Write reports (JSON, CSV per mailbox and per item, HTML) and print one.
    Report {
        /// What to print on stdout.
        #[arg(long, value_enum, default_value = "json")]
        format: ReportFormat,
        /// Directory for the report files (default: [report] directory).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Counts per status and the runs so far.
    Status {
        /// Machine-readable output on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Pause every run, rescan and sync working on this job's state (in this or any other
    /// process): items in flight are recorded, new ones wait until `resume`.
    Pause,
    /// Let paused runs go on.
    Resume,
    /// Serve the dashboard: live progress per mailbox, the item ledger, run / pause / resume,
    /// reports. Loopback only by default; any other address needs the token and TLS.
    Serve {
        /// Address to listen on (e.g. 127.0.0.1:8465; 0.0.0.0:8465 exposes it, with the token
        /// and TLS).
        #[arg(long, default_value = "127.0.0.1:8465")]
        listen: std::net::SocketAddr,
        /// Show, but allow no action (start, pause, resume, retry).
        #[arg(long)]
        read_only: bool,
        /// Make a new token (the old one stops working); it is shown once.
        #[arg(long)]
        new_token: bool,
        /// PEM certificate chain for TLS (with --tls-key).
        #[arg(long, requires = "tls_key")]
        tls_cert: Option<PathBuf>,
        /// PEM private key for TLS (with --tls-cert).
        #[arg(long, requires = "tls_cert")]
        tls_key: Option<PathBuf>,
        /// TLS with a self-signed certificate made once and kept beside the state file (the
        /// default on a non-loopback address).
        #[arg(long, conflicts_with = "tls_cert")]
        tls_self_signed: bool,
    },
    /// Work on a migration shared by many processes through the state store ([state] url =
    /// PostgreSQL): lease mailboxes one at a time from the common queue, run them as `run`
    /// does, renew the leases while working; a dead worker's mailboxes are taken over when its
    /// leases expire. Start any number, on any number of machines, with the same job file.
    /// Exits when no mailbox is left waiting (1 when some failed).
    Worker {
        /// This worker's id in the store (default host:pid; unique per process).
        #[arg(long)]
        id: Option<String>,
        /// Mailboxes at once (default: [limits] mailboxes_at_once).
        #[arg(long)]
        lanes: Option<usize>,
        /// Seconds a lease lasts unless renewed (renewed every third of it); a dead worker's
        /// mailboxes are taken over after at most this long.
        #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..))]
        lease_seconds: u64,
        /// Put done and failed mailboxes back in the queue first (a new pass: only what is
        /// new in the source is copied).
        #[arg(long)]
        requeue: bool,
        /// Write one JSON line per event to this file.
        #[arg(long)]
        events: Option<PathBuf>,
        /// The worker's totals as JSON on stdout.
        #[arg(long)]
        json: bool,
    },
    /// The state store itself.
    State {
        #[command(subcommand)]
        command: StateCommand,
    },
}

#[derive(Debug, Subcommand)]
enum StateCommand {
    /// Apply pending schema migrations to the job's state store and print its version. A
    /// PostgreSQL store needs this once per new version (workers refuse an older schema); a
    /// SQLite file is migrated whenever it is opened.
    Migrate,
}

#[derive(Debug, Subcommand)]
enum CutoverCommand {
    /// Check that each DOMAIN's DNS sends mail to Exchange Online: MX, SPF, Autodiscover
    /// (and with --teams the Teams records, as warnings). Exit 0 only when all are right.
    Check {
        /// The domains, e.g. contoso.com.
        #[arg(required = true)]
        domains: Vec<String>,
        /// Ask this DNS server (ip:port) instead of the system's resolver.
        #[arg(long)]
        dns_server: Option<std::net::SocketAddr>,
        /// Seconds to wait for each DNS answer.
        #[arg(long, default_value_t = 5)]
        timeout_seconds: u64,
        /// Also check the Teams / Skype for Business records (warnings only).
        #[arg(long)]
        teams: bool,
        /// Machine-readable output on stdout.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
enum CredentialsCommand {
    /// Check a credentials CSV (passwords are never shown).
    Check {
        /// The CSV file.
        file: PathBuf,
        /// Machine-readable output on stdout.
        #[arg(long)]
        json: bool,
        /// Field delimiter (default: detected).
        #[arg(long)]
        delimiter: Option<char>,
        /// How to check the target column: graph or ews (addresses), imap (usernames, with or
        /// without @), eml (folder names). Default: the job's [target] kind, else graph.
        #[arg(long, value_parser = parse_target_kind)]
        target_kind: Option<TargetKind>,
    },
}

fn parse_target_kind(s: &str) -> Result<TargetKind, String> {
    match s.to_ascii_lowercase().as_str() {
        "graph" => Ok(TargetKind::Graph),
        "imap" => Ok(TargetKind::Imap),
        "ews" => Ok(TargetKind::Ews),
        "eml" => Ok(TargetKind::Eml),
        other => Err(format!(
            "{other:?} is not a target kind; use graph, imap, ews or eml"
        )),
    }
}

#[derive(Debug, Subcommand)]
enum GoogleCommand {
    /// Sign a personal Gmail account in once in a browser (Google's installed-app flow) and
    /// write its refresh token to the file `[source.google] refresh_token` names for the login.
    Authorize {
        /// The login (Gmail address) as in the credentials file.
        #[arg(long)]
        login: String,
        /// How long to wait for the browser, in seconds.
        #[arg(long, default_value_t = 600)]
        timeout_seconds: u64,
    },
}

#[derive(Debug, Subcommand)]
enum TestCommand {
    /// Log in to every mailbox and report one line each.
    Test {
        /// Machine-readable output on stdout.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum ReportFormat {
    Json,
    Csv,
    Html,
}

fn parse_window(s: &str) -> Result<window::Window, String> {
    window::Window::parse(s)
}

/// `--every`: a number with `s`, `m` or `h` (at least 10 seconds).
fn parse_every(s: &str) -> Result<std::time::Duration, String> {
    let s = s.trim();
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a duration; write e.g. 90s, 15m or 1h"))?;
    let secs = match unit {
        "s" => n,
        "m" | "" => n * 60,
        "h" => n * 3600,
        _ => return Err(format!("{s:?}: the unit must be s, m or h (e.g. 15m)")),
    };
    if secs < 10 {
        return Err(format!("{s:?} is too short; sync at most every 10s"));
    }
    Ok(std::time::Duration::from_secs(secs))
}

/// The local UTC offset, read before the runtime starts threads.
static LOCAL_OFFSET: std::sync::OnceLock<i32> = std::sync::OnceLock::new();

/// An error with the exit code it maps to.
struct Exit(u8, anyhow::Error);

fn usage(e: impl Into<anyhow::Error>) -> Exit {
    Exit(2, e.into())
}

/// glibc's allocator keeps freed memory above its trim threshold, which it raises as a run
/// frees large buffers: a migration that has moved many messages sits on tens of MiB it no
/// longer uses (about 20 MiB of an 8-mailbox run's 84 MiB, `docs/benchmarks.md`). The threshold
/// can only be set before the process starts (or through unsafe FFI, which this workspace
/// forbids), so `run`, `rescan` and `verify` start themselves once more with it set; a threshold
/// the user set is kept, and where the restart fails the run goes on untuned.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn tune_allocator() {
    use std::os::unix::process::CommandExt;
    const VAR: &str = "MALLOC_TRIM_THRESHOLD_";
    if std::env::var_os(VAR).is_some() {
        return;
    }
    let Ok(exe) = std::env::current_exe() else {
        return;
    };
    let mut args = std::env::args_os();
    let mut cmd = std::process::Command::new(exe);
    if let Some(arg0) = args.next() {
        cmd.arg0(arg0);
    }
    // Returns only when the exec failed.
    let _ = cmd.args(args).env(VAR, "131072").exec();
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn tune_allocator() {}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Only the commands that hold message bodies are worth the restart.
    if matches!(
        cli.command,
        Command::Run { .. }
            | Command::Rescan { .. }
            | Command::Sync { .. }
            | Command::Verify { .. }
    ) {
        tune_allocator();
    }
    let _ = LOCAL_OFFSET.set(window::local_offset_seconds());
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::from(2);
        }
    };
    match rt.block_on(dispatch(cli)) {
        Ok(code) => ExitCode::from(code),
        Err(Exit(code, e)) => {
            // The chain, without repeating a cause whose text is already shown.
            let mut msg = String::new();
            for cause in e.chain() {
                let c = cause.to_string();
                if !msg.contains(&c) {
                    if !msg.is_empty() {
                        msg.push_str(": ");
                    }
                    msg.push_str(&c);
                }
            }
            eprintln!("error: {msg}");
            ExitCode::from(code)
        }
    }
}

fn load_job(path: &Path) -> Result<Job, Exit> {
    Job::load(path).map_err(usage)
}

fn init_log(job: &Job) -> Result<(), Exit> {
    let path = job.resolve_path(&job.log.file);
    let mut o = std::fs::OpenOptions::new();
    o.create(true).append(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(0o600);
    }
    let file = o
        .open(&path)
        .with_context(|| format!("cannot open log file {}", path.display()))
        .map_err(usage)?;
    let filter = tracing_subscriber::EnvFilter::try_new(&job.log.level)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(false)
        .with_writer(Mutex::new(file))
        .try_init();
    Ok(())
}

/// `serve`: binds, says where and (once) the token, and serves until Ctrl-C / SIGTERM.
async fn serve(
    job: Job,
    listen: std::net::SocketAddr,
    read_only: bool,
    new_token: bool,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    tls_self_signed: bool,
) -> Result<u8, Exit> {
    use o365_migrate_dashboard::{Dashboard, ServeOptions, TlsChoice};
    let store = open_store(&job).await?;
    let state = job.resolve_path(&job.state.path);
    let mut tls_dir = state.clone().into_os_string();
    tls_dir.push(".dashboard-tls");
    let tls = match (tls_cert, tls_key) {
        (Some(cert), Some(key)) => TlsChoice::Files { cert, key },
        _ if tls_self_signed => TlsChoice::SelfSigned,
        _ => TlsChoice::Auto,
    };
    let options = ServeOptions {
        listen,
        read_only,
        tls,
        tls_dir: PathBuf::from(tls_dir),
        new_token,
    };
    let d = Dashboard::bind(Some(job), store, options)
        .await
        .map_err(usage)?;
    if let Some(t) = d.new_token() {
        eprintln!(
            "dashboard token (shown once; only its hash is kept): {t}\n\
             needed from any address but this machine's own; `serve --new-token` replaces it"
        );
    }
    if let Some(f) = d.certificate_sha256() {
        eprintln!("TLS certificate SHA-256: {f}");
    }
    eprintln!(
        "dashboard: {}{} (Ctrl-C stops it)",
        d.url(),
        if read_only { " (read-only)" } else { "" }
    );
    let stop = StopFlag::new();
    let interrupted = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let watcher = watch_ctrl_c(&stop, interrupted);
    let shutdown = async move {
        while !stop.is_stopped() {
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
    };
    let r = d.serve(shutdown).await;
    watcher.abort();
    r.map_err(usage)?;
    Ok(0)
}

async fn open_store(job: &Job) -> Result<Arc<dyn StateStore>, Exit> {
    let s = SqlStore::for_job(job, Schema::RequireCurrent)
        .await
        .map_err(usage)?;
    Ok(Arc::new(s))
}

fn print_json(v: &impl serde::Serialize) -> Result<(), Exit> {
    let s = serde_json::to_string_pretty(v).map_err(usage)?;
    println!("{s}");
    Ok(())
}

async fn dispatch(cli: Cli) -> Result<u8, Exit> {
    match cli.command {
        Command::Cutover {
            command:
                CutoverCommand::Check {
                    domains,
                    dns_server,
                    timeout_seconds,
                    teams,
                    json,
                },
        } => cutover_check(&domains, dns_server, timeout_seconds, teams, json).await,
        Command::Init { path } => {
            let path = path.unwrap_or(cli.config);
            if path.exists() {
                return Err(usage(anyhow::anyhow!(
                    "{} exists; not overwriting it (remove it or give another path)",
                    path.display()
                )));
            }
            std::fs::write(&path, TEMPLATE)
                .with_context(|| format!("cannot write {}", path.display()))
                .map_err(usage)?;
            eprintln!(
                "wrote {}; edit it, then run `o365-migrate plan`",
                path.display()
            );
            Ok(0)
        }
        Command::Credentials {
            command:
                CredentialsCommand::Check {
                    file,
                    json,
                    delimiter,
                    target_kind,
                },
        } => {
            // The job's target kind when there is a job, unless named on the command line.
            let target_kind = target_kind.or_else(|| {
                cli.config
                    .exists()
                    .then(|| Job::load(&cli.config).ok())
                    .flatten()
                    .map(|j| j.target.kind)
            });
            let r = o365_migrate_engine::check_credentials_file(&file, delimiter, target_kind)
                .map_err(usage)?;
            if json {
                println!("{}", r.json);
            } else {
                eprintln!("{}", r.human);
            }
            Ok(u8::from(r.has_errors))
        }
        other => with_job(&cli.config, other).await,
    }
}

async fn with_job(config: &Path, command: Command) -> Result<u8, Exit> {
    let job = load_job(config)?;
    init_log(&job)?;
    tracing::info!(command = ?command_name(&command), job = %config.display(), "start");
    let stop = StopFlag::new();
    match command {
        Command::State {
            command: StateCommand::Migrate,
        } => {
            let s = SqlStore::for_job(&job, Schema::Migrate)
                .await
                .map_err(usage)?;
            let v = s.schema_version().await.map_err(usage)?;
            eprintln!("state schema at version {v} ({:?})", s.dialect());
            s.close().await;
            Ok(0)
        }
        Command::Google {
            command:
                GoogleCommand::Authorize {
                    login,
                    timeout_seconds,
                },
        } => {
            let path = o365_migrate_engine::google_authorize(
                &job,
                &login,
                std::time::Duration::from_secs(timeout_seconds.max(1)),
                |url| {
                    eprintln!("Open this address in a browser and sign in as {login}:");
                    eprintln!("{url}");
                    eprintln!("Waiting for Google's answer on 127.0.0.1 …");
                },
            )
            .await
            .map_err(usage)?;
            eprintln!(
                "signed in: the refresh token of {login} is in {} (owner-only)",
                path.display()
            );
            Ok(0)
        }
        Command::Worker {
            ref id,
            lanes,
            lease_seconds,
            requeue,
            json,
            ..
        } => {
            let store = open_store(&job).await?;
            let (reporter, progress) = make_reporter(&command)?;
            let id = id.clone();
            let lease = std::time::Duration::from_secs(lease_seconds);
            let options = o365_migrate_engine::worker::WorkerOptions {
                id: id.unwrap_or_else(o365_migrate_engine::worker::default_worker_id),
                lanes: lanes
                    .unwrap_or(job.limits.mailboxes_at_once as usize)
                    .max(1),
                lease,
                idle_poll: (lease / 3).min(std::time::Duration::from_secs(2)),
                requeue,
            };
            eprintln!(
                "worker {}: {} mailboxes at once, {} s leases",
                options.id, options.lanes, lease_seconds
            );
            let watcher = watch_ctrl_c(&stop, Default::default());
            let r = o365_migrate_engine::worker::work(job, store, reporter, stop.clone(), options)
                .await;
            watcher.abort();
            drop(progress);
            let t = r.map_err(usage)?;
            if json {
                print_json(&t)?;
            }
            eprintln!(
                "worker: {} mailboxes done, {} failed, {} released, {} lost to other workers; \
                 migrated {} skipped {} failed {}{}",
                t.done,
                t.failed,
                t.released,
                t.lost,
                t.migrated,
                t.skipped,
                t.failed_items,
                if t.stopped { " (stopped)" } else { "" }
            );
            Ok(u8::from(t.failed > 0))
        }
        Command::Pause => {
            let store = open_store(&job).await?;
            let p = o365_migrate_engine::control::request_pause(&*store, "cli")
                .await
                .map_err(usage)?;
            let running = store.run_lock_held().await.map_err(usage)?;
            eprintln!(
                "paused (asked by {}){}; `o365-migrate resume` lets it go on",
                p.by,
                if running {
                    ": the run records the items in flight and waits"
                } else {
                    ": no run is working now; the next one waits until resumed"
                }
            );
            Ok(0)
        }
        Command::Resume => {
            let store = open_store(&job).await?;
            let was = o365_migrate_engine::control::request_resume(&*store)
                .await
                .map_err(usage)?;
            eprintln!(
                "{}",
                if was {
                    "resumed: paused runs go on"
                } else {
                    "nothing was paused"
                }
            );
            Ok(0)
        }
        Command::Serve {
            listen,
            read_only,
            new_token,
            tls_cert,
            tls_key,
            tls_self_signed,
        } => {
            serve(
                job,
                listen,
                read_only,
                new_token,
                tls_cert,
                tls_key,
                tls_self_signed,
            )
            .await
        }
        Command::Status { json } => {
            let store = open_store(&job).await?;
            let counts = store.counts(None).await.map_err(usage)?;
            let runs = store.runs().await.map_err(usage)?;
            use o365_migrate_engine::worker::Fleet;
            // Tools get the whole queue and lease history; people a few lines per worker.
            let fleet = if json {
                Fleet::read(&*store).await
            } else {
                Fleet::summary(&*store).await
            }
            .map_err(usage)?;
            if json {
                let mut v = serde_json::json!({ "counts": counts, "runs": runs });
                if !fleet.is_empty() {
                    v["fleet"] = serde_json::to_value(&fleet).map_err(usage)?;
                }
                print_json(&v)?;
            } else {
                eprintln!(
                    "planned {} migrated {} skipped {} failed {} ({} migrated); {} runs",
                    counts.planned,
                    counts.migrated,
                    counts.skipped,
                    counts.failed,
                    human_bytes(counts.migrated_bytes),
                    runs.len()
                );
                if !fleet.is_empty() {
                    eprint!("{}", fleet.human());
                }
            }
            Ok(0)
        }
        Command::Report { format, out } => {
            let store = open_store(&job).await?;
            let dir = out.unwrap_or_else(|| job.resolve_path(&job.report.directory));
            std::fs::create_dir_all(&dir)
                .with_context(|| format!("cannot create {}", dir.display()))
                .map_err(usage)?;
            let written = o365_migrate_engine::report::write_reports(&*store, &dir)
                .await
                .map_err(usage)?;
            let report = Report::build(&*store).await.map_err(usage)?;
            match format {
                ReportFormat::Json => println!("{}", report.mailboxes_json()),
                ReportFormat::Csv => print!("{}", report.mailboxes_csv()),
                ReportFormat::Html => print!("{}", report.html()),
            }
            eprintln!(
                "migrated {} skipped {} failed {}; reports in {} (HTML: {})",
                report.totals.migrated,
                report.totals.skipped,
                report.totals.failed,
                dir.display(),
                written.html.display()
            );
            if report.state != o365_migrate_engine::report::ReportState::Incomplete {
                return Ok(0);
            }
            for m in report.mailboxes.iter().filter(|m| m.error.is_some()) {
                eprintln!(
                    "incomplete: mailbox {} stopped with an error ({} items pending): {}",
                    m.source,
                    m.pending_text(),
                    m.error.as_deref().unwrap_or_default()
                );
            }
            if report.pending() > 0 {
                eprintln!("incomplete: {} items are still pending", report.pending());
            }
            eprintln!(
                "hint: fix the cause and run `o365-migrate run` again: what is done is not copied again"
            );
            Ok(1)
        }
        command => {
            let store = open_store(&job).await?;
            let (reporter, progress) = make_reporter(&command)?;
            let engine = Engine::new(job, store, reporter.clone(), stop.clone()).map_err(usage)?;
            // The engine takes the state's run lock itself; taking it here holds it from the
            // start, also while `run --window` waits for its window.
            if matches!(
                command,
                Command::Run { dry_run: false, .. }
                    | Command::Rescan { .. }
                    | Command::Sync { .. }
                    | Command::Provision { dry_run: false, .. }
            ) {
                engine.hold_run_lock().await.map_err(usage)?;
            }
            let code = engine_command(&engine, command, &stop).await;
            drop(progress);
            code
        }
    }
}

fn command_name(c: &Command) -> &'static str {
    match c {
        Command::Init { .. } => "init",
        Command::Cutover { .. } => "cutover check",
        Command::Credentials { .. } => "credentials",
        Command::Google { .. } => "google authorize",
        Command::Source { .. } => "source test",
        Command::Target { .. } => "target test",
        Command::Match { .. } => "match",
        Command::Provision { .. } => "provision",
        Command::ExportBatch { .. } => "export-batch",
        Command::Plan { .. } => "plan",
        Command::Run { .. } => "run",
        Command::Rescan { .. } => "rescan",
        Command::Sync { .. } => "sync",
        Command::Verify { .. } => "verify",
        Command::Report { .. } => "report",
        Command::Status { .. } => "status",
        Command::Pause => "pause",
        Command::Resume => "resume",
        Command::Serve { .. } => "serve",
        Command::State { .. } => "state migrate",
        Command::Worker { .. } => "worker",
    }
}

fn make_reporter(
    command: &Command,
) -> Result<(Arc<dyn Reporter>, Option<indicatif::MultiProgress>), Exit> {
    let events = match command {
        Command::Run { events, .. }
        | Command::Rescan { events }
        | Command::Sync { events, .. }
        | Command::Worker { events, .. } => events.clone(),
        _ => None,
    };
    let tty = std::io::stderr().is_terminal();
    let progress = tty.then(indicatif::MultiProgress::new);
    let human = progress::HumanReporter::new(progress.clone());
    let mut all: Vec<Box<dyn Reporter>> = vec![Box::new(human)];
    if let Some(path) = events {
        all.push(Box::new(JsonLinesReporter::create(&path).map_err(usage)?));
    }
    Ok((Arc::new(FanOut(all)), progress))
}

async fn engine_command(engine: &Engine, command: Command, stop: &StopFlag) -> Result<u8, Exit> {
    match command {
        Command::Source {
            command: TestCommand::Test { json },
        } => {
            let results = engine.source_test().await;
            let ok = results.iter().all(|(_, r)| r.is_ok());
            if json {
                let v: Vec<_> = results
                    .iter()
                    .map(|(m, r)| match r {
                        Ok(n) => serde_json::json!({"mailbox": m, "ok": true, "folders": n}),
                        Err(e) => serde_json::json!({"mailbox": m, "ok": false, "error": e}),
                    })
                    .collect();
                print_json(&v)?;
            } else {
                for (m, r) in &results {
                    match r {
                        Ok(n) if m.ends_with("(contacts and calendars)") => {
                            eprintln!("ok    {m}: {n} address books and calendars")
                        }
                        Ok(n) => eprintln!("ok    {m}: {n} folders"),
                        Err(e) => eprintln!("FAIL  {m}: {e}"),
                    }
                }
            }
            Ok(u8::from(!ok))
        }
        Command::Target {
            command: TestCommand::Test { json },
        } => {
            let o365_migrate_engine::TargetTest {
                check,
                mailboxes: per,
                answer_times,
            } = engine.target_test().await.map_err(|e| Exit(3, e.into()))?;
            let ok = check.is_ok() && per.iter().all(|(_, r)| r.is_ok());
            // The pairing is decided once per engine: this reads what target_test used.
            let skipped = match &check {
                Ok(()) => Some(engine.pairing().await.map_err(|e| Exit(3, e.into()))?),
                Err(_) => None,
            };
            if json {
                let v: Vec<_> = per
                    .iter()
                    .map(|(m, r)| match r {
                        Ok(()) => serde_json::json!({"mailbox": m, "ok": true}),
                        Err(e) => serde_json::json!({"mailbox": m, "ok": false, "error": e}),
                    })
                    .collect();
                print_json(&serde_json::json!({
                    "check": check.as_ref().map(|_| "ok").map_err(|e| e.clone()).err(),
                    "mailboxes": v,
                    "pairing": skipped.as_ref().map(|p| &p.origin),
                    "skipped": skipped.as_ref().map(|p| &p.unpaired),
                    "answer_times": answer_times.as_ref().map(|r| match r {
                        Ok(t) => serde_json::json!(t),
                        Err(e) => serde_json::json!({"error": e}),
                    }),
                }))?;
            } else {
                match &check {
                    Ok(()) => eprintln!("ok    target: sign-in and permissions"),
                    Err(e) => eprintln!("FAIL  target: {e}"),
                }
                if let Some(p) = &skipped {
                    eprintln!("{}", p.describe());
                }
                for (m, r) in &per {
                    match r {
                        Ok(()) => eprintln!("ok    {m}"),
                        Err(e) => eprintln!("FAIL  {m}: {e}"),
                    }
                }
                for u in skipped.iter().flat_map(|p| &p.unpaired) {
                    eprintln!("skip  {}: {}", u.source, u.reason);
                }
                match &answer_times {
                    Some(Ok(t)) => eprintln!(
                        "answer times on {}: {} ms on the way + {} ms in the mailbox (kept: plan estimates with them)",
                        t.mailbox, t.gateway_ms, t.mailbox_ms
                    ),
                    Some(Err(e)) => eprintln!(
                        "answer times could not be measured: {e}; plan estimates from the limits alone"
                    ),
                    None => {}
                }
            }
            Ok(u8::from(!ok))
        }
        Command::Match { json, out } => {
            let m = engine
                .automatch(engine.job().matching.allow_create)
                .await
                .map_err(|e| Exit(3, e.into()))?;
            if let Some(path) = &out {
                let bytes = m.to_csv().map_err(usage)?;
                write_private(path, &bytes)?;
                eprintln!(
                    "wrote the mapping ({} rows) to {}",
                    m.rows.len(),
                    path.display()
                );
            }
            if json {
                print_json(&m)?;
            } else {
                match m.directory_users {
                    Some(n) => eprintln!("target directory: {n} users"),
                    None => eprintln!(
                        "the target has no directory: pairs come from the credentials file and [matching] domains"
                    ),
                }
                for r in &m.rows {
                    let target = if r.target.is_empty() { "-" } else { &r.target };
                    eprintln!(
                        "{:<9} {} → {} [{}] {}",
                        r.status, r.source, target, r.rule, r.note
                    );
                }
                for w in &m.warnings {
                    eprintln!("warning: {w}");
                }
                eprintln!(
                    "{} matched, {} conflict, {} ambiguous, {} unmatched, {} to create, {} excluded",
                    m.count("matched"),
                    m.count("conflict"),
                    m.count("ambiguous"),
                    m.count("unmatched"),
                    m.count("create"),
                    m.count("excluded")
                );
                if engine.job().matching.pairs_file.is_none() && m.directory_users.is_some() {
                    eprintln!(
                        "this is the job's pairing now (kept in the state store): target test, plan, \
                         run and verify migrate the {} matched rows and report the others as skipped",
                        m.count("matched")
                    );
                }
                if !m.is_complete() {
                    eprintln!(
                        "hint: decide the other rows in the mapping file (set target, status matched or excluded), \
                         name it in [matching] pairs_file, and run `o365-migrate match` again to check"
                    );
                }
            }
            Ok(u8::from(!m.is_complete()))
        }
        Command::Provision {
            dry_run,
            wait,
            json,
        } => {
            let r = engine
                .provision(dry_run, std::time::Duration::from_secs(wait))
                .await
                .map_err(|e| Exit(3, e.into()))?;
            if json {
                print_json(&r)?;
            } else {
                for st in &r.steps {
                    eprintln!(
                        "{:<13} {:<7} {} → {}{}",
                        st.state,
                        st.action,
                        st.source,
                        st.target,
                        if st.note.is_empty() {
                            String::new()
                        } else {
                            format!(": {}", st.note)
                        }
                    );
                }
                for u in &r.undecided {
                    eprintln!("undecided     {} ({}): {}", u.source, u.status, u.note);
                }
                if let Some(p) = &r.mapping_written {
                    eprintln!("updated the mapping file {}", p.display());
                }
                if dry_run {
                    eprintln!("dry run: nothing was changed");
                } else {
                    eprintln!(
                        "waited {} s; initial passwords are random and never shown: reset them in the Microsoft 365 admin center",
                        r.waited_seconds
                    );
                }
            }
            Ok(u8::from(!r.is_ok()))
        }
        Command::ExportBatch { out, json } => {
            if !json {
                print_pairing(engine).await?;
            }
            let x = engine
                .export_batch(&out)
                .await
                .map_err(|e| Exit(3, e.into()))?;
            if json {
                print_json(&serde_json::json!({
                    "directory": out,
                    "files": x.files.iter().map(|f| serde_json::json!({
                        "name": f.name, "bytes": f.bytes.len(), "holds_passwords": f.secret,
                    })).collect::<Vec<_>>(),
                    "rows": x.rows,
                    "left_out": x.left_out,
                    "warnings": x.warnings,
                }))?;
            } else {
                for f in &x.files {
                    eprintln!(
                        "wrote {}{}",
                        out.join(&f.name).display(),
                        if f.secret {
                            " (holds passwords: owner-only; delete it once the batch exists)"
                        } else {
                            ""
                        }
                    );
                }
                for u in &x.left_out {
                    eprintln!("left out {}: {}", u.source, u.reason);
                }
                for w in &x.warnings {
                    eprintln!("warning: {w}");
                }
                eprintln!(
                    "{} mailboxes exported, {} left out; run new-migration-batch.ps1 in Exchange Online PowerShell (Connect-ExchangeOnline first)",
                    x.rows,
                    x.left_out.len()
                );
            }
            // Exit 1 when a paired mailbox could not be exported (unpaired ones are listed
            // but are the pairing's business, as in `run`).
            let unpaired = engine
                .pairing()
                .await
                .map_err(|e| Exit(3, e.into()))?
                .unpaired
                .len();
            Ok(u8::from(x.left_out.len() > unpaired))
        }
        Command::Plan { json } => {
            if !json {
                print_pairing(engine).await?;
            }
            let plan = engine.plan().await.map_err(|e| Exit(3, e.into()))?;
            print_plan(&plan, json)?;
            Ok(if plan.mailboxes.iter().any(|m| m.error.is_some()) {
                3
            } else {
                0
            })
        }
        Command::Run {
            mailboxes,
            dry_run,
            window,
            ..
        } => {
            print_pairing(engine).await?;
            if dry_run {
                let plan = engine.plan().await.map_err(|e| Exit(3, e.into()))?;
                print_plan(&plan, false)?;
                eprintln!("dry run: nothing was written");
                return Ok(0);
            }
            match window {
                Some(w) => run_in_window(engine, w, &mailboxes, stop).await,
                None => run_kind(engine, RunKind::Run, &mailboxes, stop).await,
            }
        }
        Command::Rescan { .. } => {
            print_pairing(engine).await?;
            run_kind(engine, RunKind::Rescan, &[], stop).await
        }
        Command::Sync {
            mailboxes,
            propagate_deletes,
            every,
            json,
            final_pass,
            ..
        } => {
            print_pairing(engine).await?;
            let options = o365_migrate_engine::SyncOptions { propagate_deletes };
            if final_pass {
                return sync_final(engine, &mailboxes, options, json, stop).await;
            }
            sync_loop(engine, &mailboxes, options, every, json, stop).await
        }
        Command::Verify { json, deep } => {
            if !json {
                print_pairing(engine).await?;
            }
            let r = engine.verify(deep).await.map_err(usage)?;
            if json {
                print_json(&r)?;
            } else {
                for u in &r.skipped {
                    eprintln!("skip  {}: {}", u.source, u.reason);
                }
                for m in &r.mailboxes {
                    if let Some(e) = &m.error {
                        eprintln!("FAIL  {} → {}: {e}", m.source, m.target);
                    }
                    for f in &m.folders {
                        let ok = f.missing.is_empty()
                            && f.extra.is_empty()
                            && f.differs.is_empty()
                            && f.expected + f.kept == f.target_count;
                        eprintln!(
                            "{} {} {} → {}: source {} skipped {} expected {} target {}",
                            if ok { "ok  " } else { "DIFF" },
                            m.source,
                            f.source,
                            f.target,
                            f.source_count,
                            f.skipped,
                            f.expected,
                            f.target_count
                        );
                        for d in &f.missing {
                            eprintln!(
                                "      missing {} {:?} from {:?} date {:?}",
                                d.id, d.subject, d.from, d.date
                            );
                        }
                        for d in &f.extra {
                            eprintln!(
                                "      extra {} {:?} from {:?} date {:?}",
                                d.id, d.subject, d.from, d.date
                            );
                        }
                        for d in &f.differs {
                            eprintln!(
                                "      differs {} (target {}) {:?}: {}",
                                d.item.id, d.target_id, d.item.subject, d.what
                            );
                        }
                    }
                    for c in &m.collections {
                        eprintln!(
                            "{} {} {} {} → {}: source {} skipped {} expected {} found {}{}",
                            if c.ok() { "ok  " } else { "DIFF" },
                            m.source,
                            c.kind,
                            c.source,
                            c.target,
                            c.source_count,
                            c.skipped,
                            c.expected,
                            c.found,
                            if c.foreign > 0 {
                                format!(" (and {} not written by o365-migrate)", c.foreign)
                            } else {
                                String::new()
                            }
                        );
                        for (what, list) in [
                            ("missing", &c.missing),
                            ("extra", &c.extra),
                            ("differs", &c.differs),
                        ] {
                            for d in list {
                                eprintln!("      {what} {} {:?}: {}", d.key, d.summary, d.what);
                            }
                        }
                    }
                }
                eprintln!(
                    "verify: {}",
                    if r.ok {
                        "everything matches"
                    } else {
                        "DIFFERENCES FOUND"
                    }
                );
            }
            Ok(u8::from(!r.ok))
        }
        Command::Init { .. }
        | Command::Cutover { .. }
        | Command::Credentials { .. }
        | Command::Google { .. }
        | Command::Report { .. }
        | Command::Status { .. }
        | Command::Pause
        | Command::Resume
        | Command::State { .. }
        | Command::Worker { .. }
        | Command::Serve { .. } => Ok(0),
    }
}

/// `cutover check`: exit 0 only when every domain's MX, SPF and Autodiscover point to
/// Exchange Online; each wrong record is named with the value it must have.
async fn cutover_check(
    domains: &[String],
    dns_server: Option<std::net::SocketAddr>,
    timeout_seconds: u64,
    teams: bool,
    json: bool,
) -> Result<u8, Exit> {
    use o365_migrate_engine::cutover;
    let mut opts = cutover::CheckOptions::default()
        .with_timeout(std::time::Duration::from_secs(timeout_seconds.max(1)))
        .with_teams(teams);
    if let Some(server) = dns_server {
        opts = opts.with_server(server);
    }
    let mut all_passed = true;
    let mut reports = Vec::new();
    for r in cutover::check_all(domains, &opts).await {
        let report = r.map_err(|e| Exit(3, e.into()))?;
        all_passed &= report.passed();
        if !json {
            eprintln!("{}", report.render_human());
        }
        reports.push(report);
    }
    if json {
        print_json(&reports)?;
    }
    if !all_passed {
        eprintln!(
            "hint: change the records named above at your DNS host, wait for their TTL, and run \
             `o365-migrate cutover check` again; then `o365-migrate sync` for the last messages"
        );
    }
    Ok(u8::from(!all_passed))
}

/// The first line of `plan`, `run`, `rescan` and `verify`: which pairing is used and where it
/// came from (deciding it when needed).
async fn print_pairing(engine: &Engine) -> Result<(), Exit> {
    let p = engine.pairing().await.map_err(|e| Exit(3, e.into()))?;
    eprintln!("{}", p.describe());
    Ok(())
}

fn print_plan(plan: &o365_migrate_engine::PlanReport, json: bool) -> Result<(), Exit> {
    if json {
        return print_json(plan);
    }
    for u in &plan.skipped {
        eprintln!("skip  {}: {}", u.source, u.reason);
    }
    for m in &plan.mailboxes {
        let estimate = m.estimate_seconds.map_or(String::new(), |s| {
            format!(
                ", about {}",
                human_duration(std::time::Duration::from_secs_f64(s.max(0.0)))
            )
        });
        eprintln!(
            "{} → {}: {} messages, {}{estimate}",
            m.source,
            m.target,
            m.messages,
            human_bytes(m.bytes)
        );
        if let Some(e) = &m.error {
            eprintln!("  ERROR {e}");
        }
        for f in &m.folders {
            // An empty folder whose subfolders hold the mail is structure, not "0 messages".
            let children = |t: &str| {
                m.folders
                    .iter()
                    .filter(|c| {
                        c.target
                            .as_deref()
                            .is_some_and(|ct| ct.starts_with(&format!("{t}/")))
                    })
                    .count()
            };
            match (&f.target, &f.skip_reason) {
                (Some(t), _) if f.messages == 0 && children(t) > 0 => eprintln!(
                    "  {} → {}: folder only ({} subfolders below)",
                    f.source,
                    t,
                    children(t)
                ),
                (Some(t), _) => eprintln!(
                    "  {} → {}: {} messages, {}, {} filtered, {} oversize, {} without Message-ID",
                    f.source,
                    t,
                    f.messages,
                    human_bytes(f.bytes),
                    f.filtered,
                    f.oversize.len(),
                    f.without_message_id.len()
                ),
                (None, r) => eprintln!("  {}: skipped ({})", f.source, r.as_deref().unwrap_or("-")),
            }
        }
        if let Some(g) = &m.gmail {
            let placed: Vec<String> = g
                .placements
                .iter()
                .map(|(folder, n)| format!("{folder} {n}"))
                .collect();
            eprintln!(
                "  Gmail: each message once from All Mail ({} with several labels); placed: {}",
                g.multi_labelled,
                placed.join(", ")
            );
            eprintln!(
                "  Gmail download: {} at {} per {} → {} window(s){}",
                human_bytes(g.download_bytes),
                human_bytes(g.budget_bytes),
                human_duration(std::time::Duration::from_secs(g.window_seconds)),
                g.days,
                if g.days > 1 {
                    "; the mailbox pauses when its allowance is used and goes on in the next"
                } else {
                    ""
                }
            );
        }
        for c in &m.collections {
            match (&c.target, &c.skip_reason) {
                (Some(t), _) => eprintln!(
                    "  {} {} → {}: {} contacts, {} events ({} recurring), {} tasks, {} filtered, \
                     {} with properties not carried, {} cannot be migrated",
                    c.kind,
                    c.source,
                    t,
                    c.contacts,
                    c.events,
                    c.recurring,
                    c.tasks,
                    c.filtered,
                    c.with_not_carried,
                    c.problems.len()
                ),
                (None, r) => eprintln!(
                    "  {} {}: skipped ({})",
                    c.kind,
                    c.source,
                    r.as_deref().unwrap_or("-")
                ),
            }
            for p in &c.problems {
                eprintln!("    {p}");
            }
        }
    }
    match plan.estimate_seconds {
        Some(s) => eprintln!(
            "total {} messages, {}; estimated {} ({})",
            plan.messages,
            human_bytes(plan.bytes),
            human_duration(std::time::Duration::from_secs_f64(s.max(0.0))),
            plan.estimate_basis
        ),
        None => eprintln!(
            "total {} messages, {}",
            plan.messages,
            human_bytes(plan.bytes)
        ),
    }
    Ok(())
}

/// Sets `stop` on Ctrl-C or SIGTERM (and `interrupted`, so a window loop ends too); a
/// second signal aborts at once with 130. The handlers are installed before this returns, so
/// a signal that arrives right after is never lost.
fn watch_ctrl_c(
    stop: &StopFlag,
    interrupted: Arc<std::sync::atomic::AtomicBool>,
) -> tokio::task::JoinHandle<()> {
    let s = stop.clone();
    #[cfg(unix)]
    let mut signals = {
        use tokio::signal::unix::{SignalKind, signal};
        (
            signal(SignalKind::interrupt()).ok(),
            signal(SignalKind::terminate()).ok(),
        )
    };
    tokio::spawn(async move {
        #[cfg(unix)]
        let mut next = async || match &mut signals {
            (Some(i), Some(t)) => {
                tokio::select! {
                    r = i.recv() => r.is_some(),
                    r = t.recv() => r.is_some(),
                }
            }
            _ => tokio::signal::ctrl_c().await.is_ok(),
        };
        #[cfg(not(unix))]
        let next = async || tokio::signal::ctrl_c().await.is_ok();
        if next().await {
            eprintln!("stopping after the items in flight are recorded (Ctrl-C again aborts)");
            interrupted.store(true, std::sync::atomic::Ordering::SeqCst);
            s.stop();
            if next().await {
                std::process::exit(130);
            }
        }
    })
}

async fn run_kind(
    engine: &Engine,
    kind: RunKind,
    mailboxes: &[String],
    stop: &StopFlag,
) -> Result<u8, Exit> {
    let watcher = watch_ctrl_c(stop, Default::default());
    let r = engine.run(kind, mailboxes).await;
    watcher.abort();
    let (_, totals) = r.map_err(usage)?;
    Ok(summarize(kind, &totals))
}

/// Prints a run's totals; the exit code they mean.
fn summarize(kind: RunKind, totals: &o365_migrate_engine::RunTotals) -> u8 {
    eprintln!(
        "{}: {} mailboxes, {} migrated, {} skipped, {} failed, {}",
        kind.as_str(),
        totals.mailboxes,
        totals.migrated,
        totals.skipped,
        totals.failed,
        human_bytes(totals.bytes)
    );
    for e in &totals.mailbox_errors {
        eprintln!("mailbox error: {e}");
    }
    for p in &totals.paused {
        eprintln!("mailbox paused: {p}");
    }
    if totals.stopped {
        return 130;
    }
    if !totals.mailbox_errors.is_empty() {
        return 3;
    }
    if totals.failed > 0 {
        return 1;
    }
    if !totals.paused.is_empty() {
        return 4;
    }
    0
}

/// `sync --final`: passes until one finds nothing, `verify --deep`, the receipt.
async fn sync_final(
    engine: &Engine,
    mailboxes: &[String],
    options: o365_migrate_engine::SyncOptions,
    json: bool,
    stop: &StopFlag,
) -> Result<u8, Exit> {
    const PASSES: usize = 10;
    let watcher = watch_ctrl_c(stop, Default::default());
    let mut stable = false;
    let mut failed = false;
    for pass in 1..=PASSES {
        let r = engine.sync(mailboxes, options).await;
        let (_, totals) = match r {
            Ok(t) => t,
            Err(e) => {
                watcher.abort();
                return Err(usage(e));
            }
        };
        let s = totals.sync.clone().unwrap_or_default();
        eprintln!(
            "final pass {pass}: {} migrated, {} flag changes, {} moved, {} deleted, {} kept, {} failed",
            totals.migrated,
            s.flags,
            s.moved,
            s.deleted,
            s.kept,
            totals.failed + s.failed
        );
        if stop.is_stopped() {
            watcher.abort();
            return Ok(130);
        }
        failed = totals.failed > 0 || s.failed > 0 || !totals.mailbox_errors.is_empty();
        if totals.migrated == 0 && s.flags + s.moved + s.deleted + s.kept == 0 && !failed {
            stable = true;
            break;
        }
    }
    watcher.abort();
    let verify = engine.verify(true).await.map_err(usage)?;
    let receipts = engine.final_receipts().await.map_err(usage)?;
    let dir = engine.job().resolve_path(&engine.job().report.directory);
    std::fs::create_dir_all(&dir)
        .with_context(|| format!("cannot create {}", dir.display()))
        .map_err(usage)?;
    let path = dir.join("final-receipt.json");
    let doc = serde_json::json!({
        "stable": stable,
        "verify_ok": verify.ok,
        "mailboxes": receipts,
    });
    std::fs::write(&path, format!("{doc:#}\n"))
        .with_context(|| format!("cannot write {}", path.display()))
        .map_err(usage)?;
    if json {
        print_json(&doc)?;
    }
    for r in &receipts {
        match &r.last_message {
            Some(m) => eprintln!(
                "{} → {}: {} migrated, {} failed, {} pending; last message on the source: {:?} \
                 ({} UID {}, arrived {}), in the target as {}",
                r.source,
                r.target,
                r.counts.migrated,
                r.counts.failed,
                r.counts.planned,
                m.subject.as_deref().unwrap_or(""),
                m.folder,
                m.uid,
                m.arrived.map_or("?".into(), |t| t.to_string()),
                m.target_id.as_deref().unwrap_or("?"),
            ),
            None => eprintln!("{} → {}: no message migrated", r.source, r.target),
        }
    }
    let ok = stable && !failed && verify.ok;
    eprintln!(
        "{}; receipt: {}",
        if ok {
            "nothing left behind: every pass carried, the last found nothing, verify --deep matches"
        } else if !stable {
            "the source kept changing (10 passes); run `sync --final` again once users have moved"
        } else {
            "DIFFERENCES FOUND: see `o365-migrate verify --deep`"
        },
        path.display()
    );
    Ok(u8::from(!ok))
}

/// `sync`, once or `--every` interval until Ctrl-C.
async fn sync_loop(
    engine: &Engine,
    mailboxes: &[String],
    options: o365_migrate_engine::SyncOptions,
    every: Option<std::time::Duration>,
    json: bool,
    stop: &StopFlag,
) -> Result<u8, Exit> {
    let watcher = watch_ctrl_c(stop, Default::default());
    let code = loop {
        let started = tokio::time::Instant::now();
        let r = engine.sync(mailboxes, options).await;
        let (_, totals) = match r {
            Ok(t) => t,
            Err(e) => {
                watcher.abort();
                return Err(usage(e));
            }
        };
        if json {
            println!("{}", serde_json::to_string(&totals).map_err(usage)?);
        }
        if let Some(s) = &totals.sync {
            eprintln!(
                "sync changes: {} flag changes, {} moved, {} deleted in the target, {} deleted \
                 at the source and kept, {} failed; {} source commands",
                s.flags, s.moved, s.deleted, s.kept, s.failed, s.source_commands
            );
        }
        let failed = totals.sync.as_ref().is_some_and(|s| s.failed > 0);
        let code = summarize(RunKind::Sync, &totals).max(u8::from(failed));
        let Some(every) = every else { break code };
        if stop.is_stopped() {
            break code;
        }
        let end = started + every;
        eprintln!(
            "next sync in {}",
            human_duration(end - tokio::time::Instant::now().min(end))
        );
        while tokio::time::Instant::now() < end && !stop.is_stopped() {
            tokio::time::sleep(
                end.saturating_duration_since(tokio::time::Instant::now())
                    .min(std::time::Duration::from_millis(250)),
            )
            .await;
        }
        if stop.is_stopped() {
            break code;
        }
    };
    watcher.abort();
    Ok(code)
}

/// `run --window`: waits for the window, runs until it closes (stopping cleanly: in-flight
/// items are recorded), waits for the next opening, and so on until a run completes.
async fn run_in_window(
    engine: &Engine,
    w: window::Window,
    mailboxes: &[String],
    stop: &StopFlag,
) -> Result<u8, Exit> {
    use std::sync::atomic::Ordering;
    let offset = LOCAL_OFFSET.get().copied().unwrap_or(0);
    let interrupted = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let watcher = watch_ctrl_c(stop, interrupted.clone());
    let code = loop {
        match w.position(window::now_local(offset)) {
            window::Position::Closed(d) => {
                eprintln!(
                    "outside the window {w}: waiting {} for it to open (Ctrl-C to quit)",
                    human_duration(d)
                );
                tracing::info!(window = %w, wait_secs = d.as_secs(), "waiting for the window");
                let end = tokio::time::Instant::now() + d;
                while tokio::time::Instant::now() < end && !interrupted.load(Ordering::SeqCst) {
                    tokio::time::sleep(
                        end.saturating_duration_since(tokio::time::Instant::now())
                            .min(std::time::Duration::from_millis(250)),
                    )
                    .await;
                }
                if interrupted.load(Ordering::SeqCst) {
                    break 130;
                }
            }
            window::Position::Open(d) => {
                eprintln!(
                    "inside the window {w}: working for up to {}",
                    human_duration(d)
                );
                stop.clear();
                let s = stop.clone();
                let closer = tokio::spawn(async move {
                    tokio::time::sleep(d).await;
                    s.stop();
                });
                let r = engine.run(RunKind::Run, mailboxes).await;
                closer.abort();
                let (_, totals) = r.map_err(usage)?;
                let code = summarize(RunKind::Run, &totals);
                if interrupted.load(Ordering::SeqCst) || !totals.stopped {
                    break code;
                }
                eprintln!("the window {w} closed: paused; the items in flight were recorded");
                tracing::info!(window = %w, "window closed: paused");
            }
        }
    };
    watcher.abort();
    Ok(code)
}

/// Writes a file readable by the owner only (mappings name people).
fn write_private(path: &Path, bytes: &[u8]) -> Result<(), Exit> {
    o365_migrate_engine::report::write_private(path, bytes)
        .with_context(|| format!("cannot write {}", path.display()))
        .map_err(usage)
}
