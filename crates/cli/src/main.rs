//! `o365-migrate`: the command-line tool. Wiring only; the work lives in `o365-migrate-engine`.

use clap::Parser;

/// Migrate mailboxes from any IMAP server into Microsoft 365 / Exchange Online.
#[derive(Debug, Parser)]
#[command(name = "o365-migrate", version, about)]
struct Cli {}

fn main() -> anyhow::Result<()> {
    let _cli = Cli::parse();
    anyhow::bail!("no commands yet: the engine and CLI land with issue 9")
}
