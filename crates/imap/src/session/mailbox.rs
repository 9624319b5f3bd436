//! Mailbox-level commands on a [`Session`]: NAMESPACE, LIST (with SPECIAL-USE and
//! LIST-STATUS), STATUS, SELECT / EXAMINE, UID SEARCH, CREATE and UID STORE, and the types
//! they return ([`Mailbox`], [`SelectedMailbox`], [`SpecialUse`]).

use super::Session;
use crate::{
    Code, Command, Condition, Error, ListEntry, Namespaces, SearchKey, StatusData, StatusItem,
    StoreMode, UidSet, Untagged,
};
use std::collections::HashMap;

/// A RFC 6154 special-use role.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SpecialUse {
    /// `\All` (virtual: every message, e.g. Gmail All Mail).
    All,
    /// `\Archive`.
    Archive,
    /// `\Drafts`.
    Drafts,
    /// `\Flagged` (virtual: starred).
    Flagged,
    /// `\Junk`.
    Junk,
    /// `\Sent`.
    Sent,
    /// `\Trash`.
    Trash,
    /// `\Important` (Gmail).
    Important,
}

impl SpecialUse {
    fn from_attr(a: &str) -> Option<Self> {
        Some(match a.to_ascii_lowercase().as_str() {
            "\\all" => SpecialUse::All,
            "\\archive" => SpecialUse::Archive,
            "\\drafts" => SpecialUse::Drafts,
            "\\flagged" => SpecialUse::Flagged,
            "\\junk" => SpecialUse::Junk,
            "\\sent" => SpecialUse::Sent,
            "\\trash" => SpecialUse::Trash,
            "\\important" => SpecialUse::Important,
            _ => return None,
        })
    }
}

/// A mailbox from LIST, with its status when asked for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mailbox {
    /// Name (UTF-8).
    pub name: String,
    /// Name as sent by the server (modified UTF-7).
    pub raw_name: String,
    /// Hierarchy delimiter.
    pub delimiter: Option<char>,
    /// All attributes as sent.
    pub attributes: Vec<String>,
    /// Special-use role, if any.
    pub special_use: Option<SpecialUse>,
    /// False for `\Noselect` / `\NonExistent` containers.
    pub selectable: bool,
    /// STATUS values (from LIST-STATUS or a STATUS command).
    pub status: Option<StatusData>,
}

/// State of a mailbox after SELECT / EXAMINE.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SelectedMailbox {
    /// Name (UTF-8).
    pub name: String,
    /// Number of messages.
    pub exists: u32,
    /// UIDVALIDITY.
    pub uid_validity: Option<u32>,
    /// UIDNEXT.
    pub uid_next: Option<u32>,
    /// HIGHESTMODSEQ (CONDSTORE).
    pub highest_modseq: Option<u64>,
    /// FLAGS.
    pub flags: Vec<String>,
    /// PERMANENTFLAGS.
    pub permanent_flags: Vec<String>,
    /// True after EXAMINE (or a read-only SELECT).
    pub read_only: bool,
}

impl Session {
    /// NAMESPACE (RFC 2342), if supported.
    pub async fn namespace(&mut self) -> Result<Option<Namespaces>, Error> {
        if !self.has_capability("NAMESPACE") {
            return Ok(None);
        }
        let (data, _) = self.run(&Command::Namespace).await?;
        Ok(data.into_iter().find_map(|d| {
            if let Untagged::Namespace(n) = d {
                Some(n)
            } else {
                None
            }
        }))
    }

    /// The hierarchy delimiter (`LIST "" ""`), cached.
    pub async fn delimiter(&mut self) -> Result<Option<char>, Error> {
        if let Some(d) = self.delimiter {
            return Ok(d);
        }
        let (data, _) = self
            .run(&Command::List {
                reference: String::new(),
                pattern: String::new(),
                special_use: false,
                status: vec![],
            })
            .await?;
        let d = data
            .into_iter()
            .find_map(|d| {
                if let Untagged::List(l) = d {
                    Some(l.delimiter)
                } else {
                    None
                }
            })
            .flatten();
        self.delimiter = Some(d);
        Ok(d)
    }

    /// Lists all mailboxes with special-use roles and STATUS (MESSAGES UIDNEXT UIDVALIDITY
    /// [HIGHESTMODSEQ]) — in one LIST-STATUS command when advertised, else one STATUS per mailbox.
    pub async fn list_mailboxes(&mut self, with_status: bool) -> Result<Vec<Mailbox>, Error> {
        let special_use = self.has_capability("SPECIAL-USE");
        let list_status = with_status && self.has_capability("LIST-STATUS");
        let mut items = vec![
            StatusItem::Messages,
            StatusItem::UidNext,
            StatusItem::UidValidity,
        ];
        if self.has_capability("CONDSTORE") {
            items.push(StatusItem::HighestModSeq);
        }
        let cmd = Command::List {
            reference: String::new(),
            pattern: "*".into(),
            special_use,
            status: if list_status { items.clone() } else { vec![] },
        };
        let (data, _) = self.run(&cmd).await?;
        let mut out: Vec<Mailbox> = Vec::new();
        let mut statuses: HashMap<String, StatusData> = HashMap::new();
        for d in data {
            match d {
                Untagged::List(l) => out.push(mailbox_from(l)),
                Untagged::Status(s) => {
                    statuses.insert(s.mailbox.clone(), s);
                }
                _ => {}
            }
        }
        if let Some(first) = out.first() {
            self.delimiter = Some(first.delimiter);
        }
        for m in &mut out {
            m.status = statuses.remove(&m.name);
        }
        if with_status && !list_status {
            for m in &mut out {
                if m.selectable {
                    m.status = Some(self.status(&m.name, &items).await?);
                }
            }
        }
        Ok(out)
    }

    /// STATUS of one mailbox.
    pub async fn status(
        &mut self,
        mailbox: &str,
        items: &[StatusItem],
    ) -> Result<StatusData, Error> {
        let (data, _) = self
            .run(&Command::Status {
                mailbox: mailbox.to_owned(),
                items: items.to_vec(),
            })
            .await?;
        data.into_iter()
            .find_map(|d| {
                if let Untagged::Status(s) = d {
                    Some(s)
                } else {
                    None
                }
            })
            .ok_or_else(|| Error::protocol(format!("no STATUS data for {mailbox:?}"), b""))
    }

    async fn open_mailbox(
        &mut self,
        mailbox: &str,
        examine: bool,
    ) -> Result<SelectedMailbox, Error> {
        let condstore = self.has_capability("CONDSTORE");
        let cmd = if examine {
            Command::Examine {
                mailbox: mailbox.to_owned(),
                condstore,
            }
        } else {
            Command::Select {
                mailbox: mailbox.to_owned(),
                condstore,
            }
        };
        let (data, cond) = self.run(&cmd).await?;
        let mut m = SelectedMailbox {
            name: mailbox.to_owned(),
            read_only: examine,
            ..Default::default()
        };
        let apply = |code: Code, m: &mut SelectedMailbox| match code {
            Code::UidValidity(v) => m.uid_validity = Some(v),
            Code::UidNext(v) => m.uid_next = Some(v),
            Code::HighestModSeq(v) => m.highest_modseq = Some(v),
            Code::PermanentFlags(f) => m.permanent_flags = f,
            Code::ReadOnly => m.read_only = true,
            _ => {}
        };
        for d in data {
            match d {
                Untagged::Exists(n) => m.exists = n,
                Untagged::Flags(f) => m.flags = f,
                Untagged::Condition(Condition { code: Some(c), .. }) => apply(c, &mut m),
                _ => {}
            }
        }
        if let Some(c) = cond.code {
            apply(c, &mut m);
        }
        Ok(m)
    }

    /// EXAMINE (read-only; a migration never alters its source).
    pub async fn examine(&mut self, mailbox: &str) -> Result<SelectedMailbox, Error> {
        self.open_mailbox(mailbox, true).await
    }

    /// SELECT (read-write; for targets — APPEND into a selected mailbox is faster on Dovecot).
    pub async fn select(&mut self, mailbox: &str) -> Result<SelectedMailbox, Error> {
        self.open_mailbox(mailbox, false).await
    }

    /// UID SEARCH with ANDed criteria; returns sorted UIDs.
    pub async fn uid_search(&mut self, keys: &[SearchKey]) -> Result<Vec<u32>, Error> {
        let (data, _) = self.run(&Command::UidSearch(keys.to_vec())).await?;
        let mut v: Vec<u32> = data
            .into_iter()
            .flat_map(|d| {
                if let Untagged::Search(v) = d {
                    v
                } else {
                    Vec::new()
                }
            })
            .collect();
        v.sort_unstable();
        v.dedup();
        Ok(v)
    }

    /// CREATE; with `parents`, creates missing parent levels first. An existing mailbox is fine.
    pub async fn create(&mut self, mailbox: &str, parents: bool) -> Result<(), Error> {
        let mut names = Vec::new();
        if parents && let Some(d) = self.delimiter().await? {
            let parts: Vec<&str> = mailbox.split(d).collect();
            for i in 1..parts.len() {
                names.push(parts[..i].join(&d.to_string()));
            }
        }
        names.push(mailbox.to_owned());
        for n in names {
            match self.run(&Command::Create { mailbox: n.clone() }).await {
                Ok(_) => {}
                Err(Error::No { code, text, .. })
                    if code.as_deref() == Some("ALREADYEXISTS")
                        || text.to_ascii_lowercase().contains("exists") => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// UID STORE flags (silently).
    pub async fn uid_store(
        &mut self,
        uids: &UidSet,
        mode: StoreMode,
        flags: &[String],
    ) -> Result<(), Error> {
        self.run(&Command::UidStore {
            uids: uids.clone(),
            mode,
            flags: flags.to_vec(),
            silent: true,
        })
        .await?;
        Ok(())
    }
}

fn mailbox_from(l: ListEntry) -> Mailbox {
    let selectable = !l
        .attributes
        .iter()
        .any(|a| a.eq_ignore_ascii_case("\\Noselect") || a.eq_ignore_ascii_case("\\NonExistent"));
    let special_use = l.attributes.iter().find_map(|a| SpecialUse::from_attr(a));
    Mailbox {
        name: l.name,
        raw_name: l.raw_name,
        delimiter: l.delimiter,
        attributes: l.attributes,
        special_use,
        selectable,
        status: None,
    }
}
