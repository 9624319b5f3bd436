//! Folder mapping for IMAP targets (pure): well-known folders by SPECIAL-USE attribute, then by
//! name; planned paths joined with the target's hierarchy delimiter under its personal
//! namespace; reserved names renamed.

use std::collections::{HashMap, HashSet};

use o365_migrate_imap::{Mailbox, SpecialUse};

use crate::writer::{FolderBase, FolderSpec, WellKnownFolder};

/// Names tried (case-insensitively) when no folder carries the SPECIAL-USE attribute; the first
/// is the name a missing folder is created with on a generic server.
fn candidates(k: WellKnownFolder) -> &'static [&'static str] {
    match k {
        WellKnownFolder::Inbox => &["INBOX"],
        WellKnownFolder::SentItems => &["Sent", "Sent Items", "Sent Messages", "Sent Mail"],
        WellKnownFolder::DeletedItems => &["Trash", "Deleted Items", "Deleted Messages", "Deleted"],
        WellKnownFolder::JunkEmail => &["Junk", "Junk Email", "Junk E-mail", "Spam"],
        WellKnownFolder::Drafts => &["Drafts", "Draft"],
        WellKnownFolder::Archive => &["Archive", "Archives"],
    }
}

/// The name Exchange Online gives a well-known folder (used when it must be created there).
fn exchange_name(k: WellKnownFolder) -> &'static str {
    match k {
        WellKnownFolder::Inbox => "INBOX",
        WellKnownFolder::SentItems => "Sent Items",
        WellKnownFolder::DeletedItems => "Deleted Items",
        WellKnownFolder::JunkEmail => "Junk Email",
        WellKnownFolder::Drafts => "Drafts",
        WellKnownFolder::Archive => "Archive",
    }
}

fn special(k: WellKnownFolder) -> Option<SpecialUse> {
    match k {
        WellKnownFolder::Inbox => None,
        WellKnownFolder::SentItems => Some(SpecialUse::Sent),
        WellKnownFolder::DeletedItems => Some(SpecialUse::Trash),
        WellKnownFolder::JunkEmail => Some(SpecialUse::Junk),
        WellKnownFolder::Drafts => Some(SpecialUse::Drafts),
        WellKnownFolder::Archive => Some(SpecialUse::Archive),
    }
}

/// A top-level name the target reserves, and what to call such a folder instead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Reserved {
    pub(crate) name: String,
    pub(crate) rename_to: String,
}

/// The target's folders as LIST showed them, and how to name new ones.
#[derive(Debug, Clone)]
pub(crate) struct FolderTree {
    pub(crate) delimiter: char,
    /// Personal namespace prefix (`""` on Dovecot / Exchange, `"INBOX."` on Courier / Cyrus).
    pub(crate) prefix: String,
    /// Existing names (INBOX upper-cased; IMAP names are otherwise case-sensitive).
    pub(crate) existing: HashSet<String>,
    special_use: HashMap<SpecialUse, String>,
    pub(crate) exchange_names: bool,
    pub(crate) reserved: Vec<Reserved>,
}

/// Where a planned folder goes: its full IMAP name, the levels to create (outermost first) and
/// report notes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Resolved {
    pub(crate) name: String,
    pub(crate) levels: Vec<String>,
    pub(crate) display: String,
    pub(crate) notes: Vec<String>,
}

fn canon(name: &str) -> String {
    if name.eq_ignore_ascii_case("INBOX") {
        "INBOX".into()
    } else {
        name.to_string()
    }
}

impl FolderTree {
    pub(crate) fn new(
        mailboxes: &[Mailbox],
        delimiter: Option<char>,
        prefix: Option<String>,
        exchange_names: bool,
        reserved: Vec<Reserved>,
    ) -> Self {
        let delimiter = delimiter
            .or_else(|| mailboxes.iter().find_map(|m| m.delimiter))
            .unwrap_or('/');
        let mut special_use = HashMap::new();
        for m in mailboxes {
            if let Some(s) = m.special_use {
                special_use.entry(s).or_insert_with(|| m.name.clone());
            }
        }
        Self {
            delimiter,
            prefix: prefix.unwrap_or_default(),
            existing: mailboxes.iter().map(|m| canon(&m.name)).collect(),
            special_use,
            exchange_names,
            reserved,
        }
    }

    /// Finds an existing folder by name, case-insensitively, with or without the prefix.
    fn find_named(&self, name: &str) -> Option<String> {
        let with_prefix = format!("{}{name}", self.prefix);
        let mut sorted: Vec<&String> = self.existing.iter().collect();
        sorted.sort();
        sorted
            .into_iter()
            .find(|e| e.eq_ignore_ascii_case(&with_prefix) || e.eq_ignore_ascii_case(name))
            .cloned()
    }

    /// The full name of a well-known folder: by SPECIAL-USE, then by name, else the name it
    /// is created with.
    pub(crate) fn well_known(&self, k: WellKnownFolder) -> String {
        if k == WellKnownFolder::Inbox {
            return "INBOX".into();
        }
        if let Some(s) = special(k).and_then(|s| self.special_use.get(&s)) {
            return s.clone();
        }
        for c in candidates(k) {
            if let Some(found) = self.find_named(c) {
                return found;
            }
        }
        let base = if self.exchange_names {
            exchange_name(k)
        } else {
            candidates(k)[0]
        };
        format!("{}{base}", self.prefix)
    }

    /// Maps one planned folder onto a full IMAP name.
    pub(crate) fn resolve(&self, spec: &FolderSpec) -> Result<Resolved, String> {
        let d = self.delimiter;
        let mut notes = Vec::new();
        let (mut name, mut levels) = match &spec.base {
            FolderBase::Root => (String::new(), Vec::new()),
            FolderBase::WellKnown(k) => {
                let n = self.well_known(*k);
                (n.clone(), vec![n])
            }
        };
        let mut display = match &spec.base {
            FolderBase::Root => String::new(),
            FolderBase::WellKnown(_) => name.clone(),
        };
        for (i, segment) in spec.path.iter().enumerate() {
            let trimmed = segment.trim();
            if trimmed.is_empty() {
                return Err("empty folder name in the plan".into());
            }
            let mut seg = trimmed.to_string();
            if seg.contains(d) {
                seg = seg.replace(d, "_");
                notes.push(format!(
                    "{trimmed:?} contains the target's hierarchy delimiter {d:?}; written as {seg:?}"
                ));
            }
            if i == 0 && matches!(spec.base, FolderBase::Root) {
                if let Some(r) = self
                    .reserved
                    .iter()
                    .find(|r| r.name.eq_ignore_ascii_case(&seg))
                {
                    notes.push(format!(
                        "{seg:?} is a reserved folder name on this target; written as {:?}",
                        r.rename_to
                    ));
                    seg = r.rename_to.clone();
                }
                name = if seg.eq_ignore_ascii_case("INBOX") {
                    "INBOX".into()
                } else {
                    format!("{}{seg}", self.prefix)
                };
            } else {
                name = format!("{name}{d}{seg}");
            }
            if !display.is_empty() {
                display.push('/');
            }
            display.push_str(&seg);
            levels.push(name.clone());
        }
        if name.is_empty() {
            return Err("the plan names no folder (root without a path)".into());
        }
        Ok(Resolved {
            name: canon(&name),
            levels: levels.into_iter().map(|l| canon(&l)).collect(),
            display,
            notes,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mb(name: &str, special_use: Option<SpecialUse>) -> Mailbox {
        Mailbox {
            name: name.into(),
            raw_name: name.into(),
            delimiter: Some('.'),
            attributes: vec![],
            special_use,
            selectable: true,
            status: None,
        }
    }

    #[test]
    fn special_use_then_name_then_default() {
        let tree = FolderTree::new(
            &[
                mb("INBOX", None),
                mb("INBOX.Gesendet", Some(SpecialUse::Sent)),
                mb("INBOX.trash", None),
            ],
            Some('.'),
            Some("INBOX.".into()),
            false,
            vec![],
        );
        assert_eq!(
            tree.well_known(WellKnownFolder::SentItems),
            "INBOX.Gesendet"
        );
        assert_eq!(
            tree.well_known(WellKnownFolder::DeletedItems),
            "INBOX.trash"
        );
        assert_eq!(tree.well_known(WellKnownFolder::JunkEmail), "INBOX.Junk");
        let r = tree
            .resolve(&FolderSpec::at_root("a/b", ["Projects", "A.B"]))
            .unwrap();
        assert_eq!(r.name, "INBOX.Projects.A_B");
        assert_eq!(r.levels, ["INBOX.Projects", "INBOX.Projects.A_B"]);
        assert_eq!(r.notes.len(), 1);
        let r = tree
            .resolve(&FolderSpec::under(
                "x",
                WellKnownFolder::Inbox,
                ["Receipts"],
            ))
            .unwrap();
        assert_eq!(r.name, "INBOX.Receipts");
        assert!(tree.resolve(&FolderSpec::at_root("x", [" "])).is_err());
    }

    #[test]
    fn reserved_names_are_renamed_at_the_top_only() {
        let tree = FolderTree::new(
            &[mb("INBOX", None)],
            Some('/'),
            None,
            true,
            vec![Reserved {
                name: "Files".into(),
                rename_to: "Files (migrated)".into(),
            }],
        );
        let r = tree
            .resolve(&FolderSpec::at_root("Files", ["files"]))
            .unwrap();
        assert_eq!(r.name, "Files (migrated)");
        assert!(r.notes[0].contains("reserved"));
        let r = tree
            .resolve(&FolderSpec::at_root("P/Files", ["P", "Files"]))
            .unwrap();
        assert_eq!(r.name, "P/Files");
        assert_eq!(tree.well_known(WellKnownFolder::SentItems), "Sent Items");
    }
}
