//! Queries through hickory-resolver: one resolver per check, so nothing is cached from one call
//! to the next.

use std::net::SocketAddr;

use hickory_resolver::TokioResolver;
use hickory_resolver::config::{
    ConnectionConfig, NameServerConfig, ResolveHosts, ResolverConfig, ResolverOpts,
};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::net::{DnsError, NetError};
use hickory_resolver::proto::op::ResponseCode;
use hickory_resolver::proto::rr::{RData, RecordType};

use crate::CheckOptions;
use crate::error::{Error, LookupFailure};
use crate::evaluate::{Mx, Srv};
use crate::expected::normalize_host;
use crate::report::RecordKind;

/// A resolver for one check and the words naming its server(s) in errors.
pub(crate) struct Dns {
    resolver: TokioResolver,
    server: String,
}

impl Dns {
    /// A resolver asking `opts.server` over UDP and TCP, or the system's DNS servers, without a
    /// hosts file, with `opts.timeout` for each attempt.
    pub(crate) fn new(opts: &CheckOptions) -> Result<Self, Error> {
        let (config, server) = match opts.server {
            Some(addr) => (single_server(addr), format!("DNS server {addr}")),
            None => {
                let server = "the system's DNS servers".to_owned();
                match hickory_resolver::system_conf::read_system_conf() {
                    Ok((config, _)) => (config, server),
                    Err(e) => {
                        return Err(Error::Resolver {
                            server,
                            source: Box::new(e),
                        });
                    }
                }
            }
        };
        let mut options = ResolverOpts::default();
        options.timeout = opts.timeout;
        options.use_hosts_file = ResolveHosts::Never;
        options.cache_size = 0;
        let resolver = TokioResolver::builder_with_config(config, TokioRuntimeProvider::default())
            .with_options(options)
            .build()
            .map_err(|e| Error::Resolver {
                server: server.clone(),
                source: Box::new(e),
            })?;
        Ok(Dns { resolver, server })
    }

    /// The records of `record_type` at `name` (a normalized domain); empty when the name does
    /// not exist or has none of that type.
    async fn query(
        &self,
        domain: &str,
        kind: RecordKind,
        name: &str,
        record_type: RecordType,
    ) -> Result<Vec<RData>, Error> {
        // The trailing dot makes the name absolute: no search domains are tried.
        match self.resolver.lookup(format!("{name}."), record_type).await {
            Ok(lookup) => Ok(lookup
                .answers()
                .iter()
                .filter(|r| r.record_type() == record_type)
                .map(|r| r.data.clone())
                .collect()),
            Err(e) if e.is_no_records_found() => Ok(Vec::new()),
            Err(e) => Err(Error::Lookup {
                domain: domain.to_owned(),
                kind,
                record_type: record_type_name(record_type),
                name: name.to_owned(),
                server: self.server.clone(),
                failure: classify(&e),
                source: Box::new(e),
            }),
        }
    }

    pub(crate) async fn mx(&self, domain: &str) -> Result<Vec<Mx>, Error> {
        let records = self
            .query(domain, RecordKind::Mx, domain, RecordType::MX)
            .await?;
        Ok(records
            .into_iter()
            .filter_map(|r| match r {
                RData::MX(mx) => Some(Mx {
                    preference: mx.preference,
                    host: normalize_host(&mx.exchange.to_ascii()),
                }),
                _ => None,
            })
            .collect())
    }

    /// Each TXT record's character-strings joined without spaces (RFC 7208 §3.3).
    pub(crate) async fn txt(&self, domain: &str) -> Result<Vec<String>, Error> {
        let records = self
            .query(domain, RecordKind::Spf, domain, RecordType::TXT)
            .await?;
        Ok(records
            .into_iter()
            .filter_map(|r| match r {
                RData::TXT(txt) => {
                    let bytes: Vec<u8> = txt
                        .txt_data
                        .iter()
                        .flat_map(|s| s.iter().copied())
                        .collect();
                    Some(String::from_utf8_lossy(&bytes).into_owned())
                }
                _ => None,
            })
            .collect())
    }

    pub(crate) async fn cname(
        &self,
        domain: &str,
        kind: RecordKind,
        name: &str,
    ) -> Result<Vec<String>, Error> {
        let records = self.query(domain, kind, name, RecordType::CNAME).await?;
        Ok(records
            .into_iter()
            .filter_map(|r| match r {
                RData::CNAME(cname) => Some(normalize_host(&cname.0.to_ascii())),
                _ => None,
            })
            .collect())
    }

    /// A and AAAA records at `name`, as `A 192.0.2.1` / `AAAA 2001:db8::1`.
    pub(crate) async fn addresses(
        &self,
        domain: &str,
        kind: RecordKind,
        name: &str,
    ) -> Result<Vec<String>, Error> {
        let (a, aaaa) = futures_util::future::join(
            self.query(domain, kind, name, RecordType::A),
            self.query(domain, kind, name, RecordType::AAAA),
        )
        .await;
        Ok(a?
            .into_iter()
            .chain(aaaa?)
            .filter_map(|r| match r {
                RData::A(a) => Some(format!("A {}", a.0)),
                RData::AAAA(aaaa) => Some(format!("AAAA {}", aaaa.0)),
                _ => None,
            })
            .collect())
    }

    pub(crate) async fn srv(
        &self,
        domain: &str,
        kind: RecordKind,
        name: &str,
    ) -> Result<Vec<Srv>, Error> {
        let records = self.query(domain, kind, name, RecordType::SRV).await?;
        Ok(records
            .into_iter()
            .filter_map(|r| match r {
                RData::SRV(srv) => Some(Srv {
                    priority: srv.priority,
                    weight: srv.weight,
                    port: srv.port,
                    target: normalize_host(&srv.target.to_ascii()),
                }),
                _ => None,
            })
            .collect())
    }
}

/// One server, asked over UDP and TCP (TCP when an answer does not fit a UDP datagram).
fn single_server(addr: SocketAddr) -> ResolverConfig {
    let mut udp = ConnectionConfig::udp();
    udp.port = addr.port();
    let mut tcp = ConnectionConfig::tcp();
    tcp.port = addr.port();
    ResolverConfig::from_name_servers(vec![NameServerConfig::new(addr.ip(), true, vec![udp, tcp])])
}

fn classify(e: &NetError) -> LookupFailure {
    match e {
        NetError::Timeout => LookupFailure::Timeout,
        NetError::Dns(DnsError::ResponseCode(ResponseCode::ServFail)) => {
            LookupFailure::ServerFailure
        }
        NetError::Dns(DnsError::ResponseCode(ResponseCode::Refused)) => LookupFailure::Refused,
        NetError::Io(io) if io.kind() == std::io::ErrorKind::TimedOut => LookupFailure::Timeout,
        NetError::Io(_) | NetError::NoConnections => LookupFailure::Unreachable,
        _ => LookupFailure::Other,
    }
}

fn record_type_name(record_type: RecordType) -> &'static str {
    match record_type {
        RecordType::MX => "MX",
        RecordType::TXT => "TXT",
        RecordType::CNAME => "CNAME",
        RecordType::SRV => "SRV",
        RecordType::A => "A",
        RecordType::AAAA => "AAAA",
        _ => "DNS",
    }
}
