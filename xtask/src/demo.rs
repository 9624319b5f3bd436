//! `cargo xtask demo` and `cargo xtask servers`: local servers standing in for a real migration —
//! a source Dovecot filled with a generated corpus, an empty target Dovecot and the Graph
//! emulator — all on 127.0.0.1, all stopped when the command ends.

use anyhow::{Context, Result};
use o365_migrate_graph_emulator::{Emulator, EmulatorConfig, UserConfig};
use o365_migrate_testkit::{Corpus, CorpusProfile, Dovecot, DovecotOptions, Manifest};
use std::time::{Duration, Instant};

/// Fixed seed: the demo and `servers` always show the same mail.
const SEED: u64 = 2026;
/// Source users and how many messages each gets.
const USERS: &[(&str, usize)] = &[("alice", 120), ("bob", 80), ("carol", 40)];
/// The Microsoft 365 domain the emulator's tenant owns.
const TENANT_DOMAIN: &str = "contoso.example";

/// Everything the demo and `servers` start.
pub(crate) struct LocalServers {
    pub(crate) source: Dovecot,
    pub(crate) target: Dovecot,
    pub(crate) graph: Emulator,
    pub(crate) manifests: Vec<(String, Manifest)>,
}

pub(crate) async fn start_servers() -> Result<LocalServers> {
    crate::setup::ensure_demo_prerequisites()?;
    let started = Instant::now();
    eprintln!("starting the source Dovecot, the target Dovecot and the Graph emulator ...");
    let source =
        Dovecot::start(DovecotOptions::default()).context("starting the source Dovecot")?;
    let target =
        Dovecot::start(DovecotOptions::default()).context("starting the target Dovecot")?;
    let mut config = EmulatorConfig::default();
    if let Some(tenant) = config.tenants.first_mut() {
        for (user, _) in USERS {
            tenant
                .users
                .push(UserConfig::with_mailbox(format!("{user}@{TENANT_DOMAIN}")));
        }
    }
    let graph = Emulator::start(config)
        .await
        .context("starting the Graph emulator")?;

    let mut manifests = Vec::new();
    for (i, (user, count)) in USERS.iter().enumerate() {
        // Realistic mix, but no 20 MB+ message so the demo stays quick.
        let profile = CorpusProfile::realistic(SEED + i as u64, *count).with_huge_every(None);
        let corpus = Corpus::new(profile);
        eprintln!("loading {count} generated messages into source mailbox {user} ...");
        let manifest = corpus
            .load_parallel(&source, user, 2)
            .await
            .with_context(|| format!("loading the corpus into source mailbox {user}"))?;
        manifests.push(((*user).to_owned(), manifest));
    }
    eprintln!("servers ready in {:.1?}", started.elapsed());
    Ok(LocalServers {
        source,
        target,
        graph,
        manifests,
    })
}

fn print_servers(s: &LocalServers) {
    let d = |name: &str, dc: &Dovecot| {
        println!("{name} IMAP   127.0.0.1:{} (STARTTLS)", dc.imap_port());
        if let Some(port) = dc.imaps_port() {
            println!("{name} IMAPS  127.0.0.1:{port} (implicit TLS)");
        }
        println!("{name} CA     {}", dc.ca_path().display());
        for user in dc.users() {
            println!("{name} user   {} / {}", user.name(), user.password());
        }
        let master = dc.master_user();
        println!(
            "{name} master {} / {} (log in as user*{})",
            master.name(),
            master.password(),
            master.name()
        );
        println!("{name} log    {}", dc.log_path().display());
    };
    println!("These are throwaway local test servers; the passwords below exist only here.");
    d("source", &s.source);
    d("target", &s.target);
    println!("graph  URL    {}", s.graph.url());
    println!("graph  tenant {}", s.graph.tenant_id());
    if let Some(app) = s
        .graph
        .config()
        .tenants
        .first()
        .and_then(|t| t.apps.first())
    {
        println!("graph  app    client_id {}", app.client_id);
        if let Some(secret) = &app.client_secret {
            println!("graph  app    client_secret {secret}");
        }
    }
    for (user, manifest) in &s.manifests {
        println!(
            "corpus {user}: {} messages, {} bytes, {} folders",
            manifest.len(),
            manifest.total_bytes(),
            manifest.folders().len()
        );
    }
}

pub(crate) fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the tokio runtime")
}

pub(crate) fn servers(args: &[String]) -> Result<()> {
    let seconds = crate::parse_seconds(args, 3600)?;
    runtime()?.block_on(async {
        let servers = start_servers().await?;
        print_servers(&servers);
        eprintln!("serving for {seconds} s; Ctrl-C stops everything");
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(seconds)) => {}
            _ = tokio::signal::ctrl_c() => {}
        }
        eprintln!("stopping ...");
        drop(servers);
        Ok(())
    })
}

pub(crate) fn demo(_args: &[String]) -> Result<()> {
    runtime()?.block_on(async {
        let servers = start_servers().await?;
        print_servers(&servers);
        // Prove the source is what the manifest says before anything is migrated.
        for (user, manifest) in &servers.manifests {
            let mut client = servers.source.login(user).await?;
            let report = manifest.verify(&mut client).await?;
            anyhow::ensure!(
                report.is_ok(),
                "source mailbox {user} differs from its manifest"
            );
            println!(
                "source {user}: verified {} messages in {} folders against the manifest",
                report.messages_checked, report.folders_checked
            );
        }
        println!();
        migrate(&servers).await
    })
}

/// Builds the `o365-migrate` binary and returns its path.
pub(crate) fn build_cli() -> Result<std::path::PathBuf> {
    crate::sh("cargo", &["build", "--quiet", "-p", "o365-migrate"])?;
    let target_dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| crate::root().join("target"));
    let bin = target_dir.join("debug").join("o365-migrate");
    anyhow::ensure!(
        bin.exists(),
        "built o365-migrate but cannot find {}",
        bin.display()
    );
    Ok(bin)
}

/// The README's main job: the whole flow through the `o365-migrate` binary against the local
/// servers — credentials check, source test, target test, match, plan, run, verify, report.
async fn migrate(s: &LocalServers) -> Result<()> {
    let bin = build_cli()?;
    let dir = std::env::temp_dir().join(format!("o365-migrate-demo-{}", std::process::id()));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let result = migrate_in(s, &bin, &dir).await;
    let _ = std::fs::remove_dir_all(&dir);
    result
}

async fn migrate_in(s: &LocalServers, bin: &std::path::Path, dir: &std::path::Path) -> Result<()> {
    let (config, secret) = write_job(s, dir, "")?;
    let csv_path = dir.join("users.csv");
    let steps: Vec<(&str, Vec<&str>)> = vec![
        (
            "credentials check",
            vec![
                "credentials",
                "check",
                csv_path.to_str().unwrap_or("users.csv"),
            ],
        ),
        ("source test", vec!["source", "test"]),
        ("target test", vec!["target", "test"]),
        ("match", vec!["match"]),
        ("plan", vec!["plan"]),
        ("run", vec!["run"]),
        ("verify", vec!["verify"]),
        ("report", vec!["report", "--format", "csv"]),
    ];
    for (name, args) in steps {
        println!();
        println!("$ o365-migrate {}", args.join(" "));
        let status = tokio::process::Command::new(bin)
            .arg("--config")
            .arg(&config)
            .args(&args)
            .current_dir(dir)
            .env("DEMO_GRAPH_CLIENT_SECRET", &secret)
            .stdin(std::process::Stdio::null())
            .status()
            .await
            .with_context(|| format!("starting o365-migrate {name}"))?;
        anyhow::ensure!(status.success(), "o365-migrate {name} failed ({status})");
    }
    println!();
    println!("demo: migrated, verified and reported; the report above is per mailbox (CSV).");
    Ok(())
}

/// Writes the demo's credentials CSV and job file (source Dovecot → Graph emulator) into `dir`,
/// with `extra_filters` lines in `[filters]`; returns the job file and the client secret (the
/// job reads it from `DEMO_GRAPH_CLIENT_SECRET`).
pub(crate) fn write_job(
    s: &LocalServers,
    dir: &std::path::Path,
    extra_filters: &str,
) -> Result<(std::path::PathBuf, String)> {
    let app = s
        .graph
        .config()
        .tenants
        .first()
        .and_then(|t| t.apps.first())
        .context("the emulator has no app")?;
    let secret = app
        .client_secret
        .clone()
        .context("the emulator app has no secret")?;
    let mut csv = String::from("EmailAddress,UserName,Password\r\n");
    for user in s.source.users() {
        csv.push_str(&format!(
            "{}@{TENANT_DOMAIN},{},{}\r\n",
            user.name(),
            user.name(),
            user.password()
        ));
    }
    std::fs::write(dir.join("users.csv"), csv)?;
    let job = format!(
        r##"# Demo job: source Dovecot -> Graph emulator, all on 127.0.0.1.
[source]
host = "127.0.0.1"
port = {port}
security = "starttls"
ca_file = "{ca}"
credentials = "users.csv"

[target]
kind = "graph"

[target.graph]
tenant = "{tenant}"
client_id = "{client_id}"
client_secret = "env:DEMO_GRAPH_CLIENT_SECRET"
authority_url = "{url}"
graph_url = "{url}"

[filters]
exclude_folders = ["#JunkEmail#"]
{extra_filters}

[state]
path = "o365-migrate.db"
"##,
        port = s.source.imap_port(),
        ca = s.source.ca_path().display(),
        tenant = s.graph.tenant_id(),
        client_id = app.client_id,
        url = s.graph.url(),
    );
    let config = dir.join("o365-migrate.toml");
    std::fs::write(&config, job)?;
    Ok((config, secret))
}
