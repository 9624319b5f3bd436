//! The listening socket: plain TCP on loopback, or TLS (certificate files, or a self-signed
//! certificate made once and kept beside the state). TLS handshakes run in their own tasks, so
//! a slow or silent client never holds up the others. Each connection carries its [`Peer`]:
//! the remote address and the local address it arrived at (the access rule needs both).

use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

use crate::error::{Error, Result};

/// Longest TLS handshake before the connection is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Where a connection came from and where it arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Peer {
    /// The client's address.
    pub(crate) remote: SocketAddr,
    /// The address of ours it connected to.
    pub(crate) local: SocketAddr,
}

impl axum::extract::connect_info::Connected<axum::serve::IncomingStream<'_, DashListener>>
    for Peer
{
    fn connect_info(stream: axum::serve::IncomingStream<'_, DashListener>) -> Peer {
        *stream.remote_addr()
    }
}

/// A plain or TLS connection.
pub(crate) enum Conn {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl AsyncRead for Conn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_flush(cx),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// The dashboard's listener (see the module docs).
pub(crate) struct DashListener {
    local: SocketAddr,
    rx: mpsc::Receiver<(Conn, Peer)>,
    _acceptor: tokio::task::JoinHandle<()>,
}

impl DashListener {
    /// Binds `addr`; with `tls`, every connection is a TLS one.
    pub(crate) async fn bind(addr: SocketAddr, tls: Option<TlsAcceptor>) -> Result<DashListener> {
        let tcp = TcpListener::bind(addr)
            .await
            .map_err(|source| Error::Listen { addr, source })?;
        let local = tcp
            .local_addr()
            .map_err(|source| Error::Listen { addr, source })?;
        let (tx, rx) = mpsc::channel(64);
        let acceptor = tokio::spawn(async move {
            loop {
                let (stream, remote) = match tcp.accept().await {
                    Ok(x) => x,
                    Err(e) => {
                        // Out of file descriptors and the like: wait a little and go on.
                        tracing::warn!(error = %e, "dashboard: accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                let peer = Peer {
                    remote,
                    local: stream.local_addr().unwrap_or(local),
                };
                match &tls {
                    None => {
                        if tx.send((Conn::Plain(stream), peer)).await.is_err() {
                            return;
                        }
                    }
                    Some(acc) => {
                        let (acc, tx) = (acc.clone(), tx.clone());
                        tokio::spawn(async move {
                            match tokio::time::timeout(HANDSHAKE_TIMEOUT, acc.accept(stream)).await
                            {
                                Ok(Ok(s)) => {
                                    let _ = tx.send((Conn::Tls(Box::new(s)), peer)).await;
                                }
                                Ok(Err(e)) => {
                                    tracing::debug!(%remote, error = %e, "dashboard: TLS handshake failed");
                                }
                                Err(_) => {
                                    tracing::debug!(%remote, "dashboard: TLS handshake timed out")
                                }
                            }
                        });
                    }
                }
            }
        });
        Ok(DashListener {
            local,
            rx,
            _acceptor: acceptor,
        })
    }

    /// The bound address.
    pub(crate) fn local(&self) -> SocketAddr {
        self.local
    }
}

impl Drop for DashListener {
    fn drop(&mut self) {
        self._acceptor.abort();
    }
}

impl axum::serve::Listener for DashListener {
    type Io = Conn;
    type Addr = Peer;

    async fn accept(&mut self) -> (Conn, Peer) {
        match self.rx.recv().await {
            Some(c) => c,
            // The accept task ended (only when the listener is dropped): never resolve.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> io::Result<Peer> {
        Ok(Peer {
            remote: self.local,
            local: self.local,
        })
    }
}

/// A TLS setup: the acceptor and the certificate's SHA-256 fingerprint (hex, colon-separated)
/// for admins to compare with what their browser shows.
pub(crate) struct TlsSetup {
    pub(crate) acceptor: TlsAcceptor,
    pub(crate) fingerprint: String,
}

fn tls_err(what: String, message: impl ToString, hint: &str) -> Error {
    Error::Tls {
        what,
        message: message.to_string(),
        hint: hint.to_owned(),
    }
}

/// TLS from PEM files.
pub(crate) fn tls_from_files(cert: &Path, key: &Path) -> Result<TlsSetup> {
    let hint = "give a PEM certificate chain with --tls-cert and its PEM private key with --tls-key, or --tls-self-signed";
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| tls_err(format!("reading {}", cert.display()), e, hint))?
        .collect::<std::result::Result<_, _>>()
        .map_err(|e| tls_err(format!("reading {}", cert.display()), e, hint))?;
    if chain.is_empty() {
        return Err(tls_err(
            format!("reading {}", cert.display()),
            "no certificate in the file",
            hint,
        ));
    }
    let key = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| tls_err(format!("reading {}", key.display()), e, hint))?;
    setup(chain, key)
}

/// A self-signed certificate for `names`, made once and kept in `dir` (`cert.pem`, and
/// `key.pem` readable by the owner only); later starts reuse it, so browsers that accepted
/// it once keep accepting it.
pub(crate) fn tls_self_signed(dir: &Path, names: Vec<String>) -> Result<TlsSetup> {
    let cert_path: PathBuf = dir.join("cert.pem");
    let key_path: PathBuf = dir.join("key.pem");
    if !cert_path.exists() || !key_path.exists() {
        let hint = "check that the state directory is writable, or give --tls-cert and --tls-key";
        std::fs::create_dir_all(dir)
            .map_err(|e| tls_err(format!("creating {}", dir.display()), e, hint))?;
        let made = rcgen::generate_simple_self_signed(names)
            .map_err(|e| tls_err("making a self-signed certificate".into(), e, hint))?;
        o365_migrate_engine::report::write_private(
            &key_path,
            made.signing_key.serialize_pem().as_bytes(),
        )
        .map_err(|e| tls_err(format!("writing {}", key_path.display()), e, hint))?;
        std::fs::write(&cert_path, made.cert.pem())
            .map_err(|e| tls_err(format!("writing {}", cert_path.display()), e, hint))?;
    }
    tls_from_files(&cert_path, &key_path)
}

fn setup(chain: Vec<CertificateDer<'static>>, key: PrivateKeyDer<'static>) -> Result<TlsSetup> {
    use sha2::Digest;
    let fingerprint = sha2::Sha256::digest(chain[0].as_ref())
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| tls_err("setting up TLS".into(), e, "report this as a bug"))?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| {
            tls_err(
                "using the certificate and key".into(),
                e,
                "check that the key belongs to the certificate",
            )
        })?;
    let mut config = config;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsSetup {
        acceptor: TlsAcceptor::from(Arc::new(config)),
        fingerprint,
    })
}
