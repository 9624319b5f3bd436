//! `cargo xtask bench ledger`: the dashboard's item-ledger search
//! ([`StateStore::search_items`]) over a state store of 200,000 items.
//!
//! A SQLite state store in a temporary directory is filled the way `run` fills it (upsert the
//! mailboxes and folders, `mark_planned` then `record_batch` under one run, up to 1,000 items
//! of one folder per transaction, the folders taken in turn so that row ids of the mailboxes
//! interleave as they do when mailboxes migrate in parallel): 20 mailboxes × 10 folders,
//! subjects and senders made of words from lists by a fixed LCG, sizes from 2 KB to 25 MB,
//! INTERNALDATEs over three years; ~95 % migrated, ~4 % skipped (too large, excluded Junk
//! folder, duplicates, empty messages), ~1 % failed, each with a realistic reason. Building it
//! is timed apart and is not part of the measured figures.
//!
//! Then seven searches, each once to warm up and 20 more times timed (the store's own call,
//! total count included — what the dashboard's `GET /api/items` shows): min / median / max.
//! Every answer (total, the items of the page, whether there is a next page) is checked
//! against what the generator knows; a wrong answer stops the benchmark. The goal: the slowest
//! median under 200 ms.
//!
//! The measurement runs in a release build of xtask (`xtask bench-ledger`, not in the help),
//! as the other benchmarks run release builds; `bench ledger` starts it and collects the JSON
//! line it prints last.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{Context, Result, bail, ensure};
use o365_migrate_engine::state::{
    Batch, FolderId, ItemMeta, ItemOutcome, ItemPage, ItemQuery, ItemStatus, MailboxId,
    PlannedItem, RunKind, RunOutcome, SqlStore, StateStore,
};
use serde_json::{Value, json};

/// The goal: the slowest median below this.
const GOAL_MS: f64 = 200.0;
const MAILBOXES: usize = 20;
/// Folder source path, target path, share of a mailbox's items (percent).
const FOLDERS: [(&str, &str, u32); 10] = [
    ("INBOX", "#Inbox#", 26),
    ("Sent", "#SentItems#", 14),
    ("Drafts", "#Drafts#", 2),
    ("Archive/2023", "Archive/2023", 12),
    ("Archive/2024", "Archive/2024", 12),
    ("Projects/Apollo", "Projects/Apollo", 8),
    ("Projects/Zeus", "Projects/Zeus", 8),
    ("Clients/Fabrikam", "Clients/Fabrikam", 6),
    ("Newsletters", "Newsletters", 10),
    ("Junk", "#JunkEmail#", 2),
];
const JUNK: usize = 9;
/// Items of one folder per `mark_planned` / `record_batch` transaction.
const CHUNK: usize = 1000;
const PAGE: u32 = 50;
/// 2023-01-01 00:00 UTC; INTERNALDATEs span three years from here.
const EPOCH: i64 = 1_672_531_200;
const SPAN: i64 = 3 * 365 * 86_400;

const FIRST: [&str; 24] = [
    "anna", "ben", "carla", "david", "elena", "farid", "greta", "hiro", "ines", "jonas", "kemal",
    "lena", "marco", "nadia", "oliver", "priya", "quentin", "rosa", "stefan", "tanja", "umar",
    "vera", "william", "yusuf",
];
const LAST: [&str; 24] = [
    "schmidt", "meyer", "garcia", "rossi", "novak", "kowalski", "jensen", "dubois", "silva",
    "tanaka", "oconnor", "weber", "fischer", "lopez", "martin", "bauer", "horvat", "berg",
    "nielsen", "moreau", "costa", "kaya", "larsen", "wagner",
];
const DOMAINS: [&str; 10] = [
    "contoso.example",
    "fabrikam.example",
    "northwind.example",
    "tailspin.example",
    "litware.example",
    "adatum.example",
    "woodgrove.example",
    "proseware.example",
    "wingtip.example",
    "fourthcoffee.example",
];
const SERVICE_SENDERS: [&str; 6] = [
    "noreply@github.example",
    "billing@litware.example",
    "invoices@tailspin.example",
    "newsletter@proseware.example",
    "calendar-notification@contoso.example",
    "it-helpdesk@contoso.example",
];
const TOPICS: [&str; 20] = [
    "Quarterly",
    "Budget",
    "Invoice",
    "Project",
    "Meeting",
    "Contract",
    "Travel",
    "Payroll",
    "Onboarding",
    "Security",
    "Roadmap",
    "Marketing",
    "Hiring",
    "Offsite",
    "Compliance",
    "Vendor",
    "Release",
    "Customer",
    "Board",
    "Training",
];
const NOUNS: [&str; 15] = [
    "review",
    "update",
    "approval",
    "notes",
    "schedule",
    "draft",
    "report",
    "request",
    "summary",
    "agenda",
    "follow-up",
    "reminder",
    "proposal",
    "questions",
    "sign-off",
];
const CLIENTS: [&str; 8] = [
    "Contoso",
    "Fabrikam",
    "Northwind",
    "Tailspin",
    "Litware",
    "Adatum",
    "Woodgrove",
    "Proseware",
];
const PERIODS: [&str; 10] = [
    "Q1",
    "Q2",
    "Q3",
    "Q4",
    "January",
    "March",
    "September",
    "next week",
    "2024",
    "FY25",
];
const FAILURES: [&str; 5] = [
    "target refused: ErrorInvalidRecipients",
    "timed out after 120 s writing to the target (rescan retries it)",
    "MIME parse error: unterminated multipart boundary",
    "target answered 507 ErrorQuotaExceeded: the mailbox is full",
    "source FETCH failed: NO [UNAVAILABLE] message not available",
];
/// The reason substrings the searches use.
const TOO_LARGE: &str = "150 MB limit";

/// A small deterministic generator (Knuth's MMIX LCG, high bits).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 33
    }
    fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next()).unwrap_or(0) % n.max(1)
    }
    fn pick<'a>(&mut self, list: &[&'a str]) -> &'a str {
        list[self.below(list.len())]
    }
    fn hex(&mut self, chars: usize) -> String {
        let mut s = String::with_capacity(chars + 8);
        while s.len() < chars {
            s.push_str(&format!("{:08x}", self.next() & 0xffff_ffff));
        }
        s.truncate(chars);
        s
    }
}

/// One generated item, as the searches' expected answers see it.
struct Gen {
    mailbox: usize,
    /// Index into the folder table (mailbox × 10 + folder).
    folder: usize,
    uid: u32,
    subject: String,
    sender: String,
    status: ItemStatus,
    reason: Option<String>,
    date: i64,
    size: u64,
    message_id: String,
    fingerprint: String,
}

fn generate(rng: &mut Lcg, mailbox: usize, folder: usize, uid: u32) -> Gen {
    let local = folder % FOLDERS.len();
    let subject = {
        let prefix = match rng.below(10) {
            0..=2 => "Re: ",
            3 => "Fwd: ",
            4 => "RE: ",
            _ => "",
        };
        let (topic, noun) = (rng.pick(&TOPICS), rng.pick(&NOUNS));
        let body = match rng.below(6) {
            0 | 1 => format!("{topic} {noun}"),
            2 => format!("{topic} {noun} for {}", rng.pick(&PERIODS)),
            3 => format!("{}: {topic} {noun}", rng.pick(&CLIENTS)),
            4 => format!("{topic} {noun} #{}", 10_000 + rng.below(90_000)),
            _ => format!(
                "Your {} invoice {} is ready",
                rng.pick(&CLIENTS),
                100_000 + rng.below(900_000)
            ),
        };
        format!("{prefix}{body}")
    };
    let sender = if local == 8 || rng.below(100) < 12 {
        rng.pick(&SERVICE_SENDERS).to_owned()
    } else {
        format!(
            "{}.{}@{}",
            rng.pick(&FIRST),
            rng.pick(&LAST),
            rng.pick(&DOMAINS)
        )
    };
    let date = EPOCH + i64::try_from(rng.next()).unwrap_or(0) % SPAN;
    // Log-uniform between 2 KB and 25 MB.
    let u = (rng.next() % 1_000_000) as f64 / 1_000_000.0;
    let mut size = (2_000.0 * (12_500f64.ln() * u).exp()) as u64;
    let fingerprint = rng.hex(64);
    let message_id = format!(
        "<{}.{uid}@{}>",
        rng.hex(16),
        DOMAINS[mailbox % DOMAINS.len()]
    );
    let roll = rng.below(1000);
    let (status, reason) = if local == JUNK {
        (
            ItemStatus::Skipped,
            Some("excluded by [filter] folders: Junk".to_owned()),
        )
    } else if roll < 20 {
        let reason = match roll % 10 {
            0..=2 => {
                let mb = 151 + rng.below(250) as u64;
                size = mb * 1_000_000 + rng.below(999_999) as u64;
                format!("larger than the target's {TOO_LARGE} ({mb} MB)")
            }
            3..=7 => {
                format!("duplicate of a message already in the target (Message-ID {message_id})")
            }
            _ => {
                size = 0;
                "empty message: no headers and no body (0 bytes)".to_owned()
            }
        };
        (ItemStatus::Skipped, Some(reason))
    } else if roll < 30 {
        (ItemStatus::Failed, Some(rng.pick(&FAILURES).to_owned()))
    } else {
        (ItemStatus::Migrated, None)
    };
    Gen {
        mailbox,
        folder,
        uid,
        subject,
        sender,
        status,
        reason,
        date,
        size,
        message_id,
        fingerprint,
    }
}

/// The store's ids of the generated mailboxes and folders.
struct Ids {
    mailboxes: Vec<MailboxId>,
    folders: Vec<FolderId>,
}

fn contains(hay: &str, needle: &str) -> bool {
    hay.to_lowercase().contains(&needle.to_lowercase())
}

/// Whether `g` answers `q`, by the rules of [`ItemQuery`] (case-insensitive substrings, all
/// filters must hold), without the paging.
fn matches(g: &Gen, q: &ItemQuery, ids: &Ids) -> bool {
    let path = FOLDERS[g.folder % FOLDERS.len()].0;
    let reason = g.reason.as_deref().unwrap_or("");
    q.mailbox.is_none_or(|m| ids.mailboxes[g.mailbox] == m)
        && q.folder.is_none_or(|f| ids.folders[g.folder] == f)
        && q.status.is_none_or(|s| g.status == s)
        && q.subject.as_deref().is_none_or(|t| contains(&g.subject, t))
        && q.sender.as_deref().is_none_or(|t| contains(&g.sender, t))
        && q.reason
            .as_deref()
            .is_none_or(|t| g.reason.is_some() && contains(reason, t))
        && q.folder_path.as_deref().is_none_or(|t| contains(path, t))
        && q.text.as_deref().is_none_or(|t| {
            contains(&g.subject, t)
                || contains(&g.sender, t)
                || (g.reason.is_some() && contains(reason, t))
                || contains(path, t)
        })
        && q.since.is_none_or(|s| g.date >= s)
        && q.before.is_none_or(|b| g.date < b)
}

struct Options {
    items: usize,
    reps: usize,
}

fn parse(args: &[String]) -> Result<Options> {
    let mut o = Options {
        items: 200_000,
        reps: 20,
    };
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let value = it
            .next()
            .with_context(|| format!("`{flag}` needs a value"))?;
        let n = || -> Result<usize> {
            value
                .parse()
                .with_context(|| format!("`{flag}` takes a whole number, got `{value}`"))
        };
        match flag.as_str() {
            "--ledger-items" => o.items = n()?.max(MAILBOXES * FOLDERS.len()),
            "--ledger-reps" => o.reps = n()?.max(1),
            // The other benchmarks' options.
            _ => {}
        }
    }
    Ok(o)
}

/// `bench ledger`: runs `xtask bench-ledger` from a release build and returns its JSON line.
pub(crate) fn run(args: &[String]) -> Result<Value> {
    let o = parse(args)?;
    let (items, reps) = (o.items.to_string(), o.reps.to_string());
    let output = Command::new("cargo")
        .args(["run", "--quiet", "--release", "-p", "xtask", "--"])
        .args([
            "bench-ledger",
            "--ledger-items",
            &items,
            "--ledger-reps",
            &reps,
        ])
        .current_dir(crate::root())
        .stderr(Stdio::inherit())
        .output()
        .context("could not run the ledger benchmark")?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    print!("{stdout}");
    if !output.status.success() {
        bail!("benchmark `ledger` failed ({})", output.status);
    }
    let last = stdout
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or_default();
    serde_json::from_str(last).with_context(|| {
        format!("benchmark `ledger` did not end with a JSON line; its last line was `{last}`")
    })
}

/// `xtask bench-ledger [--ledger-items N] [--ledger-reps N]`: the measurement itself; prints a
/// table, then one JSON line.
pub(crate) fn main(args: &[String]) -> Result<()> {
    let o = parse(args)?;
    if cfg!(debug_assertions) {
        eprintln!("bench ledger: warning: a debug build; figures are not comparable");
    }
    let dir = crate::sidebyside::tempfile_dir()?.join("ledger");
    std::fs::create_dir_all(&dir)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let r = rt.block_on(measure(&o, &dir));
    let _ = std::fs::remove_dir_all(&dir);
    let json = r?;
    println!("{json}");
    Ok(())
}

/// One search, its timings and its checked answer.
struct Row {
    key: &'static str,
    label: String,
    total: u64,
    page_items: usize,
    ms: Vec<f64>,
}

impl Row {
    fn min(&self) -> f64 {
        self.ms.first().copied().unwrap_or(0.0)
    }
    fn max(&self) -> f64 {
        self.ms.last().copied().unwrap_or(0.0)
    }
    fn median(&self) -> f64 {
        let n = self.ms.len();
        if n == 0 {
            0.0
        } else if n % 2 == 1 {
            self.ms[n / 2]
        } else {
            (self.ms[n / 2 - 1] + self.ms[n / 2]) / 2.0
        }
    }
}

fn round(x: f64, places: i32) -> f64 {
    let f = 10f64.powi(places);
    (x * f).round() / f
}

/// Checks a page against the generated items: the total, the items in order, the next page.
fn check(
    what: &str,
    page: &ItemPage,
    expected: &[&Gen],
    skip: usize,
    limit: usize,
    ids: &Ids,
) -> Result<()> {
    ensure!(
        page.total == expected.len() as u64,
        "{what}: total {} but {} items match",
        page.total,
        expected.len()
    );
    let want: Vec<(FolderId, u32)> = expected
        .iter()
        .skip(skip)
        .take(limit)
        .map(|g| (ids.folders[g.folder], g.uid))
        .collect();
    let got: Vec<(FolderId, u32)> = page.items.iter().map(|i| (i.folder, i.uid)).collect();
    ensure!(
        got == want,
        "{what}: the page holds {} items, not the {} expected ones (first got {:?}, first \
         expected {:?})",
        got.len(),
        want.len(),
        got.first(),
        want.first()
    );
    for (item, g) in page.items.iter().zip(expected.iter().skip(skip)) {
        ensure!(
            item.status == g.status
                && item.reason == g.reason
                && item.subject.as_deref() == Some(g.subject.as_str())
                && item.sender.as_deref() == Some(g.sender.as_str())
                && item.internal_date == Some(g.date)
                && item.mailbox == ids.mailboxes[g.mailbox],
            "{what}: item {} (UID {}) differs from what was stored",
            item.id,
            item.uid
        );
    }
    ensure!(
        page.next_after.is_some() == (expected.len() > skip + limit),
        "{what}: next_after is {:?} with {} items after this page",
        page.next_after,
        expected.len().saturating_sub(skip + limit)
    );
    Ok(())
}

async fn measure(o: &Options, dir: &Path) -> Result<Value> {
    let path = dir.join("state.db");
    let store = SqlStore::open(&path).await?;

    // Generate, in insertion order.
    let per_mailbox = o.items / MAILBOXES;
    let mut rng = Lcg(0x1ed9_2026);
    let mut per_folder: Vec<Vec<Gen>> = Vec::new();
    for m in 0..MAILBOXES {
        let extra = usize::from(m < o.items % MAILBOXES);
        let n = per_mailbox + extra;
        let mut left = n;
        for (f, (_, _, pct)) in FOLDERS.iter().enumerate() {
            let count = if f == FOLDERS.len() - 1 {
                left
            } else {
                (n * *pct as usize / 100).min(left)
            };
            left -= count;
            let fi = m * FOLDERS.len() + f;
            per_folder.push(
                (1..=count)
                    .map(|uid| generate(&mut rng, m, fi, u32::try_from(uid).unwrap_or(0)))
                    .collect(),
            );
        }
    }
    let mut order: Vec<Gen> = Vec::with_capacity(o.items);
    let mut iters: Vec<std::vec::IntoIter<Gen>> =
        per_folder.into_iter().map(Vec::into_iter).collect();
    let mut chunks: Vec<(usize, usize)> = Vec::new(); // (start in `order`, len)
    loop {
        let mut any = false;
        for it in &mut iters {
            let start = order.len();
            order.extend(it.by_ref().take(CHUNK));
            if order.len() > start {
                chunks.push((start, order.len() - start));
                any = true;
            }
        }
        if !any {
            break;
        }
    }
    ensure!(order.len() == o.items, "generated {} items", order.len());

    // Build the store.
    eprintln!("bench ledger: building a state store of {} items", o.items);
    let t = Instant::now();
    let run = store.begin_run(RunKind::Run).await?;
    let mut ids = Ids {
        mailboxes: Vec::new(),
        folders: Vec::new(),
    };
    for m in 0..MAILBOXES {
        let first = FIRST[m % FIRST.len()];
        let last = LAST[(m * 7) % LAST.len()];
        let mb = store
            .upsert_mailbox(
                &format!("{first}.{last}@mail.contoso.example"),
                &format!("{first}.{last}@contoso.onmicrosoft.com"),
            )
            .await?;
        ids.mailboxes.push(mb);
        for (source, target, _) in FOLDERS {
            let uidvalidity = 1_600_000_000 + u32::try_from(m).unwrap_or(0);
            let f = store.upsert_folder(mb, source, target, uidvalidity).await?;
            ids.folders.push(f.id);
        }
    }
    let uidvalidity = |g: &Gen| 1_600_000_000 + u32::try_from(g.mailbox).unwrap_or(0);
    for (start, len) in &chunks {
        let part = &order[*start..*start + *len];
        let folder = ids.folders[part[0].folder];
        let planned: Vec<PlannedItem> = part
            .iter()
            .map(|g| PlannedItem {
                uid: g.uid,
                meta: ItemMeta {
                    size: Some(g.size),
                    internal_date: Some(g.date),
                    fingerprint: Some(g.fingerprint.clone()),
                    message_id: Some(g.message_id.clone()),
                    subject: Some(g.subject.clone()),
                    sender: Some(g.sender.clone()),
                    flags: None,
                },
            })
            .collect();
        store
            .mark_planned(folder, uidvalidity(&part[0]), &planned)
            .await?;
        let outcomes = part
            .iter()
            .map(|g| ItemOutcome {
                folder,
                uidvalidity: uidvalidity(g),
                uid: g.uid,
                status: g.status,
                target_id: (g.status == ItemStatus::Migrated)
                    .then(|| format!("AAMkADk0{}AAA=", &g.fingerprint[..40])),
                reason: g.reason.clone(),
                meta: ItemMeta {
                    flags: (g.status == ItemStatus::Migrated).then(|| "\\Seen".to_owned()),
                    ..ItemMeta::default()
                },
            })
            .collect();
        store
            .record_batch(
                run,
                &Batch {
                    outcomes,
                    events: vec![],
                },
            )
            .await?;
    }
    store.finish_run(run, RunOutcome::Completed).await?;
    let build_s = t.elapsed().as_secs_f64();
    let db_bytes: u64 = ["state.db", "state.db-wal"]
        .iter()
        .filter_map(|f| std::fs::metadata(dir.join(f)).ok())
        .map(|m| m.len())
        .sum();
    let counts = store.counts(None).await?;
    let of = |s: ItemStatus| order.iter().filter(|g| g.status == s).count() as u64;
    let (migrated, skipped, failed) = (
        of(ItemStatus::Migrated),
        of(ItemStatus::Skipped),
        of(ItemStatus::Failed),
    );
    ensure!(
        (
            counts.migrated,
            counts.skipped,
            counts.failed,
            counts.planned
        ) == (migrated, skipped, failed, 0),
        "the store counts {counts:?}, the generator {migrated} / {skipped} / {failed}"
    );
    eprintln!(
        "bench ledger: built in {build_s:.1} s ({:.0} MB on disk): {migrated} migrated, \
         {skipped} skipped, {failed} failed",
        db_bytes as f64 / 1e6
    );

    // The searches.
    let date = |y: i64, m: i64| {
        // Days from 1970-01-01 to the first of month m of year y (proleptic Gregorian).
        let (y, m) = if m <= 2 { (y - 1, m + 9) } else { (y, m - 3) };
        let era = y.div_euclid(400);
        let yoe = y - era * 400;
        let doy = (153 * m + 2) / 5;
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        (era * 146_097 + doe - 719_468) * 86_400
    };
    let mb = |m: usize| Some(ids.mailboxes[m]);
    let searches: Vec<(&'static str, String, ItemQuery)> = vec![
        (
            "mailbox_first_page",
            "first page, all items of one mailbox".into(),
            ItemQuery {
                mailbox: mb(4),
                ..ItemQuery::default()
            },
        ),
        (
            "reason_all",
            format!("reason contains \"{TOO_LARGE}\", all mailboxes"),
            ItemQuery {
                reason: Some(TOO_LARGE.into()),
                ..ItemQuery::default()
            },
        ),
        (
            "text_mailbox",
            "text contains \"invoice\", one mailbox".into(),
            ItemQuery {
                mailbox: mb(5),
                text: Some("invoice".into()),
                ..ItemQuery::default()
            },
        ),
        (
            "sender_all",
            "sender contains \"@Northwind\", all mailboxes".into(),
            ItemQuery {
                sender: Some("@Northwind".into()),
                ..ItemQuery::default()
            },
        ),
        (
            "failed_mailbox",
            "status failed, one mailbox".into(),
            ItemQuery {
                mailbox: mb(11),
                status: Some(ItemStatus::Failed),
                ..ItemQuery::default()
            },
        ),
        (
            "date_folder",
            "INBOX of one mailbox, 2024-01-01 to 2024-07-01".into(),
            ItemQuery {
                folder: Some(ids.folders[7 * FOLDERS.len()]),
                since: Some(date(2024, 1)),
                before: Some(date(2024, 7)),
                ..ItemQuery::default()
            },
        ),
    ];
    let mut rows: Vec<Row> = Vec::new();
    for (key, label, mut q) in searches {
        q.limit = PAGE;
        let expected: Vec<&Gen> = order.iter().filter(|g| matches(g, &q, &ids)).collect();
        let warm = store.search_items(&q).await?;
        check(key, &warm, &expected, 0, PAGE as usize, &ids)?;
        let mut ms = Vec::with_capacity(o.reps);
        let mut last = warm;
        for _ in 0..o.reps {
            let t = Instant::now();
            last = store.search_items(&q).await?;
            ms.push(t.elapsed().as_secs_f64() * 1e3);
        }
        check(key, &last, &expected, 0, PAGE as usize, &ids)?;
        ms.sort_by(f64::total_cmp);
        rows.push(Row {
            key,
            label,
            total: last.total,
            page_items: last.items.len(),
            ms,
        });
    }

    // A deep page: page 100 of one mailbox's items, reached through after_id.
    let mut q = ItemQuery {
        mailbox: mb(3),
        limit: PAGE,
        ..ItemQuery::default()
    };
    let expected: Vec<&Gen> = order.iter().filter(|g| matches(g, &q, &ids)).collect();
    let deep = expected.len().div_ceil(PAGE as usize).clamp(1, 100);
    for n in 1..deep {
        let p = store.search_items(&q).await?;
        q.after_id = p
            .next_after
            .with_context(|| format!("deep page: page {n} has no next page"))?;
    }
    let skip = (deep - 1) * PAGE as usize;
    let what = format!("deep page {deep}");
    let warm = store.search_items(&q).await?;
    check(&what, &warm, &expected, skip, PAGE as usize, &ids)?;
    let mut ms = Vec::with_capacity(o.reps);
    let mut last = warm;
    for _ in 0..o.reps {
        let t = Instant::now();
        last = store.search_items(&q).await?;
        ms.push(t.elapsed().as_secs_f64() * 1e3);
    }
    check(&what, &last, &expected, skip, PAGE as usize, &ids)?;
    ms.sort_by(f64::total_cmp);
    rows.push(Row {
        key: "deep_page",
        label: format!("page {deep} of one mailbox's items (after_id)"),
        total: last.total,
        page_items: last.items.len(),
        ms,
    });
    store.close().await;

    // The table and the goal.
    println!(
        "\nledger search: {} items ({MAILBOXES} mailboxes × {} folders), store built in \
         {build_s:.1} s (not measured); {} runs per search after one warm-up",
        o.items,
        FOLDERS.len(),
        o.reps
    );
    println!(
        "| # | search (page of {PAGE}, total counted) | total | page | min ms | median ms | max ms |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|");
    for (i, r) in rows.iter().enumerate() {
        println!(
            "| {} | {} | {} | {} | {:.1} | {:.1} | {:.1} |",
            i + 1,
            r.label,
            r.total,
            r.page_items,
            r.min(),
            r.median(),
            r.max()
        );
    }
    let slowest = rows
        .iter()
        .max_by(|a, b| a.median().total_cmp(&b.median()))
        .context("no searches")?;
    let met = slowest.median() < GOAL_MS;
    println!(
        "goal: Ledger search over {} items answers in < {GOAL_MS:.0} ms: slowest median {:.1} ms \
         ({}) — {}\n",
        o.items,
        slowest.median(),
        slowest.key,
        if met { "met" } else { "NOT MET" }
    );
    let searches: serde_json::Map<String, Value> = rows
        .iter()
        .map(|r| {
            (
                r.key.to_owned(),
                json!({
                    "search": r.label,
                    "total": r.total,
                    "page_items": r.page_items,
                    "min_ms": round(r.min(), 2),
                    "median_ms": round(r.median(), 2),
                    "max_ms": round(r.max(), 2),
                }),
            )
        })
        .collect();
    Ok(json!({
        "bench": "ledger",
        "items": o.items,
        "mailboxes": MAILBOXES,
        "folders": MAILBOXES * FOLDERS.len(),
        "migrated": migrated,
        "skipped": skipped,
        "failed": failed,
        "build_s": round(build_s, 2),
        "db_mb": round(db_bytes as f64 / 1e6, 1),
        "runs_per_search": o.reps,
        "page": PAGE,
        "searches": searches,
        "slowest_median_ms": round(slowest.median(), 2),
        "slowest": slowest.key,
        "goal_ms": GOAL_MS,
        "goal_met": met,
        "release": !cfg!(debug_assertions),
    }))
}
