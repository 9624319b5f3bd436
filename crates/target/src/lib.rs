//! Target writers: Microsoft Graph, IMAP APPEND, EWS, EML export.
//!
//! This crate is being built; see the workspace `docs/ARCHITECTURE.md` for its role.

/// Errors from this crate.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Placeholder until the crate's real error variants land.
    #[error("not yet implemented: {0}")]
    Unimplemented(&'static str),
}
