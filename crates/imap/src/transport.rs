//! Connection set-up: TCP, implicit TLS, STARTTLS, optional native TLS for old servers.

use crate::Error;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

/// Any byte stream the session can run over.
pub(crate) trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// How the connection is secured.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Security {
    /// TLS from the first byte (port 993).
    Tls,
    /// Plain connection upgraded with STARTTLS before login (port 143).
    StartTls,
    /// No encryption at all. Only for loopback tests or trusted networks; must be asked for by name.
    Plaintext,
}

/// Certificate handling.
#[derive(Clone, Debug, Default)]
pub struct TlsOptions {
    /// Extra trust anchors (PEM, one or more CA certificates) added to the operating system's
    /// trust store — e.g. a private CA.
    pub extra_ca_pem: Option<Vec<u8>>,
    /// Accept any certificate (expired, self-signed, wrong host). Logs a warning on every
    /// connection. Only for servers you control.
    pub danger_accept_invalid_certificates: bool,
    /// Use the platform's native TLS (OpenSSL) instead of rustls, for servers that only speak
    /// TLS 1.0/1.1. Needs the `legacy-tls` cargo feature.
    pub legacy_tls: bool,
}

/// Time limits.
#[derive(Clone, Copy, Debug)]
pub struct Timeouts {
    /// TCP connect plus TLS handshake.
    pub connect: Duration,
    /// Longest wait for any bytes while a command is outstanding.
    pub read: Duration,
    /// Longest IDLE before it is refreshed (servers drop IDLE after 30 minutes).
    pub idle: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            connect: Duration::from_secs(30),
            read: Duration::from_secs(120),
            idle: Duration::from_secs(25 * 60),
        }
    }
}

pub(crate) async fn connect_tcp(
    host: &str,
    port: u16,
    limit: Duration,
) -> Result<TcpStream, Error> {
    let s = tokio::time::timeout(limit, TcpStream::connect((host, port)))
        .await
        .map_err(|_| Error::Timeout {
            during: "connecting",
            after: limit,
        })?
        .map_err(|source| Error::Connect {
            host: host.to_owned(),
            port,
            source,
        })?;
    let _ = s.set_nodelay(true);
    Ok(s)
}

fn tls_err(host: &str, message: impl Into<String>) -> Error {
    Error::Tls {
        host: host.to_owned(),
        message: message.into(),
    }
}

#[derive(Debug)]
struct AcceptAnything(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AcceptAnything {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls::pki_types::CertificateDer<'_>,
        _intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

fn rustls_config(host: &str, opts: &TlsOptions) -> Result<Arc<rustls::ClientConfig>, Error> {
    use rustls::pki_types::pem::PemObject;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| tls_err(host, e.to_string()))?;
    let verifier: Arc<dyn rustls::client::danger::ServerCertVerifier> = if opts
        .danger_accept_invalid_certificates
    {
        tracing::warn!(
            host,
            "certificate verification is OFF (danger_accept_invalid_certificates): the connection can be intercepted"
        );
        Arc::new(AcceptAnything(provider))
    } else {
        let mut extra = Vec::new();
        if let Some(pem) = &opts.extra_ca_pem {
            for c in rustls::pki_types::CertificateDer::pem_slice_iter(pem) {
                extra
                    .push(c.map_err(|e| tls_err(host, format!("extra CA PEM is not valid: {e}")))?);
            }
            if extra.is_empty() {
                return Err(tls_err(host, "extra CA PEM contains no certificate"));
            }
        }
        Arc::new(
            rustls_platform_verifier::Verifier::new_with_extra_roots(extra, provider)
                .map_err(|e| tls_err(host, format!("cannot load the system trust store: {e}")))?,
        )
    };
    Ok(Arc::new(
        builder
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_no_client_auth(),
    ))
}

/// Wraps `tcp` in TLS for `host`.
pub(crate) async fn wrap_tls(
    tcp: TcpStream,
    host: &str,
    opts: &TlsOptions,
    limit: Duration,
) -> Result<Box<dyn Io>, Error> {
    if opts.legacy_tls {
        return wrap_native(tcp, host, opts, limit).await;
    }
    let config = rustls_config(host, opts)?;
    let name = rustls::pki_types::ServerName::try_from(host.to_owned())
        .map_err(|_| tls_err(host, "not a valid DNS name or IP address"))?;
    let connector = tokio_rustls::TlsConnector::from(config);
    // rustls reads TLS records 4 KiB at a time; a userspace read buffer below it turns that into
    // one syscall per 128 KiB (writes pass straight through).
    let buffered = tokio::io::BufReader::with_capacity(128 * 1024, tcp);
    let stream = tokio::time::timeout(limit, connector.connect(name, buffered))
        .await
        .map_err(|_| Error::Timeout { during: "TLS handshake", after: limit })?
        .map_err(|e| {
            let hint = if e.to_string().contains("certificate") || e.to_string().contains("Certificate") {
                "; the server's certificate is not trusted — add its CA (extra_ca_pem) or, for a server you control, opt out with danger_accept_invalid_certificates"
            } else {
                ""
            };
            tls_err(host, format!("{e}{hint}"))
        })?;
    Ok(Box::new(stream))
}

#[cfg(feature = "legacy-tls")]
async fn wrap_native(
    tcp: TcpStream,
    host: &str,
    opts: &TlsOptions,
    limit: Duration,
) -> Result<Box<dyn Io>, Error> {
    let mut c = async_native_tls::TlsConnector::new()
        .min_protocol_version(Some(async_native_tls::Protocol::Tlsv10))
        .danger_accept_invalid_certs(opts.danger_accept_invalid_certificates);
    if opts.danger_accept_invalid_certificates {
        tracing::warn!(
            host,
            "certificate verification is OFF (danger_accept_invalid_certificates)"
        );
    }
    if let Some(pem) = &opts.extra_ca_pem {
        let cert = async_native_tls::Certificate::from_pem(pem)
            .map_err(|e| tls_err(host, e.to_string()))?;
        c = c.add_root_certificate(cert);
    }
    let s = tokio::time::timeout(limit, c.connect(host, tcp))
        .await
        .map_err(|_| Error::Timeout {
            during: "TLS handshake",
            after: limit,
        })?
        .map_err(|e| tls_err(host, e.to_string()))?;
    Ok(Box::new(s))
}

#[cfg(not(feature = "legacy-tls"))]
async fn wrap_native(
    _tcp: TcpStream,
    host: &str,
    _opts: &TlsOptions,
    _limit: Duration,
) -> Result<Box<dyn Io>, Error> {
    Err(tls_err(
        host,
        "legacy TLS was requested but this build lacks the `legacy-tls` feature",
    ))
}
