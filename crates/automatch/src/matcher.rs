//! The matcher: indexes over the directory and the rule chain.
//!
//! This file holds [`Matcher`] itself: building it, running it over the sources, explaining
//! one source and turning per-source decisions into outcomes. The submodules hold the key
//! derivation shared by both sides (`keys`), the per-rule indexes over the directory
//! (`compile`), evaluating one rule for one source (`eval`) and create proposals (`propose`).

use std::collections::BTreeMap;

use crate::Error;
use crate::config::{Glob, MatchConfig};
use crate::index::KeyIndex;
use crate::mapping::Overrides;
use crate::model::{DirectoryUser, SourceIdentity, TargetRef};
use crate::normalize;
use crate::outcome::{
    Candidate, Explanation, Hint, MatchReport, Matched, Outcome, RuleTrace, SourceResult, Verdict,
};

mod compile;
mod eval;
mod keys;
mod propose;

use compile::{Addr, AddrKind, CompiledRule, addrs_lower, compile, user_addrs};
use eval::Hit;
use keys::source_keys;

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
}
