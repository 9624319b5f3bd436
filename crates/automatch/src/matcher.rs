//! The matcher: indexes over the directory and the rule chain.

use std::collections::BTreeMap;

use crate::Error;
use crate::config::{Glob, MatchConfig, Normalization, Pattern, Rule};
use crate::index::KeyIndex;
use crate::mapping::Overrides;
use crate::model::{DirectoryUser, SourceIdentity, TargetRef};
use crate::normalize::{self, Translit};
use crate::outcome::{
    Candidate, CreateProposal, Explanation, Hint, MatchReport, Matched, Outcome, RuleTrace,
    SourceResult, Verdict,
};

/// Which attribute of a target an address came from (lower is stronger).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum AddrKind {
    Mail,
    Upn,
    Primary,
    Secondary,
}

impl AddrKind {
    fn label(self) -> &'static str {
        match self {
            AddrKind::Mail => "mail",
            AddrKind::Upn => "userPrincipalName",
            AddrKind::Primary => "primary proxy SMTP:",
            AddrKind::Secondary => "secondary proxy smtp:",
        }
    }
}

/// One address of a target: normalised (lower-case) and as written.
struct Addr {
    lower: String,
    raw: String,
    kind: AddrKind,
}

type Postings = KeyIndex<u32>;

enum Body {
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

struct CompiledRule {
    name: String,
    kind: &'static str,
    confidence: u8,
    body: Body,
}

/// A hit of one rule: target index, how, confidence.
struct Hit {
    t: u32,
    via: String,
    confidence: u8,
}

/// One rule's raw evaluation.
struct Eval {
    keys: Vec<String>,
    not_applicable: Option<String>,
    hits: Vec<Hit>,
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

/// Internal per-source decision (target indices, before run-wide passes).
enum Decision {
    Matched {
        t: u32,
        rule: String,
        confidence: u8,
        via: String,
    },
    Ambiguous {
        rule: String,
        cands: Vec<(u32, String)>,
    },
    Unmatched {
        reason: Option<String>,
    },
    Create {
        upn: Option<String>,
    },
    Excluded {
        reason: String,
    },
}

/// Source-side keys, computed once per source.
struct SourceKeys<'a> {
    source: &'a SourceIdentity,
    /// Normalised addresses (login and address), deduplicated.
    addrs: Vec<String>,
    /// Same addresses trimmed but case kept (for case-sensitive local parts).
    raw_addrs: Vec<String>,
    /// (first, last) alphanumeric folded name variants.
    names: std::cell::OnceCell<Vec<(String, String)>>,
    /// Display key variants (display name, else "first last").
    display: std::cell::OnceCell<Vec<String>>,
}

fn source_keys(s: &SourceIdentity) -> SourceKeys<'_> {
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
    SourceKeys {
        source: s,
        addrs,
        raw_addrs,
        names: std::cell::OnceCell::new(),
        display: std::cell::OnceCell::new(),
    }
}

impl SourceKeys<'_> {
    /// Name variants, computed on first use (most sources are decided by
    /// an address rule before any name rule runs).
    fn names(&self) -> &[(String, String)] {
        self.names.get_or_init(|| {
            let first = self.source.first.as_deref().unwrap_or("").trim();
            let last = self.source.last.as_deref().unwrap_or("").trim();
            name_variants(first, last)
        })
    }

    fn display(&self) -> &[String] {
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
fn name_variants(first: &str, last: &str) -> Vec<(String, String)> {
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

fn local_norm(raw_local: &str, n: Normalization) -> Vec<String> {
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
fn pattern_local(local: &str) -> Vec<String> {
    let base = local.split_once('+').map_or(local, |(b, _)| b);
    normalize::variants(base, true, str::to_owned)
}

fn in_domains(domains: &[String], addr_lower: &str) -> bool {
    domains.is_empty() || {
        let (_, d) = normalize::split(addr_lower);
        domains.iter().any(|x| x == d)
    }
}

/// Matches sources to directory users by the configured rule chain.
///
/// Build once per directory snapshot with [`Matcher::new`]; then
/// [`Matcher::run`] as often as the admin adjusts the manual file.
pub struct Matcher {
    config: MatchConfig,
    users: Vec<DirectoryUser>,
    refs: Vec<TargetRef>,
    excluded: Vec<Option<String>>,
    by_addr: KeyIndex<(u32, AddrKind)>,
    rules: Vec<CompiledRule>,
    hints: crate::hints::HintIndex,
    exclude_sources: Vec<(String, Glob)>,
}

impl std::fmt::Debug for Matcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Matcher")
            .field("users", &self.users.len())
            .field(
                "rules",
                &self
                    .rules
                    .iter()
                    .map(|r| r.name.as_str())
                    .collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl Matcher {
    /// Validates `config`, sorts the directory by id and builds every index.
    ///
    /// Errors: invalid configuration, a duplicate or empty directory id.
    pub fn new(config: MatchConfig, directory: Vec<DirectoryUser>) -> Result<Self, Error> {
        config.validate()?;
        let mut users = directory;
        users.sort_by(|a, b| a.id.cmp(&b.id));
        if u32::try_from(users.len()).is_err() {
            return Err(Error::InvalidDirectory("more than 4 billion users".into()));
        }
        for (i, u) in users.iter().enumerate() {
            if u.id.trim().is_empty() {
                return Err(Error::InvalidDirectory(format!(
                    "user '{}' has an empty id; export the directory with the id column",
                    u.user_principal_name
                )));
            }
            if i > 0 && users[i - 1].id == u.id {
                return Err(Error::InvalidDirectory(format!(
                    "user id '{}' appears twice; each directory user must appear once",
                    u.id
                )));
            }
        }
        let refs: Vec<TargetRef> = users
            .iter()
            .map(|u| TargetRef {
                id: u.id.clone(),
                upn: u.user_principal_name.trim().to_owned(),
            })
            .collect();
        let addrs: Vec<Vec<Addr>> = users.iter().map(user_addrs).collect();
        let target_globs: Vec<(String, Glob)> = config
            .exclude_targets
            .iter()
            .map(|p| (p.clone(), Glob::new(p)))
            .collect();
        let excluded: Vec<Option<String>> = users
            .iter()
            .zip(&addrs)
            .map(|(u, a)| {
                target_globs.iter().find_map(|(p, g)| {
                    let hit = g.matches(&u.id)
                        || g.matches(&u.user_principal_name)
                        || a.iter().any(|x| g.matches(&x.lower));
                    hit.then(|| format!("exclude_targets '{p}'"))
                })
            })
            .collect();

        let mut by_addr = KeyIndex::with_capacity(users.len() * 3);
        for (i, list) in addrs.iter().enumerate() {
            for a in list {
                by_addr.add(&a.lower, (i as u32, a.kind));
            }
        }
        // One entry per (address, target), with the strongest kind.
        let by_addr = by_addr.finish_by(|a, b| a.0 == b.0);

        // Indexes are independent: build them on scoped threads.
        let (rules, hints) = std::thread::scope(|sc| {
            let hints = sc
                .spawn(|| crate::hints::HintIndex::build(&users, &addrs_lower(&addrs), &excluded));
            let rules: Vec<_> = config
                .rules
                .iter()
                .map(|r| {
                    let (users, addrs) = (&users, &addrs);
                    sc.spawn(move || compile(r, users, addrs))
                })
                .collect();
            let rules = rules
                .into_iter()
                .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
                .collect::<Result<Vec<_>, Error>>();
            let hints = hints
                .join()
                .unwrap_or_else(|p| std::panic::resume_unwind(p));
            (rules, hints)
        });
        let rules = rules?;
        let exclude_sources = config
            .exclude_sources
            .iter()
            .map(|p| (p.clone(), Glob::new(p)))
            .collect();
        Ok(Self {
            config,
            users,
            refs,
            excluded,
            by_addr,
            rules,
            hints,
            exclude_sources,
        })
    }

    /// The configuration in use.
    pub fn config(&self) -> &MatchConfig {
        &self.config
    }

    /// Number of directory users.
    pub fn directory_len(&self) -> usize {
        self.users.len()
    }

    /// Matches every source. Results are sorted by login; two sources on
    /// one target are both flagged ([`Matched::conflicts`]); create
    /// proposals get unique UPNs.
    ///
    /// Errors: an empty or duplicate (case-insensitive) source login.
    pub fn run(
        &self,
        sources: &[SourceIdentity],
        overrides: &Overrides,
    ) -> Result<MatchReport, Error> {
        let mut order: Vec<(String, usize)> = Vec::with_capacity(sources.len());
        for (i, s) in sources.iter().enumerate() {
            let key = s.login.trim().to_lowercase();
            if key.is_empty() {
                return Err(Error::InvalidSource(format!(
                    "source #{} has an empty login; every source needs one",
                    i + 1
                )));
            }
            order.push((key, i));
        }
        order.sort();
        for w in order.windows(2) {
            if w[0].0 == w[1].0 {
                return Err(Error::InvalidSource(format!(
                    "source login '{}' appears twice (case-insensitive); remove one",
                    sources[w[1].1].login
                )));
            }
        }
        let mut warnings = Vec::new();
        for login in overrides.pairs().keys() {
            if order
                .binary_search_by(|(k, _)| k.as_str().cmp(login))
                .is_err()
            {
                warnings.push(format!(
                    "manual pair for '{login}' names a source that is not in this run"
                ));
            }
        }
        for login in overrides.exclusions().keys() {
            if order
                .binary_search_by(|(k, _)| k.as_str().cmp(login))
                .is_err()
            {
                warnings.push(format!(
                    "exclusion of '{login}' names a source that is not in this run"
                ));
            }
        }

        // Decisions are independent of each other: split over the cores.
        let threads = std::thread::available_parallelism()
            .map_or(1, usize::from)
            .clamp(1, 8);
        let chunk = order.len().div_ceil(threads).max(1024);
        let decisions: Vec<Decision> = std::thread::scope(|sc| {
            let parts: Vec<_> = order
                .chunks(chunk)
                .map(|part| {
                    sc.spawn(move || {
                        part.iter()
                            .map(|(_, i)| self.decide(&sources[*i], overrides, None))
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            parts
                .into_iter()
                .flat_map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
                .collect()
        });

        // Duplicate-target flagging.
        let mut per_target: BTreeMap<u32, Vec<usize>> = BTreeMap::new();
        for (pos, d) in decisions.iter().enumerate() {
            if let Decision::Matched { t, .. } = d {
                per_target.entry(*t).or_default().push(pos);
            }
        }
        // Create proposals: unique against the directory and each other.
        let mut taken: std::collections::HashSet<String> = std::collections::HashSet::new();
        let mut results = Vec::with_capacity(decisions.len());
        for (pos, d) in decisions.into_iter().enumerate() {
            let src = &sources[order[pos].1];
            let outcome = match d {
                Decision::Matched {
                    t,
                    rule,
                    confidence,
                    via,
                } => {
                    let conflicts = per_target
                        .get(&t)
                        .map(|v| {
                            v.iter()
                                .filter(|&&p| p != pos)
                                .map(|&p| sources[order[p].1].login.trim().to_owned())
                                .collect()
                        })
                        .unwrap_or_default();
                    Outcome::Matched(self.matched(t, rule, confidence, via, conflicts))
                }
                other => self.finish(other, src, &mut taken),
            };
            results.push(SourceResult {
                source: src.login.trim().to_owned(),
                outcome,
            });
        }
        Ok(MatchReport { results, warnings })
    }

    /// Every rule's verdict for one source (all rules are evaluated, the
    /// deciding one is marked), plus the outcome it would get on its own.
    pub fn explain(&self, source: &SourceIdentity, overrides: &Overrides) -> Explanation {
        let mut traces = Vec::new();
        let d = self.decide(source, overrides, Some(&mut traces));
        let login = source.login.trim().to_lowercase();
        let manual = overrides.pairs().get(login.as_str()).cloned();
        let excluded = overrides
            .exclusions()
            .get(login.as_str())
            .cloned()
            .or_else(|| self.config_exclusion(source));
        let outcome = match d {
            Decision::Matched {
                t,
                rule,
                confidence,
                via,
            } => Outcome::Matched(self.matched(t, rule, confidence, via, Vec::new())),
            other => self.finish(other, source, &mut std::collections::HashSet::new()),
        };
        Explanation {
            source: source.login.clone(),
            manual,
            excluded,
            rules: traces,
            outcome,
        }
    }

    fn matched(
        &self,
        t: u32,
        rule: String,
        confidence: u8,
        via: String,
        conflicts: Vec<String>,
    ) -> Matched {
        let u = &self.users[t as usize];
        let mut notes = Vec::new();
        if !u.has_mailbox {
            notes.push("target has no mailbox yet".to_owned());
        }
        if !u.licensed {
            notes.push("target is not licensed".to_owned());
        }
        Matched {
            target: self.refs[t as usize].clone(),
            rule,
            confidence,
            via,
            conflicts,
            notes,
        }
    }

    fn finish(
        &self,
        d: Decision,
        src: &SourceIdentity,
        taken: &mut std::collections::HashSet<String>,
    ) -> Outcome {
        match d {
            Decision::Matched {
                t,
                rule,
                confidence,
                via,
            } => Outcome::Matched(self.matched(t, rule, confidence, via, Vec::new())),
            Decision::Ambiguous { rule, cands } => Outcome::Ambiguous {
                rule,
                candidates: cands
                    .into_iter()
                    .map(|(t, via)| Candidate {
                        target: self.refs[t as usize].clone(),
                        via,
                    })
                    .collect(),
            },
            Decision::Excluded { reason } => Outcome::Excluded { reason },
            Decision::Unmatched { reason } => Outcome::Unmatched {
                reason,
                hints: self.hints_for(src),
            },
            Decision::Create { upn } => match self.propose(src, upn, taken) {
                Ok(p) => Outcome::Create(p),
                Err(reason) => Outcome::Unmatched {
                    reason: Some(reason),
                    hints: self.hints_for(src),
                },
            },
        }
    }

    fn hints_for(&self, src: &SourceIdentity) -> Vec<Hint> {
        self.hints
            .closest(src, self.config.hints)
            .into_iter()
            .map(|(t, score, why)| Hint {
                target: self.refs[t as usize].clone(),
                score,
                why,
            })
            .collect()
    }

    fn config_exclusion(&self, s: &SourceIdentity) -> Option<String> {
        self.exclude_sources
            .iter()
            .find(|(_, g)| g.matches(&s.login))
            .map(|(p, _)| format!("exclude_sources '{p}'"))
    }

    /// Manual pair, exclusion, then the rule chain. With `trace`, every rule
    /// is evaluated and recorded.
    fn decide(
        &self,
        s: &SourceIdentity,
        overrides: &Overrides,
        mut trace: Option<&mut Vec<RuleTrace>>,
    ) -> Decision {
        let login = s.login.trim().to_lowercase();
        let manual = overrides.pairs().get(login.as_str());
        let mut decision = None;
        if let Some(target) = manual {
            decision = Some(self.resolve_manual(target));
        } else if let Some(reason) = overrides.exclusions().get(login.as_str()) {
            decision = Some(Decision::Excluded {
                reason: reason.clone(),
            });
        } else if let Some(reason) = self.config_exclusion(s) {
            decision = Some(Decision::Excluded { reason });
        }
        if decision.is_some() && trace.is_none() {
            return decision.unwrap_or(Decision::Unmatched { reason: None });
        }
        let keys = source_keys(s);
        for rule in &self.rules {
            let e = self.eval(rule, &keys);
            let (verdict, d) =
                self.verdict(rule, e.hits, e.not_applicable.as_deref(), trace.is_some());
            let decides = decision.is_none() && d.is_some();
            if decides {
                decision = d;
            }
            match trace.as_deref_mut() {
                Some(tr) => tr.push(RuleTrace {
                    rule: rule.name.clone(),
                    kind: rule.kind.to_owned(),
                    keys: e.keys,
                    verdict: verdict.unwrap_or(Verdict::NoMatch),
                    decided: decides,
                }),
                None if decision.is_some() => break,
                None => {}
            }
        }
        decision.unwrap_or(if self.config.create.enabled {
            Decision::Create { upn: None }
        } else {
            Decision::Unmatched { reason: None }
        })
    }

    /// Turns hits into a verdict and, when the rule decides, a decision.
    fn verdict(
        &self,
        rule: &CompiledRule,
        mut hits: Vec<Hit>,
        na: Option<&str>,
        want: bool,
    ) -> (Option<Verdict>, Option<Decision>) {
        if let Some(r) = na {
            return (
                want.then(|| Verdict::NotApplicable {
                    reason: r.to_owned(),
                }),
                None,
            );
        }
        // One entry per target: best confidence, then first via.
        hits.sort_by(|a, b| a.t.cmp(&b.t).then(b.confidence.cmp(&a.confidence)));
        hits.dedup_by_key(|h| h.t);
        let (live, dead): (Vec<Hit>, Vec<Hit>) = hits
            .into_iter()
            .partition(|h| self.excluded[h.t as usize].is_none());
        let cand = |h: &Hit| Candidate {
            target: self.refs[h.t as usize].clone(),
            via: h.via.clone(),
        };
        match live.len() {
            0 if dead.is_empty() => (want.then_some(Verdict::NoMatch), None),
            0 => {
                let reason = format!(
                    "rule {} found only excluded targets: {}",
                    rule.name,
                    dead.iter()
                        .map(|h| self.refs[h.t as usize].upn.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                );
                (
                    want.then(|| Verdict::OnlyExcluded(dead.iter().map(cand).collect())),
                    Some(Decision::Unmatched {
                        reason: Some(reason),
                    }),
                )
            }
            1 => {
                let verdict = want.then(|| Verdict::Match(cand(&live[0])));
                let h = live.into_iter().next();
                (
                    verdict,
                    h.map(|h| Decision::Matched {
                        t: h.t,
                        rule: rule.name.clone(),
                        confidence: h.confidence,
                        via: h.via,
                    }),
                )
            }
            _ => (
                want.then(|| Verdict::Ambiguous(live.iter().map(cand).collect())),
                Some(Decision::Ambiguous {
                    rule: rule.name.clone(),
                    cands: live.into_iter().map(|h| (h.t, h.via)).collect(),
                }),
            ),
        }
    }

    fn resolve_manual(&self, target: &str) -> Decision {
        let t = target.trim();
        if let Ok(i) = self.users.binary_search_by(|u| u.id.as_str().cmp(t)) {
            let i = i as u32;
            return Decision::Matched {
                t: i,
                rule: "manual".into(),
                confidence: 100,
                via: format!("manual pair -> id {t}"),
            };
        }
        let hits: Vec<u32> = normalize::address(t)
            .map(|a| self.by_addr.get(&a).map(|(i, _)| i).collect())
            .unwrap_or_default();
        match hits.as_slice() {
            [i] => Decision::Matched {
                t: *i,
                rule: "manual".into(),
                confidence: 100,
                via: format!("manual pair -> {t}"),
            },
            [] if self.config.create.enabled && normalize::address(t).is_some() => {
                Decision::Create {
                    upn: Some(t.to_owned()),
                }
            }
            [] => Decision::Unmatched {
                reason: Some(format!(
                    "manual target '{t}' is not in the directory; fix the mapping file \
                     (use an id, UPN or address of an existing user)"
                )),
            },
            _ => Decision::Ambiguous {
                rule: "manual".into(),
                cands: hits
                    .into_iter()
                    .map(|i| {
                        (
                            i,
                            format!("manual target {t} is an address of several users; use the id"),
                        )
                    })
                    .collect(),
            },
        }
    }

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

    fn eval(&self, rule: &CompiledRule, k: &SourceKeys<'_>) -> Eval {
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
                if k.raw_addrs.is_empty() {
                    return Eval::na("source has no address");
                }
                for raw in &k.raw_addrs {
                    let (local, _) = normalize::split(raw);
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

    fn propose(
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

fn user_addrs(u: &DirectoryUser) -> Vec<Addr> {
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

fn addrs_lower(addrs: &[Vec<Addr>]) -> Vec<Vec<&str>> {
    addrs
        .iter()
        .map(|v| v.iter().map(|a| a.lower.as_str()).collect())
        .collect()
}

fn compile(
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
