//! Folder mapping: source IMAP folders → target well-known folders or target paths.
//!
//! Order of decisions for each source folder (deterministic; input order does not matter):
//!
//! 1. Folders that hold no mail of their own are skipped with a reason: virtual folders
//!    (`\All`, `\Flagged`, Gmail's `\Important`, XLIST `\AllMail` / `\Starred`) and containers
//!    (`\Noselect`, `\NonExistent`; their subfolders are still mapped).
//! 2. System folders are skipped unless `[folders] migrate_system_folders = true`: Sync Issues
//!    (and everything below it), Conflicts, Local Failures, Server Failures, Outbox (and their
//!    German / French / Spanish / Italian names), Gmail's `[Gmail]/All Mail`, `Starred`,
//!    `Important`. Exchange's reserved `Files` name is the writer's business, not this module's.
//! 3. `INBOX` (any case) is the Inbox.
//! 4. SPECIAL-USE attributes (RFC 6154): `\Sent`, `\Drafts`, `\Trash`, `\Junk`, `\Archive`.
//! 5. The multilingual name table (case-insensitive), for top-level folders and folders directly
//!    under `INBOX` or `[Gmail]` / `[Google Mail]`.
//! 6. The job's `[[folders.map]]` regex rules over the `/`-separated source path, first wins.
//! 7. Otherwise the folder keeps its path; below a folder mapped to a well-known kind it lands
//!    below that kind (`Sent/2019` → Sent Items / `2019`).
//!
//! A well-known kind is claimed once: by SPECIAL-USE first, then by the name table in path
//! order. A second folder that would map to the same kind keeps its own name as an ordinary
//! folder (reason [`MapReason::KindTaken`]), so two source folders are never silently merged.
//!
//! Finally `[filters] include_folders` / `exclude_folders` are applied; every skip carries a
//! [`SkipReason`].
//!
//! ```
//! use o365_migrate_engine::folders::{FolderMapper, SourceFolder, WellKnownFolder};
//! let mapper = FolderMapper::new(&Default::default(), &Default::default()).unwrap();
//! let plan = mapper.map(&[
//!     SourceFolder::new("INBOX", Some('.'), &[]),
//!     SourceFolder::new("INBOX.Gesendete Elemente", Some('.'), &[]),
//! ]);
//! assert_eq!(plan[1].target().unwrap().parent, Some(WellKnownFolder::SentItems));
//! ```

use std::collections::BTreeMap;
use std::fmt;

use regex::Regex;

use crate::config::{Filters, FolderPattern, FolderRules};
use crate::error::{Error, Location, Result};

/// The well-known target folders; defined once, in the writers crate, and re-exported here
/// because [`FolderTarget::parent`] names them.
pub use o365_migrate_target::WellKnownFolder;

/// A folder as listed by the source (LIST / XLIST with SPECIAL-USE).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceFolder {
    /// The full path as the server names it (decoded from modified UTF-7).
    pub path: String,
    /// The hierarchy delimiter, `None` for a flat namespace.
    pub delimiter: Option<char>,
    /// Attributes such as `\Sent` or `\Noselect` (any case).
    pub attributes: Vec<String>,
}

impl SourceFolder {
    /// Convenience constructor.
    pub fn new(path: &str, delimiter: Option<char>, attributes: &[&str]) -> SourceFolder {
        SourceFolder {
            path: path.to_owned(),
            delimiter,
            attributes: attributes.iter().map(|a| (*a).to_owned()).collect(),
        }
    }

    fn segments(&self) -> Vec<&str> {
        match self.delimiter {
            Some(d) => self.path.split(d).collect(),
            None => vec![self.path.as_str()],
        }
    }

    /// The path with `/` as separator (what globs and regex rules match against).
    pub fn slash_path(&self) -> String {
        self.segments().join("/")
    }

    fn has_attr(&self, a: &str) -> bool {
        self.attributes.iter().any(|x| x.eq_ignore_ascii_case(a))
    }
}

/// Where a folder's mail goes.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
pub struct FolderTarget {
    /// The well-known folder it lies in (or is, when `path` is empty); `None` = mailbox root.
    pub parent: Option<WellKnownFolder>,
    /// Folder names below `parent`; empty = `parent` itself.
    pub path: Vec<String>,
}

impl FolderTarget {
    /// The well-known folder itself.
    pub fn well_known(k: WellKnownFolder) -> FolderTarget {
        FolderTarget {
            parent: Some(k),
            path: Vec::new(),
        }
    }
}

impl fmt::Display for FolderTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts: Vec<&str> = Vec::new();
        if let Some(k) = self.parent {
            parts.push(k.token());
        }
        parts.extend(self.path.iter().map(String::as_str));
        f.write_str(&parts.join("/"))
    }
}

/// Why a folder maps where it does.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub enum MapReason {
    /// It is the INBOX.
    Inbox,
    /// Its SPECIAL-USE attribute.
    SpecialUse(String),
    /// Its name in the built-in name table.
    NameTable(String),
    /// A `[[folders.map]]` rule (the pattern).
    Rule(String),
    /// Its own path, possibly below a well-known ancestor.
    Path,
    /// Gmail's All Mail: each message placed by its labels (`[gmail] strategy`), Archive when
    /// no label places it.
    GmailLabels,
    /// It would be this kind, but another folder (named) already is.
    KindTaken {
        /// The kind.
        kind: WellKnownFolder,
        /// The folder that has it.
        by: String,
    },
}

impl fmt::Display for MapReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MapReason::Inbox => f.write_str("INBOX"),
            MapReason::SpecialUse(a) => write!(f, "SPECIAL-USE {a}"),
            MapReason::NameTable(n) => write!(f, "well-known name \"{n}\""),
            MapReason::Rule(p) => write!(f, "rule /{p}/"),
            MapReason::Path => f.write_str("same path"),
            MapReason::GmailLabels => {
                f.write_str("Gmail: each message by its labels, Archive without one")
            }
            MapReason::KindTaken { kind, by } => write!(
                f,
                "looks like {kind}, but \"{by}\" already maps there; kept as its own folder"
            ),
        }
    }
}

/// Why a folder is not migrated. Every skip is reported.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub enum SkipReason {
    /// A virtual folder whose messages live in other folders (`\All`, `\Flagged`, …).
    Virtual(String),
    /// A container without messages of its own (`\Noselect` / `\NonExistent`).
    NoSelect,
    /// A client or server system folder (Sync Issues, Outbox, Gmail's Important, …).
    System(String),
    /// A `[[folders.map]]` rule with `skip = true` (the pattern).
    Rule(String),
    /// Matched `[filters] exclude_folders` (the pattern).
    Excluded(String),
    /// `[filters] include_folders` is set and did not match.
    NotIncluded,
    /// A Gmail label folder: its messages are read once from All Mail (`[gmail] strategy`).
    GmailLabel,
}

impl fmt::Display for SkipReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SkipReason::Virtual(a) => write!(
                f,
                "virtual folder ({a}): its messages are migrated from their real folders"
            ),
            SkipReason::NoSelect => {
                f.write_str("container without messages (\\Noselect); its subfolders are mapped")
            }
            SkipReason::System(n) => write!(
                f,
                "system folder \"{n}\" (set [folders] migrate_system_folders = true to include)"
            ),
            SkipReason::Rule(p) => write!(f, "skipped by [[folders.map]] rule /{p}/"),
            SkipReason::Excluded(p) => write!(f, "excluded by filters.exclude_folders `{p}`"),
            SkipReason::NotIncluded => f.write_str("not matched by filters.include_folders"),
            SkipReason::GmailLabel => f.write_str(
                "a Gmail label: its messages are read once from All Mail and placed by their \
                 labels ([gmail] strategy)",
            ),
        }
    }
}

/// The decision for one folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FolderDecision {
    /// Migrate into `target`.
    Migrate {
        /// Where.
        target: FolderTarget,
        /// Why there.
        reason: MapReason,
    },
    /// Do not migrate.
    Skip {
        /// Why.
        reason: SkipReason,
    },
}

/// A source folder with its decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MappedFolder {
    /// The source folder.
    pub source: SourceFolder,
    /// What happens to it.
    pub decision: FolderDecision,
}

impl MappedFolder {
    /// The target when migrated.
    pub fn target(&self) -> Option<&FolderTarget> {
        match &self.decision {
            FolderDecision::Migrate { target, .. } => Some(target),
            FolderDecision::Skip { .. } => None,
        }
    }
    /// The skip reason when skipped.
    pub fn skip_reason(&self) -> Option<&SkipReason> {
        match &self.decision {
            FolderDecision::Skip { reason } => Some(reason),
            FolderDecision::Migrate { .. } => None,
        }
    }
}

/// Built-in names (lowercase) → kind.
const NAME_TABLE: &[(&str, WellKnownFolder)] = {
    use WellKnownFolder::*;
    &[
        // Sent
        ("sent", SentItems),
        ("sent items", SentItems),
        ("sent messages", SentItems),
        ("sent mail", SentItems),
        ("sent-mail", SentItems),
        ("gesendet", SentItems),
        ("gesendete elemente", SentItems),
        ("gesendete objekte", SentItems),
        ("gesendete nachrichten", SentItems),
        ("éléments envoyés", SentItems),
        ("messages envoyés", SentItems),
        ("envoyés", SentItems),
        ("elementos enviados", SentItems),
        ("enviados", SentItems),
        ("posta inviata", SentItems),
        ("inviata", SentItems),
        ("elementy wysłane", SentItems),
        ("wysłane", SentItems),
        ("verzonden items", SentItems),
        ("verzonden", SentItems),
        ("itens enviados", SentItems),
        ("skickat", SentItems),
        ("skickade objekt", SentItems),
        ("sendt", SentItems),
        ("sendte elementer", SentItems),
        // Deleted
        ("trash", DeletedItems),
        ("deleted items", DeletedItems),
        ("deleted messages", DeletedItems),
        ("deleted", DeletedItems),
        ("bin", DeletedItems),
        ("papierkorb", DeletedItems),
        ("gelöschte elemente", DeletedItems),
        ("gelöschte objekte", DeletedItems),
        ("corbeille", DeletedItems),
        ("éléments supprimés", DeletedItems),
        ("elementos eliminados", DeletedItems),
        ("papelera", DeletedItems),
        ("posta eliminata", DeletedItems),
        ("cestino", DeletedItems),
        ("kosz", DeletedItems),
        ("elementy usunięte", DeletedItems),
        ("verwijderde items", DeletedItems),
        ("prullenbak", DeletedItems),
        ("itens excluídos", DeletedItems),
        ("lixeira", DeletedItems),
        // Junk
        ("junk", JunkEmail),
        ("junk e-mail", JunkEmail),
        ("junk email", JunkEmail),
        ("junk-e-mail", JunkEmail),
        ("junk mail", JunkEmail),
        ("spam", JunkEmail),
        ("bulk mail", JunkEmail),
        ("courrier indésirable", JunkEmail),
        ("pourriel", JunkEmail),
        ("correo no deseado", JunkEmail),
        ("posta indesiderata", JunkEmail),
        ("wiadomości-śmieci", JunkEmail),
        ("ongewenste e-mail", JunkEmail),
        ("lixo eletrônico", JunkEmail),
        // Drafts
        ("drafts", Drafts),
        ("draft", Drafts),
        ("entwürfe", Drafts),
        ("brouillons", Drafts),
        ("borradores", Drafts),
        ("bozze", Drafts),
        ("kopie robocze", Drafts),
        ("concepten", Drafts),
        ("rascunhos", Drafts),
        // Archive
        ("archive", Archive),
        ("archives", Archive),
        ("archiv", Archive),
        ("archivo", Archive),
        ("archivio", Archive),
        ("archiwum", Archive),
        ("archief", Archive),
        ("arquivo", Archive),
    ]
};

/// System folder names (lowercase) skipped by default, with their subfolders.
const SYSTEM_NAMES: &[&str] = &[
    "sync issues",
    "conflicts",
    "local failures",
    "server failures",
    "outbox",
    "synchronisierungsprobleme",
    "konflikte",
    "lokale fehler",
    "serverfehler",
    "postausgang",
    "problèmes de synchronisation",
    "conflits",
    "échecs locaux",
    "échecs du serveur",
    "boîte d'envoi",
    "problemas de sincronización",
    "bandeja de salida",
    "problemi di sincronizzazione",
    "posta in uscita",
];

/// Gmail's virtual folders below `[Gmail]` / `[Google Mail]` (lowercase).
const GMAIL_VIRTUAL: &[&str] = &["all mail", "starred", "important"];

const VIRTUAL_ATTRS: &[&str] = &[
    "\\All",
    "\\Flagged",
    "\\Important",
    "\\AllMail",
    "\\Starred",
];

fn is_gmail_root(s: &str) -> bool {
    s.eq_ignore_ascii_case("[Gmail]") || s.eq_ignore_ascii_case("[Google Mail]")
}

struct CompiledRule {
    pattern: String,
    re: Regex,
    target: Option<String>,
}

struct CompiledPattern {
    text: String,
    kind: Option<WellKnownFolder>,
    glob: Option<Regex>,
}

/// Maps a mailbox's source folders. Build once per job with [`FolderMapper::new`].
pub struct FolderMapper {
    rules: Vec<CompiledRule>,
    include: Vec<CompiledPattern>,
    exclude: Vec<CompiledPattern>,
    migrate_system: bool,
    namespace_prefix: Option<String>,
}

impl fmt::Debug for FolderMapper {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FolderMapper")
            .field("rules", &self.rules.len())
            .field("include", &self.include.len())
            .field("exclude", &self.exclude.len())
            .field("migrate_system", &self.migrate_system)
            .field("namespace_prefix", &self.namespace_prefix)
            .finish()
    }
}

/// Compiles a folder glob (see [`FolderPattern::Glob`]) into an anchored, case-insensitive regex.
pub fn glob_to_regex(glob: &str) -> String {
    let (base, recursive) = match glob.strip_suffix("/**") {
        Some(b) => (b, true),
        None => (glob, false),
    };
    let mut re = String::from("(?i)^");
    let chars: Vec<char> = base.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        match chars[i] {
            '*' if chars.get(i + 1) == Some(&'*') => {
                re.push_str(".*");
                i += 1;
            }
            '*' => re.push_str("[^/]*"),
            '?' => re.push_str("[^/]"),
            c => re.push_str(&regex::escape(&c.to_string())),
        }
        i += 1;
    }
    if recursive {
        re.push_str("(?:/.*)?");
    }
    re.push('$');
    re
}

fn compile_patterns(pats: &[FolderPattern]) -> Result<Vec<CompiledPattern>> {
    pats.iter()
        .map(|p| match p {
            FolderPattern::WellKnown(k) => Ok(CompiledPattern {
                text: k.token().to_owned(),
                kind: Some(*k),
                glob: None,
            }),
            FolderPattern::Glob(g) => Ok(CompiledPattern {
                text: g.clone(),
                kind: None,
                glob: Some(Regex::new(&glob_to_regex(g)).map_err(|e| rule_error(g, &e))?),
            }),
        })
        .collect()
}

fn rule_error(p: &str, e: &regex::Error) -> Error {
    Error::Config {
        message: format!(
            "invalid folder pattern `{p}`: {}",
            crate::config::regex_error_text(e)
        ),
        location: Location {
            file: "job".into(),
            line: 0,
            column: 0,
        },
        hint: Some("check the pattern's syntax".to_owned()),
    }
}

impl FolderMapper {
    /// Builds a mapper from the job's `[folders]` rules and `[filters]` folder patterns.
    pub fn new(rules: &FolderRules, filters: &Filters) -> Result<FolderMapper> {
        let mut compiled = Vec::new();
        for r in &rules.map {
            let re = Regex::new(&r.source).map_err(|e| rule_error(&r.source, &e))?;
            compiled.push(CompiledRule {
                pattern: r.source.clone(),
                re,
                target: if r.skip { None } else { r.target.clone() },
            });
        }
        Ok(FolderMapper {
            rules: compiled,
            include: compile_patterns(&filters.include_folders)?,
            exclude: compile_patterns(&filters.exclude_folders)?,
            migrate_system: rules.migrate_system_folders,
            namespace_prefix: None,
        })
    }

    /// Sets the personal namespace prefix from the server's NAMESPACE reply (e.g. `INBOX.` on
    /// Courier / cPanel), which is stripped so `INBOX.Projects` becomes the top-level
    /// `Projects` rather than a subfolder of Inbox.
    pub fn with_namespace_prefix(mut self, prefix: &str) -> FolderMapper {
        self.namespace_prefix = (!prefix.is_empty()).then(|| prefix.to_owned());
        self
    }

    /// Maps all folders of one mailbox. The result is sorted by source path and does not depend
    /// on the input order.
    pub fn map(&self, folders: &[SourceFolder]) -> Vec<MappedFolder> {
        let mut sorted: Vec<&SourceFolder> = folders.iter().collect();
        sorted.sort_by(|a, b| a.path.cmp(&b.path));
        sorted.dedup_by(|a, b| a.path == b.path);

        // Pass 1: claims by SPECIAL-USE (and INBOX) so they win over name matches.
        let mut claimed: BTreeMap<WellKnownFolder, String> = BTreeMap::new();
        let mut pre: Vec<Option<FolderDecision>> = Vec::with_capacity(sorted.len());
        for f in &sorted {
            let d = self.pre_decide(f);
            if let Some(FolderDecision::Migrate { target, reason }) = &d
                && target.path.is_empty()
                && let Some(k) = target.parent
                && matches!(reason, MapReason::Inbox | MapReason::SpecialUse(_))
            {
                if let Some(by) = claimed.get(&k) {
                    pre.push(Some(FolderDecision::Migrate {
                        target: self.own_path(f),
                        reason: MapReason::KindTaken {
                            kind: k,
                            by: by.clone(),
                        },
                    }));
                    continue;
                }
                claimed.insert(k, f.path.clone());
            }
            pre.push(d);
        }

        // Pass 2: name table, rules, paths.
        let mut out: Vec<MappedFolder> = Vec::with_capacity(sorted.len());
        let mut kind_of_path: BTreeMap<String, WellKnownFolder> = BTreeMap::new();
        for (f, d) in sorted.iter().zip(pre) {
            let decision = match d {
                Some(d) => d,
                None => self.decide_rest(f, &mut claimed, &kind_of_path),
            };
            if let FolderDecision::Migrate { target, .. } = &decision
                && target.path.is_empty()
                && let Some(k) = target.parent
            {
                kind_of_path.insert(f.path.clone(), k);
            }
            let decision = self.apply_filters(f, decision);
            out.push(MappedFolder {
                source: (*f).clone(),
                decision,
            });
        }
        out
    }

    /// Segments after stripping the namespace prefix.
    fn logical<'a>(&self, f: &'a SourceFolder) -> Vec<&'a str> {
        let segs = f.segments();
        if let (Some(p), Some(d)) = (&self.namespace_prefix, f.delimiter) {
            let prefix = p.trim_end_matches(d);
            if segs.len() > 1 && segs[0].eq_ignore_ascii_case(prefix) {
                return segs[1..].to_vec();
            }
        }
        segs
    }

    /// The folder's own (logical) path, without any well-known parent.
    fn own_path(&self, f: &SourceFolder) -> FolderTarget {
        let segs = self.logical(f);
        let segs = if segs.len() > 1 && is_gmail_root(segs[0]) {
            &segs[1..]
        } else {
            &segs[..]
        };
        FolderTarget {
            parent: None,
            path: segs.iter().map(|s| (*s).to_owned()).collect(),
        }
    }

    /// Skips, INBOX and SPECIAL-USE. `None` = decide in pass 2.
    fn pre_decide(&self, f: &SourceFolder) -> Option<FolderDecision> {
        let skip = |reason| Some(FolderDecision::Skip { reason });
        if let Some(a) = VIRTUAL_ATTRS.iter().find(|a| f.has_attr(a)) {
            return skip(SkipReason::Virtual((*a).to_owned()));
        }
        if f.has_attr("\\Noselect") || f.has_attr("\\NonExistent") {
            return skip(SkipReason::NoSelect);
        }
        let raw = f.segments();
        if !self.migrate_system {
            if raw.len() == 2 && is_gmail_root(raw[0]) {
                let n = raw[1].to_lowercase();
                if GMAIL_VIRTUAL.contains(&n.as_str()) {
                    return skip(SkipReason::System(f.slash_path()));
                }
            }
            let logical = self.logical(f);
            let first = if logical.len() > 1 && logical[0].eq_ignore_ascii_case("INBOX") {
                logical[1]
            } else {
                logical[0]
            };
            let lf = first.to_lowercase();
            if SYSTEM_NAMES
                .iter()
                .any(|n| lf == *n || lf.starts_with(&format!("{n} (")))
            {
                return skip(SkipReason::System(first.to_owned()));
            }
        }
        if raw.len() == 1 && raw[0].eq_ignore_ascii_case("INBOX") {
            return Some(FolderDecision::Migrate {
                target: FolderTarget::well_known(WellKnownFolder::Inbox),
                reason: MapReason::Inbox,
            });
        }
        for a in &f.attributes {
            if let Some(k) = WellKnownFolder::from_special_use(a) {
                return Some(FolderDecision::Migrate {
                    target: FolderTarget::well_known(k),
                    reason: MapReason::SpecialUse(a.clone()),
                });
            }
        }
        None
    }

    fn decide_rest(
        &self,
        f: &SourceFolder,
        claimed: &mut BTreeMap<WellKnownFolder, String>,
        kind_of_path: &BTreeMap<String, WellKnownFolder>,
    ) -> FolderDecision {
        // Name table: top level, or directly under INBOX / [Gmail].
        let logical = self.logical(f);
        let name = match logical.as_slice() {
            [one] => Some(*one),
            [root, one] if root.eq_ignore_ascii_case("INBOX") || is_gmail_root(root) => Some(*one),
            _ => None,
        };
        if let Some(name) = name {
            let lower = name.to_lowercase();
            if let Some((n, k)) = NAME_TABLE.iter().find(|(n, _)| *n == lower) {
                if let Some(by) = claimed.get(k) {
                    return FolderDecision::Migrate {
                        target: self.own_path(f),
                        reason: MapReason::KindTaken {
                            kind: *k,
                            by: by.clone(),
                        },
                    };
                }
                claimed.insert(*k, f.path.clone());
                return FolderDecision::Migrate {
                    target: FolderTarget::well_known(*k),
                    reason: MapReason::NameTable((*n).to_owned()),
                };
            }
        }
        // Regex rules.
        let slash = f.slash_path();
        for r in &self.rules {
            if let Some(caps) = r.re.captures(&slash) {
                return match &r.target {
                    None => FolderDecision::Skip {
                        reason: SkipReason::Rule(r.pattern.clone()),
                    },
                    Some(t) => {
                        let mut expanded = String::new();
                        caps.expand(t, &mut expanded);
                        FolderDecision::Migrate {
                            target: parse_target(&expanded),
                            reason: MapReason::Rule(r.pattern.clone()),
                        }
                    }
                };
            }
        }
        // Path, below the nearest ancestor mapped to a well-known kind.
        let segs = f.segments();
        let namespace_depth = segs.len() - logical.len();
        if let Some(d) = f.delimiter {
            for cut in (namespace_depth + 1..segs.len()).rev() {
                let ancestor = segs[..cut].join(&d.to_string());
                if let Some(k) = kind_of_path.get(&ancestor) {
                    return FolderDecision::Migrate {
                        target: FolderTarget {
                            parent: Some(*k),
                            path: segs[cut..].iter().map(|s| (*s).to_owned()).collect(),
                        },
                        reason: MapReason::Path,
                    };
                }
            }
        }
        FolderDecision::Migrate {
            target: self.own_path(f),
            reason: MapReason::Path,
        }
    }

    fn apply_filters(&self, f: &SourceFolder, d: FolderDecision) -> FolderDecision {
        let FolderDecision::Migrate { target, reason } = d else {
            return d;
        };
        let slash = f.slash_path();
        let matches = |p: &CompiledPattern| match (&p.kind, &p.glob) {
            (Some(k), _) => target.parent == Some(*k) && target.path.is_empty(),
            (None, Some(g)) => g.is_match(&slash),
            (None, None) => false,
        };
        if let Some(p) = self.exclude.iter().find(|p| matches(p)) {
            return FolderDecision::Skip {
                reason: SkipReason::Excluded(p.text.clone()),
            };
        }
        if !self.include.is_empty() && !self.include.iter().any(matches) {
            return FolderDecision::Skip {
                reason: SkipReason::NotIncluded,
            };
        }
        FolderDecision::Migrate { target, reason }
    }
}

/// Parses a rule's expanded target: `#Archive#/a/b` or `a/b`.
fn parse_target(s: &str) -> FolderTarget {
    let mut parts: Vec<&str> = s.split('/').filter(|p| !p.is_empty()).collect();
    let parent = parts.first().and_then(|p| WellKnownFolder::from_token(p));
    if parent.is_some() {
        parts.remove(0);
    }
    FolderTarget {
        parent,
        path: parts.into_iter().map(str::to_owned).collect(),
    }
}

/// The target folder spec for a mapped source folder.
pub fn folder_spec(source: &str, t: &FolderTarget) -> o365_migrate_target::FolderSpec {
    match t.parent {
        Some(k) => o365_migrate_target::FolderSpec::under(source, k, t.path.clone()),
        None => o365_migrate_target::FolderSpec::at_root(source, t.path.clone()),
    }
}

mod names;

pub(crate) use names::{NameRules, fit_folder_names};

/// The target folders of a mailbox's copied source folders, names fitted to the target.
pub(crate) struct TargetSpecs {
    /// (source path, target folder), in the order of the mapping.
    pub(crate) specs: Vec<(String, o365_migrate_target::FolderSpec)>,
    /// (source path, note) for every folder whose name had to change.
    pub(crate) renamed: Vec<(String, String)>,
}

/// The target folder of every mapped source folder that is copied, by source path, with names
/// fitted to the target ([`fit_folder_names`]), and the notes about renamed ones.
pub(crate) fn target_specs(
    mapped: &[MappedFolder],
    caps: &o365_migrate_target::Capabilities,
) -> TargetSpecs {
    let (sources, mut specs): (Vec<String>, Vec<o365_migrate_target::FolderSpec>) = mapped
        .iter()
        .filter_map(|m| {
            m.target()
                .map(|t| (m.source.path.clone(), folder_spec(&m.source.path, t)))
        })
        .unzip();
    let renamed = fit_folder_names(&mut specs, NameRules::of(caps));
    TargetSpecs {
        specs: sources.into_iter().zip(specs).collect(),
        renamed,
    }
}

#[cfg(test)]
mod tests;
