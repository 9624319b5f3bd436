//! What `sync` needs of a session: every message's flags (or only those changed since a
//! mod-sequence, RFC 7162 CONDSTORE), and for targets UID MOVE / COPY / EXPUNGE with the
//! destination UIDs a UIDPLUS server names ([`Moved`]).

use super::Session;
use crate::{Code, Command, Condition, Error, UidSet, Untagged};

/// One message's flags from [`Session::fetch_flags`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FlagsOf {
    /// UID.
    pub uid: u32,
    /// FLAGS (without `\Recent`).
    pub flags: Vec<String>,
}

/// The UIDs a copy or move gave in the destination (`COPYUID`, RFC 4315).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Moved {
    /// UIDVALIDITY of the destination.
    pub uid_validity: u32,
    /// `(source UID, destination UID)` pairs.
    pub pairs: Vec<(u32, u32)>,
}

impl Session {
    /// Flags of every message in the selected mailbox (`UID FETCH 1:* (UID FLAGS)`), or with
    /// `changed_since` only of those whose mod-sequence is above it (`CHANGEDSINCE`; needs
    /// CONDSTORE, which [`Session::examine`] enables where offered). One command either way.
    pub async fn fetch_flags(&mut self, changed_since: Option<u64>) -> Result<Vec<FlagsOf>, Error> {
        if changed_since.is_some() && !self.has_capability("CONDSTORE") {
            return Err(Error::InvalidInput(
                "CHANGEDSINCE needs a server that offers CONDSTORE".into(),
            ));
        }
        let (data, _) = self.run(&Command::UidFetchFlags { changed_since }).await?;
        let mut out: Vec<FlagsOf> = data
            .into_iter()
            .filter_map(|d| match d {
                Untagged::Fetch(f) => Some(FlagsOf {
                    uid: f.uid?,
                    flags: f
                        .flags
                        .unwrap_or_default()
                        .into_iter()
                        .filter(|x| !x.eq_ignore_ascii_case("\\Recent"))
                        .collect(),
                }),
                _ => None,
            })
            .collect();
        out.sort_by_key(|f| f.uid);
        out.dedup_by_key(|f| f.uid);
        Ok(out)
    }

    /// UID MOVE (RFC 6851) of `uids` to `mailbox`; where the server lacks MOVE, UID COPY, then
    /// `\Deleted` and UID EXPUNGE of exactly those UIDs (UIDPLUS), so other messages marked
    /// deleted are left alone. The destination UIDs where the server says them.
    pub async fn uid_move(&mut self, uids: &UidSet, mailbox: &str) -> Result<Option<Moved>, Error> {
        if self.has_capability("MOVE") {
            let (data, cond) = self
                .run(&Command::UidMove {
                    uids: uids.clone(),
                    mailbox: mailbox.to_owned(),
                })
                .await?;
            return Ok(moved(&data, &cond));
        }
        if !self.has_capability("UIDPLUS") {
            return Err(Error::InvalidInput(
                "the server offers neither MOVE nor UIDPLUS: a message cannot be moved without \
                 expunging other deleted messages"
                    .into(),
            ));
        }
        let (data, cond) = self
            .run(&Command::UidCopy {
                uids: uids.clone(),
                mailbox: mailbox.to_owned(),
            })
            .await?;
        let out = moved(&data, &cond);
        self.uid_delete(uids).await?;
        Ok(out)
    }

    /// Marks `uids` `\Deleted` and removes exactly them (UID EXPUNGE, RFC 4315 UIDPLUS).
    pub async fn uid_delete(&mut self, uids: &UidSet) -> Result<(), Error> {
        if !self.has_capability("UIDPLUS") {
            return Err(Error::InvalidInput(
                "the server does not offer UIDPLUS: deleting one message would expunge every \
                 message marked deleted"
                    .into(),
            ));
        }
        self.uid_store(uids, crate::StoreMode::Add, &["\\Deleted".to_owned()])
            .await?;
        self.run(&Command::UidExpunge(uids.clone())).await?;
        Ok(())
    }
}

fn moved(data: &[Untagged], tagged: &Condition) -> Option<Moved> {
    let codes = data
        .iter()
        .filter_map(|d| match d {
            Untagged::Condition(c) => c.code.as_ref(),
            _ => None,
        })
        .chain(tagged.code.as_ref());
    for code in codes {
        if let Code::CopyUid {
            uid_validity,
            source,
            dest,
        } = code
            && source.len() == dest.len()
        {
            return Some(Moved {
                uid_validity: *uid_validity,
                pairs: source.iter().copied().zip(dest.iter().copied()).collect(),
            });
        }
    }
    None
}
