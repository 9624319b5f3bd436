//! Gmail as a source: every message read once from All Mail (`\All`) with its `X-GM-LABELS`
//! and placed by the job's rule (`[gmail] strategy`); the labels that do not place it become
//! categories (Graph, EWS) or keywords (IMAP); `\Starred` is flagged.
//!
//! Gmail shows a label as a folder, so a message with three labels is in three folders and in
//! All Mail, with one `X-GM-MSGID` (<https://developers.google.com/gmail/imap/imap-extensions>).
//! Reading the label folders would copy it three times; reading All Mail copies it once, and a
//! later pass keys on All Mail's UIDs (one per `X-GM-MSGID`), so a label added later copies
//! nothing again. Spam and Trash are not in All Mail: they are ordinary folders and follow the
//! folder filters.
//!
//! The rule (`one-copy`, the default): Inbox if labelled `\Inbox`, else Sent Items if `\Sent`,
//! else Drafts if `\Draft`, else the folder of the first user label (labels sorted by name,
//! case-insensitively), else Archive. A label's folder is the one the folder mapping gives the
//! label's IMAP folder, so `[[folders.map]]` rules and the folder filters apply to labels as to
//! any folder; a label whose folder is filtered out places nothing (it is still a category).

use std::collections::{BTreeSet, HashMap};

use o365_migrate_target::FolderSpec;

use crate::config::{GmailConfig, GmailStrategy, ImportantAs};
use crate::error::{Error, Result};
use crate::folders::{
    FolderDecision, FolderTarget, MapReason, MappedFolder, SkipReason, WellKnownFolder,
    target_specs,
};

/// Gmail's system labels as `X-GM-LABELS` names them.
const INBOX: &str = "\\Inbox";
const SENT: &str = "\\Sent";
const DRAFT: &str = "\\Draft";
const STARRED: &str = "\\Starred";
const IMPORTANT: &str = "\\Important";

/// The category (keyword) `\Important` becomes with `[gmail] important = "category"`.
pub(crate) const IMPORTANT_CATEGORY: &str = "Important";

/// The reason a labelled message is skipped in All Mail with `labels-as-folders`.
pub(crate) const COPIED_FROM_LABELS: &str =
    "copied from its label folders ([gmail] strategy = \"labels-as-folders\")";

/// How a Gmail mailbox is read: All Mail's path, and where each label places a message.
#[derive(Debug, Clone)]
pub(crate) struct GmailLayout {
    /// All Mail's path (`[Gmail]/All Mail`, or localised; found by `\All`).
    pub(crate) all_mail: String,
    /// Label (as `X-GM-LABELS` names it) → the source folder standing for it, for labels whose
    /// folder is migrated.
    label_folder: HashMap<String, String>,
    /// Source folder path → its target folder, for every folder a label can place a message
    /// in, and All Mail → Archive.
    specs: HashMap<String, FolderSpec>,
    /// Source folder path → its position in the server's folder list (`first-wins`).
    order: HashMap<String, usize>,
    strategy: GmailStrategy,
    important: ImportantAs,
    /// Labels become IMAP keywords (atoms) rather than categories (any text).
    keywords_as_atoms: bool,
}

/// Where one All Mail message goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Placement {
    /// Into the target folder of source folder `folder` (a label's folder, or All Mail for
    /// Archive), with these keywords added and flagged when starred.
    To {
        /// The source folder whose target folder receives it.
        folder: String,
        /// Labels kept as categories / keywords.
        keywords: Vec<String>,
        /// `\Starred`.
        flagged: bool,
    },
    /// Not copied from All Mail (the reason).
    Skip(&'static str),
}

/// A label as this module compares it: system labels verbatim, user labels decoded from
/// modified UTF-7 when they are valid mUTF-7 (Gmail encodes non-ASCII label names as it
/// encodes folder names).
fn decode_label(label: &str) -> String {
    if label.starts_with('\\') || !label.contains('&') {
        return label.to_owned();
    }
    o365_migrate_imap::mutf7::decode(label).unwrap_or_else(|_| label.to_owned())
}

/// A label as an IMAP keyword (RFC 3501 `atom`): modified UTF-7 for non-ASCII text, `_` for
/// a space and every character an atom may not hold. `Family & Friends` → `Family_&-_Friends`.
pub(crate) fn label_keyword(label: &str) -> String {
    o365_migrate_imap::mutf7::encode(label)
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() && !"(){%*\"\\]".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}

impl GmailLayout {
    /// The layout of a Gmail mailbox from its mapped folders (in the server's LIST order), and
    /// the mapping the run uses: label folders skipped (`labels-as-folders`: kept), All Mail to
    /// Archive.
    pub(crate) fn new(
        mapped: Vec<MappedFolder>,
        cfg: &GmailConfig,
        caps: &o365_migrate_target::Capabilities,
    ) -> Result<(Vec<MappedFolder>, GmailLayout)> {
        let has = |m: &MappedFolder, attr: &str| {
            m.source
                .attributes
                .iter()
                .any(|a| a.eq_ignore_ascii_case(attr))
        };
        let Some(all) = mapped.iter().find(|m| has(m, "\\All")) else {
            return Err(Error::Pipeline {
                context: "Gmail source".into(),
                message: "the server lists no All Mail folder (SPECIAL-USE \\All)".into(),
                hint: Some(
                    "show All Mail in IMAP (Gmail settings → Labels → \"Show in IMAP\"), or set \
                     [source] gmail = false to copy label folders as ordinary folders"
                        .into(),
                ),
            });
        };
        let all_mail = all.source.path.clone();
        let archive = MappedFolder {
            source: all.source.clone(),
            decision: FolderDecision::Migrate {
                target: FolderTarget::well_known(WellKnownFolder::Archive),
                reason: MapReason::GmailLabels,
            },
        };
        let mut label_folder = HashMap::new();
        let mut placeable = vec![archive.clone()];
        let mut order = HashMap::new();
        let mut run = Vec::with_capacity(mapped.len());
        for (i, m) in mapped.into_iter().enumerate() {
            order.insert(m.source.path.clone(), i);
            let virtual_or_own = ["\\All", "\\Junk", "\\Trash", "\\Flagged", "\\Important"]
                .iter()
                .any(|a| has(&m, a))
                || has(&m, "\\Noselect")
                || has(&m, "\\NonExistent");
            if m.source.path == all_mail {
                run.push(archive.clone());
                continue;
            }
            if virtual_or_own {
                run.push(m);
                continue;
            }
            let label = if m.source.path.eq_ignore_ascii_case("INBOX") {
                INBOX.to_owned()
            } else if has(&m, "\\Sent") {
                SENT.to_owned()
            } else if has(&m, "\\Drafts") {
                DRAFT.to_owned()
            } else {
                m.source.slash_path()
            };
            if m.target().is_some() {
                label_folder.insert(label, m.source.path.clone());
                placeable.push(m.clone());
            }
            match (&m.decision, cfg.strategy) {
                (_, GmailStrategy::LabelsAsFolders) | (FolderDecision::Skip { .. }, _) => {
                    run.push(m)
                }
                (FolderDecision::Migrate { .. }, _) => run.push(MappedFolder {
                    source: m.source,
                    decision: FolderDecision::Skip {
                        reason: SkipReason::GmailLabel,
                    },
                }),
            }
        }
        let specs = target_specs(&placeable, caps)
            .specs
            .into_iter()
            .collect::<HashMap<_, _>>();
        Ok((
            run,
            GmailLayout {
                all_mail,
                label_folder,
                specs,
                order,
                strategy: cfg.strategy,
                important: cfg.important,
                keywords_as_atoms: caps.keeps_raw_bytes,
            },
        ))
    }

    /// The target folder of source folder `folder` (a label's, or All Mail's Archive).
    pub(crate) fn spec(&self, folder: &str) -> Option<&FolderSpec> {
        self.specs.get(folder)
    }

    /// Where a message with these `X-GM-LABELS` goes.
    pub(crate) fn place(&self, labels: &[String]) -> Placement {
        let labels: BTreeSet<String> = labels.iter().map(|l| decode_label(l)).collect();
        let has = |l: &str| labels.iter().any(|x| x.eq_ignore_ascii_case(l));
        let flagged = has(STARRED);
        // User labels sorted by name, case-insensitively (a stable order whatever the server's).
        let mut user: Vec<&String> = labels.iter().filter(|l| !l.starts_with('\\')).collect();
        user.sort_by_key(|l| (l.to_lowercase(), (*l).clone()));
        let folder_of = |l: &str| {
            self.label_folder
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(l))
                .map(|(_, f)| f.clone())
        };
        let mut keywords: Vec<String> = Vec::new();
        let placed: Option<(String, Option<&String>)> = match self.strategy {
            GmailStrategy::OneCopy => [INBOX, SENT, DRAFT]
                .iter()
                .filter(|l| has(l))
                .find_map(|l| folder_of(l).map(|f| (f, None)))
                .or_else(|| {
                    user.iter()
                        .find_map(|l| folder_of(l).map(|f| (f, Some(*l))))
                }),
            GmailStrategy::FirstWins => {
                let mut candidates: Vec<(usize, String, Option<&String>)> = [INBOX, SENT, DRAFT]
                    .iter()
                    .filter(|l| has(l))
                    .filter_map(|l| folder_of(l).map(|f| (f, None)))
                    .chain(
                        user.iter()
                            .filter_map(|l| folder_of(l).map(|f| (f, Some(*l)))),
                    )
                    .map(|(f, l)| (self.order.get(&f).copied().unwrap_or(usize::MAX), f, l))
                    .collect();
                candidates.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
                candidates.into_iter().next().map(|(_, f, l)| (f, l))
            }
            GmailStrategy::LabelsAsFolders => {
                let labelled = [INBOX, SENT, DRAFT]
                    .iter()
                    .any(|l| has(l) && folder_of(l).is_some())
                    || user.iter().any(|l| folder_of(l).is_some());
                if labelled {
                    return Placement::Skip(COPIED_FROM_LABELS);
                }
                None
            }
        };
        if self.strategy == GmailStrategy::OneCopy {
            let by = placed.as_ref().and_then(|(_, l)| *l);
            keywords.extend(
                user.iter()
                    .filter(|l| by.is_none_or(|b| !b.eq_ignore_ascii_case(l)))
                    .map(|l| (*l).clone()),
            );
        }
        if self.important == ImportantAs::Category && has(IMPORTANT) {
            keywords.push(IMPORTANT_CATEGORY.to_owned());
        }
        if self.keywords_as_atoms {
            keywords = keywords.iter().map(|k| label_keyword(k)).collect();
        }
        let mut seen = BTreeSet::new();
        keywords.retain(|k| seen.insert(k.to_lowercase()));
        Placement::To {
            folder: placed
                .map(|(f, _)| f)
                .unwrap_or_else(|| self.all_mail.clone()),
            keywords,
            flagged,
        }
    }
}

/// Whether an IMAP error is Gmail's answer to a user over the IMAP download limit
/// ("Account exceeded command or bandwidth limits", with `[ALERT]` or `[OVERQUOTA]`; seen in
/// the issue trackers of IMAP clients). Gmail then refuses the account for up to a day.
pub(crate) fn is_download_alert(e: &o365_migrate_imap::Error) -> bool {
    // By its text only: other servers use `[OVERQUOTA]` for other things.
    is_download_alert_text(&e.to_string().to_ascii_lowercase())
}

/// A Gmail login error with the fix: IMAP switched off for the user or the domain, or a token
/// Google issued without the Gmail scope (Google's answers as documented at
/// <https://developers.google.com/gmail/imap/xoauth2-protocol> and in Gmail's IMAP help).
pub(crate) fn with_login_fix(error: String, google_sign_in: bool) -> String {
    let lower = error.to_ascii_lowercase();
    let fix = if lower.contains("not enabled for imap") || lower.contains("imap access is disabled")
    {
        Some(
            "IMAP is switched off for this user: Google Admin console → Apps → Google Workspace → \
             Gmail → End User Access → POP and IMAP access → enable IMAP for the user's \
             organizational unit (a personal account: Gmail settings → Forwarding and POP/IMAP \
             → Enable IMAP)",
        )
    } else if google_sign_in && lower.contains("login as") {
        Some(
            "Google issued a token but Gmail refused it: the token lacks the Gmail scope; add \
             https://mail.google.com/ to the client ID's scopes in Admin console → Security → \
             Access and data control → API controls → Domain-wide delegation (or sign the user \
             in again with that scope)",
        )
    } else if is_download_alert_text(&lower) {
        Some(
            "Google's IMAP download limit for this user is used up; wait for the window to \
             reopen (up to a day) before trying again",
        )
    } else {
        None
    };
    match fix {
        Some(f) => format!("{error}; fix: {f}"),
        None => error,
    }
}

fn is_download_alert_text(lower: &str) -> bool {
    lower.contains("bandwidth limit")
}

/// The state-store record of a mailbox's Gmail download window.
pub(crate) fn window_record(login: &str) -> String {
    format!("gmail_download:{login}")
}

/// A mailbox's Gmail download window, kept in the state store across runs: when it started,
/// what was downloaded in it, and whether Google's alert closed it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct DownloadWindow {
    /// Start, in milliseconds since the Unix epoch (0: none yet).
    pub(crate) start_ms: i64,
    /// Bytes downloaded in it.
    pub(crate) bytes: u64,
    /// Google answered with its bandwidth alert: nothing more until the window reopens.
    pub(crate) closed: bool,
    /// A message did not fit in what was left: nothing more until the window reopens.
    #[serde(default)]
    pub(crate) spent: bool,
}

impl DownloadWindow {
    /// The window at `now_ms`: this one, or a fresh one when this one is over.
    pub(crate) fn at(self, now_ms: i64, window_ms: i64) -> DownloadWindow {
        if self.start_ms == 0 || now_ms >= self.start_ms.saturating_add(window_ms) {
            DownloadWindow {
                start_ms: now_ms,
                ..DownloadWindow::default()
            }
        } else {
            self
        }
    }

    /// Takes the leading messages of `sizes` that fit in `budget` and returns how many. A
    /// message larger than the whole budget goes alone in a fresh window (else it could never
    /// go).
    pub(crate) fn admit(&mut self, sizes: &[u64], budget: u64) -> usize {
        let mut n = 0;
        for &size in sizes {
            let fresh = self.bytes == 0 && n == 0;
            if self.closed {
                break;
            }
            if self.bytes.saturating_add(size) > budget && !fresh {
                self.spent = true;
                break;
            }
            self.bytes = self.bytes.saturating_add(size);
            n += 1;
        }
        n
    }

    /// Whether nothing more may be downloaded in it.
    pub(crate) fn is_spent(&self, budget: u64) -> bool {
        self.closed || self.spent || self.bytes >= budget
    }

    /// When it reopens, in Unix seconds.
    pub(crate) fn reopens(&self, window_ms: i64) -> i64 {
        self.start_ms.saturating_add(window_ms).div_euclid(1000)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::folders::{FolderMapper, SourceFolder};

    fn layout(strategy: GmailStrategy, atoms: bool) -> (Vec<MappedFolder>, GmailLayout) {
        let folders = [
            SourceFolder::new("INBOX", Some('/'), &["\\HasNoChildren"]),
            SourceFolder::new("Clients", Some('/'), &["\\HasChildren"]),
            SourceFolder::new("Clients/ACME", Some('/'), &["\\HasNoChildren"]),
            SourceFolder::new("Family & Friends", Some('/'), &["\\HasNoChildren"]),
            SourceFolder::new("Reisekosten Über", Some('/'), &["\\HasNoChildren"]),
            SourceFolder::new("[Gmail]", Some('/'), &["\\Noselect", "\\HasChildren"]),
            SourceFolder::new("[Gmail]/All Mail", Some('/'), &["\\All"]),
            SourceFolder::new("[Gmail]/Drafts", Some('/'), &["\\Drafts"]),
            SourceFolder::new("[Gmail]/Important", Some('/'), &["\\Important"]),
            SourceFolder::new("[Gmail]/Sent Mail", Some('/'), &["\\Sent"]),
            SourceFolder::new("[Gmail]/Spam", Some('/'), &["\\Junk"]),
            SourceFolder::new("[Gmail]/Starred", Some('/'), &["\\Flagged"]),
            SourceFolder::new("[Gmail]/Trash", Some('/'), &["\\Trash"]),
        ];
        let mapped = FolderMapper::new(&Default::default(), &Default::default())
            .unwrap()
            .map(&folders);
        let cfg = GmailConfig {
            strategy,
            ..Default::default()
        };
        let mut caps = o365_migrate_target::Capabilities::none("test");
        caps.keeps_raw_bytes = atoms;
        GmailLayout::new(mapped, &cfg, &caps).unwrap()
    }

    fn labels(l: &[&str]) -> Vec<String> {
        l.iter().map(|s| (*s).to_owned()).collect()
    }

    fn to(folder: &str, keywords: &[&str], flagged: bool) -> Placement {
        Placement::To {
            folder: folder.into(),
            keywords: labels(keywords),
            flagged,
        }
    }

    #[test]
    fn one_copy_places_inbox_then_sent_then_first_label_then_archive() {
        let (run, l) = layout(GmailStrategy::OneCopy, false);
        let copied: Vec<&str> = run
            .iter()
            .filter(|m| m.target().is_some())
            .map(|m| m.source.path.as_str())
            .collect();
        assert_eq!(
            copied,
            ["[Gmail]/All Mail", "[Gmail]/Spam", "[Gmail]/Trash"],
            "label folders are not read; All Mail, Spam and Trash are"
        );
        assert_eq!(
            l.place(&labels(&[
                "\\Important",
                "Zeta",
                "\\Inbox",
                "Clients/ACME",
                "\\Sent"
            ])),
            to("INBOX", &["Clients/ACME", "Zeta"], false)
        );
        assert_eq!(
            l.place(&labels(&["\\Sent", "\\Starred"])),
            to("[Gmail]/Sent Mail", &[], true)
        );
        // `Zeta` has no folder: it cannot place, `Clients/ACME` does; `Zeta` stays a category.
        assert_eq!(
            l.place(&labels(&["Zeta", "Reisekosten &ANw-ber", "Clients/ACME"])),
            to("Clients/ACME", &["Reisekosten Über", "Zeta"], false)
        );
        assert_eq!(l.place(&[]), to("[Gmail]/All Mail", &[], false));
        assert_eq!(
            l.spec("[Gmail]/All Mail").unwrap().display_path(),
            "#Archive#"
        );
        assert_eq!(
            l.spec("Clients/ACME").unwrap().display_path(),
            "Clients/ACME"
        );
    }

    #[test]
    fn keywords_for_imap_targets_are_atoms_and_important_is_optional() {
        let (_, mut l) = layout(GmailStrategy::OneCopy, true);
        assert_eq!(
            l.place(&labels(&[
                "\\Inbox",
                "Family & Friends",
                "Reisekosten Über",
                "\\Important"
            ])),
            to(
                "INBOX",
                &["Family_&-_Friends", "Reisekosten_&ANw-ber"],
                false
            )
        );
        l.important = ImportantAs::Category;
        assert_eq!(
            l.place(&labels(&["\\Important"])),
            to("[Gmail]/All Mail", &["Important"], false)
        );
    }

    #[test]
    fn download_windows_admit_within_the_budget_and_reopen() {
        let w = DownloadWindow::default().at(1_000, 10_000);
        assert_eq!(w.start_ms, 1_000);
        let mut w = w;
        assert_eq!(w.admit(&[40, 40], 100), 2);
        assert!(!w.is_spent(100));
        assert_eq!(w.admit(&[40], 100), 0, "it would pass 100");
        assert!(
            w.is_spent(100),
            "what is left is too small for the next message"
        );
        let mut full = DownloadWindow::default().at(1_000, 10_000);
        assert_eq!(full.admit(&[60, 40], 100), 2);
        assert!(full.is_spent(100), "used to the byte");
        assert_eq!(w.at(10_999, 10_000), w, "still the same window");
        assert_eq!(w.reopens(10_000), 11);
        let mut fresh = w.at(11_000, 10_000);
        assert_eq!((fresh.bytes, fresh.start_ms), (0, 11_000));
        assert_eq!(
            fresh.admit(&[500, 1], 100),
            1,
            "one oversized message goes alone"
        );
        fresh.closed = true;
        fresh.bytes = 0;
        assert_eq!(fresh.admit(&[1], 100), 0, "Google's alert closed it");
    }

    #[test]
    fn first_wins_takes_list_order_and_labels_as_folders_skips_labelled_mail() {
        let (_, l) = layout(GmailStrategy::FirstWins, false);
        // LIST order: Clients/ACME comes before [Gmail]/Sent Mail.
        assert_eq!(
            l.place(&labels(&["\\Sent", "Family & Friends", "Clients/ACME"])),
            to("Clients/ACME", &[], false)
        );
        let (run, l) = layout(GmailStrategy::LabelsAsFolders, false);
        assert!(
            run.iter()
                .any(|m| m.source.path == "Clients/ACME" && m.target().is_some())
        );
        assert_eq!(
            l.place(&labels(&["Clients/ACME"])),
            Placement::Skip(COPIED_FROM_LABELS)
        );
        assert_eq!(
            l.place(&labels(&["\\Important", "NoFolder"])),
            to("[Gmail]/All Mail", &[], false)
        );
    }
}
