//! Closest-candidate hints for unmatched sources, from an inverted index
//! (never a scan of the directory).

use crate::index::KeyIndex;
use crate::model::{DirectoryUser, SourceIdentity};
use crate::normalize::{self, Map, Translit, map_with};

/// Postings scanned per key at most, so a very common surname cannot make
/// one lookup expensive. Postings are in directory-id order, so the cut is
/// deterministic.
const MAX_POSTINGS: usize = 256;
/// Postings taken from a weak key (given name, display word) when nothing
/// strong was found.
const MAX_WEAK_POSTINGS: usize = 32;
/// Postings of a weak key searched to confirm existing candidates.
const MAX_WEAK_SCAN: usize = 8192;
/// Candidates refined with an edit distance.
const REFINE: usize = 16;

#[derive(Clone, Copy)]
enum Field {
    Local = 0,
    Surname = 1,
    Given = 2,
    Display = 3,
}

const WEIGHT: [u32; 4] = [4, 3, 1, 1];
const LABEL: [&str; 4] = ["local part", "surname", "given name", "display-name word"];

pub(crate) struct HintIndex {
    map: KeyIndex<u32>,
    /// First local part (alphanumeric, folded) per target, for edit distance.
    locals: Vec<String>,
}

fn key(field: Field, s: &str) -> u64 {
    crate::index::fingerprint_tagged(field as u8, s)
}

fn folded(s: &str) -> String {
    normalize::alnum(&normalize::fold(s, Translit::Plain))
}

fn words(s: &str) -> impl Iterator<Item = String> + '_ {
    s.split(|c: char| !c.is_alphanumeric())
        .filter(|w| w.chars().count() >= 2)
        .map(folded)
}

impl HintIndex {
    pub(crate) fn build(
        users: &[DirectoryUser],
        addrs: &[Vec<&str>],
        excluded: &[Option<String>],
    ) -> Self {
        let mut map = KeyIndex::with_capacity(users.len() * 6);
        let mut locals = Vec::with_capacity(users.len());
        let mut add = |k: u64, t: u32| map.add_fp(k, t);
        for (t, u) in users.iter().enumerate() {
            let first_local = addrs
                .get(t)
                .and_then(|a| a.first())
                .map(|a| folded(normalize::split(a).0))
                .unwrap_or_default();
            locals.push(first_local);
            if excluded.get(t).is_some_and(Option::is_some) {
                continue;
            }
            let t = t as u32;
            for a in addrs.get(t as usize).into_iter().flatten() {
                let (l, _) = normalize::split(a);
                let l = l.split_once('+').map_or(l, |(b, _)| b);
                let f = folded(l);
                if !f.is_empty() {
                    add(key(Field::Local, &f), t);
                }
            }
            if let Some(s) = &u.surname {
                let f = folded(s);
                if !f.is_empty() {
                    add(key(Field::Surname, &f), t);
                }
            }
            if let Some(g) = &u.given_name {
                let f = folded(g);
                if !f.is_empty() {
                    add(key(Field::Given, &f), t);
                }
            }
            if let Some(d) = &u.display_name {
                for w in words(d) {
                    add(key(Field::Display, &w), t);
                }
            }
        }
        Self {
            map: map.finish(),
            locals,
        }
    }

    /// Up to `n` closest targets: (target, score, why), best first.
    pub(crate) fn closest(&self, s: &SourceIdentity, n: usize) -> Vec<(u32, u32, String)> {
        if n == 0 {
            return Vec::new();
        }
        let mut probes: Vec<(Field, String)> = Vec::new();
        let mut src_local = String::new();
        for raw in std::iter::once(s.login.as_str()).chain(s.address.as_deref()) {
            let lower = raw.trim().to_lowercase();
            let (l, _) = normalize::split(&lower);
            let l = l.split_once('+').map_or(l, |(b, _)| b);
            let f = folded(l);
            if !f.is_empty() {
                if src_local.is_empty() {
                    src_local = f.clone();
                }
                probes.push((Field::Local, f));
            }
            // Words of the local part may be names: "john.smith".
            for w in words(l) {
                probes.push((Field::Surname, w.clone()));
                probes.push((Field::Given, w));
            }
        }
        if let Some(l) = &s.last {
            probes.push((Field::Surname, folded(l)));
        }
        if let Some(f) = &s.first {
            probes.push((Field::Given, folded(f)));
        }
        if let Some(d) = &s.display {
            for w in words(d) {
                probes.push((Field::Display, w.clone()));
                probes.push((Field::Surname, w.clone()));
                probes.push((Field::Given, w));
            }
        }
        probes.retain(|(_, v)| !v.is_empty());
        probes.sort_by(|a, b| (a.0 as u8, &a.1).cmp(&(b.0 as u8, &b.1)));
        probes.dedup_by(|a, b| a.0 as u8 == b.0 as u8 && a.1 == b.1);

        // (target, score, field mask)
        // Strong evidence (local part, surname) proposes candidates; weak
        // evidence (given name, display words) only adds to them, unless
        // nothing strong was found (then a few weak candidates are taken).
        let mut acc: Map<u32, (u32, u8)> = map_with(64);
        let mut strong = true;
        for (field, v) in &probes {
            let bit = 1u8 << (*field as u8);
            let weight = WEIGHT[*field as usize];
            let weak = matches!(field, Field::Given | Field::Display);
            if weak && strong {
                strong = false;
                if !acc.is_empty() {
                    // Switch to "only add" mode for the rest of the probes.
                    acc.shrink_to_fit();
                }
            }
            let postings = self.map.get_fp(key(*field, v));
            if weak && !acc.is_empty() {
                let list: Vec<u32> = postings.take(MAX_WEAK_SCAN).collect();
                for (t, e) in acc.iter_mut() {
                    if e.1 & bit == 0 && list.binary_search(t).is_ok() {
                        e.0 += weight;
                        e.1 |= bit;
                    }
                }
                continue;
            }
            let cap = if weak {
                MAX_WEAK_POSTINGS
            } else {
                MAX_POSTINGS
            };
            for t in postings.take(cap) {
                let e = acc.entry(t).or_insert((0, 0));
                if e.1 & bit == 0 {
                    e.0 += weight;
                    e.1 |= bit;
                }
            }
        }
        let mut ranked: Vec<(u32, u32, u8)> =
            acc.into_iter().map(|(t, (s, m))| (t, s, m)).collect();
        ranked.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        ranked.truncate(REFINE.max(n));
        // Refine: closeness of local parts (typos) adds up to 4.
        let mut refined: Vec<(u32, u32, u8, usize)> = ranked
            .into_iter()
            .map(|(t, score, mask)| {
                let d = self
                    .locals
                    .get(t as usize)
                    .map_or(usize::MAX, |l| bounded_distance(&src_local, l, 4));
                let bonus = 4u32.saturating_sub(d.min(4) as u32);
                (t, score + bonus, mask, d)
            })
            .collect();
        refined.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        refined
            .into_iter()
            .filter(|r| r.1 >= 2)
            .take(n)
            .map(|(t, score, mask, d)| {
                let mut why: Vec<String> = (0..4)
                    .filter(|i| mask & (1 << i) != 0)
                    .map(|i| format!("same {}", LABEL[i]))
                    .collect();
                if d > 0 && d <= 3 {
                    why.push(format!("local part {d} edit(s) away"));
                }
                (t, score, why.join(", "))
            })
            .collect()
    }
}

/// Levenshtein distance, giving up (returning `limit + 1`) once it exceeds
/// `limit`; inputs are cut to 64 characters so one call is bounded.
fn bounded_distance(a: &str, b: &str, limit: usize) -> usize {
    if a.is_empty() || b.is_empty() {
        return limit + 1;
    }
    let a: Vec<char> = a.chars().take(64).collect();
    let b: Vec<char> = b.chars().take(64).collect();
    if a.len().abs_diff(b.len()) > limit {
        return limit + 1;
    }
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for (i, ca) in a.iter().enumerate() {
        cur[0] = i + 1;
        let mut row_min = cur[0];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
            row_min = row_min.min(cur[j + 1]);
        }
        if row_min > limit {
            return limit + 1;
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::bounded_distance;

    #[test]
    fn distance() {
        assert_eq!(bounded_distance("johnsmith", "jonhsmith", 4), 2);
        assert_eq!(bounded_distance("abc", "abc", 4), 0);
        assert_eq!(bounded_distance("a", "abcdefgh", 4), 5);
    }
}
