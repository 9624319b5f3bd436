//! Cutover check: has a domain's DNS been switched to Exchange Online?
//!
//! [`check`] asks a DNS server (or the system's) for a domain's records and reports each one
//! against what Exchange Online needs:
//!
//! * **MX** — a host `<domain with dots as dashes>.mail.protection.outlook.com` (or its DNSSEC
//!   form `….<x>-v1.mx.microsoft`), and no other host with the same or a better priority. A
//!   remaining host with a worse priority is a [`RecordKind::BackupMx`] warning.
//! * **Autodiscover** — `autodiscover.<domain>` is a CNAME to `autodiscover.outlook.com`.
//! * **SPF** — exactly one `v=spf1` TXT record at the domain, with
//!   `include:spf.protection.outlook.com` before its `all`.
//! * optionally ([`CheckOptions::with_teams`]) the Teams / Skype for Business Online records
//!   `sip` and `lyncdiscover` (CNAME), `_sip._tls` and `_sipfederationtls._tcp` (SRV), as
//!   warnings only.
//!
//! The expected values follow Microsoft's documented patterns (see the constants, each with its
//! source) unless the caller passes [`ExpectedRecords`] read elsewhere, such as from Microsoft
//! Graph's `serviceConfigurationRecords`.
//!
//! Every check in the [`DomainReport`] names what was found, what is expected and, when it is not
//! ok, a fix sentence naming the value the record must have. A record that does not exist is a
//! [`Status::Missing`] check; only a failed query (timeout, SERVFAIL, REFUSED, unreachable
//! server) is an [`Error`].
//!
//! ```no_run
//! use std::time::Duration;
//! use o365_migrate_cutover::{check, CheckOptions};
//!
//! # async fn run() -> Result<(), o365_migrate_cutover::Error> {
//! let opts = CheckOptions::default()
//!     .with_server("192.0.2.53:53".parse().unwrap())
//!     .with_timeout(Duration::from_secs(3));
//! let report = check("contoso.com", &opts).await?;
//! print!("{report}");
//! std::process::exit(if report.passed() { 0 } else { 1 });
//! # }
//! ```

mod dns;
mod error;
mod evaluate;
mod expected;
mod report;

use std::net::SocketAddr;
use std::time::Duration;

use futures_util::StreamExt;

pub use error::{BoxError, Error, LookupFailure};
pub use expected::{
    AUTODISCOVER_TARGET, ExpectedRecords, MX_DNSSEC_SUFFIX, MX_PREFERENCE, MX_SUFFIX, SPF_INCLUDE,
};
pub use report::{DomainReport, RecordCheck, RecordKind, Status};

use dns::Dns;
use expected::{
    LYNCDISCOVER_TARGET, SIP_FEDERATION_SRV, SIP_TARGET, SIP_TLS_SRV, normalize_domain,
};

/// How [`check_all`] runs at most this many domain checks at once.
const CONCURRENT_DOMAINS: usize = 8;

/// How to check.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct CheckOptions {
    /// The DNS server to ask, over UDP and TCP. `None`: the system's DNS servers
    /// (`/etc/resolv.conf` on Unix).
    pub server: Option<SocketAddr>,
    /// How long to wait for each answer. A query that gets none is tried once more, so a server
    /// that never answers fails a check after about twice this. Default 5 s.
    pub timeout: Duration,
    /// The records to expect. `None`: Microsoft's documented patterns for the domain
    /// ([`ExpectedRecords::for_domain`]). These belong to one domain: [`check_all`] applies them
    /// to every domain it checks.
    pub expected: Option<ExpectedRecords>,
    /// Also check the Teams / Skype for Business Online records (warnings only). Default off.
    pub teams: bool,
}

impl Default for CheckOptions {
    fn default() -> Self {
        CheckOptions {
            server: None,
            timeout: Duration::from_secs(5),
            expected: None,
            teams: false,
        }
    }
}

impl CheckOptions {
    /// Ask this DNS server (UDP and TCP) instead of the system's.
    pub fn with_server(mut self, server: SocketAddr) -> Self {
        self.server = Some(server);
        self
    }

    /// Wait this long for each answer.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Expect these records instead of Microsoft's documented patterns.
    pub fn with_expected(mut self, expected: ExpectedRecords) -> Self {
        self.expected = Some(expected);
        self
    }

    /// Also report the Teams / Skype for Business Online records, as warnings.
    pub fn with_teams(mut self, teams: bool) -> Self {
        self.teams = teams;
        self
    }
}

/// Checks one domain's MX, Autodiscover and SPF records (and the Teams records when
/// [`CheckOptions::teams`] is set).
///
/// Each call builds its own resolver, so nothing is cached from one call to the next: a record
/// changed at the DNS server is seen by the next call (the server's own cache aside).
///
/// # Errors
///
/// [`Error::InvalidDomain`] when `domain` is not a domain name, [`Error::Resolver`] when the
/// system's DNS configuration cannot be read, [`Error::Lookup`] when a query fails (timeout,
/// SERVFAIL, REFUSED, unreachable server). A record that does not exist is not an error.
pub async fn check(domain: &str, opts: &CheckOptions) -> Result<DomainReport, Error> {
    let domain = normalize_domain(domain)?;
    let expected = match &opts.expected {
        Some(expected) => expected.normalized(),
        None => ExpectedRecords::for_domain(&domain)?,
    };
    let dns = Dns::new(opts)?;
    let autodiscover = format!("autodiscover.{domain}");

    let (mx, txt, cname) = futures_util::future::join3(
        dns.mx(&domain),
        dns.txt(&domain),
        dns.cname(&domain, RecordKind::Autodiscover, &autodiscover),
    )
    .await;
    let (mx, txt, cname) = (mx?, txt?, cname?);
    // An address record where the CNAME belongs is the old server's: show it.
    let addresses = if cname.is_empty() {
        dns.addresses(&domain, RecordKind::Autodiscover, &autodiscover)
            .await?
    } else {
        Vec::new()
    };

    let mut checks = evaluate::check_mx(&domain, &expected, &mx);
    checks.push(evaluate::check_autodiscover(
        &autodiscover,
        &expected,
        &cname,
        &addresses,
    ));
    checks.push(evaluate::check_spf(&domain, &expected, &txt));

    if opts.teams {
        let sip = format!("sip.{domain}");
        let lyncdiscover = format!("lyncdiscover.{domain}");
        let sip_tls = format!("_sip._tls.{domain}");
        let federation = format!("_sipfederationtls._tcp.{domain}");
        let (sip_found, lync_found) = futures_util::future::join(
            dns.cname(&domain, RecordKind::Sip, &sip),
            dns.cname(&domain, RecordKind::Lyncdiscover, &lyncdiscover),
        )
        .await;
        let (tls_found, fed_found) = futures_util::future::join(
            dns.srv(&domain, RecordKind::SipTls, &sip_tls),
            dns.srv(&domain, RecordKind::SipFederationTls, &federation),
        )
        .await;
        checks.push(evaluate::check_teams_cname(
            RecordKind::Sip,
            &sip,
            SIP_TARGET,
            &sip_found?,
        ));
        checks.push(evaluate::check_teams_cname(
            RecordKind::Lyncdiscover,
            &lyncdiscover,
            LYNCDISCOVER_TARGET,
            &lync_found?,
        ));
        checks.push(evaluate::check_teams_srv(
            RecordKind::SipTls,
            &sip_tls,
            &SIP_TLS_SRV,
            &tls_found?,
        ));
        checks.push(evaluate::check_teams_srv(
            RecordKind::SipFederationTls,
            &federation,
            &SIP_FEDERATION_SRV,
            &fed_found?,
        ));
    }

    Ok(DomainReport { domain, checks })
}

/// Checks several domains, a few at a time, and returns one result per domain in the order
/// given. A failed domain does not stop the others.
///
/// `opts.expected`, when set, is used for every domain; leave it `None` here unless all the
/// domains share the same records, and call [`check`] per domain otherwise.
pub async fn check_all<I, S>(domains: I, opts: &CheckOptions) -> Vec<Result<DomainReport, Error>>
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    let domains: Vec<S> = domains.into_iter().collect();
    futures_util::stream::iter(domains.iter().map(|d| check(d.as_ref(), opts)))
        .buffered(CONCURRENT_DOMAINS)
        .collect()
        .await
}
