//! `o365-migrate-graph-emulator`: runs the Graph emulator on 127.0.0.1.
//!
//! ```text
//! o365-migrate-graph-emulator [--port N] [--config FILE.json] [--time-scale X] [--user UPN]...
//! ```
//! Prints the base URL, the tenant id, the app's client id and secret (emulator values, not real
//! secrets) and serves until Ctrl-C.

use o365_migrate_graph_emulator::{Emulator, EmulatorConfig, UserConfig};

fn usage() -> ! {
    eprintln!(
        "usage: o365-migrate-graph-emulator [--port N] [--config FILE.json] [--time-scale X] [--user UPN]..."
    );
    std::process::exit(2)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let mut args = std::env::args().skip(1);
    let mut port = 0u16;
    let mut config = EmulatorConfig::default();
    let mut users = Vec::new();
    let mut scale = None;
    while let Some(a) = args.next() {
        match a.as_str() {
            "--port" => {
                port = args
                    .next()
                    .and_then(|p| p.parse().ok())
                    .unwrap_or_else(|| usage())
            }
            "--config" => {
                let path = args.next().unwrap_or_else(|| usage());
                let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
                    eprintln!("{path}: {e}");
                    std::process::exit(2)
                });
                config = serde_json::from_str(&text).unwrap_or_else(|e| {
                    eprintln!("{path}: line {}: {e}", e.line());
                    std::process::exit(2)
                });
            }
            "--time-scale" => {
                scale = Some(
                    args.next()
                        .and_then(|p| p.parse().ok())
                        .unwrap_or_else(|| usage()),
                )
            }
            "--user" => users.push(args.next().unwrap_or_else(|| usage())),
            _ => usage(),
        }
    }
    if let Some(s) = scale {
        config.time_scale = s;
    }
    if let Some(t) = config.tenants.first_mut() {
        t.users
            .extend(users.into_iter().map(UserConfig::with_mailbox));
    }
    let emulator = match Emulator::start_on(config, port).await {
        Ok(e) => e,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(1)
        }
    };
    println!("graph emulator listening on {}", emulator.url());
    println!("tenant {}", emulator.tenant_id());
    if let Some(app) = emulator
        .config()
        .tenants
        .first()
        .and_then(|t| t.apps.first())
    {
        println!("client_id {}", app.client_id);
    }
    let _ = tokio::signal::ctrl_c().await;
}
