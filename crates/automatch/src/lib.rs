//! Automatch: match source mailboxes to target directory users by an
//! ordered chain of rules an admin can reason about.
//!
//! * Inputs: [`SourceIdentity`] (from the credentials file) and
//!   [`DirectoryUser`] (a Microsoft Graph `user` with `proxyAddresses`).
//! * Rules ([`Rule`]), in the order of [`MatchConfig::rules`]: exact address,
//!   domain mapping, normalised local part, first/last-name patterns, full
//!   name, display name. The first rule with any candidate decides; several
//!   candidates make the source [`Outcome::Ambiguous`] — nothing is guessed.
//! * Manual pairs and exclusions ([`Overrides`]) always win; they are read
//!   back from the mapping CSV the run writes ([`MatchReport::write_csv`]).
//! * Every decision is explainable ([`Matcher::explain`]), runs are
//!   deterministic, and [`diff`] shows what changed between two runs.
//!
//! Lookups go through fingerprint indexes built once in [`Matcher::new`];
//! nothing compares every source with every user. `examples/bench.rs`
//! matches 100,000 sources against 100,000 users and prints wall and CPU
//! time.
//!
//! ```
//! use o365_migrate_automatch::{DirectoryUser, MatchConfig, Matcher, Outcome, Overrides, SourceIdentity};
//!
//! let directory = vec![
//!     DirectoryUser::new("1", "alice@new.example")
//!         .with_proxy("SMTP:alice@new.example")
//!         .with_proxy("smtp:alice@old.example"),
//!     DirectoryUser::new("2", "bob.smith@new.example").with_name("Bob", "Smith"),
//! ];
//! let matcher = Matcher::new(MatchConfig::default(), directory)?;
//! let sources = vec![
//!     SourceIdentity::new("alice@old.example"),
//!     SourceIdentity::new("bsmith@old.example").with_name("Bob", "Smith"),
//! ];
//! let report = matcher.run(&sources, &Overrides::new())?;
//! let Outcome::Matched(m) = &report.results[0].outcome else { panic!() };
//! assert_eq!((m.target.id.as_str(), m.rule.as_str()), ("1", "exact-address"));
//! let Outcome::Matched(m) = &report.results[1].outcome else { panic!() };
//! assert_eq!(m.rule, "name-pattern");
//!
//! // The mapping CSV the admin edits and feeds back as manual pairs.
//! let mut csv = Vec::new();
//! report.write_csv(&mut csv)?;
//! let manual = Overrides::read_csv(csv.as_slice())?;
//! assert_eq!(manual.pairs().len(), 2);
//! println!("{}", matcher.explain(&sources[1], &manual));
//! # Ok::<(), o365_migrate_automatch::Error>(())
//! ```

mod config;
mod hints;
mod index;
mod mapping;
mod matcher;
mod model;
mod normalize;
mod outcome;

pub use config::{
    CreateConfig, DomainMapping, Glob, MatchConfig, Normalization, Rule, default_rules,
};
pub use mapping::{Change, MappingRow, Overrides, Status, diff, read_csv, write_csv};
pub use matcher::Matcher;
pub use model::{DirectoryUser, SourceIdentity, TargetRef};
pub use outcome::{
    Candidate, CreateProposal, Explanation, Hint, MatchReport, Matched, Outcome, RuleTrace,
    SourceResult, Summary, Verdict,
};

/// Errors from this crate.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The `[matching]` configuration is invalid.
    #[error("matching configuration: {0}")]
    Config(String),
    /// The directory snapshot is unusable.
    #[error("directory: {0}")]
    InvalidDirectory(String),
    /// A source or manual pair is unusable.
    #[error("source: {0}")]
    InvalidSource(String),
    /// The mapping CSV could not be read or written.
    #[error("mapping CSV line {line}: {message}")]
    Csv {
        /// 1-based line (0 when unknown, e.g. a write error).
        line: u64,
        /// What went wrong and what to do.
        message: String,
    },
}
