//! The crate's single error type, classed retryable or fatal.

use std::time::Duration;

/// Everything that can go wrong talking IMAP.
///
/// Every variant is classed by [`Error::is_retryable`]; a throttling reply also carries the
/// server's suggested back-off ([`Error::retry_after`]). No variant ever contains a password or
/// token: login failures carry the user name and the server's text only.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The TCP connection could not be established.
    #[error("cannot connect to {host}:{port}: {source}; check the host name, port and firewall")]
    Connect {
        /// Host name that was dialled.
        host: String,
        /// Port that was dialled.
        port: u16,
        /// Underlying I/O error.
        #[source]
        source: std::io::Error,
    },
    /// TLS set-up or the certificate check failed.
    #[error("TLS with {host} failed: {message}")]
    Tls {
        /// Host name the certificate was checked against.
        host: String,
        /// What went wrong, with a hint.
        message: String,
    },
    /// Reading from or writing to the connection failed.
    #[error("I/O error on the IMAP connection: {0}")]
    Io(#[from] std::io::Error),
    /// The server did not answer within the configured time.
    #[error("timed out after {after:?} while {during}; the server may be overloaded, try again")]
    Timeout {
        /// What the client was waiting for.
        during: &'static str,
        /// The limit that elapsed.
        after: Duration,
    },
    /// The server rejected the credentials. Never contains the secret.
    #[error(
        "login as {user:?} failed: {text}; check the user name and password/token (for admin logins, the master-user name)"
    )]
    LoginFailed {
        /// User name (and authorization identity, if any) that was tried.
        user: String,
        /// Server's response text.
        text: String,
    },
    /// The server answered NO to a command.
    #[error("server answered NO to {command}: {text}")]
    No {
        /// Command name (e.g. `APPEND`), never its arguments.
        command: String,
        /// Server's response code in brackets, if any (e.g. `TRYCREATE`).
        code: Option<String>,
        /// Server's response text.
        text: String,
    },
    /// The server answered BAD to a command (the client sent something it did not understand).
    #[error("server answered BAD to {command}: {text}")]
    Bad {
        /// Command name.
        command: String,
        /// Server's response text.
        text: String,
    },
    /// The server asked the client to slow down.
    #[error("server is throttling: {text}; retry after {backoff:?}")]
    Throttled {
        /// Suggested back-off parsed from the server's text (Exchange: `Suggested Backoff Time: N milliseconds`).
        backoff: Option<Duration>,
        /// Server's response text.
        text: String,
    },
    /// The server closed the session with BYE.
    #[error("server closed the session (BYE): {text}")]
    Bye {
        /// Server's BYE text.
        text: String,
    },
    /// The connection was closed without a BYE.
    #[error("connection closed by the server unexpectedly")]
    ConnectionClosed,
    /// The server sent something that violates the protocol or could not be parsed.
    #[error("protocol violation from the server: {message} (near {snippet:?})")]
    Protocol {
        /// What was wrong.
        message: String,
        /// Start of the offending response (at most 120 bytes, lossy UTF-8).
        snippet: String,
    },
    /// The server announced a literal larger than the configured limit; nothing was allocated.
    #[error(
        "server announced a {size}-byte literal, above the {limit}-byte limit; raise the limit (max_literal) if such messages are expected"
    )]
    LiteralTooLarge {
        /// Announced size.
        size: u64,
        /// Configured limit.
        limit: u64,
    },
    /// A message is larger than the server's APPENDLIMIT.
    #[error("message of {size} bytes exceeds the server's APPENDLIMIT of {limit} bytes")]
    AppendTooLarge {
        /// Message size.
        size: u64,
        /// Server's limit.
        limit: u64,
    },
    /// The server lacks a capability the operation needs.
    #[error("server does not support {0}")]
    Unsupported(String),
    /// The mailbox's UIDVALIDITY changed, so UIDs seen before are meaningless.
    #[error(
        "UIDVALIDITY of {mailbox:?} changed from {expected} to {found}; the mailbox must be rescanned"
    )]
    UidValidityChanged {
        /// Mailbox name.
        mailbox: String,
        /// Value seen before.
        expected: u32,
        /// Value now.
        found: u32,
    },
    /// The caller passed something that cannot be sent.
    #[error("invalid input: {0}")]
    InvalidInput(String),
}

impl Error {
    /// True if trying again later (usually on a new connection) can succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Connect { .. }
            | Error::Io(_)
            | Error::Timeout { .. }
            | Error::Throttled { .. }
            | Error::Bye { .. }
            | Error::ConnectionClosed => true,
            Error::No { code, .. } => matches!(
                code.as_deref(),
                Some("UNAVAILABLE" | "INUSE" | "SERVERBUG" | "LIMIT" | "OVERQUOTA")
            ),
            Error::Tls { .. }
            | Error::LoginFailed { .. }
            | Error::Bad { .. }
            | Error::Protocol { .. }
            | Error::LiteralTooLarge { .. }
            | Error::AppendTooLarge { .. }
            | Error::Unsupported(_)
            | Error::UidValidityChanged { .. }
            | Error::InvalidInput(_) => false,
        }
    }

    /// True if the error is not retryable.
    pub fn is_fatal(&self) -> bool {
        !self.is_retryable()
    }

    /// Back-off the server suggested, if any.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Error::Throttled { backoff, .. } => *backoff,
            _ => None,
        }
    }

    pub(crate) fn protocol(message: impl Into<String>, data: &[u8]) -> Self {
        let end = data.len().min(120);
        let snippet = String::from_utf8_lossy(data.get(..end).unwrap_or_default()).into_owned();
        Error::Protocol {
            message: message.into(),
            snippet,
        }
    }
}

/// Parses a throttling hint from a server text, e.g. Exchange's
/// `Request is throttled. Suggested Backoff Time: 299961 milliseconds`.
///
/// Returns `Some(None)` when the text says it is throttled without a time, `None` if the
/// text is not about throttling.
pub fn parse_throttle(text: &str) -> Option<Option<Duration>> {
    let lower = text.to_ascii_lowercase();
    if let Some(pos) = lower.find("suggested backoff time:") {
        let rest = lower
            .get(pos + "suggested backoff time:".len()..)
            .unwrap_or("")
            .trim_start();
        let digits: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
        let after = rest.get(digits.len()..).unwrap_or("").trim_start();
        let ms = digits.parse::<u64>().ok().map(|n| {
            if after.starts_with("sec") {
                Duration::from_secs(n)
            } else {
                Duration::from_millis(n)
            }
        });
        return Some(ms);
    }
    if lower.contains("throttl") || lower.contains("[limit]") || lower.contains("too many") {
        return Some(None);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exchange_backoff_is_parsed() {
        let t = "Request is throttled. Suggested Backoff Time: 299961 milliseconds";
        assert_eq!(
            parse_throttle(t),
            Some(Some(Duration::from_millis(299_961)))
        );
        assert_eq!(
            parse_throttle("User is authenticated but not connected."),
            None
        );
        assert_eq!(parse_throttle("[LIMIT] too many connections"), Some(None));
    }

    #[test]
    fn classes() {
        assert!(Error::ConnectionClosed.is_retryable());
        assert!(Error::LiteralTooLarge { size: 1, limit: 0 }.is_fatal());
        let e = Error::Throttled {
            backoff: Some(Duration::from_secs(3)),
            text: String::new(),
        };
        assert_eq!(e.retry_after(), Some(Duration::from_secs(3)));
        assert!(e.is_retryable());
    }
}
