//! `cargo xtask demo` and `cargo xtask servers`.

use anyhow::{Result, bail};

pub(crate) fn demo(_args: &[String]) -> Result<()> {
    crate::setup::ensure_demo_prerequisites()?;
    bail!("the demo lands with the testkit and engine")
}

pub(crate) fn servers(args: &[String]) -> Result<()> {
    let _seconds = crate::parse_seconds(args, 3600)?;
    crate::setup::ensure_demo_prerequisites()?;
    bail!("`servers` lands with the testkit and the Graph emulator")
}
