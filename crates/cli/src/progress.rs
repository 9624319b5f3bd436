//! Progress for people: bars per mailbox on a terminal, plain lines otherwise, and every event
//! in the log. Progress lives only here, in the binary; the engine reports events.

use std::sync::Mutex;

use o365_migrate_engine::report::{Event, Reporter, human_bytes};

/// Progress for people on stderr (bars on a terminal, plain lines otherwise) and every event
/// in the log file.
pub(crate) struct HumanReporter {
    progress: Option<indicatif::MultiProgress>,
    bars: Mutex<std::collections::HashMap<String, MailboxBar>>,
}

/// One mailbox's bar and counts.
struct MailboxBar {
    bar: indicatif::ProgressBar,
    migrated: u64,
    processed: u64,
    bytes: u64,
    remaining: Option<u64>,
}

impl MailboxBar {
    fn message(&self, mailbox: &str) -> String {
        let secs = self.bar.elapsed().as_secs_f64().max(0.001);
        let rate = self.processed as f64 / secs;
        let eta = match self.remaining {
            Some(r) if rate > 0.0 && r > self.processed => {
                let left = std::time::Duration::from_secs_f64((r - self.processed) as f64 / rate);
                format!(
                    ", ETA {}",
                    o365_migrate_engine::report::human_duration(left)
                )
            }
            _ => String::new(),
        };
        let of = self.remaining.map(|r| format!("/{r}")).unwrap_or_default();
        format!(
            "{mailbox}: {}{of} done ({} migrated), {:.1} MB, {:.1} msg/s{eta}",
            self.processed,
            self.migrated,
            self.bytes as f64 / 1_048_576.0,
            rate
        )
    }
}

impl Reporter for HumanReporter {
    fn report(&self, event: &Event) {
        match event {
            Event::ItemMigrated { .. } => tracing::debug!(?event),
            Event::ItemSkipped { .. } | Event::FolderSkipped { .. } => tracing::info!(?event),
            Event::ItemFailed { .. } | Event::Throttled { .. } => tracing::warn!(?event),
            _ => tracing::info!(?event),
        }
        match &self.progress {
            Some(mp) => self.bar(mp, event),
            None => plain(event),
        }
    }
}

impl HumanReporter {
    pub(crate) fn new(progress: Option<indicatif::MultiProgress>) -> HumanReporter {
        HumanReporter {
            progress,
            bars: Mutex::new(Default::default()),
        }
    }

    fn bar(&self, mp: &indicatif::MultiProgress, event: &Event) {
        let Ok(mut bars) = self.bars.lock() else {
            return;
        };
        let mut update = |mailbox: &str, f: &dyn Fn(&mut MailboxBar)| {
            if let Some(b) = bars.get_mut(mailbox) {
                f(b);
                if let Some(r) = b.remaining {
                    b.bar.set_length(r.max(b.processed));
                    b.bar.set_position(b.processed);
                }
                b.bar.set_message(b.message(mailbox));
            }
        };
        match event {
            Event::MailboxStarted { mailbox, target } => {
                let b = mp.add(indicatif::ProgressBar::new_spinner());
                b.set_message(format!("{mailbox} → {target}: starting"));
                b.enable_steady_tick(std::time::Duration::from_millis(200));
                bars.insert(
                    mailbox.clone(),
                    MailboxBar {
                        bar: b,
                        migrated: 0,
                        processed: 0,
                        bytes: 0,
                        remaining: None,
                    },
                );
            }
            Event::MailboxPlanned { mailbox, remaining } => {
                let r = *remaining;
                update(mailbox, &|b| {
                    b.remaining = Some(r);
                    b.bar.set_style(
                        indicatif::ProgressStyle::with_template("{bar:20} {msg}")
                            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
                    );
                });
            }
            Event::ItemMigrated { mailbox, size, .. } => {
                let size = *size;
                update(mailbox, &|b| {
                    b.migrated += 1;
                    b.processed += 1;
                    b.bytes += size;
                });
            }
            Event::ItemSkipped { mailbox, .. } | Event::ItemFailed { mailbox, .. } => {
                update(mailbox, &|b| b.processed += 1);
                if let Some(l) = plain_line(event) {
                    let _ = mp.println(l);
                }
            }
            Event::MailboxFinished { mailbox, .. } => {
                if let Some(b) = bars.remove(mailbox) {
                    b.bar.finish_and_clear();
                }
                let _ = mp.println(plain_line(event).unwrap_or_default());
            }
            _ => {
                if let Some(l) = plain_line(event) {
                    let _ = mp.println(l);
                }
            }
        }
    }
}

fn plain_line(event: &Event) -> Option<String> {
    Some(match event {
        Event::MailboxStarted { mailbox, target } => format!("{mailbox} → {target}: started"),
        Event::MailboxPlanned { mailbox, remaining } => {
            format!("{mailbox}: {remaining} messages to go")
        }
        Event::MailboxSkipped { mailbox, reason } => {
            format!("{mailbox}: mailbox skipped: {reason}")
        }
        Event::FolderProgress {
            mailbox,
            folder,
            done,
            total,
            ..
        } => format!("{mailbox} {folder}: {done}/{total}"),
        Event::FolderSkipped {
            mailbox,
            folder,
            reason,
        } => format!("{mailbox} {folder}: folder skipped: {reason}"),
        Event::ItemFailed {
            mailbox,
            folder,
            uid,
            reason,
        } => format!("{mailbox} {folder} UID {uid}: failed: {reason}"),
        Event::MailboxFinished {
            mailbox,
            migrated,
            skipped,
            failed,
            bytes,
        } => format!(
            "{mailbox}: finished: {migrated} migrated, {skipped} skipped, {failed} failed, {}",
            human_bytes(*bytes)
        ),
        Event::Paused { by } => format!(
            "paused (asked by {by}): the items in flight were recorded; waiting for `o365-migrate resume` (Ctrl-C to quit)"
        ),
        Event::Resumed => "resumed".to_owned(),
        _ => return None,
    })
}

fn plain(event: &Event) {
    if let Some(l) = plain_line(event) {
        eprintln!("{l}");
    }
}
