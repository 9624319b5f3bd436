//! Matching configuration: the ordered rule chain, exclusions, user creation.
//!
//! Deserialises from the job file's `[matching]` table (any serde format).

use serde::{Deserialize, Serialize};

use crate::Error;

/// The whole `[matching]` section of a job file.
///
/// ```toml
/// exclude_sources = ["svc-*", "postmaster@old.example"]
/// exclude_targets = ["admin@new.example"]
///
/// [[rules]]
/// kind = "exact_address"
///
/// [[rules]]
/// kind = "domain_map"
/// mappings = [{ from = "old.example", to = "new.example" }]
///
/// [[rules]]
/// kind = "name_pattern"
/// name = "names"
/// patterns = ["first.last", "f.last"]
///
/// [create]
/// enabled = true
/// domain = "new.example"
/// usage_location = "DE"
/// sku = "ENTERPRISEPACK"
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MatchConfig {
    /// Rules, tried in order; the first rule with any candidate decides.
    #[serde(default = "default_rules")]
    pub rules: Vec<Rule>,
    /// Source logins never matched (glob: `*` any run, `?` one character;
    /// case-insensitive).
    #[serde(default)]
    pub exclude_sources: Vec<String>,
    /// Targets never offered as candidates (glob against id, UPN, mail and
    /// every SMTP proxy address).
    #[serde(default)]
    pub exclude_targets: Vec<String>,
    /// Proposing new users for unmatched sources.
    #[serde(default)]
    pub create: CreateConfig,
    /// How many closest-candidate hints to give for an unmatched source.
    #[serde(default = "default_hints")]
    pub hints: usize,
}

impl Default for MatchConfig {
    fn default() -> Self {
        Self {
            rules: default_rules(),
            exclude_sources: Vec::new(),
            exclude_targets: Vec::new(),
            create: CreateConfig::default(),
            hints: default_hints(),
        }
    }
}

fn default_hints() -> usize {
    3
}

/// The default chain: exact address, local part, name patterns, full name,
/// display name (no domain mapping: it needs domains).
pub fn default_rules() -> Vec<Rule> {
    vec![
        Rule::ExactAddress {
            name: None,
            confidence: None,
            secondary_proxies: true,
        },
        Rule::LocalPart {
            name: None,
            confidence: None,
            normalize: Normalization::default(),
            domains: Vec::new(),
        },
        Rule::NamePattern {
            name: None,
            confidence: None,
            patterns: default_patterns(),
            domains: Vec::new(),
        },
        Rule::FullName {
            name: None,
            confidence: None,
        },
        Rule::DisplayName {
            name: None,
            confidence: None,
        },
    ]
}

fn default_patterns() -> Vec<String> {
    [
        "first.last",
        "f.last",
        "firstl",
        "last.first",
        "firstlast",
        "first_last",
        "flast",
    ]
    .into_iter()
    .map(String::from)
    .collect()
}

fn yes() -> bool {
    true
}

/// One rule of the chain. `name` defaults to the kind with `-` instead of `_`
/// (`exact-address`); `confidence` (0–100) defaults per kind.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
#[non_exhaustive]
pub enum Rule {
    /// Source login/address equals a target's `mail`, UPN or any SMTP proxy
    /// address (case-insensitive). Default confidence 100, 95 when only a
    /// secondary `smtp:` proxy address matched.
    ExactAddress {
        /// Rule name in results.
        #[serde(default)]
        name: Option<String>,
        /// Confidence for a hit on mail/UPN/primary `SMTP:`.
        #[serde(default)]
        confidence: Option<u8>,
        /// Also match secondary `smtp:` proxy addresses.
        #[serde(default = "yes")]
        secondary_proxies: bool,
    },
    /// Rewrites the source domain (`from` → `to`, several allowed) and looks
    /// the rewritten address up exactly. Default confidence 95.
    DomainMap {
        /// Rule name in results.
        #[serde(default)]
        name: Option<String>,
        /// Confidence of a hit.
        #[serde(default)]
        confidence: Option<u8>,
        /// Domain rewrites.
        mappings: Vec<DomainMapping>,
    },
    /// Compares normalised local parts. Default confidence 85.
    LocalPart {
        /// Rule name in results.
        #[serde(default)]
        name: Option<String>,
        /// Confidence of a hit.
        #[serde(default)]
        confidence: Option<u8>,
        /// Which normalisations apply (all on by default).
        #[serde(default)]
        normalize: Normalization,
        /// Only target addresses in these domains (empty: any).
        #[serde(default)]
        domains: Vec<String>,
    },
    /// Builds local parts from first and last name with the given patterns
    /// (`first.last`, `f.last`, `firstl`, `last.first`, `firstlast`,
    /// `first_last`, …: tokens `first`, `last`, `f`, `l` and the separators
    /// `.`, `_`, `-`) and looks them up among target local parts. Only when
    /// that finds nothing (or the source has no names), the reverse: the
    /// source local part against patterns built from each target's
    /// givenName/surname. Default confidence 75.
    NamePattern {
        /// Rule name in results.
        #[serde(default)]
        name: Option<String>,
        /// Confidence of a hit.
        #[serde(default)]
        confidence: Option<u8>,
        /// Patterns.
        #[serde(default = "default_patterns")]
        patterns: Vec<String>,
        /// Only target addresses in these domains (empty: any).
        #[serde(default)]
        domains: Vec<String>,
    },
    /// Source first+last name equals target givenName+surname (folded).
    /// Default confidence 70.
    FullName {
        /// Rule name in results.
        #[serde(default)]
        name: Option<String>,
        /// Confidence of a hit.
        #[serde(default)]
        confidence: Option<u8>,
    },
    /// Source display name (or "first last") equals target displayName,
    /// folded, punctuation dropped, word order ignored. Default confidence 60.
    DisplayName {
        /// Rule name in results.
        #[serde(default)]
        name: Option<String>,
        /// Confidence of a hit.
        #[serde(default)]
        confidence: Option<u8>,
    },
}

impl Rule {
    /// A [`Rule::DomainMap`] with the default name and confidence.
    pub fn domain_map<'a>(mappings: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        Rule::DomainMap {
            name: None,
            confidence: None,
            mappings: mappings
                .into_iter()
                .map(|(from, to)| DomainMapping {
                    from: from.to_owned(),
                    to: to.to_owned(),
                })
                .collect(),
        }
    }

    /// A rule with default settings from its kind or default name
    /// (`exact-address` or `exact_address`, `domain-map`, `local-part`,
    /// `name-pattern`, `full-name`, `display-name`); `domains` feeds a
    /// `domain-map` (source domain → target domain). For job files that list
    /// rules by name only.
    pub fn by_name(
        name: &str,
        domains: &std::collections::BTreeMap<String, String>,
    ) -> Result<Self, Error> {
        let rule = match name.trim().replace('_', "-").to_ascii_lowercase().as_str() {
            "exact-address" => Rule::ExactAddress {
                name: None,
                confidence: None,
                secondary_proxies: true,
            },
            "domain-map" => {
                if domains.is_empty() {
                    return Err(Error::Config(
                        "rule 'domain-map' needs domain mappings, e.g. domains = { \"old.example\" = \"new.example\" }"
                            .into(),
                    ));
                }
                Rule::domain_map(domains.iter().map(|(f, t)| (f.as_str(), t.as_str())))
            }
            "local-part" => Rule::LocalPart {
                name: None,
                confidence: None,
                normalize: Normalization::default(),
                domains: Vec::new(),
            },
            "name-pattern" => Rule::NamePattern {
                name: None,
                confidence: None,
                patterns: default_patterns(),
                domains: Vec::new(),
            },
            "full-name" => Rule::FullName {
                name: None,
                confidence: None,
            },
            "display-name" => Rule::DisplayName {
                name: None,
                confidence: None,
            },
            other => {
                return Err(Error::Config(format!(
                    "unknown matching rule '{other}'; use exact-address, domain-map, local-part, \
                     name-pattern, full-name or display-name"
                )));
            }
        };
        Ok(rule)
    }

    /// The rule's kind as written in the config (`exact_address`, …).
    pub fn kind(&self) -> &'static str {
        match self {
            Rule::ExactAddress { .. } => "exact_address",
            Rule::DomainMap { .. } => "domain_map",
            Rule::LocalPart { .. } => "local_part",
            Rule::NamePattern { .. } => "name_pattern",
            Rule::FullName { .. } => "full_name",
            Rule::DisplayName { .. } => "display_name",
        }
    }

    /// The rule's name in results (configured or derived from the kind).
    pub fn name(&self) -> String {
        let configured = match self {
            Rule::ExactAddress { name, .. }
            | Rule::DomainMap { name, .. }
            | Rule::LocalPart { name, .. }
            | Rule::NamePattern { name, .. }
            | Rule::FullName { name, .. }
            | Rule::DisplayName { name, .. } => name,
        };
        configured
            .clone()
            .unwrap_or_else(|| self.kind().replace('_', "-"))
    }

    /// The rule's confidence (configured or the kind's default).
    pub fn confidence(&self) -> u8 {
        let (c, d) = match self {
            Rule::ExactAddress { confidence, .. } => (confidence, 100),
            Rule::DomainMap { confidence, .. } => (confidence, 95),
            Rule::LocalPart { confidence, .. } => (confidence, 85),
            Rule::NamePattern { confidence, .. } => (confidence, 75),
            Rule::FullName { confidence, .. } => (confidence, 70),
            Rule::DisplayName { confidence, .. } => (confidence, 60),
        };
        c.unwrap_or(d).min(100)
    }
}

/// One domain rewrite of [`Rule::DomainMap`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DomainMapping {
    /// Source domain (`old.example`).
    pub from: String,
    /// Target domain (`new.example`).
    pub to: String,
}

/// Normalisations of [`Rule::LocalPart`]; all on by default.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Normalization {
    /// Ignore case (always effectively on for ASCII; affects non-ASCII too).
    #[serde(default = "yes")]
    pub case: bool,
    /// Ignore dots (`j.smith` = `jsmith`).
    #[serde(default = "yes")]
    pub dots: bool,
    /// Drop `+tag` (`alice+news` = `alice`).
    #[serde(default = "yes")]
    pub plus_tags: bool,
    /// Fold diacritics (`josé` = `jose`; `müller` = `muller` = `mueller`).
    #[serde(default = "yes")]
    pub diacritics: bool,
}

impl Default for Normalization {
    fn default() -> Self {
        Self {
            case: true,
            dots: true,
            plus_tags: true,
            diacritics: true,
        }
    }
}

/// Proposing a new directory user when nothing matched.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateConfig {
    /// Whether the job may create users.
    #[serde(default)]
    pub enabled: bool,
    /// Verified domain for the new UPN (required when enabled).
    #[serde(default)]
    pub domain: String,
    /// Pattern for the UPN local part when first and last name are known
    /// (default `first.last`); otherwise the source local part is used.
    #[serde(default)]
    pub upn_pattern: Option<String>,
    /// `usageLocation` (ISO 3166 two-letter code, required before licensing).
    #[serde(default)]
    pub usage_location: String,
    /// Licence SKU part number or id to assign, if any.
    #[serde(default)]
    pub sku: Option<String>,
}

/// One token of a name pattern.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Tok {
    First,
    Last,
    F,
    L,
    Sep(char),
}

/// A parsed name pattern such as `f.last`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Pattern {
    pub(crate) text: String,
    toks: Vec<Tok>,
}

impl Pattern {
    pub(crate) fn parse(text: &str) -> Result<Self, Error> {
        let mut toks = Vec::new();
        let mut rest = text.trim();
        let orig = rest;
        while !rest.is_empty() {
            let (tok, len) = if rest.starts_with("first") {
                (Tok::First, 5)
            } else if rest.starts_with("last") {
                (Tok::Last, 4)
            } else if rest.starts_with('f') {
                (Tok::F, 1)
            } else if rest.starts_with('l') {
                (Tok::L, 1)
            } else if let Some(c @ ('.' | '_' | '-')) = rest.chars().next() {
                (Tok::Sep(c), 1)
            } else {
                return Err(Error::Config(format!(
                    "name pattern '{orig}': unexpected '{rest}'; \
                     use the tokens first, last, f, l and the separators . _ -"
                )));
            };
            toks.push(tok);
            rest = &rest[len..];
        }
        if !toks.iter().any(|t| matches!(t, Tok::First | Tok::F))
            || !toks.iter().any(|t| matches!(t, Tok::Last | Tok::L))
        {
            return Err(Error::Config(format!(
                "name pattern '{orig}' must use both a first-name token (first or f) \
                 and a last-name token (last or l)"
            )));
        }
        Ok(Self {
            text: orig.to_owned(),
            toks,
        })
    }

    /// Renders the pattern for already-normalised (alphanumeric) names.
    pub(crate) fn render(&self, first: &str, last: &str) -> Option<String> {
        if first.is_empty() || last.is_empty() {
            return None;
        }
        let mut out = String::with_capacity(first.len() + last.len() + 1);
        for t in &self.toks {
            match t {
                Tok::First => out.push_str(first),
                Tok::Last => out.push_str(last),
                Tok::F => out.extend(first.chars().next()),
                Tok::L => out.extend(last.chars().next()),
                Tok::Sep(c) => out.push(*c),
            }
        }
        Some(out)
    }
}

/// Case-insensitive glob with `*` (any run) and `?` (one character), as
/// [`MatchConfig::exclude_sources`] uses it. Iterative, linear-ish, no panics.
///
/// ```
/// use o365_migrate_automatch::Glob;
/// assert!(Glob::new("noreply*@example.com").matches("NoReply-x@example.com"));
/// assert!(!Glob::new("a?c").matches("ac"));
/// ```
#[derive(Clone, Debug)]
pub struct Glob(Vec<char>);

impl Glob {
    /// A glob from its pattern (trimmed, compared case-insensitively).
    pub fn new(p: &str) -> Self {
        Self(p.trim().to_lowercase().chars().collect())
    }

    /// Whether `text` (trimmed) matches the whole pattern.
    pub fn matches(&self, text: &str) -> bool {
        let t: Vec<char> = text.trim().to_lowercase().chars().collect();
        let p = &self.0;
        let (mut pi, mut ti) = (0usize, 0usize);
        let mut star: Option<(usize, usize)> = None;
        while ti < t.len() {
            match p.get(pi) {
                Some('*') => {
                    star = Some((pi, ti));
                    pi += 1;
                }
                Some(&c) if c == '?' || t.get(ti) == Some(&c) => {
                    pi += 1;
                    ti += 1;
                }
                _ => match star {
                    Some((sp, st)) => {
                        pi = sp + 1;
                        ti = st + 1;
                        star = Some((sp, st + 1));
                    }
                    None => return false,
                },
            }
        }
        p.get(pi..).is_some_and(|r| r.iter().all(|&c| c == '*'))
    }
}

impl MatchConfig {
    /// A configuration from rule names (see [`Rule::by_name`]) and a domain
    /// map, everything else default; an empty list gives
    /// [`default_rules`] (plus `domain-map` second when `domains` is not
    /// empty).
    pub fn from_names(
        names: &[String],
        domains: &std::collections::BTreeMap<String, String>,
    ) -> Result<Self, Error> {
        let rules = if names.is_empty() {
            let mut r = default_rules();
            if !domains.is_empty() {
                r.insert(1, Rule::by_name("domain-map", domains)?);
            }
            r
        } else {
            names
                .iter()
                .map(|n| Rule::by_name(n, domains))
                .collect::<Result<Vec<_>, _>>()?
        };
        let config = Self {
            rules,
            ..Self::default()
        };
        config.validate()?;
        Ok(config)
    }

    /// Checks the configuration; called by [`crate::Matcher::new`].
    pub fn validate(&self) -> Result<(), Error> {
        let mut names = std::collections::BTreeSet::new();
        for r in &self.rules {
            let n = r.name();
            if n.trim().is_empty() || n.eq_ignore_ascii_case("manual") || n == "create" {
                return Err(Error::Config(format!(
                    "rule name '{n}' is empty or reserved (manual, create); pick another name"
                )));
            }
            if !names.insert(n.clone()) {
                return Err(Error::Config(format!(
                    "two rules are named '{n}'; give each rule a distinct `name`"
                )));
            }
            match r {
                Rule::DomainMap { mappings, .. } => {
                    if mappings.is_empty() {
                        return Err(Error::Config(format!(
                            "rule '{n}': domain_map needs at least one mapping {{ from = \"old.example\", to = \"new.example\" }}"
                        )));
                    }
                    for m in mappings {
                        if !valid_domain(&m.from) || !valid_domain(&m.to) {
                            return Err(Error::Config(format!(
                                "rule '{n}': mapping '{}' -> '{}' is not a pair of domain names",
                                m.from, m.to
                            )));
                        }
                    }
                }
                Rule::NamePattern { patterns, .. } => {
                    if patterns.is_empty() {
                        return Err(Error::Config(format!(
                            "rule '{n}': name_pattern needs at least one pattern such as \"first.last\""
                        )));
                    }
                    for p in patterns {
                        Pattern::parse(p).map_err(|e| Error::Config(format!("rule '{n}': {e}")))?;
                    }
                }
                _ => {}
            }
        }
        let c = &self.create;
        if c.enabled {
            if !valid_domain(&c.domain) {
                return Err(Error::Config(format!(
                    "create.domain '{}' is not a domain; set the verified domain new users get",
                    c.domain
                )));
            }
            let ul = c.usage_location.trim();
            if ul.len() != 2 || !ul.chars().all(|ch| ch.is_ascii_alphabetic()) {
                return Err(Error::Config(format!(
                    "create.usage_location '{ul}' must be a two-letter country code such as \"DE\""
                )));
            }
            if let Some(p) = &c.upn_pattern {
                Pattern::parse(p).map_err(|e| Error::Config(format!("create.upn_pattern: {e}")))?;
            }
        }
        Ok(())
    }
}

fn valid_domain(d: &str) -> bool {
    let d = d.trim();
    !d.is_empty()
        && !d.contains('@')
        && !d.contains(char::is_whitespace)
        && !d.starts_with('.')
        && !d.ends_with('.')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_render() {
        let cases = [
            ("first.last", "john.smith"),
            ("f.last", "j.smith"),
            ("firstl", "johns"),
            ("last.first", "smith.john"),
            ("firstlast", "johnsmith"),
            ("first_last", "john_smith"),
            ("flast", "jsmith"),
            ("first-l", "john-s"),
        ];
        for (p, want) in cases {
            let pat = Pattern::parse(p).unwrap();
            assert_eq!(pat.render("john", "smith").as_deref(), Some(want), "{p}");
        }
        assert!(Pattern::parse("first.x").is_err());
        assert!(Pattern::parse("first").is_err());
    }

    #[test]
    fn globs() {
        let cases = [
            ("svc-*", "SVC-backup", true),
            ("svc-*", "xsvc-backup", false),
            ("*@old.example", "a@old.example", true),
            ("a?c", "abc", true),
            ("a?c", "ac", false),
            ("*", "", true),
            ("a*b*c", "axxbyyc", true),
            ("a*b*c", "axxbyy", false),
        ];
        for (p, t, want) in cases {
            assert_eq!(Glob::new(p).matches(t), want, "{p} {t}");
        }
    }

    #[test]
    fn toml_config_parses_and_rejects_typos() {
        let cfg: MatchConfig = toml::from_str(
            r#"
            exclude_sources = ["svc-*"]
            [[rules]]
            kind = "exact_address"
            secondary_proxies = false
            [[rules]]
            kind = "domain_map"
            mappings = [{ from = "old.example", to = "new.example" }, { from = "older.example", to = "new.example" }]
            [[rules]]
            kind = "local_part"
            normalize = { dots = false }
            [[rules]]
            kind = "name_pattern"
            name = "names"
            patterns = ["first.last"]
            confidence = 80
            [create]
            enabled = true
            domain = "new.example"
            usage_location = "DE"
            "#,
        )
        .unwrap();
        cfg.validate().unwrap();
        assert_eq!(cfg.rules.len(), 4);
        assert_eq!(cfg.rules[3].name(), "names");
        assert_eq!(cfg.rules[3].confidence(), 80);
        assert_eq!(cfg.rules[1].name(), "domain-map");
        assert!(matches!(
            cfg.rules[2],
            Rule::LocalPart {
                normalize: Normalization {
                    dots: false,
                    case: true,
                    ..
                },
                ..
            }
        ));
        let typo = toml::from_str::<MatchConfig>(
            "[[rules]]\nkind = \"exact_address\"\nsecondary = true\n",
        );
        assert!(typo.is_err());
        let bad_kind = toml::from_str::<MatchConfig>("[[rules]]\nkind = \"fuzzy\"\n");
        assert!(bad_kind.is_err());
    }

    #[test]
    fn rules_by_name() {
        let mut domains = std::collections::BTreeMap::new();
        let names: Vec<String> = ["exact-address", "domain_map"].map(String::from).to_vec();
        assert!(MatchConfig::from_names(&names, &domains).is_err());
        domains.insert("old.example".to_owned(), "new.example".to_owned());
        let c = MatchConfig::from_names(&names, &domains).unwrap();
        assert_eq!(c.rules.len(), 2);
        assert_eq!(
            c.rules[1],
            Rule::domain_map([("old.example", "new.example")])
        );
        let c = MatchConfig::from_names(&[], &domains).unwrap();
        assert_eq!(c.rules.len(), default_rules().len() + 1);
        assert_eq!(c.rules[1].kind(), "domain_map");
        let e = MatchConfig::from_names(&["fuzzy".to_owned()], &domains).unwrap_err();
        assert!(
            e.to_string().contains("unknown matching rule 'fuzzy'"),
            "{e}"
        );
        let twice: Vec<String> = ["local-part", "local_part"].map(String::from).to_vec();
        assert!(MatchConfig::from_names(&twice, &domains).is_err());
    }

    #[test]
    fn validation_errors_name_the_problem() {
        let mut cfg = MatchConfig::default();
        cfg.rules.push(Rule::FullName {
            name: None,
            confidence: None,
        });
        let e = cfg.validate().unwrap_err().to_string();
        assert!(e.contains("full-name"), "{e}");
        let cfg = MatchConfig {
            create: CreateConfig {
                enabled: true,
                domain: "new.example".into(),
                usage_location: "Germany".into(),
                ..CreateConfig::default()
            },
            ..MatchConfig::default()
        };
        assert!(
            cfg.validate()
                .unwrap_err()
                .to_string()
                .contains("usage_location")
        );
    }
}
