//! Attachment upload sessions: `PUT {uploadUrl}` chunks ([`upload_chunk`]) and the session's
//! owner for throttling and its token check.

use std::time::{Duration, Instant};

use bytes::Bytes;
use serde_json::json;

use super::create::refresh_has_attachments;
use super::{bad, item_not_found};
use crate::server::Req;
use crate::util::{Resp, iso};
use crate::world::World;

/// `PUT {uploadUrl}`: one chunk of an attachment upload session.
pub(crate) fn upload_chunk(
    world: &mut World,
    limits: &crate::Limits,
    sid: &str,
    req: &Req,
) -> Resp {
    let Some(session) = world.sessions.get_mut(sid) else {
        return Resp::graph_error(
            404,
            "ErrorItemNotFound",
            "The upload session was not found or has expired.",
        );
    };
    if Instant::now() > session.expires {
        world.sessions.remove(sid);
        return Resp::graph_error(404, "ErrorItemNotFound", "The upload session has expired.");
    }
    let range = req.content_range.clone().unwrap_or_default();
    let parsed = range.strip_prefix("bytes ").and_then(|r| {
        let (span, total) = r.split_once('/')?;
        let (a, b) = span.split_once('-')?;
        Some((
            a.trim().parse::<u64>().ok()?,
            b.trim().parse::<u64>().ok()?,
            total.trim().parse::<u64>().ok()?,
        ))
    });
    let Some((start, end, total)) = parsed else {
        return bad(
            "InvalidContentRange",
            &format!(
                "The Content-Range header '{range}' is invalid; expected 'bytes start-end/total'."
            ),
        );
    };
    let len = req.body.len() as u64;
    if total != session.size || end < start || end >= total || end - start + 1 != len {
        return bad(
            "InvalidContentRange",
            &format!(
                "The Content-Range '{range}' does not match the session size {} or the body length {len}.",
                session.size
            ),
        );
    }
    if start != session.received.len() as u64 {
        return Resp::graph_error(
            416,
            "InvalidContentRange",
            &format!(
                "Expected the next range to start at {}.",
                session.received.len()
            ),
        );
    }
    if len > limits.max_chunk_bytes {
        return Resp::graph_error(
            413,
            "RequestBodyTooLarge",
            &format!("A chunk may hold at most {} bytes.", limits.max_chunk_bytes),
        );
    }
    session.received.extend_from_slice(&req.body);
    session.expires = Instant::now() + Duration::from_secs(15 * 60);
    if (session.received.len() as u64) < session.size {
        return Resp::json(
            200,
            &json!({"expirationDateTime": iso(crate::util::unix_now() + 900), "nextExpectedRanges": [session.received.len().to_string()]}),
        );
    }
    let Some(session) = world.sessions.remove(sid) else {
        return item_not_found();
    };
    let mut att = session.attachment;
    att.data = Bytes::from(session.received);
    let aid = att.id.clone();
    for t in &mut world.tenants {
        for u in &mut t.users {
            if u.id != session.user_id {
                continue;
            }
            if let Some(msg) = u.mailbox_mut().and_then(|mb| {
                mb.messages
                    .values_mut()
                    .find(|m| m.id == session.message_id)
            }) {
                msg.attachments.push(att);
                refresh_has_attachments(msg);
                return Resp::empty(201).with_header(
                    "location",
                    format!(
                        "{}/v1.0/users('{}')/messages('{}')/attachments('{aid}')",
                        req.base_url, session.user_id, session.message_id
                    ),
                );
            }
        }
    }
    item_not_found()
}

impl crate::server::Shared {
    /// The session's (app, user) for throttling and its auth token check.
    pub(crate) fn session_owner(
        &self,
        world: &World,
        sid: &str,
        token: &str,
    ) -> Option<(String, String)> {
        world
            .sessions
            .get(sid)
            .filter(|s| s.auth_token == token)
            .map(|s| (s.app.clone(), s.user_id.clone()))
    }
}
