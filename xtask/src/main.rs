//! Project automation. Run `cargo xtask help`.

fn main() -> anyhow::Result<()> {
    anyhow::bail!("xtask: nothing yet")
}
