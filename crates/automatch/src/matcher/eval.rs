//! Evaluating one compiled rule for one source: the `Hit`s it finds and the keys it tried
//! (`Eval`).

use super::Matcher;
use super::compile::{AddrKind, Body, CompiledRule};
use super::keys::{SourceKeys, local_norm, pattern_local};
use crate::normalize;

/// A hit of one rule: target index, how, confidence.
pub(super) struct Hit {
    pub(super) t: u32,
    pub(super) via: String,
    pub(super) confidence: u8,
}

/// One rule's raw evaluation.
pub(super) struct Eval {
    pub(super) keys: Vec<String>,
    pub(super) not_applicable: Option<String>,
    pub(super) hits: Vec<Hit>,
}

impl Eval {
    fn na(reason: &str) -> Self {
        Self {
            keys: Vec::new(),
            not_applicable: Some(reason.to_owned()),
            hits: Vec::new(),
        }
    }
}

impl Matcher {
    fn addr_hits(&self, key: &str, label: &str, base: u8, secondary: bool, out: &mut Vec<Hit>) {
        {
            for (t, kind) in self.by_addr.get(key) {
                if kind == AddrKind::Secondary && !secondary {
                    continue;
                }
                let confidence = if kind == AddrKind::Secondary {
                    base.saturating_sub(5)
                } else {
                    base
                };
                out.push(Hit {
                    t,
                    via: format!("{label} {key} = {}", kind.label()),
                    confidence,
                });
            }
        }
    }

    pub(super) fn eval(&self, rule: &CompiledRule, k: &SourceKeys<'_>) -> Eval {
        let mut hits = Vec::new();
        let mut keys = Vec::new();
        let conf = rule.confidence;
        match &rule.body {
            Body::Exact { secondary } => {
                if k.addrs.is_empty() {
                    return Eval::na(
                        "source has no address (login and address are not e-mail addresses)",
                    );
                }
                for a in &k.addrs {
                    self.addr_hits(a, "address", conf, *secondary, &mut hits);
                    keys.push(a.clone());
                }
            }
            Body::DomainMap { map } => {
                if k.addrs.is_empty() {
                    return Eval::na("source has no address");
                }
                for a in &k.addrs {
                    let (local, domain) = normalize::split(a);
                    for (from, to) in map {
                        if domain == from {
                            let key = format!("{local}@{to}");
                            self.addr_hits(&key, &format!("{a} mapped to"), conf, true, &mut hits);
                            keys.push(key);
                        }
                    }
                }
                if keys.is_empty() {
                    return Eval::na("no mapping for the source domain");
                }
            }
            Body::LocalPart { norm, index } => {
                if k.raw_addrs.is_empty() && k.bare_login.is_none() {
                    return Eval::na("source has no address and its login is not a bare name");
                }
                // A bare login (`alice`) is a local part in itself, looked up under every
                // target domain: two domains with that local part are ambiguous, as they
                // should be.
                let locals = k
                    .raw_addrs
                    .iter()
                    .map(|raw| normalize::split(raw).0)
                    .chain(k.bare_login.as_deref());
                for local in locals {
                    for key in local_norm(local, *norm) {
                        {
                            for t in index.get(&key) {
                                hits.push(Hit {
                                    t,
                                    via: format!("local part '{key}'"),
                                    confidence: conf,
                                });
                            }
                        }
                        if !keys.contains(&key) {
                            keys.push(key);
                        }
                    }
                }
            }
            Body::NamePattern {
                patterns,
                by_local,
                by_target_name,
            } => {
                if k.names().is_empty() && k.addrs.is_empty() {
                    return Eval::na("source has neither first+last name nor an address");
                }
                for (f, l) in k.names() {
                    for p in patterns {
                        if let Some(key) = p.render(f, l) {
                            {
                                for t in by_local.get(&key) {
                                    hits.push(Hit {
                                        t,
                                        via: format!(
                                            "name pattern {} '{key}' = target local part",
                                            p.text
                                        ),
                                        confidence: conf,
                                    });
                                }
                            }
                            if !keys.contains(&key) {
                                keys.push(key);
                            }
                        }
                    }
                }
                // Reverse direction only when the source's own names found
                // nothing: explicit names are the stronger evidence.
                let forward_hit = !hits.is_empty();
                for a in &k.addrs {
                    let (local, _) = normalize::split(a);
                    for key in pattern_local(local) {
                        if !forward_hit {
                            for (t, pi) in by_target_name.get(&key) {
                                let p = patterns.get(pi as usize).map_or("?", |p| p.text.as_str());
                                hits.push(Hit {
                                    t,
                                    via: format!("source local part '{key}' = name pattern {p} of target name"),
                                    confidence: conf,
                                });
                            }
                        }
                        let tagged = format!("local:{key}");
                        if !keys.contains(&tagged) {
                            keys.push(tagged);
                        }
                    }
                }
            }
            Body::FullName { index } => {
                if k.names().is_empty() {
                    return Eval::na("source has no first+last name");
                }
                for (f, l) in k.names() {
                    let key = format!("{f} {l}");
                    {
                        for t in index.get(&key) {
                            hits.push(Hit {
                                t,
                                via: format!("name '{key}' = givenName+surname"),
                                confidence: conf,
                            });
                        }
                    }
                    keys.push(key);
                }
            }
            Body::DisplayName { index } => {
                if k.display().is_empty() {
                    return Eval::na("source has no display name or first+last name");
                }
                for key in k.display() {
                    {
                        for t in index.get(key) {
                            hits.push(Hit {
                                t,
                                via: format!("display name '{key}'"),
                                confidence: conf,
                            });
                        }
                    }
                    keys.push(key.clone());
                }
            }
        }
        Eval {
            keys,
            not_applicable: None,
            hits,
        }
    }
}
