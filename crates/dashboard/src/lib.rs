//! The o365-migrate dashboard: a web page and a JSON API over one migration's state store,
//! served by `o365-migrate serve` (this crate, wired to the CLI) or by an embedder.
//!
//! - **What it shows**: mailboxes by state (waiting, running, paused, done, failed), totals,
//!   throughput per minute over the last hour and an ETA, and per mailbox its folders with
//!   their counts, the throttling it met, what the last `verify` found, and the item ledger:
//!   every item with its fate, searched and paged by the state store (see
//!   [`o365_migrate_engine::state::StateStore::search_items`]).
//! - **What it does**: starts a run, rescan or sync in this process (through the engine and the
//!   state's run lock, like the CLI), pauses and resumes every run on the state wherever it
//!   runs ([`o365_migrate_engine::control`]), retries a mailbox's failed items, and hands out
//!   the JSON / CSV / HTML reports.
//! - **Live**: `GET /api/events` streams server-sent events (see [`live`]).
//! - **Safe by default**: loopback only unless told otherwise; any other request needs the
//!   token (shown once, kept as a SHA-256 in the state store), and a non-loopback address gets
//!   TLS (certificate files, or a self-signed certificate made once). See [`auth`]. No secret
//!   of the job (passwords, client secrets, tokens) is ever read by this crate: it sees the
//!   state store, which holds none, and hands the job to the engine only to start runs.
//! - **Offline**: the page, its script and its styles are compiled in; no CDN.
//!
//! ```no_run
//! # async fn example(store: std::sync::Arc<dyn o365_migrate_engine::state::StateStore>) -> o365_migrate_dashboard::Result<()> {
//! use o365_migrate_dashboard::{Dashboard, ServeOptions};
//! let d = Dashboard::bind(None, store, ServeOptions::default()).await?;
//! if let Some(token) = d.new_token() {
//!     eprintln!("dashboard token (shown once): {token}");
//! }
//! eprintln!("open {}", d.url());
//! d.serve(std::future::pending()).await
//! # }
//! ```

pub mod api;
mod assets;
pub mod auth;
mod error;
mod listener;
pub mod live;

use std::collections::HashSet;
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::routing::{get, post};
use o365_migrate_engine::config::Job;
use o365_migrate_engine::state::StateStore;

pub use error::{Error, Result};

/// The default listen address: loopback, port 8465.
pub const DEFAULT_LISTEN: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 8465);

/// TLS for the dashboard.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum TlsChoice {
    /// Plain HTTP on a loopback address; TLS with a self-signed certificate on any other.
    #[default]
    Auto,
    /// A PEM certificate chain and its PEM private key.
    Files {
        /// The certificate chain.
        cert: PathBuf,
        /// The private key.
        key: PathBuf,
    },
    /// A self-signed certificate made once and kept in [`ServeOptions::tls_dir`].
    SelfSigned,
}

/// How to serve.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServeOptions {
    /// Where to listen (default [`DEFAULT_LISTEN`]; port 0 picks a free one).
    pub listen: SocketAddr,
    /// Refuse every action (start, pause, resume, retry).
    pub read_only: bool,
    /// TLS (see [`TlsChoice`]).
    pub tls: TlsChoice,
    /// Where a self-signed certificate is kept (usually beside the state file).
    pub tls_dir: PathBuf,
    /// Make a new token even when one is kept (the old one stops working).
    pub new_token: bool,
}

impl Default for ServeOptions {
    fn default() -> ServeOptions {
        ServeOptions {
            listen: DEFAULT_LISTEN,
            read_only: false,
            tls: TlsChoice::Auto,
            tls_dir: PathBuf::from("dashboard-tls"),
            new_token: false,
        }
    }
}

/// A dashboard bound to its address, ready to serve.
pub struct Dashboard {
    listener: listener::DashListener,
    router: Router,
    new_token: Option<String>,
    fingerprint: Option<String>,
    tls: bool,
}

impl std::fmt::Debug for Dashboard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dashboard")
            .field("listen", &self.listener.local())
            .field("tls", &self.tls)
            .finish_non_exhaustive()
    }
}

impl Dashboard {
    /// Binds the address, loads (or makes) the token and sets up TLS. `job` lets the page
    /// start runs; without it the dashboard watches, pauses and resumes only.
    pub async fn bind(
        job: Option<Job>,
        store: Arc<dyn StateStore>,
        options: ServeOptions,
    ) -> Result<Dashboard> {
        let loopback = options.listen.ip().is_loopback();
        let tls = match &options.tls {
            TlsChoice::Files { cert, key } => Some(listener::tls_from_files(cert, key)?),
            TlsChoice::SelfSigned => Some(self_signed(&options)?),
            TlsChoice::Auto if !loopback => Some(self_signed(&options)?),
            TlsChoice::Auto => None,
        };
        let (token_sha256, new_token) =
            auth::load_or_make_token(store.as_ref(), options.new_token).await?;
        let csrf = auth::random_token(24);
        let access = Arc::new(auth::Access {
            token_sha256,
            csrf: csrf.clone(),
            loopback,
            read_only: options.read_only,
            tls: tls.is_some(),
        });
        let (events, _) = tokio::sync::broadcast::channel(1024);
        let app = Arc::new(api::App {
            store,
            job,
            read_only: options.read_only,
            csrf,
            events,
            active: Arc::new(Mutex::new(HashSet::new())),
            started: Arc::new(Mutex::new(None)),
            cached: tokio::sync::Mutex::new(None),
        });
        let fingerprint = tls.as_ref().map(|t| t.fingerprint.clone());
        let is_tls = tls.is_some();
        let listener =
            listener::DashListener::bind(options.listen, tls.map(|t| t.acceptor)).await?;
        Ok(Dashboard {
            listener,
            router: router(app, access),
            new_token,
            fingerprint,
            tls: is_tls,
        })
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local()
    }

    /// The address to open in a browser.
    pub fn url(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{}/", self.local_addr())
    }

    /// The token, when this start made a new one: show it once; only its hash is kept.
    pub fn new_token(&self) -> Option<&str> {
        self.new_token.as_deref()
    }

    /// The TLS certificate's SHA-256 fingerprint (`AB:CD:…`), to compare with the browser's.
    pub fn certificate_sha256(&self) -> Option<&str> {
        self.fingerprint.as_deref()
    }

    /// Serves until `shutdown` resolves.
    pub async fn serve(self, shutdown: impl Future<Output = ()> + Send + 'static) -> Result<()> {
        axum::serve(
            self.listener,
            self.router
                .into_make_service_with_connect_info::<listener::Peer>(),
        )
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(Error::Serve)
    }
}

fn self_signed(options: &ServeOptions) -> Result<listener::TlsSetup> {
    let mut names = vec!["localhost".to_owned(), "127.0.0.1".to_owned()];
    if !options.listen.ip().is_unspecified() {
        names.push(options.listen.ip().to_string());
    }
    listener::tls_self_signed(&options.tls_dir, names)
}

fn router(app: Arc<api::App>, access: Arc<auth::Access>) -> Router {
    let api = Router::new()
        .route("/api/session", get(api::session))
        .route("/api/overview", get(api::overview))
        .route("/api/mailboxes", get(api::mailboxes))
        .route("/api/mailboxes/{id}", get(api::mailbox))
        .route("/api/mailboxes/{id}/retry", post(api::retry))
        .route("/api/items", get(api::items))
        .route("/api/runs", get(api::runs).post(api::start_run))
        .route("/api/events", get(live::events))
        .route("/api/events/recent", get(api::recent_events))
        .route("/api/reports/{name}", get(api::report))
        .route("/api/pause", post(api::pause))
        .route("/api/resume", post(api::resume))
        .route("/", get(assets::index))
        .route("/assets/{name}", get(assets::asset))
        .with_state(app);
    let login = Router::new()
        .route("/login", get(auth::login_page).post(auth::login))
        .with_state(access.clone());
    api.merge(login)
        .fallback(assets::not_found)
        .layer(axum::middleware::from_fn_with_state(access, auth::guard))
        .layer(axum::middleware::from_fn(assets::security_headers))
}
