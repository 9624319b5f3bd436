//! Reading the source: logging in, listing and mapping folders, the metadata scan shared by
//! `run`, `plan` and `verify`, and the job's filters.

use std::collections::BTreeMap;
use std::time::Duration;

use o365_migrate_imap as imap;

use crate::config::GmailMode;
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::folders::{FolderMapper, MappedFolder, SourceFolder};
use crate::gmail::GmailLayout;
use crate::state::ItemMeta;

/// Header fields fetched for metadata (enough for the dedupe identity and reports).
pub(crate) const HEADER_FIELDS: [&str; 5] = ["Message-ID", "Date", "From", "Subject", "Received"];

/// A folder's scan: UIDVALIDITY, per UID the metadata and flags, per UID the Gmail labels.
pub(crate) type FolderScan = (
    u32,
    BTreeMap<u32, (ItemMeta, o365_migrate_mime::Flags)>,
    BTreeMap<u32, Vec<String>>,
);

/// A source mailbox's folders as a run reads them.
pub(crate) struct SourceLayout {
    /// Every folder with its decision (for Gmail: label folders skipped, All Mail to Archive).
    pub(crate) mapped: Vec<MappedFolder>,
    /// Gmail: where labels place All Mail's messages.
    pub(crate) gmail: Option<GmailLayout>,
}

impl Engine {
    /// The source login of a mailbox from the credentials file (also the DAV sign-in).
    pub(crate) fn login_for(&self, login: &str) -> Result<o365_migrate_credentials::ImapLogin> {
        let rec = self
            .credentials
            .find_login(login)
            .ok_or_else(|| Error::Pipeline {
                context: format!("mailbox {login}"),
                message: "not in the credentials file".into(),
                hint: None,
            })?;
        let file = self.job.source.credentials.display().to_string();
        self.login_mode
            .login_for(rec, &file)
            .map_err(|e| Error::Credentials {
                context: format!("mailbox {login}"),
                source: Box::new(e),
                hint: None,
            })
    }

    pub(crate) fn auth_for(&self, login: &str) -> Result<imap::Auth> {
        if let Some(g) = &self.google {
            // The mailbox must be in the credentials file; a password column is not needed.
            if self.credentials.find_login(login).is_none() {
                return Err(Error::Pipeline {
                    context: format!("mailbox {login}"),
                    message: "not in the credentials file".into(),
                    hint: None,
                });
            }
            return g.imap_auth(login);
        }
        let l = self.login_for(login)?;
        let password = imap::Secret::new(l.secret.expose());
        Ok(match l.authzid {
            None => imap::Auth::Login {
                user: l.authcid,
                password,
            },
            Some(z) => imap::Auth::Plain {
                authorize_as: Some(z),
                user: l.authcid,
                password,
            },
        })
    }

    pub(crate) async fn open_source(&self, login: &str) -> Result<imap::Session> {
        let auth = self.auth_for(login)?;
        let cfg = self.client_config();
        let mut last = None;
        for attempt in 0..3u32 {
            match imap::Session::open(&cfg, &auth).await {
                Ok(s) => return Ok(s),
                // Google refused the token (expired early, revoked): a new one, once.
                Err(e @ imap::Error::LoginFailed { .. })
                    if attempt == 0
                        && self.google.is_some()
                        && !crate::gmail::is_download_alert(&e) =>
                {
                    if let Some(g) = &self.google {
                        g.invalidate(login);
                    }
                    last = Some(e);
                }
                Err(e) if e.is_retryable() && attempt < 2 => {
                    let wait = e
                        .retry_after()
                        .unwrap_or(Duration::from_millis(500 << attempt));
                    last = Some(e);
                    tokio::time::sleep(wait).await;
                }
                Err(e) => return Err(Error::source(format!("source login {login}"), e)),
            }
        }
        Err(match last {
            Some(e) => Error::source(format!("source login {login}"), e),
            None => Error::Pipeline {
                context: format!("source login {login}"),
                message: "gave up".into(),
                hint: None,
            },
        })
    }

    /// Lists and maps a mailbox's folders, and for a Gmail source ([`GmailLayout`]) where its
    /// labels place messages: the run then reads All Mail instead of the label folders.
    pub(crate) async fn source_layout(&self, session: &mut imap::Session) -> Result<SourceLayout> {
        let mapped = self.mapped_folders(session).await?;
        let offered = session.has_capability("X-GM-EXT-1");
        let gmail = match self.job.source.gmail {
            GmailMode::Off => false,
            GmailMode::Auto => offered,
            GmailMode::On if offered => true,
            GmailMode::On => {
                return Err(Error::Pipeline {
                    context: "[source] gmail = true".into(),
                    message: "the server does not offer X-GM-EXT-1 (it is not Gmail)".into(),
                    hint: Some(
                        "remove `gmail` (auto-detected) or set gmail = false for this server"
                            .into(),
                    ),
                });
            }
        };
        if !gmail {
            return Ok(SourceLayout {
                mapped,
                gmail: None,
            });
        }
        let (mapped, layout) =
            GmailLayout::new(mapped, &self.job.gmail, &self.target.capabilities())?;
        Ok(SourceLayout {
            mapped,
            gmail: Some(layout),
        })
    }

    /// Lists and maps a mailbox's folders.
    pub(crate) async fn mapped_folders(
        &self,
        session: &mut imap::Session,
    ) -> Result<Vec<MappedFolder>> {
        let list = session
            .list_mailboxes(false)
            .await
            .map_err(|e| Error::source("LIST", e))?;
        let folders: Vec<SourceFolder> = list
            .iter()
            .filter(|m| m.selectable)
            .map(|m| SourceFolder {
                path: m.name.clone(),
                delimiter: m.delimiter,
                attributes: m.attributes.clone(),
            })
            .collect();
        let mapper = FolderMapper::new(&self.job.folders, &self.job.filters)?;
        Ok(mapper.map(&folders))
    }

    /// Every message of a source folder: UIDVALIDITY, per UID the metadata and flags, and with
    /// `labels` each message's `X-GM-LABELS`.
    pub(crate) async fn source_folder_scan_with(
        &self,
        session: &mut imap::Session,
        path: &str,
        labels: bool,
    ) -> Result<FolderScan> {
        let ctx = format!("folder {path}");
        let sel = session
            .examine(path)
            .await
            .map_err(|e| Error::source(&ctx, e))?;
        let uv = sel.uid_validity.unwrap_or(0);
        let mut out = BTreeMap::new();
        let mut by_uid = BTreeMap::new();
        if sel.exists == 0 {
            return Ok((uv, out, by_uid));
        }
        let uids = session
            .uid_search(&[imap::SearchKey::All])
            .await
            .map_err(|e| Error::source(&ctx, e))?;
        let mut opts = metadata_fetch();
        opts.items.gmail = labels;
        let mut stream = session.fetch(&uids, opts);
        while let Some(m) = stream.next().await {
            let mut m = m.map_err(|e| Error::source(&ctx, e))?;
            let flags = o365_migrate_mime::Flags::from_imap(m.flags.iter().map(String::as_str));
            if let Some(l) = m.gmail_labels.take() {
                by_uid.insert(m.uid, l);
            }
            out.insert(m.uid, (meta_of(&m), flags));
        }
        Ok((uv, out, by_uid))
    }

    /// Messages in the source folders the job copies (STATUS MESSAGES of each), or `None`
    /// when the source cannot be listed.
    pub(crate) async fn source_holds(&self, pair: &crate::matching::MailboxPair) -> Option<u64> {
        let mut session = self.open_source(&pair.source).await.ok()?;
        let mapped = self.source_layout(&mut session).await.ok()?.mapped;
        let mut messages = 0u64;
        for m in mapped.iter().filter(|m| m.target().is_some()) {
            let s = session
                .status(&m.source.path, &[imap::StatusItem::Messages])
                .await
                .ok()?;
            messages += u64::from(s.messages.unwrap_or(0));
        }
        let _ = session.logout().await;
        Some(messages)
    }

    pub(crate) fn filter_reason(&self, meta: &ItemMeta, max_target: Option<u64>) -> Option<String> {
        let f = &self.job.filters;
        if let Some(size) = meta.size {
            if !f.size_allows(size) {
                return Some(format!(
                    "size {size} bytes is above max_message_size ({} bytes)",
                    f.max_message_size.map(|m| m.0).unwrap_or(0)
                ));
            }
            if let Some(limit) = max_target
                && size > limit
            {
                return Some(format!(
                    "size {size} bytes is above the target's limit of {limit} bytes"
                ));
            }
        }
        if let Some(d) = meta.internal_date
            && !f.date_allows(d)
        {
            let since = f
                .since
                .map(|s| format!("{:04}-{:02}-{:02}", s.year, s.month, s.day));
            let before = f
                .before
                .map(|s| format!("{:04}-{:02}-{:02}", s.year, s.month, s.day));
            return Some(format!(
                "INTERNALDATE outside the date filter (since {}, before {})",
                since.as_deref().unwrap_or("-"),
                before.as_deref().unwrap_or("-")
            ));
        }
        None
    }
}

/// UID FETCH of FLAGS, INTERNALDATE, RFC822.SIZE and the identity header fields.
pub(crate) fn metadata_fetch() -> imap::FetchOptions {
    imap::FetchOptions {
        items: imap::FetchItems {
            flags: true,
            internal_date: true,
            size: true,
            header_fields: HEADER_FIELDS.iter().map(|s| (*s).to_owned()).collect(),
            body: false,
            modseq: false,
            gmail: false,
        },
        ..Default::default()
    }
}

pub(crate) fn meta_of(m: &imap::FetchedMessage) -> ItemMeta {
    let header = m.header.as_deref().unwrap_or(b"");
    let id = o365_migrate_mime::fingerprint(header);
    ItemMeta {
        size: m.size.map(u64::from),
        internal_date: m.internal_date.map(|d| d.unix_seconds()),
        fingerprint: Some(id.dedupe_key()),
        message_id: id.message_id.clone(),
        subject: o365_migrate_mime::decoded_subject(header)
            .or_else(|| header_value(header, "subject")),
        sender: o365_migrate_mime::decoded_from(header)
            .map(|s| s.chars().take(300).collect())
            .or_else(|| header_value(header, "from")),
        flags: None,
    }
}

/// The unfolded value of the first header field `name` (lowercase), lossy UTF-8, trimmed.
pub(crate) fn header_value(header: &[u8], name: &str) -> Option<String> {
    let text = String::from_utf8_lossy(header);
    let mut value: Option<String> = None;
    for line in text.split("\r\n").flat_map(|l| l.split('\n')) {
        if let Some(v) = value.as_mut() {
            if line.starts_with(' ') || line.starts_with('\t') {
                v.push(' ');
                v.push_str(line.trim());
                continue;
            }
            break;
        }
        if let Some((k, v)) = line.split_once(':')
            && k.trim().eq_ignore_ascii_case(name)
        {
            value = Some(v.trim().to_owned());
        }
    }
    value.map(|v| v.chars().take(300).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_values_are_unfolded_and_case_insensitive() {
        let h = b"Message-ID: <a@b>\r\nSUBJECT: Hello\r\n  world\r\nFrom: A <a@b>\r\n\r\n";
        assert_eq!(header_value(h, "subject").as_deref(), Some("Hello world"));
        assert_eq!(header_value(h, "from").as_deref(), Some("A <a@b>"));
        assert_eq!(header_value(h, "date"), None);
        assert_eq!(header_value(b"\xff\xfe: x\r\n", "subject"), None);
    }
}
