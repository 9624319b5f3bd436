//! Results: per-source outcomes, the run report and `explain` traces.

use std::fmt;

use crate::model::TargetRef;

/// The result for one source.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Outcome {
    /// Exactly one target.
    Matched(Matched),
    /// The deciding rule found several targets; nothing is guessed.
    Ambiguous {
        /// The rule that found them (`manual` for a manual target that
        /// resolves to several users).
        rule: String,
        /// Every candidate, in directory-id order.
        candidates: Vec<Candidate>,
    },
    /// No rule found a target.
    Unmatched {
        /// Why, when there is more to say than "no rule matched".
        reason: Option<String>,
        /// Closest directory users, best first.
        hints: Vec<Hint>,
    },
    /// Nothing matched and the job allows creating users: a proposal.
    Create(CreateProposal),
    /// Excluded by configuration or by the mapping file.
    Excluded {
        /// Which exclusion.
        reason: String,
    },
}

impl Outcome {
    /// Short status word, as used in the mapping CSV.
    pub fn status(&self) -> crate::Status {
        use crate::Status;
        match self {
            Outcome::Matched(m) if !m.conflicts.is_empty() => Status::Conflict,
            Outcome::Matched(_) => Status::Matched,
            Outcome::Ambiguous { .. } => Status::Ambiguous,
            Outcome::Unmatched { .. } => Status::Unmatched,
            Outcome::Create(_) => Status::Create,
            Outcome::Excluded { .. } => Status::Excluded,
        }
    }

    /// The matched target, if any.
    pub fn target(&self) -> Option<&TargetRef> {
        match self {
            Outcome::Matched(m) => Some(&m.target),
            _ => None,
        }
    }
}

/// A unique match.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Matched {
    /// The target user.
    pub target: TargetRef,
    /// Name of the rule that decided (`manual` for a manual pair).
    pub rule: String,
    /// 0–100.
    pub confidence: u8,
    /// Which key matched which target attribute.
    pub via: String,
    /// Other sources (logins) that landed on the same target; non-empty means
    /// every one of them is flagged.
    pub conflicts: Vec<String>,
    /// Remarks, e.g. "target has no mailbox yet".
    pub notes: Vec<String>,
}

/// One candidate of an ambiguous result.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Candidate {
    /// The directory user.
    pub target: TargetRef,
    /// How the rule reached it.
    pub via: String,
}

/// A closest-candidate hint for an unmatched source.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hint {
    /// The directory user.
    pub target: TargetRef,
    /// Similarity score (higher is closer; only comparable within one source).
    pub score: u32,
    /// What they share.
    pub why: String,
}

/// A proposed new directory user (Graph `POST /users` fields).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CreateProposal {
    /// `userPrincipalName`, unique against the directory and other proposals.
    pub upn: String,
    /// `mailNickname` (the UPN local part).
    pub mail_nickname: String,
    /// `displayName`.
    pub display_name: String,
    /// `usageLocation`.
    pub usage_location: String,
    /// Licence SKU to assign, if configured.
    pub sku: Option<String>,
    /// Closest existing users, so the admin can still pick one instead.
    pub hints: Vec<Hint>,
}

/// The result for one source login.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SourceResult {
    /// Source login as given, trimmed.
    pub source: String,
    /// What happened.
    pub outcome: Outcome,
}

/// The result of [`crate::Matcher::run`]: one entry per source, sorted by
/// login (case-insensitive), so equal input gives equal output.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MatchReport {
    /// Per source.
    pub results: Vec<SourceResult>,
    /// Things the admin should know that are not per-source results (for
    /// example a manual pair naming a source that is not in this run).
    pub warnings: Vec<String>,
}

impl MatchReport {
    /// Counts per status: (matched, conflict, ambiguous, unmatched, create, excluded).
    pub fn summary(&self) -> Summary {
        let mut s = Summary::default();
        for r in &self.results {
            match r.outcome.status() {
                crate::Status::Matched => s.matched += 1,
                crate::Status::Conflict => s.conflict += 1,
                crate::Status::Ambiguous => s.ambiguous += 1,
                crate::Status::Unmatched => s.unmatched += 1,
                crate::Status::Create => s.create += 1,
                crate::Status::Excluded => s.excluded += 1,
            }
        }
        s
    }

    /// The result for one login (case-insensitive).
    pub fn get(&self, login: &str) -> Option<&SourceResult> {
        let key = login.trim().to_lowercase();
        self.results
            .iter()
            .find(|r| r.source.trim().to_lowercase() == key)
    }
}

/// Counts per status.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    /// Unique match, no other source on the target.
    pub matched: usize,
    /// Unique match, but another source landed on the same target.
    pub conflict: usize,
    /// Several candidates.
    pub ambiguous: usize,
    /// Nothing found.
    pub unmatched: usize,
    /// New user proposed.
    pub create: usize,
    /// Excluded.
    pub excluded: usize,
}

/// One rule's verdict in an [`Explanation`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Verdict {
    /// The rule could not run for this source (e.g. no names).
    NotApplicable {
        /// Why.
        reason: String,
    },
    /// Nothing found for the keys tried.
    NoMatch,
    /// Exactly one target.
    Match(Candidate),
    /// Several targets.
    Ambiguous(Vec<Candidate>),
    /// Only excluded targets were found.
    OnlyExcluded(Vec<Candidate>),
}

/// One rule's evaluation for one source.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuleTrace {
    /// Rule name.
    pub rule: String,
    /// Rule kind (`exact_address`, …).
    pub kind: String,
    /// Lookup keys the rule built from the source.
    pub keys: Vec<String>,
    /// What it found.
    pub verdict: Verdict,
    /// Whether this rule decided the outcome (the first rule with any hit).
    pub decided: bool,
}

/// Why a source got its outcome: every rule's verdict, in chain order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Explanation {
    /// Source login.
    pub source: String,
    /// The manual pair's target, when one applies (it wins over every rule).
    pub manual: Option<String>,
    /// The exclusion, when one applies.
    pub excluded: Option<String>,
    /// Every rule, evaluated even after the deciding one.
    pub rules: Vec<RuleTrace>,
    /// The outcome for this source on its own (duplicate-target flags need
    /// the whole run: see [`MatchReport`]).
    pub outcome: Outcome,
}

impl fmt::Display for Candidate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} via {}", self.target, self.via)
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Verdict::NotApplicable { reason } => write!(f, "not applicable: {reason}"),
            Verdict::NoMatch => f.write_str("no match"),
            Verdict::Match(c) => write!(f, "match {c}"),
            Verdict::Ambiguous(cs) => {
                write!(f, "ambiguous ({} candidates)", cs.len())?;
                for c in cs {
                    write!(f, "\n      - {c}")?;
                }
                Ok(())
            }
            Verdict::OnlyExcluded(cs) => {
                f.write_str("only excluded targets")?;
                for c in cs {
                    write!(f, "\n      - {c}")?;
                }
                Ok(())
            }
        }
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Matched(m) => {
                write!(
                    f,
                    "matched {} by rule {} (confidence {}) via {}",
                    m.target, m.rule, m.confidence, m.via
                )?;
                if !m.conflicts.is_empty() {
                    write!(f, "; CONFLICT: also mapped from {}", m.conflicts.join(", "))?;
                }
                for n in &m.notes {
                    write!(f, "; {n}")?;
                }
                Ok(())
            }
            Outcome::Ambiguous { rule, candidates } => {
                write!(f, "ambiguous by rule {rule}: ")?;
                let list: Vec<String> = candidates.iter().map(|c| c.target.upn.clone()).collect();
                f.write_str(&list.join(", "))
            }
            Outcome::Unmatched { reason, hints } => {
                f.write_str("unmatched")?;
                if let Some(r) = reason {
                    write!(f, " ({r})")?;
                }
                write_hints(f, hints)
            }
            Outcome::Create(p) => {
                write!(
                    f,
                    "create {} (mailNickname {}, displayName \"{}\", usageLocation {}",
                    p.upn, p.mail_nickname, p.display_name, p.usage_location
                )?;
                if let Some(s) = &p.sku {
                    write!(f, ", licence {s}")?;
                }
                f.write_str(")")?;
                write_hints(f, &p.hints)
            }
            Outcome::Excluded { reason } => write!(f, "excluded ({reason})"),
        }
    }
}

fn write_hints(f: &mut fmt::Formatter<'_>, hints: &[Hint]) -> fmt::Result {
    if !hints.is_empty() {
        f.write_str("; closest: ")?;
        let list: Vec<String> = hints
            .iter()
            .map(|h| format!("{} [{}]", h.target.upn, h.why))
            .collect();
        f.write_str(&list.join(", "))?;
    }
    Ok(())
}

impl fmt::Display for Explanation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "source {}", self.source)?;
        if let Some(m) = &self.manual {
            writeln!(f, "  manual pair -> {m} (wins over every rule)")?;
        }
        if let Some(e) = &self.excluded {
            writeln!(f, "  excluded: {e}")?;
        }
        for r in &self.rules {
            let mark = if r.decided { "*" } else { " " };
            writeln!(
                f,
                " {mark}{} [{}] keys: {}",
                r.rule,
                r.kind,
                r.keys.join(", ")
            )?;
            writeln!(f, "      {}", r.verdict)?;
        }
        write!(f, "  => {}", self.outcome)
    }
}
