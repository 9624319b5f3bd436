//! The directory side: each target's addresses (`Addr`, `AddrKind`) and the per-rule indexes
//! built from them (`compile` into a `CompiledRule`).

use super::keys::{in_domains, local_norm, name_variants, pattern_local};
use crate::Error;
use crate::config::{Normalization, Pattern, Rule};
use crate::index::KeyIndex;
use crate::model::DirectoryUser;
use crate::normalize;

/// Which attribute of a target an address came from (lower is stronger).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum AddrKind {
    Mail,
    Upn,
    Primary,
    Secondary,
}

impl AddrKind {
    pub(super) fn label(self) -> &'static str {
        match self {
            AddrKind::Mail => "mail",
            AddrKind::Upn => "userPrincipalName",
            AddrKind::Primary => "primary proxy SMTP:",
            AddrKind::Secondary => "secondary proxy smtp:",
        }
    }
}

/// One address of a target: normalised (lower-case) and as written.
pub(super) struct Addr {
    pub(super) lower: String,
    raw: String,
    pub(super) kind: AddrKind,
}

type Postings = KeyIndex<u32>;

pub(super) enum Body {
    Exact {
        secondary: bool,
    },
    DomainMap {
        map: Vec<(String, String)>,
    },
    LocalPart {
        norm: Normalization,
        index: Postings,
    },
    NamePattern {
        patterns: Vec<Pattern>,
        by_local: Postings,
        by_target_name: KeyIndex<(u32, u16)>,
    },
    FullName {
        index: Postings,
    },
    DisplayName {
        index: Postings,
    },
}

pub(super) struct CompiledRule {
    pub(super) name: String,
    pub(super) kind: &'static str,
    pub(super) confidence: u8,
    pub(super) body: Body,
}

pub(super) fn user_addrs(u: &DirectoryUser) -> Vec<Addr> {
    let mut out = Vec::new();
    let mut add = |raw: &str, kind: AddrKind| {
        if let Some(lower) = normalize::address(raw) {
            // mail, UPN and primary SMTP are often one address: keep it once,
            // with the strongest kind.
            // (The spelling is kept when it differs, for case-sensitive rules.)
            let raw = raw.trim();
            match out
                .iter_mut()
                .find(|a: &&mut Addr| a.lower == lower && a.raw == raw)
            {
                Some(a) => a.kind = a.kind.min(kind),
                None => out.push(Addr {
                    lower,
                    raw: raw.to_owned(),
                    kind,
                }),
            }
        }
    };
    if let Some(m) = &u.mail {
        add(m, AddrKind::Mail);
    }
    add(&u.user_principal_name, AddrKind::Upn);
    for p in &u.proxy_addresses {
        let t = p.trim();
        let raw = match t.split_once(':') {
            Some((prefix, rest)) if prefix.eq_ignore_ascii_case("smtp") => rest,
            _ => t,
        };
        if let Some((_, primary)) = normalize::smtp_proxy(t) {
            add(
                raw,
                if primary {
                    AddrKind::Primary
                } else {
                    AddrKind::Secondary
                },
            );
        }
    }
    out
}

pub(super) fn addrs_lower(addrs: &[Vec<Addr>]) -> Vec<Vec<&str>> {
    addrs
        .iter()
        .map(|v| v.iter().map(|a| a.lower.as_str()).collect())
        .collect()
}

pub(super) fn compile(
    rule: &Rule,
    users: &[DirectoryUser],
    addrs: &[Vec<Addr>],
) -> Result<CompiledRule, Error> {
    let lower_domains =
        |d: &[String]| -> Vec<String> { d.iter().map(|x| x.trim().to_lowercase()).collect() };
    let body = match rule {
        Rule::ExactAddress {
            secondary_proxies, ..
        } => Body::Exact {
            secondary: *secondary_proxies,
        },
        Rule::DomainMap { mappings, .. } => Body::DomainMap {
            map: mappings
                .iter()
                .map(|m| (m.from.trim().to_lowercase(), m.to.trim().to_lowercase()))
                .collect(),
        },
        Rule::LocalPart {
            normalize: norm,
            domains,
            ..
        } => {
            let domains = lower_domains(domains);
            let mut index = KeyIndex::with_capacity(users.len() * 2);
            for (t, list) in addrs.iter().enumerate() {
                for a in list {
                    if !in_domains(&domains, &a.lower) {
                        continue;
                    }
                    let (local, _) = normalize::split(&a.raw);
                    for key in local_norm(local, *norm) {
                        index.add(&key, t as u32);
                    }
                }
            }
            Body::LocalPart {
                norm: *norm,
                index: index.finish(),
            }
        }
        Rule::NamePattern {
            patterns, domains, ..
        } => {
            let domains = lower_domains(domains);
            let patterns = patterns
                .iter()
                .map(|p| Pattern::parse(p))
                .collect::<Result<Vec<_>, _>>()?;
            let mut by_local = KeyIndex::with_capacity(users.len() * 2);
            let mut by_target_name = KeyIndex::with_capacity(users.len() * patterns.len());
            for (t, (u, list)) in users.iter().zip(addrs).enumerate() {
                let t = t as u32;
                let mut any = false;
                for a in list {
                    if !in_domains(&domains, &a.lower) {
                        continue;
                    }
                    any = true;
                    let (local, _) = normalize::split(&a.lower);
                    for key in pattern_local(local) {
                        by_local.add(&key, t);
                    }
                }
                if !any {
                    continue;
                }
                let names = name_variants(
                    u.given_name.as_deref().unwrap_or("").trim(),
                    u.surname.as_deref().unwrap_or("").trim(),
                );
                for (f, l) in &names {
                    for (pi, p) in patterns.iter().enumerate() {
                        if let Some(key) = p.render(f, l) {
                            by_target_name.add(&key, (t, pi as u16));
                        }
                    }
                }
            }
            Body::NamePattern {
                patterns,
                by_local: by_local.finish(),
                // One entry per (key, target): the first pattern that built it.
                by_target_name: by_target_name.finish_by(|a, b| a.0 == b.0),
            }
        }
        Rule::FullName { .. } => {
            let mut index = KeyIndex::with_capacity(users.len() * 2);
            for (t, u) in users.iter().enumerate() {
                for (f, l) in name_variants(
                    u.given_name.as_deref().unwrap_or("").trim(),
                    u.surname.as_deref().unwrap_or("").trim(),
                ) {
                    index.add(&format!("{f} {l}"), t as u32);
                }
            }
            Body::FullName {
                index: index.finish(),
            }
        }
        Rule::DisplayName { .. } => {
            let mut index = KeyIndex::with_capacity(users.len() * 2);
            for (t, u) in users.iter().enumerate() {
                if let Some(d) = &u.display_name {
                    for key in normalize::variants(d, true, normalize::display_key) {
                        if !key.is_empty() {
                            index.add(&key, t as u32);
                        }
                    }
                }
            }
            Body::DisplayName {
                index: index.finish(),
            }
        }
    };
    Ok(CompiledRule {
        name: rule.name(),
        kind: rule.kind(),
        confidence: rule.confidence(),
        body,
    })
}
