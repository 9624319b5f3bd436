//! The crate's error type.

use std::fmt;

use crate::report::RecordKind;

/// A boxed error kept as the source of an [`Error`] (the resolver's own error types stay out of
/// this crate's API).
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Errors from this crate. A record that does not exist (NXDOMAIN, or no records of the type) is
/// not an error: it is a [`Status::Missing`](crate::Status::Missing) check in the report. An error
/// means the check could not be made at all.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The domain to check is not a domain name.
    #[error(
        "{domain:?} is not a domain name: {reason} (hint: give the bare domain, such as contoso.com, without a user part, URL or port)"
    )]
    InvalidDomain {
        /// The text given as the domain.
        domain: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The DNS resolver could not be set up (for example an unreadable `/etc/resolv.conf`).
    #[error(
        "cannot set up the DNS resolver for {server}: {source} (hint: check the system's DNS configuration, or name a DNS server explicitly)"
    )]
    Resolver {
        /// The DNS server(s) that were to be asked, as text.
        server: String,
        /// The resolver's error.
        source: BoxError,
    },
    /// A query could not be answered: the server timed out, failed (SERVFAIL), refused it or
    /// could not be reached.
    #[error(
        "{domain}: cannot look up the {record_type} record of {name} ({kind} check) from {server}: {failure} (hint: {})",
        failure.hint()
    )]
    Lookup {
        /// The domain being checked.
        domain: String,
        /// The check the query belongs to.
        kind: RecordKind,
        /// The record type asked for (`MX`, `TXT`, `CNAME`, `SRV`, `A`, `AAAA`).
        record_type: &'static str,
        /// The name that was queried.
        name: String,
        /// The DNS server(s) asked, as text.
        server: String,
        /// What went wrong, in categories a caller can act on.
        failure: LookupFailure,
        /// The resolver's error.
        source: BoxError,
    },
}

/// Why a DNS query failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum LookupFailure {
    /// No answer came back in time.
    Timeout,
    /// The server answered SERVFAIL: it could not resolve the name itself.
    ServerFailure,
    /// The server answered REFUSED.
    Refused,
    /// The server could not be reached (connection refused, network unreachable).
    Unreachable,
    /// Anything else (a malformed answer, an unexpected response code).
    Other,
}

impl LookupFailure {
    /// What to do about it.
    pub fn hint(self) -> &'static str {
        match self {
            LookupFailure::Timeout => {
                "check that the DNS server is running and reachable (UDP and TCP port), or raise the timeout"
            }
            LookupFailure::ServerFailure => {
                "the domain's own name servers did not answer correctly (down, lame delegation or broken DNSSEC); try again later, or ask another DNS server"
            }
            LookupFailure::Refused => {
                "the DNS server does not answer for this domain or this client; ask a recursive DNS server, or the domain's own name server"
            }
            LookupFailure::Unreachable => "check the DNS server's address and port",
            LookupFailure::Other => "try again; if it persists, ask another DNS server",
        }
    }
}

impl fmt::Display for LookupFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LookupFailure::Timeout => "no answer in time",
            LookupFailure::ServerFailure => "the DNS server answered SERVFAIL",
            LookupFailure::Refused => "the DNS server refused the query (REFUSED)",
            LookupFailure::Unreachable => "the DNS server cannot be reached",
            LookupFailure::Other => "the query failed",
        })
    }
}
