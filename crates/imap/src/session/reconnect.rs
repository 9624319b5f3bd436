//! [`Reconnector`]: re-establishing a session (fresh OAuth token each time) and resuming a
//! mailbox after the last UID seen.

use super::{ClientConfig, Session};
use crate::{Auth, Error, SearchKey, UidSet};
use std::time::Duration;

/// Re-establishes sessions (with a fresh OAuth token each time) and resumes after the last UID seen.
#[derive(Clone, Debug)]
pub struct Reconnector {
    /// Connection settings.
    pub config: ClientConfig,
    /// Login.
    pub auth: Auth,
    /// Attempts per [`Reconnector::connect`] for retryable errors.
    pub attempts: u32,
    /// Back-off between attempts when the server suggests none.
    pub backoff: Duration,
}

impl Reconnector {
    /// A reconnector trying 3 times with 2 s between attempts.
    pub fn new(config: ClientConfig, auth: Auth) -> Self {
        Reconnector {
            config,
            auth,
            attempts: 3,
            backoff: Duration::from_secs(2),
        }
    }

    /// Connects and logs in, retrying retryable failures (honouring a server's suggested back-off).
    pub async fn connect(&self) -> Result<Session, Error> {
        let mut last = None;
        for attempt in 0..self.attempts.max(1) {
            match Session::open(&self.config, &self.auth).await {
                Ok(s) => return Ok(s),
                Err(e) if e.is_retryable() && attempt + 1 < self.attempts => {
                    let wait = e.retry_after().unwrap_or(self.backoff);
                    tracing::warn!(error = %e, ?wait, "reconnecting");
                    tokio::time::sleep(wait).await;
                    last = Some(e);
                }
                Err(e) => return Err(e),
            }
        }
        Err(last.unwrap_or(Error::ConnectionClosed))
    }

    /// Reconnects, EXAMINEs `mailbox`, checks UIDVALIDITY is still `uid_validity`, and returns
    /// the session plus the UIDs after `last_uid_seen` (sorted), ready for [`Session::fetch`].
    pub async fn resume(
        &self,
        mailbox: &str,
        uid_validity: u32,
        last_uid_seen: u32,
    ) -> Result<(Session, Vec<u32>), Error> {
        let mut s = self.connect().await?;
        let m = s.examine(mailbox).await?;
        if let Some(found) = m.uid_validity
            && found != uid_validity
        {
            return Err(Error::UidValidityChanged {
                mailbox: mailbox.to_owned(),
                expected: uid_validity,
                found,
            });
        }
        let next = last_uid_seen.saturating_add(1);
        let uids = s
            .uid_search(&[SearchKey::Uid(UidSet::from_onwards(next))])
            .await?;
        // `n:*` always matches the highest UID even when it is below n.
        let uids = uids.into_iter().filter(|&u| u > last_uid_seen).collect();
        Ok((s, uids))
    }
}
