//! The mapping CSV (`source,target,rule,status,note`), manual overrides read
//! back from it, and the diff between two runs.

use std::collections::BTreeMap;
use std::fmt;
use std::io::{Read, Write};

use serde::{Deserialize, Serialize};

use crate::Error;
use crate::outcome::{MatchReport, Outcome};

/// Status column of the mapping CSV.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum Status {
    /// One target, no other source on it.
    Matched,
    /// One target, shared with another source: check both rows.
    Conflict,
    /// Several candidates (listed in the note); fill in `target` to decide.
    Ambiguous,
    /// Nothing found (closest candidates in the note).
    Unmatched,
    /// A new user is proposed (`target` is the proposed UPN).
    Create,
    /// Not migrated.
    Excluded,
}

impl Status {
    /// The CSV spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Matched => "matched",
            Status::Conflict => "conflict",
            Status::Ambiguous => "ambiguous",
            Status::Unmatched => "unmatched",
            Status::Create => "create",
            Status::Excluded => "excluded",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        Some(match s.trim().to_ascii_lowercase().as_str() {
            "matched" | "manual" => Status::Matched,
            "conflict" => Status::Conflict,
            "ambiguous" => Status::Ambiguous,
            "unmatched" => Status::Unmatched,
            "create" => Status::Create,
            "excluded" | "exclude" | "skip" => Status::Excluded,
            _ => return None,
        })
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One row of the mapping CSV.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MappingRow {
    /// Source login.
    pub source: String,
    /// Target UPN (matched/conflict), proposed UPN (create), or empty.
    pub target: String,
    /// Rule that decided (`manual`, `create`, a rule name) or empty.
    pub rule: String,
    /// Status.
    pub status: Status,
    /// Free text: confidence, how, conflicts, candidates, hints.
    pub note: String,
}

#[derive(Serialize, Deserialize)]
struct CsvRow {
    source: String,
    #[serde(default)]
    target: String,
    #[serde(default)]
    rule: String,
    #[serde(default)]
    status: String,
    #[serde(default)]
    note: String,
}

impl MatchReport {
    /// One mapping row per result, in result order.
    pub fn to_rows(&self) -> Vec<MappingRow> {
        self.results
            .iter()
            .map(|r| {
                let status = r.outcome.status();
                let (target, rule, note) = match &r.outcome {
                    Outcome::Matched(m) => {
                        let mut note = format!("confidence {}; {}", m.confidence, m.via);
                        if !m.conflicts.is_empty() {
                            note.push_str(&format!(
                                "; CONFLICT: also mapped from {}",
                                m.conflicts.join(" ")
                            ));
                        }
                        for n in &m.notes {
                            note.push_str("; ");
                            note.push_str(n);
                        }
                        (m.target.label().to_owned(), m.rule.clone(), note)
                    }
                    Outcome::Ambiguous { rule, candidates } => (
                        String::new(),
                        rule.clone(),
                        format!(
                            "candidates: {}",
                            candidates
                                .iter()
                                .map(|c| c.target.label())
                                .collect::<Vec<_>>()
                                .join(" ")
                        ),
                    ),
                    Outcome::Unmatched { reason, hints } => {
                        let mut parts = Vec::new();
                        if let Some(r) = reason {
                            parts.push(r.clone());
                        }
                        if !hints.is_empty() {
                            parts.push(format!(
                                "closest: {}",
                                hints
                                    .iter()
                                    .map(|h| h.target.label())
                                    .collect::<Vec<_>>()
                                    .join(" ")
                            ));
                        }
                        (String::new(), String::new(), parts.join("; "))
                    }
                    Outcome::Create(p) => {
                        let mut note = format!(
                            "mailNickname={}; displayName={}; usageLocation={}",
                            p.mail_nickname, p.display_name, p.usage_location
                        );
                        if let Some(s) = &p.sku {
                            note.push_str(&format!("; sku={s}"));
                        }
                        if !p.hints.is_empty() {
                            note.push_str(&format!(
                                "; closest: {}",
                                p.hints
                                    .iter()
                                    .map(|h| h.target.label())
                                    .collect::<Vec<_>>()
                                    .join(" ")
                            ));
                        }
                        (p.upn.clone(), "create".to_owned(), note)
                    }
                    Outcome::Excluded { reason } => (String::new(), String::new(), reason.clone()),
                };
                // The reader trims fields; write them trimmed so they round-trip.
                MappingRow {
                    source: r.source.trim().to_owned(),
                    target: target.trim().to_owned(),
                    rule: rule.trim().to_owned(),
                    status,
                    note: note.trim().to_owned(),
                }
            })
            .collect()
    }

    /// Writes the mapping CSV (header `source,target,rule,status,note`).
    pub fn write_csv<W: Write>(&self, out: W) -> Result<(), Error> {
        write_csv(&self.to_rows(), out)
    }
}

/// Spreadsheet formula guard: a cell starting with `=`, `+`, `-`, `@` (or
/// the guard `'` itself) gets a leading `'`, so opening the mapping file in
/// a spreadsheet never runs a formula from a directory attribute.
fn guard(s: &str) -> String {
    match s.chars().next() {
        Some('=' | '+' | '-' | '@' | '\'') => format!("'{s}"),
        _ => s.to_owned(),
    }
}

/// Reverses [`guard`].
fn unguard(s: &mut String) {
    let mut c = s.chars();
    if c.next() == Some('\'') && matches!(c.next(), Some('=' | '+' | '-' | '@' | '\'')) {
        s.remove(0);
    }
}

/// Writes mapping rows as CSV with a header line. Cells that a spreadsheet
/// would read as a formula are prefixed with `'` (removed again on reading).
pub fn write_csv<W: Write>(rows: &[MappingRow], out: W) -> Result<(), Error> {
    let mut w = csv::Writer::from_writer(out);
    let io = |e: csv::Error| Error::Csv {
        line: 0,
        message: format!("writing the mapping CSV failed: {e}"),
    };
    for r in rows {
        w.serialize(CsvRow {
            source: guard(&r.source),
            target: guard(&r.target),
            rule: guard(&r.rule),
            status: r.status.as_str().to_owned(),
            note: guard(&r.note),
        })
        .map_err(io)?;
    }
    if rows.is_empty() {
        w.write_record(["source", "target", "rule", "status", "note"])
            .map_err(io)?;
    }
    w.flush().map_err(|e| Error::Csv {
        line: 0,
        message: format!("writing the mapping CSV failed: {e}"),
    })
}

/// Reads a mapping CSV (as written by [`MatchReport::write_csv`], possibly
/// edited). Needs the header; `target`, `rule`, `status`, `note` may be
/// empty; an empty `status` with a `target` counts as `matched`. Blank lines
/// are skipped. Errors name the line.
pub fn read_csv<R: Read>(input: R) -> Result<Vec<MappingRow>, Error> {
    Ok(read_lines(input)?.into_iter().map(|(_, r)| r).collect())
}

/// Rows with their line numbers.
fn read_lines<R: Read>(input: R) -> Result<Vec<(u64, MappingRow)>, Error> {
    let mut rdr = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .flexible(false)
        .from_reader(input);
    let headers = rdr
        .headers()
        .map_err(|e| Error::Csv {
            line: 1,
            message: format!("cannot read the header: {e}"),
        })?
        .clone();
    if !headers.iter().any(|h| h == "source") {
        return Err(Error::Csv {
            line: 1,
            message: "header has no 'source' column; expected source,target,rule,status,note"
                .into(),
        });
    }
    let mut rows = Vec::new();
    for rec in rdr.records() {
        let rec = rec.map_err(|e| Error::Csv {
            line: e.position().map_or(0, |p| p.line()),
            message: e.to_string(),
        })?;
        let line = rec.position().map_or(0, |p| p.line());
        let mut row: CsvRow = rec.deserialize(Some(&headers)).map_err(|e| Error::Csv {
            line,
            message: e.to_string(),
        })?;
        for f in [
            &mut row.source,
            &mut row.target,
            &mut row.rule,
            &mut row.note,
        ] {
            unguard(f);
        }
        if row.source.is_empty() {
            if row.target.is_empty() && row.status.is_empty() {
                continue;
            }
            return Err(Error::Csv {
                line,
                message: "empty source; every row needs the source login".into(),
            });
        }
        let status = if row.status.is_empty() {
            if row.target.is_empty() {
                Status::Unmatched
            } else {
                Status::Matched
            }
        } else {
            Status::parse(&row.status).ok_or_else(|| Error::Csv {
                line,
                message: format!(
                    "unknown status '{}'; use matched, conflict, ambiguous, unmatched, create or excluded",
                    row.status
                ),
            })?
        };
        rows.push((
            line,
            MappingRow {
                source: row.source,
                target: row.target,
                rule: row.rule,
                status,
                note: row.note,
            },
        ));
    }
    Ok(rows)
}

/// Manual decisions that win over every rule: pairs (source → target id,
/// UPN or address) and excluded sources. Keys are lower-cased logins.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Overrides {
    pairs: BTreeMap<String, String>,
    exclusions: BTreeMap<String, String>,
}

impl Overrides {
    /// No overrides.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a manual pair. Errors if the source already has a different
    /// target or is excluded.
    pub fn pair(&mut self, source: &str, target: &str) -> Result<(), Error> {
        let key = source.trim().to_lowercase();
        let target = target.trim().to_owned();
        if key.is_empty() || target.is_empty() {
            return Err(Error::InvalidSource(format!(
                "manual pair '{source}' -> '{target}' has an empty side"
            )));
        }
        if self.exclusions.contains_key(&key) {
            return Err(Error::InvalidSource(format!(
                "'{source}' is both excluded and manually paired; keep one"
            )));
        }
        match self.pairs.get(&key) {
            Some(t) if !t.eq_ignore_ascii_case(&target) => Err(Error::InvalidSource(format!(
                "'{source}' is paired with both '{t}' and '{target}'; keep one"
            ))),
            _ => {
                self.pairs.insert(key, target);
                Ok(())
            }
        }
    }

    /// Excludes a source.
    pub fn exclude(&mut self, source: &str, reason: &str) -> Result<(), Error> {
        let key = source.trim().to_lowercase();
        if self.pairs.contains_key(&key) {
            return Err(Error::InvalidSource(format!(
                "'{source}' is both excluded and manually paired; keep one"
            )));
        }
        self.exclusions.insert(key, reason.to_owned());
        Ok(())
    }

    /// Manual pairs: lower-cased login → target.
    pub fn pairs(&self) -> &BTreeMap<String, String> {
        &self.pairs
    }

    /// Excluded sources: lower-cased login → reason.
    pub fn exclusions(&self) -> &BTreeMap<String, String> {
        &self.exclusions
    }

    /// Overrides from (edited) mapping rows: every row with a target and
    /// status matched or conflict (or empty) becomes a manual pair; status
    /// `excluded` an exclusion; other rows (ambiguous, unmatched, create
    /// proposals) are left to the rules. A row with a target but status
    /// ambiguous or unmatched means the admin picked one: it becomes a pair.
    pub fn from_rows(rows: &[MappingRow]) -> Result<Self, Error> {
        Self::from_numbered(rows.iter().enumerate().map(|(i, r)| (i as u64 + 2, r)))
    }

    fn from_numbered<'a>(rows: impl Iterator<Item = (u64, &'a MappingRow)>) -> Result<Self, Error> {
        let mut o = Self::new();
        for (line, r) in rows {
            let res = match r.status {
                Status::Excluded => o.exclude(&r.source, "excluded in the mapping file"),
                Status::Create => Ok(()),
                _ if r.target.trim().is_empty() => Ok(()),
                _ => o.pair(&r.source, &r.target),
            };
            res.map_err(|e| Error::Csv {
                line,
                message: e.to_string(),
            })?;
        }
        Ok(o)
    }

    /// [`read_csv`] then [`Overrides::from_rows`].
    pub fn read_csv<R: Read>(input: R) -> Result<Self, Error> {
        let rows = read_lines(input)?;
        Self::from_numbered(rows.iter().map(|(l, r)| (*l, r)))
    }
}

/// One change between two runs.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Change {
    /// Source only in the new run.
    Added(MappingRow),
    /// Source only in the old run.
    Removed(MappingRow),
    /// Target, status or rule changed.
    Changed {
        /// Before.
        old: MappingRow,
        /// After.
        new: MappingRow,
    },
}

/// What changed between two runs, by source login (case-insensitive), in
/// login order. Notes alone do not count as a change.
pub fn diff(old: &[MappingRow], new: &[MappingRow]) -> Vec<Change> {
    let index = |rows: &[MappingRow]| -> BTreeMap<String, MappingRow> {
        rows.iter()
            .map(|r| (r.source.trim().to_lowercase(), r.clone()))
            .collect()
    };
    let (a, b) = (index(old), index(new));
    let mut out = Vec::new();
    let mut ia = a.into_iter().peekable();
    let mut ib = b.into_iter().peekable();
    loop {
        match (ia.peek(), ib.peek()) {
            (None, None) => break,
            (Some(_), None) => out.extend(ia.next().map(|(_, r)| Change::Removed(r))),
            (None, Some(_)) => out.extend(ib.next().map(|(_, r)| Change::Added(r))),
            (Some((ka, _)), Some((kb, _))) => match ka.cmp(kb) {
                std::cmp::Ordering::Less => out.extend(ia.next().map(|(_, r)| Change::Removed(r))),
                std::cmp::Ordering::Greater => out.extend(ib.next().map(|(_, r)| Change::Added(r))),
                std::cmp::Ordering::Equal => {
                    if let (Some((_, o)), Some((_, n))) = (ia.next(), ib.next())
                        && (!o.target.eq_ignore_ascii_case(&n.target)
                            || o.status != n.status
                            || o.rule != n.rule)
                    {
                        out.push(Change::Changed { old: o, new: n });
                    }
                }
            },
        }
    }
    out
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let show = |r: &MappingRow| {
            if r.target.is_empty() {
                r.status.to_string()
            } else if r.rule.is_empty() {
                format!("{} {}", r.status, r.target)
            } else {
                format!("{} {} ({})", r.status, r.target, r.rule)
            }
        };
        match self {
            Change::Added(r) => write!(f, "+ {}: {}", r.source, show(r)),
            Change::Removed(r) => write!(f, "- {}: {}", r.source, show(r)),
            Change::Changed { old, new } => {
                write!(f, "~ {}: {} -> {}", new.source, show(old), show(new))
            }
        }
    }
}
