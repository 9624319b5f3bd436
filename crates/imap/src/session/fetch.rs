//! Streamed, pipelined UID FETCH: [`Session::fetch`], its [`FetchOptions`], the
//! [`FetchStream`] it returns and the [`FetchedMessage`]s that stream yields.

use super::{Session, status_error};
use crate::{
    Command, Error, FetchItems, InternalDate, Reservation, Response, Status, UidSet, Untagged,
};
use bytes::Bytes;
use std::collections::VecDeque;

/// One message from a streamed UID FETCH. Holds its share of the byte budget until dropped.
#[derive(Debug)]
pub struct FetchedMessage {
    /// UID.
    pub uid: u32,
    /// FLAGS (without `\Recent`).
    pub flags: Vec<String>,
    /// INTERNALDATE.
    pub internal_date: Option<InternalDate>,
    /// RFC822.SIZE.
    pub size: Option<u32>,
    /// Selected header fields.
    pub header: Option<Bytes>,
    /// The whole message (`BODY[]`), held once.
    pub body: Option<Bytes>,
    /// MODSEQ.
    pub modseq: Option<u64>,
    /// X-GM-MSGID.
    pub gmail_msgid: Option<u64>,
    /// X-GM-THRID.
    pub gmail_thrid: Option<u64>,
    /// X-GM-LABELS.
    pub gmail_labels: Option<Vec<String>>,
    /// Budget held for this message's bytes; released on drop.
    pub reservation: Reservation,
}

/// Options for [`Session::fetch`].
#[derive(Clone, Debug)]
pub struct FetchOptions {
    /// What to fetch.
    pub items: FetchItems,
    /// UIDs per UID FETCH command.
    pub batch_size: usize,
    /// UID FETCH commands kept in flight (pipelining).
    pub pipeline: usize,
}

impl Default for FetchOptions {
    fn default() -> Self {
        FetchOptions {
            items: FetchItems::default(),
            batch_size: 250,
            pipeline: 2,
        }
    }
}

impl Session {
    /// Streams UID FETCH results for `uids` in batches, pipelined. Call
    /// [`FetchStream::next`] until it returns `None`.
    pub fn fetch(&mut self, uids: &[u32], options: FetchOptions) -> FetchStream<'_> {
        let mut sorted = uids.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        let batch = options.batch_size.max(1);
        let batches = sorted.chunks(batch).map(UidSet::from_uids).collect();
        let mut items = options.items;
        if items.gmail && !self.has_capability("X-GM-EXT-1") {
            items.gmail = false;
        }
        FetchStream {
            session: self,
            batches,
            inflight: VecDeque::new(),
            items,
            pipeline: options.pipeline.max(1),
            failed: false,
        }
    }
}

/// A streamed, pipelined UID FETCH. The session is borrowed until this is dropped. Dropping it
/// early is safe: the responses still in flight are read and discarded before the session's
/// next command.
pub struct FetchStream<'a> {
    session: &'a mut Session,
    batches: VecDeque<UidSet>,
    inflight: VecDeque<String>,
    items: FetchItems,
    pipeline: usize,
    failed: bool,
}

impl std::fmt::Debug for FetchStream<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FetchStream")
            .field("batches_left", &self.batches.len())
            .field("inflight", &self.inflight)
            .finish()
    }
}

impl Drop for FetchStream<'_> {
    fn drop(&mut self) {
        // Responses still on their way are read and discarded before the session's next command.
        self.session.abandoned.extend(self.inflight.drain(..));
    }
}

impl FetchStream<'_> {
    async fn fill(&mut self) -> Result<(), Error> {
        let mut sent = false;
        while self.inflight.len() < self.pipeline
            && let Some(set) = self.batches.pop_front()
        {
            let enc = self.session.enc.encode(&Command::UidFetch {
                uids: set,
                items: self.items.clone(),
            })?;
            self.session.send(&enc).await?;
            self.inflight.push_back(enc.tag);
            sent = true;
        }
        if sent {
            self.session.flush().await?;
        }
        Ok(())
    }

    /// The next message, `None` when all batches are done.
    pub async fn next(&mut self) -> Option<Result<FetchedMessage, Error>> {
        if self.failed {
            return None;
        }
        let r = self.next_inner().await;
        if matches!(r, Some(Err(_))) {
            self.failed = true;
        }
        r
    }

    async fn next_inner(&mut self) -> Option<Result<FetchedMessage, Error>> {
        loop {
            if let Err(e) = self.fill().await {
                return Some(Err(e));
            }
            if self.inflight.is_empty() {
                return None;
            }
            let resp = match self.session.read_response().await {
                Ok(r) => r,
                Err(e) => return Some(Err(e)),
            };
            match resp {
                Response::Untagged(Untagged::Fetch(f)) => {
                    let reservation = std::mem::take(&mut self.session.pending);
                    let Some(uid) = f.uid else {
                        if f.body.is_some() {
                            return Some(Err(Error::protocol(
                                format!("FETCH response for message {} without UID", f.seq),
                                b"",
                            )));
                        }
                        continue; // unsolicited flag update
                    };
                    if self.items.body && f.body.is_none() {
                        if f.flags.is_some() && f.internal_date.is_none() && f.size.is_none() {
                            continue; // unsolicited FLAGS change for a message in the mailbox
                        }
                        return Some(Err(Error::protocol(
                            format!("FETCH response for UID {uid} lacks BODY[]"),
                            b"",
                        )));
                    }
                    let flags = f
                        .flags
                        .unwrap_or_default()
                        .into_iter()
                        .filter(|x| !x.eq_ignore_ascii_case("\\Recent"))
                        .collect();
                    return Some(Ok(FetchedMessage {
                        uid,
                        flags,
                        internal_date: f.internal_date,
                        size: f.size,
                        header: f.header,
                        body: f.body,
                        modseq: f.modseq,
                        gmail_msgid: f.gmail_msgid,
                        gmail_thrid: f.gmail_thrid,
                        gmail_labels: f.gmail_labels,
                        reservation,
                    }));
                }
                Response::Tagged { tag, condition } => {
                    if self.inflight.front() != Some(&tag) {
                        return Some(Err(Error::protocol(
                            format!("completion for unexpected tag {tag}"),
                            b"",
                        )));
                    }
                    self.inflight.pop_front();
                    if condition.status != Status::Ok {
                        return Some(Err(status_error("UID FETCH", &condition)));
                    }
                }
                Response::Untagged(Untagged::Condition(c)) if c.status == Status::Bye => {
                    // Wait for the close to turn it into Bye/Throttled.
                    continue;
                }
                Response::Continue { .. } => {
                    return Some(Err(Error::protocol(
                        "unexpected continuation during FETCH",
                        b"",
                    )));
                }
                Response::Untagged(_) => {}
            }
        }
    }
}
