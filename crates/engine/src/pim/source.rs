//! Where contacts and calendars are read: a CardDAV / CalDAV server (through
//! `o365-migrate-dav`) or a directory of `.vcf` / `.ics` files.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use o365_migrate_dav as dav;
use o365_migrate_target::pim::PimKind;

use crate::error::{Error, Result};

/// A source collection: an address book, a calendar, or one local file.
#[derive(Debug, Clone)]
pub(crate) struct SourceCollection {
    /// Its key within the mailbox: the DAV URL or the file name.
    pub(crate) href: String,
    /// Display name (DAV `displayname`, else the last path segment; a file: its stem).
    pub(crate) display_name: String,
    /// Contacts or calendar (a calendar may also hold tasks).
    pub(crate) kind: PimKind,
    /// The DAV collection, for listing and fetching.
    dav: Option<dav::Collection>,
}

/// One resource read from the source: a DAV object or a whole file.
#[derive(Debug, Clone)]
pub(crate) struct SourceResource {
    /// DAV URL or file name.
    pub(crate) href: String,
    /// The DAV ETag (files have none: their items are compared by fingerprint).
    pub(crate) etag: Option<String>,
    /// The vCard or iCalendar bytes.
    pub(crate) data: Vec<u8>,
}

/// What one pass reads of a collection.
#[derive(Debug, Default)]
pub(crate) struct Changed {
    /// Resources to convert and write (new, changed, or to retry).
    pub(crate) resources: Vec<SourceResource>,
    /// The sync token to store once every resource is recorded (DAV with `sync-collection`).
    pub(crate) token: Option<String>,
    /// Resources the source no longer has (by href).
    pub(crate) gone: Vec<String>,
}

/// A contacts / calendar source for one mailbox.
pub(crate) enum PimSource {
    /// A CardDAV / CalDAV account.
    Dav {
        /// The signed-in client.
        client: dav::DavClient,
        /// Where discovery starts.
        start: String,
    },
    /// A directory of `.vcf` / `.ics` files.
    Files {
        /// The directory.
        dir: PathBuf,
    },
}

fn dav_err(context: String) -> impl FnOnce(dav::Error) -> Error {
    move |source| Error::Dav {
        context,
        source: Box::new(source),
    }
}

fn io_err(context: String, hint: &str) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        context,
        source,
        hint: Some(hint.to_owned()),
    }
}

impl SourceCollection {
    /// A collection without a DAV counterpart, for tests.
    #[cfg(test)]
    pub(crate) fn for_test(name: &str, kind: PimKind) -> Self {
        SourceCollection {
            href: format!("/{name}/"),
            display_name: name.to_owned(),
            kind,
            dav: None,
        }
    }
}

impl PimSource {
    /// Every address book and calendar of the account (or file of the directory).
    pub(crate) async fn collections(&self) -> Result<Vec<SourceCollection>> {
        match self {
            PimSource::Dav { client, start } => {
                let found = client
                    .discover(start)
                    .await
                    .map_err(dav_err(format!("contacts and calendars at {start}")))?;
                Ok(found
                    .collections
                    .into_iter()
                    .map(|c| {
                        let href = c.href.url();
                        let display_name = c
                            .display_name
                            .clone()
                            .filter(|n| !n.trim().is_empty())
                            .unwrap_or_else(|| last_segment(c.href.path()));
                        SourceCollection {
                            href,
                            display_name,
                            kind: match c.kind {
                                dav::CollectionKind::AddressBook => PimKind::Contacts,
                                dav::CollectionKind::Calendar => PimKind::Calendar,
                            },
                            dav: Some(c),
                        }
                    })
                    .collect())
            }
            PimSource::Files { dir } => {
                let hint =
                    "check `files` in [dav]: a directory per mailbox with .vcf and .ics files";
                let entries = std::fs::read_dir(dir).map_err(io_err(
                    format!("contacts and calendar files in {}", dir.display()),
                    hint,
                ))?;
                let mut out = Vec::new();
                for e in entries {
                    let e = e.map_err(io_err(format!("reading {}", dir.display()), hint))?;
                    let path = e.path();
                    let ext = path
                        .extension()
                        .and_then(|x| x.to_str())
                        .map(str::to_ascii_lowercase);
                    let kind = match ext.as_deref() {
                        Some("vcf" | "vcard") => PimKind::Contacts,
                        Some("ics" | "ical" | "ifb") => PimKind::Calendar,
                        _ => continue,
                    };
                    let name = file_name(&path);
                    out.push(SourceCollection {
                        display_name: path
                            .file_stem()
                            .and_then(|s| s.to_str())
                            .unwrap_or(&name)
                            .to_owned(),
                        href: name,
                        kind,
                        dav: None,
                    });
                }
                out.sort_by(|a, b| a.href.cmp(&b.href));
                Ok(out)
            }
        }
    }

    /// Reads what changed in `c` since the last pass: `etags` are the stored ETags by href,
    /// `retry` the hrefs whose items are not done (read again whatever the source says),
    /// `token` the stored sync token.
    pub(crate) async fn changed(
        &self,
        c: &SourceCollection,
        etags: &HashMap<String, Option<String>>,
        retry: &HashSet<String>,
        token: Option<&str>,
    ) -> Result<Changed> {
        match self {
            PimSource::Files { dir } => {
                let path = dir.join(&c.href);
                let data = std::fs::read(&path).map_err(io_err(
                    format!("reading {}", path.display()),
                    "check that the file is readable",
                ))?;
                Ok(Changed {
                    resources: vec![SourceResource {
                        href: c.href.clone(),
                        etag: None,
                        data,
                    }],
                    ..Changed::default()
                })
            }
            PimSource::Dav { client, .. } => {
                let Some(col) = &c.dav else {
                    return Ok(Changed::default());
                };
                let ctx = |what: &str| format!("{what} of {} ({})", c.display_name, c.href);
                // A sync token from the last complete pass: only what changed since. A token
                // the server no longer accepts means a full listing.
                let mut listed: Option<(Vec<dav::ItemRef>, Vec<String>, Option<String>)> = None;
                if let (Some(t), true) = (token, col.supports_sync) {
                    let mut changed = Vec::new();
                    let mut gone = Vec::new();
                    let mut t = t.to_owned();
                    let mut valid = true;
                    loop {
                        match client.sync_changes(&col.href, Some(&t)).await {
                            Ok(ch) => {
                                changed.extend(ch.changed);
                                gone.extend(ch.deleted.iter().map(dav::Href::url));
                                let more = ch.truncated && ch.token != t;
                                t = ch.token;
                                if !more {
                                    break;
                                }
                            }
                            Err(dav::Error::InvalidSyncToken { .. }) => {
                                valid = false;
                                break;
                            }
                            Err(e) => return Err(dav_err(ctx("changes"))(e)),
                        }
                    }
                    if valid {
                        listed = Some((changed, gone, Some(t)));
                    }
                }
                let full = listed.is_none();
                let (refs, gone, new_token) = match listed {
                    Some(l) => l,
                    None => {
                        // The token read before the listing: changes made while listing are
                        // reported again by the next pass, never lost.
                        let t = if col.supports_sync {
                            col.sync_token.clone()
                        } else {
                            None
                        };
                        let refs = client
                            .list_items(&col.href)
                            .await
                            .map_err(dav_err(ctx("listing")))?;
                        (refs, Vec::new(), t)
                    }
                };
                let mut want: Vec<dav::Href> = Vec::new();
                let mut seen: HashSet<String> = HashSet::new();
                for r in &refs {
                    let href = r.href.url();
                    let same = etags
                        .get(&href)
                        .is_some_and(|e| e.is_some() && *e == r.etag);
                    if !same || retry.contains(&href) {
                        want.push(r.href.clone());
                    }
                    seen.insert(href);
                }
                if !full {
                    // Not done last time and untouched since the token: read them again.
                    for href in retry {
                        if !seen.contains(href)
                            && !gone.contains(href)
                            && let Some(h) = dav::Href::parse(href)
                        {
                            want.push(h);
                        }
                    }
                }
                let gone = if full {
                    etags
                        .keys()
                        .filter(|h| !seen.contains(*h))
                        .cloned()
                        .collect()
                } else {
                    gone
                };
                let fetched = if want.is_empty() {
                    dav::Fetched::default()
                } else {
                    client
                        .fetch(col, &want)
                        .await
                        .map_err(dav_err(ctx("fetching")))?
                };
                Ok(Changed {
                    resources: fetched
                        .items
                        .into_iter()
                        .map(|i| SourceResource {
                            href: i.href.url(),
                            etag: i.etag,
                            data: i.data,
                        })
                        .collect(),
                    token: new_token,
                    gone,
                })
            }
        }
    }

    /// Every resource of `c` (for `plan` and `verify`).
    pub(crate) async fn all(&self, c: &SourceCollection) -> Result<Vec<SourceResource>> {
        let none = HashMap::new();
        let changed = self.changed(c, &none, &HashSet::new(), None).await?;
        Ok(changed.resources)
    }
}

fn last_segment(path: &str) -> String {
    path.trim_end_matches('/')
        .rsplit('/')
        .next()
        .unwrap_or(path)
        .to_owned()
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_collection_without_a_name_is_named_by_its_last_segment() {
        assert_eq!(last_segment("/alice/work/"), "work");
        assert_eq!(last_segment("/alice/work"), "work");
    }
}
