//! Create proposals: a unique UPN and mailNickname for a source that matched no one (when
//! `[create]` is enabled).

use super::Matcher;
use crate::config::Pattern;
use crate::model::SourceIdentity;
use crate::normalize::{self, Translit};
use crate::outcome::CreateProposal;

impl Matcher {
    pub(super) fn propose(
        &self,
        src: &SourceIdentity,
        upn: Option<String>,
        taken: &mut std::collections::HashSet<String>,
    ) -> Result<CreateProposal, String> {
        let c = &self.config.create;
        let domain = c.domain.trim().to_lowercase();
        let first = src.first.as_deref().unwrap_or("").trim();
        let last = src.last.as_deref().unwrap_or("").trim();
        let (local, dom) = match upn {
            Some(u) => {
                let a = normalize::address(&u).unwrap_or(u);
                let (l, d) = normalize::split(&a);
                if nickname(l) != l {
                    return Err(format!(
                        "manual target '{a}' cannot be created: use only a-z, 0-9, '.', '_', '-' \
                         before the @ (no leading, trailing or doubled dots)"
                    ));
                }
                (l.to_owned(), d.to_owned())
            }
            None => {
                let pattern = c.upn_pattern.as_deref().unwrap_or("first.last");
                let from_names = Pattern::parse(pattern).ok().and_then(|p| {
                    let f = nickname(&normalize::alnum(&normalize::fold(first, Translit::Plain)));
                    let l = nickname(&normalize::alnum(&normalize::fold(last, Translit::Plain)));
                    p.render(&f, &l)
                });
                let from_login = || {
                    let raw = src
                        .address
                        .as_deref()
                        .and_then(normalize::address)
                        .or_else(|| normalize::address(&src.login))
                        .unwrap_or_else(|| src.login.trim().to_lowercase());
                    let (l, _) = normalize::split(&raw);
                    let l = l.split_once('+').map_or(l, |(b, _)| b);
                    nickname(&normalize::fold(l, Translit::Plain))
                };
                let l = from_names
                    .map(|s| nickname(&s))
                    .filter(|s| !s.is_empty())
                    .unwrap_or_else(from_login);
                (l, domain)
            }
        };
        if local.is_empty() {
            return Err(
                "cannot propose a new user: no usable ASCII name or login; add a manual pair with the UPN to create"
                    .into(),
            );
        }
        // Unique against the directory and other proposals.
        let mut n = 1u32;
        let (upn, nick) = loop {
            let nick = if n == 1 {
                local.clone()
            } else {
                format!("{local}{n}")
            };
            let upn = format!("{nick}@{dom}");
            if !self.by_addr.contains(&upn) && !taken.contains(&upn) {
                break (upn, nick);
            }
            n += 1;
        };
        taken.insert(upn.clone());
        let display = match src.display.as_deref().map(str::trim) {
            Some(d) if !d.is_empty() => d.to_owned(),
            _ if !first.is_empty() || !last.is_empty() => {
                format!("{first} {last}").trim().to_owned()
            }
            _ => nick.clone(),
        };
        Ok(CreateProposal {
            upn,
            mail_nickname: nick,
            display_name: display,
            usage_location: c.usage_location.trim().to_uppercase(),
            sku: c.sku.clone(),
            hints: self.hints_for(src),
        })
    }
}

/// mailNickname-safe: ASCII letters, digits, `.`, `_`, `-`; no leading,
/// trailing or doubled dots; at most 64 characters.
fn nickname(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        let c = c.to_ascii_lowercase();
        if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
            out.push(c);
        } else if c == '.' && !out.is_empty() && !out.ends_with('.') {
            out.push('.');
        }
    }
    while out.ends_with('.') {
        out.pop();
    }
    out.truncate(64);
    while out.ends_with('.') {
        out.pop();
    }
    out
}
