//! Lookup keys: the source-side keys computed once per source (`SourceKeys`) and the
//! normalisations both sides share (name variants, local parts, name-pattern locals, domains).

use crate::config::Normalization;
use crate::model::SourceIdentity;
use crate::normalize;

/// Source-side keys, computed once per source.
pub(super) struct SourceKeys<'a> {
    source: &'a SourceIdentity,
    /// Normalised addresses (login and address), deduplicated.
    pub(super) addrs: Vec<String>,
    /// Same addresses trimmed but case kept (for case-sensitive local parts).
    pub(super) raw_addrs: Vec<String>,
    /// The login when it is a bare username (`alice`, no `@`): it is a local part, to be found
    /// under any of the target's domains.
    pub(super) bare_login: Option<String>,
    /// (first, last) alphanumeric folded name variants.
    names: std::cell::OnceCell<Vec<(String, String)>>,
    /// Display key variants (display name, else "first last").
    display: std::cell::OnceCell<Vec<String>>,
}

pub(super) fn source_keys(s: &SourceIdentity) -> SourceKeys<'_> {
    let mut addrs = Vec::new();
    let mut raw_addrs = Vec::new();
    for raw in std::iter::once(s.login.as_str()).chain(s.address.as_deref()) {
        if let Some(a) = normalize::address(raw)
            && !addrs.contains(&a)
        {
            addrs.push(a);
            raw_addrs.push(raw.trim().to_owned());
        }
    }
    let login = s.login.trim();
    let bare_login = (!login.is_empty()
        && !login.contains('@')
        && !login.chars().any(|c| c.is_whitespace() || c.is_control()))
    .then(|| login.to_owned());
    SourceKeys {
        source: s,
        bare_login,
        addrs,
        raw_addrs,
        names: std::cell::OnceCell::new(),
        display: std::cell::OnceCell::new(),
    }
}

impl SourceKeys<'_> {
    /// Name variants, computed on first use (most sources are decided by
    /// an address rule before any name rule runs).
    pub(super) fn names(&self) -> &[(String, String)] {
        self.names.get_or_init(|| {
            let first = self.source.first.as_deref().unwrap_or("").trim();
            let last = self.source.last.as_deref().unwrap_or("").trim();
            name_variants(first, last)
        })
    }

    pub(super) fn display(&self) -> &[String] {
        self.display.get_or_init(|| {
            let first = self.source.first.as_deref().unwrap_or("").trim();
            let last = self.source.last.as_deref().unwrap_or("").trim();
            let display_src = match self.source.display.as_deref().map(str::trim) {
                Some(d) if !d.is_empty() => d.to_owned(),
                _ => format!("{first} {last}"),
            };
            normalize::variants(&display_src, true, normalize::display_key)
                .into_iter()
                .filter(|k| !k.is_empty())
                .collect()
        })
    }
}

/// Folded alphanumeric (first, last) pairs: plain and German transliteration.
pub(super) fn name_variants(first: &str, last: &str) -> Vec<(String, String)> {
    if first.is_empty() || last.is_empty() {
        return Vec::new();
    }
    let fs = normalize::variants(first, true, normalize::alnum);
    let ls = normalize::variants(last, true, normalize::alnum);
    let mut out = Vec::with_capacity(fs.len() * ls.len());
    for f in &fs {
        for l in &ls {
            if !f.is_empty() && !l.is_empty() {
                out.push((f.clone(), l.clone()));
            }
        }
    }
    out
}

pub(super) fn local_norm(raw_local: &str, n: Normalization) -> Vec<String> {
    let mut s = raw_local;
    if n.plus_tags
        && let Some((base, _)) = s.split_once('+')
    {
        s = base;
    }
    let undot = |x: &str| -> String {
        if n.dots {
            x.chars().filter(|&c| c != '.').collect()
        } else {
            x.to_owned()
        }
    };
    if n.diacritics {
        normalize::variants(s, true, undot)
    } else if n.case {
        vec![undot(&s.to_lowercase())]
    } else {
        vec![undot(s)]
    }
    .into_iter()
    .filter(|k| !k.is_empty())
    .collect()
}

/// Folded local part for name patterns: lower-case, diacritics folded,
/// plus-tag dropped, separators kept.
pub(super) fn pattern_local(local: &str) -> Vec<String> {
    let base = local.split_once('+').map_or(local, |(b, _)| b);
    normalize::variants(base, true, str::to_owned)
}

pub(super) fn in_domains(domains: &[String], addr_lower: &str) -> bool {
    domains.is_empty() || {
        let (_, d) = normalize::split(addr_lower);
        domains.iter().any(|x| x == d)
    }
}
