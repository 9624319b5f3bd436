//! The dashboard's error type.

/// What went wrong while setting up or serving the dashboard. Every message ends with what to do.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {source}; hint: pick a free port with --listen")]
    Listen {
        /// The address asked for.
        addr: std::net::SocketAddr,
        /// The operating system's answer.
        #[source]
        source: std::io::Error,
    },
    /// A TLS certificate or key could not be read, made or used.
    #[error("TLS: {what}: {message}; hint: {hint}")]
    Tls {
        /// What was being done (with the file).
        what: String,
        /// What failed.
        message: String,
        /// How to fix it.
        hint: String,
    },
    /// The state store (or another engine part) failed.
    #[error(transparent)]
    Engine(#[from] o365_migrate_engine::Error),
    /// The server stopped with an error.
    #[error("the dashboard server stopped: {0}; hint: start `o365-migrate serve` again")]
    Serve(#[source] std::io::Error),
}

/// The dashboard's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
