//! APPEND: [`Session::append`] (MULTIAPPEND groups, else pipelined or one by one) and its
//! UIDPLUS result, [`AppendUid`].

use super::{Session, status_error};
use crate::command::LiteralMode;
use crate::{AppendMessage, Code, Command, Condition, Error, Response, Status, Untagged};
use std::collections::{HashMap, VecDeque};
use std::time::Duration;

/// UIDPLUS result of one APPEND.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AppendUid {
    /// UIDVALIDITY of the target mailbox.
    pub uid_validity: u32,
    /// UID the message got.
    pub uid: u32,
}

impl Session {
    /// Appends messages, pipelined: with LITERAL+ (or LITERAL- for small messages) up to
    /// `window` APPEND commands are in flight; otherwise MULTIAPPEND in groups of `window`,
    /// otherwise one by one. Returns one result per message, in order, with the APPENDUID when
    /// the server has UIDPLUS. Messages above APPENDLIMIT fail with [`Error::AppendTooLarge`]
    /// without being sent.
    pub async fn append(
        &mut self,
        mailbox: &str,
        messages: Vec<AppendMessage>,
        window: usize,
    ) -> Result<Vec<Result<Option<AppendUid>, Error>>, Error> {
        let window = window.max(1);
        let limit = self.append_limit();
        let mut results: Vec<Option<Result<Option<AppendUid>, Error>>> =
            (0..messages.len()).map(|_| None).collect();
        let mut todo: VecDeque<(usize, AppendMessage)> = VecDeque::new();
        for (i, m) in messages.into_iter().enumerate() {
            match limit {
                Some(l) if m.data.len() as u64 > l => {
                    results[i] = Some(Err(Error::AppendTooLarge {
                        size: m.data.len() as u64,
                        limit: l,
                    }))
                }
                _ => todo.push_back((i, m)),
            }
        }
        let nonsync = self.enc.literal_mode == LiteralMode::Plus;
        if self.has_capability("MULTIAPPEND") && window > 1 && todo.len() > 1 {
            // MULTIAPPEND (RFC 3502): one command, and on servers like Dovecot one store
            // transaction, per group. It is atomic: a group answered NO (or BAD) stored nothing,
            // so its messages are retried one by one below, each getting its own result.
            let mut single: VecDeque<(usize, AppendMessage)> = VecDeque::new();
            while !todo.is_empty() {
                let group: Vec<(usize, AppendMessage)> =
                    todo.drain(..window.min(todo.len())).collect();
                let idx: Vec<usize> = group.iter().map(|g| g.0).collect();
                let msgs = group.iter().map(|g| g.1.clone()).collect();
                match self
                    .run(&Command::Append {
                        mailbox: mailbox.to_owned(),
                        messages: msgs,
                    })
                    .await
                {
                    Ok((_, cond)) => {
                        let uids = appenduids(&cond, idx.len());
                        for (k, i) in idx.iter().enumerate() {
                            results[*i] = Some(Ok(uids.as_ref().and_then(|u| u.get(k).copied())));
                        }
                    }
                    // A throttled NO stored nothing either: this group and the rest are
                    // answered as throttled, unsent, for the caller to retry after the wait.
                    Err(Error::Throttled { backoff, text }) => {
                        for i in idx.into_iter().chain(todo.drain(..).map(|t| t.0)) {
                            results[i] = Some(Err(Error::Throttled {
                                backoff,
                                text: text.clone(),
                            }));
                        }
                    }
                    // NO and BAD are definite: the group stored nothing.
                    Err(Error::No { .. } | Error::Bad { .. }) => single.extend(group),
                    // Anything else (a lost connection, an answer that cannot be parsed) leaves
                    // the group's outcome unknown: it may have been committed. Resending it
                    // here could store it twice; the caller looks before it writes again.
                    Err(e) => return Err(e),
                }
            }
            todo = single;
        }
        if !todo.is_empty() {
            let window = if nonsync { window } else { 1 };
            let mut inflight: HashMap<String, usize> = HashMap::new();
            // Set on throttling: nothing more is sent, but every completion in flight is still
            // read so each message's result is known (no duplicates on retry).
            let mut throttled: Option<(Option<Duration>, String)> = None;
            loop {
                while throttled.is_none()
                    && inflight.len() < window
                    && let Some((i, m)) = todo.pop_front()
                {
                    let enc = self.enc.encode(&Command::Append {
                        mailbox: mailbox.to_owned(),
                        messages: vec![m],
                    })?;
                    self.send(&enc).await?;
                    inflight.insert(enc.tag, i);
                }
                if inflight.is_empty() {
                    break;
                }
                self.flush().await?;
                match self.read_response().await? {
                    Response::Tagged { tag, condition } => {
                        let i = inflight.remove(&tag).ok_or_else(|| {
                            Error::protocol(format!("completion for unknown tag {tag}"), b"")
                        })?;
                        results[i] = Some(if condition.status == Status::Ok {
                            Ok(appenduids(&condition, 1).and_then(|v| v.first().copied()))
                        } else {
                            let e = status_error("APPEND", &condition);
                            if let Error::Throttled { backoff, text } = &e {
                                throttled = Some((*backoff, text.clone()));
                            }
                            Err(e)
                        });
                    }
                    Response::Untagged(Untagged::Condition(c)) if c.status == Status::Bye => {}
                    Response::Continue { .. } => {
                        return Err(Error::protocol(
                            "unexpected continuation during APPEND",
                            b"",
                        ));
                    }
                    Response::Untagged(_) => {}
                }
            }
            if let Some((backoff, text)) = throttled {
                for (i, _) in todo {
                    results[i] = Some(Err(Error::Throttled {
                        backoff,
                        text: format!("not sent: {text}"),
                    }));
                }
            }
        }
        Ok(results
            .into_iter()
            .map(|r| r.unwrap_or_else(|| Err(Error::protocol("APPEND result missing", b""))))
            .collect())
    }
}

fn appenduids(cond: &Condition, n: usize) -> Option<Vec<AppendUid>> {
    if let Some(Code::AppendUid { uid_validity, uids }) = &cond.code
        && uids.len() == n
    {
        return Some(
            uids.iter()
                .map(|&uid| AppendUid {
                    uid_validity: *uid_validity,
                    uid,
                })
                .collect(),
        );
    }
    None
}
