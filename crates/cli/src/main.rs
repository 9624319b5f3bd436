//! `o365-migrate`: the command-line tool. Wiring only; the work lives in `o365-migrate-engine`.
//!
//! Exit codes:
//! - 0: success (for `verify`: everything matches)
//! - 1: the command ran but found problems (items failed, `verify` found differences,
//!   `credentials check` found errors, a connection test failed)
//! - 2: bad usage, job file, credentials file or state store
//! - 3: a mailbox could not be processed (source or target unreachable, login refused)
//! - 130: stopped by Ctrl-C (in-flight items were recorded first)

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result};
use clap::{Parser, Subcommand, ValueEnum};
use o365_migrate_engine::config::{Job, TEMPLATE};
use o365_migrate_engine::pipeline::{Engine, StopFlag};
use o365_migrate_engine::report::{Event, FanOut, JsonLinesReporter, Report, Reporter};
use o365_migrate_engine::state::{RunKind, SqliteStore, StateStore};

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
be processed; 130 stopped by Ctrl-C.";

#[derive(Debug, Subcommand)]
enum Command {
    /// Write a commented job-file template.
    Init {
        /// Where (default: the --config path).
        path: Option<PathBuf>,
    },
    /// Credentials-file commands.
    Credentials {
        #[command(subcommand)]
        command: CredentialsCommand,
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
    /// Show the mailbox pairs (credentials target column, else [matching] domains).
    Match {
        /// Machine-readable output on stdout.
        #[arg(long)]
        json: bool,
        /// Write the pairs as CSV (`source,target`) to this file.
        #[arg(long)]
        out: Option<PathBuf>,
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
    /// Compare source and target per folder and per message; exit 0 only when all match.
    Verify {
        /// Machine-readable output on stdout.
        #[arg(long)]
        json: bool,
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

/// An error with the exit code it maps to.
struct Exit(u8, anyhow::Error);

fn usage(e: impl Into<anyhow::Error>) -> Exit {
    Exit(2, e.into())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
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

async fn open_store(job: &Job) -> Result<Arc<dyn StateStore>, Exit> {
    let path = job.resolve_path(&job.state.path);
    let s = SqliteStore::open(&path).await.map_err(usage)?;
    Ok(Arc::new(s))
}

fn print_json(v: &impl serde::Serialize) -> Result<(), Exit> {
    let s = serde_json::to_string_pretty(v).map_err(usage)?;
    println!("{s}");
    Ok(())
}

async fn dispatch(cli: Cli) -> Result<u8, Exit> {
    match cli.command {
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
                },
        } => {
            let r = o365_migrate_engine::pipeline::check_credentials_file(&file, delimiter)
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
        Command::Status { json } => {
            let store = open_store(&job).await?;
            let counts = store.counts(None).await.map_err(usage)?;
            let runs = store.runs().await.map_err(usage)?;
            if json {
                print_json(&serde_json::json!({ "counts": counts, "runs": runs }))?;
            } else {
                eprintln!(
                    "planned {} migrated {} skipped {} failed {} ({} bytes migrated); {} runs",
                    counts.planned,
                    counts.migrated,
                    counts.skipped,
                    counts.failed,
                    counts.migrated_bytes,
                    runs.len()
                );
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
            Ok(0)
        }
        command => {
            let store = open_store(&job).await?;
            let (reporter, progress) = make_reporter(&command)?;
            let engine = Engine::new(job, store, reporter.clone(), stop.clone()).map_err(usage)?;
            let code = engine_command(&engine, command, &stop).await;
            drop(progress);
            code
        }
    }
}

fn command_name(c: &Command) -> &'static str {
    match c {
        Command::Init { .. } => "init",
        Command::Credentials { .. } => "credentials",
        Command::Source { .. } => "source test",
        Command::Target { .. } => "target test",
        Command::Match { .. } => "match",
        Command::Plan { .. } => "plan",
        Command::Run { .. } => "run",
        Command::Rescan { .. } => "rescan",
        Command::Verify { .. } => "verify",
        Command::Report { .. } => "report",
        Command::Status { .. } => "status",
    }
}

fn make_reporter(
    command: &Command,
) -> Result<(Arc<dyn Reporter>, Option<indicatif::MultiProgress>), Exit> {
    let events = match command {
        Command::Run { events, .. } | Command::Rescan { events } => events.clone(),
        _ => None,
    };
    let tty = std::io::stderr().is_terminal();
    let progress = tty.then(indicatif::MultiProgress::new);
    let human = HumanReporter {
        progress: progress.clone(),
        bars: Mutex::new(Default::default()),
    };
    let mut all: Vec<Box<dyn Reporter>> = vec![Box::new(human)];
    if let Some(path) = events {
        all.push(Box::new(JsonLinesReporter::create(&path).map_err(usage)?));
    }
    Ok((Arc::new(FanOut(all)), progress))
}

/// Progress for people on stderr (bars on a terminal, plain lines otherwise) and every event
/// in the log file.
struct HumanReporter {
    progress: Option<indicatif::MultiProgress>,
    bars: Mutex<std::collections::HashMap<String, (indicatif::ProgressBar, u64, u64)>>,
}

impl Reporter for HumanReporter {
    fn report(&self, event: &Event) {
        match event {
            Event::ItemMigrated { .. } => tracing::debug!(?event),
            Event::ItemSkipped { .. } | Event::FolderSkipped { .. } => tracing::info!(?event),
            Event::ItemFailed { .. } | Event::Throttled { .. } => tracing::warn!(?event),
            _ => tracing::info!(?event),
        }
        match &self.progress {
            Some(mp) => self.bar(mp, event),
            None => plain(event),
        }
    }
}

impl HumanReporter {
    fn bar(&self, mp: &indicatif::MultiProgress, event: &Event) {
        let Ok(mut bars) = self.bars.lock() else {
            return;
        };
        match event {
            Event::MailboxStarted { mailbox, target } => {
                let b = mp.add(indicatif::ProgressBar::new_spinner());
                b.set_message(format!("{mailbox} → {target}: starting"));
                b.enable_steady_tick(std::time::Duration::from_millis(200));
                bars.insert(mailbox.clone(), (b, 0, 0));
            }
            Event::ItemMigrated { mailbox, size, .. } => {
                if let Some((b, n, bytes)) = bars.get_mut(mailbox) {
                    *n += 1;
                    *bytes += size;
                    let secs = b.elapsed().as_secs_f64().max(0.001);
                    b.set_message(format!(
                        "{mailbox}: {n} migrated, {:.1} MB, {:.1} msg/s",
                        *bytes as f64 / 1_048_576.0,
                        *n as f64 / secs
                    ));
                }
            }
            Event::MailboxFinished { mailbox, .. } => {
                if let Some((b, _, _)) = bars.remove(mailbox) {
                    b.finish_and_clear();
                }
                let _ = mp.println(plain_line(event).unwrap_or_default());
            }
            _ => {
                if let Some(l) = plain_line(event) {
                    let _ = mp.println(l);
                }
            }
        }
    }
}

fn plain_line(event: &Event) -> Option<String> {
    Some(match event {
        Event::MailboxStarted { mailbox, target } => format!("{mailbox} → {target}: started"),
        Event::FolderProgress {
            mailbox,
            folder,
            done,
            total,
            ..
        } => format!("{mailbox} {folder}: {done}/{total}"),
        Event::FolderSkipped {
            mailbox,
            folder,
            reason,
        } => format!("{mailbox} {folder}: folder skipped: {reason}"),
        Event::ItemFailed {
            mailbox,
            folder,
            uid,
            reason,
        } => format!("{mailbox} {folder} UID {uid}: failed: {reason}"),
        Event::MailboxFinished {
            mailbox,
            migrated,
            skipped,
            failed,
            bytes,
        } => format!(
            "{mailbox}: finished: {migrated} migrated, {skipped} skipped, {failed} failed, {bytes} bytes"
        ),
        _ => return None,
    })
}

fn plain(event: &Event) {
    if let Some(l) = plain_line(event) {
        eprintln!("{l}");
    }
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
            let (check, per) = engine.target_test().await;
            let ok = check.is_ok() && per.iter().all(|(_, r)| r.is_ok());
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
                    "mailboxes": v
                }))?;
            } else {
                match &check {
                    Ok(()) => eprintln!("ok    target: sign-in and permissions"),
                    Err(e) => eprintln!("FAIL  target: {e}"),
                }
                for (m, r) in &per {
                    match r {
                        Ok(()) => eprintln!("ok    {m}"),
                        Err(e) => eprintln!("FAIL  {m}: {e}"),
                    }
                }
            }
            Ok(u8::from(!ok))
        }
        Command::Match { json, out } => {
            let pairs = engine.pairs();
            if let Some(path) = out {
                let mut s = String::from("source,target\r\n");
                for p in &pairs {
                    s.push_str(&o365_migrate_engine::report::csv_row(&[
                        &p.source, &p.target,
                    ]));
                }
                std::fs::write(&path, s)
                    .with_context(|| format!("cannot write {}", path.display()))
                    .map_err(usage)?;
                eprintln!("wrote {} pairs to {}", pairs.len(), path.display());
            }
            if json {
                print_json(&pairs)?;
            } else {
                for p in &pairs {
                    eprintln!("{} → {}", p.source, p.target);
                }
            }
            Ok(0)
        }
        Command::Plan { json } => {
            let plan = engine.plan().await;
            print_plan(&plan, json)?;
            Ok(if plan.mailboxes.iter().any(|m| m.error.is_some()) {
                3
            } else {
                0
            })
        }
        Command::Run {
            mailboxes, dry_run, ..
        } => {
            if dry_run {
                let plan = engine.plan().await;
                print_plan(&plan, false)?;
                eprintln!("dry run: nothing was written");
                return Ok(0);
            }
            run_kind(engine, RunKind::Run, &mailboxes, stop).await
        }
        Command::Rescan { .. } => run_kind(engine, RunKind::Rescan, &[], stop).await,
        Command::Verify { json } => {
            let r = engine.verify().await.map_err(usage)?;
            if json {
                print_json(&r)?;
            } else {
                for m in &r.mailboxes {
                    if let Some(e) = &m.error {
                        eprintln!("FAIL  {} → {}: {e}", m.source, m.target);
                    }
                    for f in &m.folders {
                        let ok = f.missing.is_empty()
                            && f.extra.is_empty()
                            && f.expected == f.target_count;
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
        | Command::Credentials { .. }
        | Command::Report { .. }
        | Command::Status { .. } => Ok(0),
    }
}

fn print_plan(plan: &o365_migrate_engine::pipeline::PlanReport, json: bool) -> Result<(), Exit> {
    if json {
        return print_json(plan);
    }
    for m in &plan.mailboxes {
        eprintln!(
            "{} → {}: {} messages, {} bytes",
            m.source, m.target, m.messages, m.bytes
        );
        if let Some(e) = &m.error {
            eprintln!("  ERROR {e}");
        }
        for f in &m.folders {
            match (&f.target, &f.skip_reason) {
                (Some(t), _) => eprintln!(
                    "  {} → {}: {} messages, {} bytes, {} filtered, {} oversize, {} without Message-ID",
                    f.source,
                    t,
                    f.messages,
                    f.bytes,
                    f.filtered,
                    f.oversize.len(),
                    f.without_message_id.len()
                ),
                (None, r) => eprintln!("  {}: skipped ({})", f.source, r.as_deref().unwrap_or("-")),
            }
        }
    }
    match plan.estimate_seconds {
        Some(s) => eprintln!(
            "total {} messages, {} bytes; estimated at least {:.0} s ({})",
            plan.messages, plan.bytes, s, plan.estimate_basis
        ),
        None => eprintln!("total {} messages, {} bytes", plan.messages, plan.bytes),
    }
    Ok(())
}

async fn run_kind(
    engine: &Engine,
    kind: RunKind,
    mailboxes: &[String],
    stop: &StopFlag,
) -> Result<u8, Exit> {
    let s = stop.clone();
    let watcher = tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            eprintln!(
                "Ctrl-C: stopping after the items in flight are recorded (Ctrl-C again aborts)"
            );
            s.stop();
            if tokio::signal::ctrl_c().await.is_ok() {
                std::process::exit(130);
            }
        }
    });
    let r = engine.run(kind, mailboxes).await;
    watcher.abort();
    let (_, totals) = r.map_err(usage)?;
    eprintln!(
        "{}: {} mailboxes, {} migrated, {} skipped, {} failed, {} bytes",
        kind.as_str(),
        totals.mailboxes,
        totals.migrated,
        totals.skipped,
        totals.failed,
        totals.bytes
    );
    for e in &totals.mailbox_errors {
        eprintln!("mailbox error: {e}");
    }
    if totals.stopped {
        return Ok(130);
    }
    if !totals.mailbox_errors.is_empty() {
        return Ok(3);
    }
    Ok(u8::from(totals.failed > 0))
}
