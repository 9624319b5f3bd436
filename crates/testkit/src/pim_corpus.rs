//! Deterministic contacts and calendars for issue 18 (CardDAV/CalDAV → Graph): vCards and
//! iCalendar series generated from a seed, loaded into a [`Radicale`], with a manifest that
//! says what every item must become, a change set for incremental runs, and the same corpus as
//! `.vcf`/`.ics` files for the local-file source.
//!
//! The generator writes the text itself (no dependency on the crates it tests) and computes
//! each event's expected occurrences by its own simple logic: it knows the rule it generated
//! (DAILY, WEEKLY with BYDAY and INTERVAL, MONTHLY by day of month or last Friday, YEARLY;
//! COUNT, UNTIL or open-ended), the EXDATEs and the moved occurrences, and the time-zone rules
//! of the four zones it uses (Europe/Berlin, America/New_York, Asia/Kolkata,
//! Australia/Sydney). That is an oracle independent of the parser under test.
//!
//! - Same profile (seed, base date) → the same bytes; no clock is read.
//! - Floating times and all-day dates are expected as read in [`FLOATING_ZONE`] (UTC).
//! - Every rule is one Graph's `patternedRecurrence` can express (no BYSETPOS, no hourly);
//!   DTSTART is always an occurrence of its rule.
//!
//! ```
//! use o365_migrate_testkit::pim_corpus::{PimCorpus, PimCorpusProfile, PimKind};
//!
//! let corpus = PimCorpus::generate(&PimCorpusProfile::small());
//! let events = corpus.manifest().iter().filter(|e| e.kind == PimKind::Event).count();
//! assert_eq!(events, 40);
//! assert_eq!(corpus.items().next().unwrap().1, PimCorpus::generate(&PimCorpusProfile::small()).items().next().unwrap().1);
//! ```

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use base64::Engine as _;

use crate::error::{Error, Result};
use crate::radicale::Radicale;
use crate::rng::{Rng, derive};

/// The zone floating times and all-day dates are expected in (the parser's default).
pub const FLOATING_ZONE: &str = "UTC";

/// The address book every contact goes to.
pub const ADDRESS_BOOK: &str = "contacts";

/// A 1×1 PNG (valid chunks and CRCs), the inline photo of some contacts.
const PNG_1X1: &[u8] = &[
    0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x48, 0x44, 0x52,
    0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x08, 0x04, 0x00, 0x00, 0x00, 0xb5, 0x1c, 0x0c,
    0x02, 0x00, 0x00, 0x00, 0x0b, 0x49, 0x44, 0x41, 0x54, 0x78, 0xda, 0x63, 0x64, 0x60, 0x00, 0x00,
    0x00, 0x06, 0x00, 0x02, 0x30, 0x81, 0xd0, 0x2f, 0x00, 0x00, 0x00, 0x00, 0x49, 0x45, 0x4e, 0x44,
    0xae, 0x42, 0x60, 0x82,
];

/// What a [`PimCorpus`] holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PimCorpusProfile {
    /// Contacts in the address book [`ADDRESS_BOOK`].
    pub contacts: usize,
    /// Events in all, series included.
    pub events: usize,
    /// How many of [`events`](Self::events) are recurring series (each with at least one
    /// cancelled or moved occurrence).
    pub recurring: usize,
    /// Calendar names (collections under `/<user>/`); events go to them in turn.
    pub calendars: Vec<String>,
    /// The seed.
    pub seed: u64,
    /// (year, month, day): events start within a year after it.
    pub base_date: (i32, u32, u32),
}

impl PimCorpusProfile {
    /// Issue 18's corpus: 500 contacts, 1,000 events of which 200 recurring series with
    /// exceptions, two calendars, from 4 January 2027.
    pub fn issue18() -> Self {
        Self {
            contacts: 500,
            events: 1000,
            recurring: 200,
            calendars: vec!["calendar".into(), "work".into()],
            seed: 18,
            base_date: (2027, 1, 4),
        }
    }

    /// A small corpus for quick tests: 20 contacts, 40 events of which 10 recurring.
    pub fn small() -> Self {
        Self {
            contacts: 20,
            events: 40,
            recurring: 10,
            ..Self::issue18()
        }
    }
}

/// Contact or event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PimKind {
    /// A vCard.
    Contact,
    /// A VEVENT series (master plus overrides) or a single VEVENT.
    Event,
}

/// One expected occurrence (UTC instants, RFC 3339).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpectedOccurrence {
    /// Start, e.g. `2027-01-04T09:00:00Z`.
    pub start_utc: String,
    /// End.
    pub end_utc: String,
    /// Its subject (a moved occurrence's own).
    pub subject: String,
}

/// A moved occurrence: where the rule put it and where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MovedOccurrence {
    /// The original start (the RECURRENCE-ID), UTC.
    pub original_start_utc: String,
    /// The new start, UTC.
    pub start_utc: String,
    /// The new subject.
    pub subject: String,
}

/// What one item must become.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PimManifestEntry {
    /// The collection (address book or calendar name).
    pub collection: String,
    /// Path under `/<user>/`: `<collection>/<uid>.vcf` or `.ics`.
    pub href: String,
    /// The UID.
    pub uid: String,
    /// Contact or event.
    pub kind: PimKind,
    /// FN of a contact, SUMMARY of an event (series master).
    pub summary: String,
    /// A contact's e-mail addresses.
    pub emails: Vec<String>,
    /// Whether a contact has an inline photo.
    pub photo: bool,
    /// An event's zone: an IANA name, `UTC`, or `floating`.
    pub zone: String,
    /// Whether the event is all-day (VALUE=DATE).
    pub all_day: bool,
    /// The RRULE, if a series.
    pub rrule: Option<String>,
    /// Whether Graph's `patternedRecurrence` can express the series (always, in this
    /// generator; a field so tests can say so).
    pub expressible: bool,
    /// The window the occurrences are expected in: from the first start to 24 months later
    /// (a single event: its start and end), UTC.
    pub window: (String, String),
    /// Expected occurrences in [`window`](Self::window), sorted by start (those overlapping
    /// it; a single event: itself).
    pub occurrences: Vec<ExpectedOccurrence>,
    /// Original starts (UTC) of cancelled occurrences (EXDATE).
    pub cancelled: Vec<String>,
    /// Moved occurrences (RECURRENCE-ID overrides).
    pub moved: Vec<MovedOccurrence>,
}

/// Items to PUT for an incremental run: changed and new events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PimChangeSet {
    /// (href under `/<user>/`, data, whether new).
    pub items: Vec<(String, String, bool)>,
}

impl PimChangeSet {
    /// How many items changed.
    pub fn changed(&self) -> usize {
        self.items.iter().filter(|i| !i.2).count()
    }

    /// How many items are new.
    pub fn added(&self) -> usize {
        self.items.iter().filter(|i| i.2).count()
    }

    /// PUTs every item into `user`'s collections on `radicale`.
    pub fn apply(&self, radicale: &Radicale, user: &str) -> Result<()> {
        for (href, data, _) in &self.items {
            radicale.put(user, href, data)?;
        }
        Ok(())
    }
}

// ----- dates, without a date library: days since 1970-01-01 and seconds ---------------------

/// Days since 1970-01-01 of a civil date ([`crate::date`]'s algorithm, `i32` years).
fn days_from_civil(y: i32, m: u32, d: u32) -> i64 {
    crate::date::days_from_civil(i64::from(y), m, d)
}

/// The civil date of a day number.
fn civil_from_days(z: i64) -> (i32, u32, u32) {
    let (y, m, d) = crate::date::civil_from_days(z);
    (i32::try_from(y).unwrap_or(i32::MAX), m, d)
}

/// 0 = Monday .. 6 = Sunday.
fn weekday(day: i64) -> i64 {
    (day + 3).rem_euclid(7)
}

fn days_in_month(y: i32, m: u32) -> u32 {
    crate::date::days_in_month(i64::from(y), m)
}

/// The `n`-th (1-based) Sunday of a month, or the last with `n == 0`.
fn sunday(y: i32, m: u32, n: i64) -> i64 {
    if n == 0 {
        let last = days_from_civil(y, m, days_in_month(y, m));
        last - (weekday(last) - 6).rem_euclid(7)
    } else {
        let first = days_from_civil(y, m, 1);
        first + (6 - weekday(first)).rem_euclid(7) + 7 * (n - 1)
    }
}

const DAY: i64 = 86_400;

/// Seconds since the epoch → `2027-01-04T09:00:00Z`.
fn rfc3339(t: i64) -> String {
    let i = ical(t);
    format!(
        "{}-{}-{}T{}:{}:{}Z",
        &i[0..4],
        &i[4..6],
        &i[6..8],
        &i[9..11],
        &i[11..13],
        &i[13..15]
    )
}

/// Local seconds → `20270104T100000` (iCalendar basic form).
fn ical(t: i64) -> String {
    let s = t.rem_euclid(DAY);
    format!(
        "{}T{:02}{:02}{:02}",
        ical_date(t.div_euclid(DAY)),
        s / 3600,
        s % 3600 / 60,
        s % 60
    )
}

fn ical_date(day: i64) -> String {
    let (y, m, d) = civil_from_days(day);
    format!("{y:04}{m:02}{d:02}")
}

/// `t` plus `months` calendar months, the day clamped to the month's last (as chrono's
/// `checked_add_months`).
fn add_months(t: i64, months: u32) -> i64 {
    let (y, m, d) = civil_from_days(t.div_euclid(DAY));
    let total = i64::from(m) - 1 + i64::from(months);
    let (ny, nm) = (
        y + total.div_euclid(12) as i32,
        (total.rem_euclid(12) + 1) as u32,
    );
    days_from_civil(ny, nm, d.min(days_in_month(ny, nm))) * DAY + t.rem_euclid(DAY)
}

// ----- zones -------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Zone {
    Berlin,
    NewYork,
    Kolkata,
    Sydney,
    Utc,
    Floating,
}

const ZONES: [Zone; 6] = [
    Zone::Berlin,
    Zone::NewYork,
    Zone::Kolkata,
    Zone::Sydney,
    Zone::Utc,
    Zone::Floating,
];

impl Zone {
    fn name(self) -> &'static str {
        match self {
            Zone::Berlin => "Europe/Berlin",
            Zone::NewYork => "America/New_York",
            Zone::Kolkata => "Asia/Kolkata",
            Zone::Sydney => "Australia/Sydney",
            Zone::Utc => "UTC",
            Zone::Floating => "floating",
        }
    }

    /// Offset (seconds east of UTC) at a local time. Generated times are between 07:00 and
    /// 23:59, never in a transition's gap or overlap (they are at 02:00–03:00), so the local
    /// date decides.
    fn offset(self, local: i64) -> i64 {
        let day = local.div_euclid(DAY);
        let (y, _, _) = civil_from_days(day);
        match self {
            // EU: last Sunday of March to last Sunday of October.
            Zone::Berlin => {
                if day >= sunday(y, 3, 0) && day < sunday(y, 10, 0) {
                    7200
                } else {
                    3600
                }
            }
            // US: second Sunday of March to first Sunday of November.
            Zone::NewYork => {
                if day >= sunday(y, 3, 2) && day < sunday(y, 11, 1) {
                    -4 * 3600
                } else {
                    -5 * 3600
                }
            }
            Zone::Kolkata => 5 * 3600 + 1800,
            // Sydney: daylight from the first Sunday of October to the first Sunday of April.
            Zone::Sydney => {
                if day < sunday(y, 4, 1) || day >= sunday(y, 10, 1) {
                    11 * 3600
                } else {
                    10 * 3600
                }
            }
            Zone::Utc | Zone::Floating => 0,
        }
    }

    fn utc(self, local: i64) -> i64 {
        local - self.offset(local)
    }

    fn vtimezone(self) -> Option<&'static str> {
        Some(match self {
            Zone::Berlin => {
                "BEGIN:VTIMEZONE\r\nTZID:Europe/Berlin\r\nBEGIN:DAYLIGHT\r\nTZOFFSETFROM:+0100\r\nTZOFFSETTO:+0200\r\nTZNAME:CEST\r\nDTSTART:19700329T020000\r\nRRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=-1SU\r\nEND:DAYLIGHT\r\nBEGIN:STANDARD\r\nTZOFFSETFROM:+0200\r\nTZOFFSETTO:+0100\r\nTZNAME:CET\r\nDTSTART:19701025T030000\r\nRRULE:FREQ=YEARLY;BYMONTH=10;BYDAY=-1SU\r\nEND:STANDARD\r\nEND:VTIMEZONE\r\n"
            }
            Zone::NewYork => {
                "BEGIN:VTIMEZONE\r\nTZID:America/New_York\r\nBEGIN:DAYLIGHT\r\nTZOFFSETFROM:-0500\r\nTZOFFSETTO:-0400\r\nTZNAME:EDT\r\nDTSTART:19700308T020000\r\nRRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=2SU\r\nEND:DAYLIGHT\r\nBEGIN:STANDARD\r\nTZOFFSETFROM:-0400\r\nTZOFFSETTO:-0500\r\nTZNAME:EST\r\nDTSTART:19701101T020000\r\nRRULE:FREQ=YEARLY;BYMONTH=11;BYDAY=1SU\r\nEND:STANDARD\r\nEND:VTIMEZONE\r\n"
            }
            Zone::Kolkata => {
                "BEGIN:VTIMEZONE\r\nTZID:Asia/Kolkata\r\nBEGIN:STANDARD\r\nTZOFFSETFROM:+0530\r\nTZOFFSETTO:+0530\r\nTZNAME:IST\r\nDTSTART:19700101T000000\r\nEND:STANDARD\r\nEND:VTIMEZONE\r\n"
            }
            Zone::Sydney => {
                "BEGIN:VTIMEZONE\r\nTZID:Australia/Sydney\r\nBEGIN:STANDARD\r\nTZOFFSETFROM:+1100\r\nTZOFFSETTO:+1000\r\nTZNAME:AEST\r\nDTSTART:19700405T030000\r\nRRULE:FREQ=YEARLY;BYMONTH=4;BYDAY=1SU\r\nEND:STANDARD\r\nBEGIN:DAYLIGHT\r\nTZOFFSETFROM:+1000\r\nTZOFFSETTO:+1100\r\nTZNAME:AEDT\r\nDTSTART:19701004T020000\r\nRRULE:FREQ=YEARLY;BYMONTH=10;BYDAY=1SU\r\nEND:DAYLIGHT\r\nEND:VTIMEZONE\r\n"
            }
            Zone::Utc | Zone::Floating => return None,
        })
    }

    /// A date-time property (`DTSTART`, `EXDATE`, ...) at local time `t`.
    fn prop(self, name: &str, t: i64) -> String {
        match self {
            Zone::Utc => format!("{name}:{}Z", ical(t)),
            Zone::Floating => format!("{name}:{}", ical(t)),
            z => format!("{name};TZID={}:{}", z.name(), ical(t)),
        }
    }
}

// ----- events ------------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq, Eq)]
enum Rule {
    Daily {
        interval: i64,
    },
    /// Days 0 = Monday .. 6 = Sunday, sorted.
    Weekly {
        interval: i64,
        days: Vec<i64>,
    },
    MonthlyDay {
        interval: i64,
        day: u32,
    },
    MonthlyLastFriday,
    Yearly,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    Count(usize),
    /// UNTIL on the local date of the rule's n-th (0-based) occurrence, at 23:59:59.
    Until(usize),
    Open,
}

/// One event series as generated; the text and the expectations are derived from it.
#[derive(Debug, Clone)]
struct EventSpec {
    uid: String,
    calendar: String,
    zone: Zone,
    all_day: bool,
    /// Local start (seconds; midnight for all-day).
    start: i64,
    /// Duration in seconds (whole days for all-day).
    duration: i64,
    summary: String,
    description: String,
    location: String,
    rule: Option<(Rule, End)>,
    /// Rule occurrence indexes cancelled by EXDATE.
    exdates: Vec<usize>,
    /// Rule occurrence index moved by +`shift` seconds, with its own summary.
    moved: Option<(usize, i64, String)>,
    /// DTSTAMP, UTC seconds.
    stamp: i64,
    reminder: bool,
}

const WEEKDAYS: [&str; 7] = ["MO", "TU", "WE", "TH", "FR", "SA", "SU"];

impl Rule {
    fn text(&self) -> String {
        match self {
            Rule::Daily { interval } => format!("FREQ=DAILY;INTERVAL={interval}"),
            Rule::Weekly { interval, days } => format!(
                "FREQ=WEEKLY;INTERVAL={interval};BYDAY={};WKST=MO",
                days.iter()
                    .map(|d| WEEKDAYS[*d as usize])
                    .collect::<Vec<_>>()
                    .join(",")
            ),
            Rule::MonthlyDay { interval, day } => {
                format!("FREQ=MONTHLY;INTERVAL={interval};BYMONTHDAY={day}")
            }
            Rule::MonthlyLastFriday => "FREQ=MONTHLY;BYDAY=-1FR".to_string(),
            Rule::Yearly => "FREQ=YEARLY".to_string(),
        }
    }

    /// The rule's local starts in order from `start`, while `keep` says so (it sees the
    /// index and the local start), at most `max`.
    fn expand(&self, start: i64, max: usize, keep: &dyn Fn(usize, i64) -> bool) -> Vec<i64> {
        let time = start.rem_euclid(DAY);
        let day0 = start.div_euclid(DAY);
        let (y0, m0, d0) = civil_from_days(day0);
        let mut out = Vec::new();
        let mut k: i64 = 0;
        // Candidate days in order; the loop stops when `keep` refuses or `max` is reached.
        while out.len() < max && k < 100_000 {
            let mut days: Vec<i64> = Vec::new();
            match self {
                Rule::Daily { interval } => days.push(day0 + k * interval),
                Rule::Weekly { interval, days: wd } => {
                    let monday = day0 - weekday(day0) + 7 * k * interval;
                    days.extend(wd.iter().map(|d| monday + d).filter(|d| *d >= day0));
                }
                Rule::MonthlyDay { interval, .. } => {
                    let total = i64::from(m0) - 1 + k * interval;
                    let (y, m) = (
                        y0 + total.div_euclid(12) as i32,
                        (total.rem_euclid(12) + 1) as u32,
                    );
                    days.push(days_from_civil(y, m, d0));
                }
                Rule::MonthlyLastFriday => {
                    let total = i64::from(m0) - 1 + k;
                    let (y, m) = (
                        y0 + total.div_euclid(12) as i32,
                        (total.rem_euclid(12) + 1) as u32,
                    );
                    let last = days_from_civil(y, m, days_in_month(y, m));
                    days.push(last - (weekday(last) - 4).rem_euclid(7));
                }
                Rule::Yearly => days.push(days_from_civil(y0 + k as i32, m0, d0)),
            }
            for d in days {
                let t = d * DAY + time;
                if out.len() >= max || !keep(out.len(), t) {
                    return out;
                }
                out.push(t);
            }
            k += 1;
        }
        out
    }
}

impl EventSpec {
    fn href(&self) -> String {
        format!("{}/{}.ics", self.calendar, self.uid)
    }

    /// UTC of a local time (floating and all-day: in [`FLOATING_ZONE`]).
    fn utc(&self, local: i64) -> i64 {
        if self.all_day {
            local
        } else {
            self.zone.utc(local)
        }
    }

    fn first_utc(&self) -> i64 {
        self.utc(self.start)
    }

    fn window(&self) -> (i64, i64) {
        let first = self.first_utc();
        if self.rule.is_some() {
            (first, add_months(first, 24))
        } else {
            (first, self.utc(self.start + self.duration))
        }
    }

    /// The rule's local starts inside the window (before EXDATE and moves).
    fn rule_starts(&self) -> Vec<i64> {
        let Some((rule, end)) = &self.rule else {
            return vec![self.start];
        };
        let (_, window_end) = self.window();
        let until = match end {
            End::Until(n) => {
                let all = rule.expand(self.start, n + 1, &|_, _| true);
                all.last().map(|t| t.div_euclid(DAY) * DAY + DAY - 1)
            }
            _ => None,
        };
        let count = match end {
            End::Count(n) => *n,
            _ => usize::MAX,
        };
        rule.expand(self.start, count, &|_, t| {
            self.utc(t) < window_end && until.is_none_or(|u| t <= u)
        })
    }

    fn until_text(&self) -> Option<String> {
        let Some((rule, End::Until(n))) = &self.rule else {
            return None;
        };
        let all = rule.expand(self.start, n + 1, &|_, _| true);
        let last = all.last()?.div_euclid(DAY);
        Some(if self.all_day {
            ical_date(last)
        } else if self.zone == Zone::Floating {
            ical(last * DAY + DAY - 1)
        } else {
            format!("{}Z", ical(self.zone.utc(last * DAY + DAY - 1)))
        })
    }

    fn rrule(&self) -> Option<String> {
        let (rule, end) = self.rule.as_ref()?;
        let mut r = rule.text();
        match end {
            End::Count(n) => {
                let _ = write!(r, ";COUNT={n}");
            }
            End::Until(_) => {
                let _ = write!(r, ";UNTIL={}", self.until_text().unwrap_or_default());
            }
            End::Open => {}
        }
        Some(r)
    }

    fn time_prop(&self, name: &str, local: i64) -> String {
        if self.all_day {
            format!("{name};VALUE=DATE:{}", ical_date(local.div_euclid(DAY)))
        } else {
            self.zone.prop(name, local)
        }
    }

    fn text(&self) -> String {
        let mut s = String::from(
            "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//o365-migrate//testkit pim corpus//EN\r\n",
        );
        if !self.all_day
            && let Some(tz) = self.zone.vtimezone()
        {
            s.push_str(tz);
        }
        s.push_str(&self.vevents());
        s.push_str("END:VCALENDAR\r\n");
        s
    }

    fn vevents(&self) -> String {
        let mut s = String::new();
        let starts = self.rule_starts();
        let mut lines = vec![
            "BEGIN:VEVENT".to_string(),
            format!("UID:{}", self.uid),
            format!("DTSTAMP:{}Z", ical(self.stamp)),
            self.time_prop("DTSTART", self.start),
            self.time_prop("DTEND", self.start + self.duration),
        ];
        if let Some(r) = self.rrule() {
            lines.push(format!("RRULE:{r}"));
        }
        for i in &self.exdates {
            if let Some(t) = starts.get(*i) {
                lines.push(self.time_prop("EXDATE", *t));
            }
        }
        lines.push(format!("SUMMARY:{}", escape(&self.summary)));
        lines.push(format!("DESCRIPTION:{}", escape(&self.description)));
        lines.push(format!("LOCATION:{}", escape(&self.location)));
        if self.reminder {
            lines.extend(
                [
                    "BEGIN:VALARM",
                    "ACTION:DISPLAY",
                    "DESCRIPTION:Reminder",
                    "TRIGGER:-PT15M",
                    "END:VALARM",
                ]
                .map(str::to_string),
            );
        }
        lines.push("END:VEVENT".into());
        if let Some((i, shift, subject)) = &self.moved
            && let Some(t) = starts.get(*i)
        {
            lines.extend([
                "BEGIN:VEVENT".to_string(),
                format!("UID:{}", self.uid),
                format!("DTSTAMP:{}Z", ical(self.stamp)),
                self.time_prop("RECURRENCE-ID", *t),
                self.time_prop("DTSTART", t + shift),
                self.time_prop("DTEND", t + shift + self.duration),
                format!("SUMMARY:{}", escape(subject)),
                "END:VEVENT".to_string(),
            ]);
        }
        for l in lines {
            fold(&mut s, &l);
        }
        s
    }

    fn entry(&self) -> PimManifestEntry {
        let starts = self.rule_starts();
        let (ws, we) = self.window();
        let mut occ = Vec::new();
        let mut cancelled = Vec::new();
        let mut moved = Vec::new();
        for (i, t) in starts.iter().enumerate() {
            if self.exdates.contains(&i) {
                cancelled.push(rfc3339(self.utc(*t)));
                continue;
            }
            let (start, subject) = match &self.moved {
                Some((m, shift, subject)) if *m == i => {
                    moved.push(MovedOccurrence {
                        original_start_utc: rfc3339(self.utc(*t)),
                        start_utc: rfc3339(self.utc(t + shift)),
                        subject: subject.clone(),
                    });
                    (t + shift, subject.clone())
                }
                _ => (*t, self.summary.clone()),
            };
            let (s, e) = (self.utc(start), self.utc(start + self.duration));
            if s < we && e > ws {
                occ.push((s, e, subject));
            }
        }
        occ.sort();
        PimManifestEntry {
            collection: self.calendar.clone(),
            href: self.href(),
            uid: self.uid.clone(),
            kind: PimKind::Event,
            summary: self.summary.clone(),
            emails: Vec::new(),
            photo: false,
            zone: if self.all_day {
                "floating".to_string()
            } else {
                self.zone.name().to_string()
            },
            all_day: self.all_day,
            rrule: self.rrule(),
            expressible: true,
            window: (rfc3339(ws), rfc3339(we)),
            occurrences: occ
                .into_iter()
                .map(|(s, e, subject)| ExpectedOccurrence {
                    start_utc: rfc3339(s),
                    end_utc: rfc3339(e),
                    subject,
                })
                .collect(),
            cancelled,
            moved,
        }
    }
}

/// RFC 5545/6350 TEXT escaping.
fn escape(t: &str) -> String {
    let mut s = String::with_capacity(t.len());
    for c in t.chars() {
        match c {
            '\\' => s.push_str("\\\\"),
            ';' => s.push_str("\\;"),
            ',' => s.push_str("\\,"),
            '\n' => s.push_str("\\n"),
            c => s.push(c),
        }
    }
    s
}

/// Appends `line` folded at 75 octets (never inside a UTF-8 character), CRLF-terminated.
fn fold(out: &mut String, line: &str) {
    let mut width = 0;
    for c in line.chars() {
        let n = c.len_utf8();
        if width + n > 75 {
            out.push_str("\r\n ");
            width = 1;
        }
        out.push(c);
        width += n;
    }
    out.push_str("\r\n");
}

// ----- text pools --------------------------------------------------------------------------

const SUMMARIES: &[&str] = &[
    "Jour fixe Größenplanung",
    "Übergabe an das Büro München",
    "四半期レビュー会議",
    "プロジェクト定例",
    "اجتماع الفريق الأسبوعي",
    "مراجعة الميزانية",
    "Team lunch 🍕",
    "Release party 🎉🚀",
    "Budget review, Q1; final",
    "Café-Runde mit Zoë",
    "Customer call: ACME",
    "Sprint planning",
];

const DESCRIPTIONS: &[&str] = &[
    "Agenda:\n1. Zahlen & Fakten\n2. Sonstiges",
    "議題: 予算、スケジュール",
    "جدول الأعمال: الميزانية، الجدول الزمني",
    "Bring snacks 🍪; dial-in: +1 555 0100, code 42",
    "Plain text with a backslash \\ and a comma, too",
];

const LOCATIONS: &[&str] = &[
    "Raum Süd 2.14",
    "東京本社 3F",
    "قاعة الاجتماعات",
    "Online 💻",
    "Sydney Office, Level 7",
    "",
];

const GIVEN: &[&str] = &[
    "Jürgen",
    "Zoë",
    "Ann",
    "Ömer",
    "Søren",
    "花子",
    "太郎",
    "محمد",
    "فاطمة",
    "Priya",
    "Liam",
    "Chloé",
    "José",
    "Ngọc",
];

const FAMILY: &[&str] = &[
    "Müller",
    "Schäfer",
    "Smith",
    "山田",
    "佐藤",
    "العلي",
    "Sharma",
    "O'Brien",
    "García",
    "Nguyễn",
    "Kowalski",
];

const ORGS: &[&str] = &[
    "Beispiel GmbH",
    "株式会社サンプル",
    "شركة المثال",
    "Example Corp",
    "Café Zürich AG",
];

const TITLES: &[&str] = &[
    "Leiterin Einkauf",
    "部長",
    "مدير المبيعات",
    "Engineer 🛠",
    "CEO",
];

const CITIES: &[(&str, &str, &str)] = &[
    ("Berlin", "10115", "Germany"),
    ("東京", "100-0001", "Japan"),
    ("Dubai", "00000", "United Arab Emirates"),
    ("New York", "10001", "USA"),
    ("Sydney", "2000", "Australia"),
];

// ----- the corpus --------------------------------------------------------------------------

#[derive(Debug, Clone)]
struct ContactItem {
    entry: PimManifestEntry,
    data: String,
}

/// A generated contacts and calendars corpus; see the [module docs](self).
#[derive(Debug, Clone)]
pub struct PimCorpus {
    profile: PimCorpusProfile,
    contacts: Vec<ContactItem>,
    events: Vec<EventSpec>,
    manifest: Vec<PimManifestEntry>,
    /// How many times [`PimCorpus::change`] ran.
    generation: u64,
}

fn contact(seed: u64, i: usize) -> ContactItem {
    let mut r = Rng::new(derive(seed, 1, i as u64));
    let given = *r.pick(GIVEN);
    let family = *r.pick(FAMILY);
    let uid = format!("pim-contact-{i:05}");
    let fn_ = format!("{given} {family}");
    let ascii = |s: &str| -> String {
        let a: String = s
            .chars()
            .filter(char::is_ascii_alphanumeric)
            .collect::<String>()
            .to_ascii_lowercase();
        if a.is_empty() { "x".to_string() } else { a }
    };
    let n_emails = 1 + r.below(3) as usize;
    let domains = ["example.com", "example.org", "example.net"];
    let emails: Vec<String> = (0..n_emails)
        .map(|k| format!("{}.{}{}@{}", ascii(given), ascii(family), i, domains[k]))
        .collect();
    let mut lines = vec![
        "BEGIN:VCARD".to_string(),
        "VERSION:3.0".to_string(),
        format!("UID:{uid}"),
        format!("FN:{}", escape(&fn_)),
        format!("N:{};{};;;", escape(family), escape(given)),
    ];
    for (k, e) in emails.iter().enumerate() {
        let kind = ["WORK", "HOME", "OTHER"][k];
        lines.push(format!("EMAIL;TYPE=INTERNET,{kind}:{e}"));
    }
    let n_phones = r.below(4);
    for k in 0..n_phones {
        let kind = ["CELL", "WORK", "HOME"][k as usize];
        lines.push(format!("TEL;TYPE={kind}:+49 30 {:07}", r.below(10_000_000)));
    }
    if r.chance(0.6) {
        let (city, zip, country) = *r.pick(CITIES);
        lines.push(format!(
            "ADR;TYPE=WORK:;;{} {};{};;{};{}",
            escape("Hauptstraße"),
            1 + r.below(200),
            escape(city),
            zip,
            escape(country)
        ));
    }
    if r.chance(0.7) {
        let org = *r.pick(ORGS);
        lines.push(format!("ORG:{}", escape(org)));
        let title = *r.pick(TITLES);
        lines.push(format!("TITLE:{}", escape(title)));
    }
    if r.chance(0.5) {
        lines.push(format!(
            "BDAY:{:04}-{:02}-{:02}",
            1950 + r.below(50),
            1 + r.below(12),
            1 + r.below(28)
        ));
    }
    if r.chance(0.4) {
        lines.push(format!(
            "NOTE:{}",
            escape("Notiz: trifft sich gern im Café ☕\nZweite Zeile; mit Komma, auch")
        ));
    }
    let photo = i % 10 == 3;
    if photo {
        lines.push(format!(
            "PHOTO;ENCODING=b;TYPE=PNG:{}",
            base64::engine::general_purpose::STANDARD.encode(PNG_1X1)
        ));
    }
    lines.push("END:VCARD".into());
    let mut data = String::new();
    for l in lines {
        fold(&mut data, &l);
    }
    ContactItem {
        entry: PimManifestEntry {
            collection: ADDRESS_BOOK.to_string(),
            href: format!("{ADDRESS_BOOK}/{uid}.vcf"),
            uid,
            kind: PimKind::Contact,
            summary: fn_,
            emails,
            photo,
            zone: String::new(),
            all_day: false,
            rrule: None,
            expressible: true,
            window: (String::new(), String::new()),
            occurrences: Vec::new(),
            cancelled: Vec::new(),
            moved: Vec::new(),
        },
        data,
    }
}

fn event(profile: &PimCorpusProfile, i: usize, recurring: bool, stream: u64) -> EventSpec {
    let mut r = Rng::new(derive(profile.seed, stream, i as u64));
    let (by, bm, bd) = profile.base_date;
    let base = days_from_civil(by, bm, bd);
    let calendars = if profile.calendars.is_empty() {
        vec!["calendar".to_string()]
    } else {
        profile.calendars.clone()
    };
    let calendar = calendars[i % calendars.len()].clone();
    let uid = format!("pim-event-{stream}-{i:05}");
    // Every seventh event is all-day; the others cycle through the zones.
    let all_day = i % 7 == 6;
    let zone = ZONES[i % ZONES.len()];
    let mut day = base + r.below(365) as i64;
    // Some all-day events span a daylight-saving change (EU late March / late October).
    if all_day && !recurring && i.is_multiple_of(2) {
        let (y, _, _) = civil_from_days(day);
        let change = if r.chance(0.5) {
            sunday(y, 3, 0)
        } else {
            sunday(y, 10, 0)
        };
        day = change - 1 - r.below(2) as i64;
    }
    // 07:00 to 16:45: with a move (up to 3 h), a change (1 h each) and 2 h of duration an
    // occurrence stays clear of midnight and of the 02:00-03:00 transitions.
    let hour = 7 + r.below(10) as i64;
    let minute = [0, 15, 30, 45][r.below(4) as usize];
    let (start, duration) = if all_day {
        (day * DAY, (1 + r.below(3) as i64) * DAY)
    } else {
        (
            day * DAY + hour * 3600 + minute * 60,
            [30, 45, 60, 90, 120][r.below(5) as usize] * 60,
        )
    };
    let summary = r.pick(SUMMARIES).to_string();
    let mut spec = EventSpec {
        uid,
        calendar,
        zone,
        all_day,
        start,
        duration,
        summary: format!("{summary} #{i}"),
        description: r.pick(DESCRIPTIONS).to_string(),
        location: r.pick(LOCATIONS).to_string(),
        rule: None,
        exdates: Vec::new(),
        moved: None,
        stamp: base * DAY,
        reminder: r.chance(0.5),
    };
    if recurring {
        let kind = r.below(5);
        let rule = match kind {
            0 => Rule::Daily {
                interval: 1 + r.below(3) as i64,
            },
            1 => {
                let first = weekday(day);
                let mut days = vec![first];
                for _ in 0..r.below(3) {
                    let d = r.below(7) as i64;
                    if !days.contains(&d) {
                        days.push(d);
                    }
                }
                days.sort_unstable();
                Rule::Weekly {
                    interval: 1 + r.below(2) as i64,
                    days,
                }
            }
            2 => {
                // Day of month up to 28, so every month has it.
                let (y, m, d) = civil_from_days(day);
                day = days_from_civil(y, m, d.min(28));
                Rule::MonthlyDay {
                    interval: 1 + r.below(2) as i64,
                    day: d.min(28),
                }
            }
            3 => {
                let (y, m, _) = civil_from_days(day);
                let last = days_from_civil(y, m, days_in_month(y, m));
                day = last - (weekday(last) - 4).rem_euclid(7);
                Rule::MonthlyLastFriday
            }
            _ => {
                let (y, m, d) = civil_from_days(day);
                day = days_from_civil(y, m, d.min(28));
                Rule::Yearly
            }
        };
        spec.start = day * DAY + spec.start.rem_euclid(DAY);
        let end = match r.below(3) {
            0 => End::Count(if matches!(rule, Rule::Yearly) {
                3 + r.below(3) as usize
            } else {
                6 + r.below(20) as usize
            }),
            1 => End::Until(if matches!(rule, Rule::Yearly) {
                2 + r.below(2) as usize
            } else {
                5 + r.below(15) as usize
            }),
            _ => End::Open,
        };
        spec.rule = Some((rule, end));
        let n = spec.rule_starts().len();
        // At least one exception: a cancelled occurrence, a moved one (timed only), or both.
        let what = if all_day { 0 } else { r.below(3) };
        let pick = |r: &mut Rng, avoid: &[usize]| -> Option<usize> {
            (0..8)
                .map(|_| 1 + r.below((n.max(2) - 1) as u64) as usize)
                .find(|k| *k < n && !avoid.contains(k))
        };
        if what != 1
            && let Some(k) = pick(&mut r, &[])
        {
            spec.exdates.push(k);
        }
        if what != 0
            && let Some(k) = pick(&mut r, &spec.exdates.clone())
        {
            let shift = (1 + r.below(3) as i64) * 3600;
            spec.moved = Some((k, shift, format!("{} (verschoben)", spec.summary)));
        }
    }
    spec
}

impl PimCorpus {
    /// Generates the corpus of `profile` (deterministic: the same profile gives the same
    /// bytes). Events `0..recurring` are the series.
    pub fn generate(profile: &PimCorpusProfile) -> PimCorpus {
        let contacts = (0..profile.contacts)
            .map(|i| contact(profile.seed, i))
            .collect();
        let recurring = profile.recurring.min(profile.events);
        let events = (0..profile.events)
            .map(|i| event(profile, i, i < recurring, 2))
            .collect();
        let mut c = PimCorpus {
            profile: profile.clone(),
            contacts,
            events,
            manifest: Vec::new(),
            generation: 0,
        };
        c.rebuild_manifest();
        c
    }

    fn rebuild_manifest(&mut self) {
        self.manifest = self
            .contacts
            .iter()
            .map(|c| c.entry.clone())
            .chain(self.events.iter().map(EventSpec::entry))
            .collect();
    }

    /// The profile it was generated from.
    pub fn profile(&self) -> &PimCorpusProfile {
        &self.profile
    }

    /// Every item's expectations: contacts first, then events, in generation order.
    pub fn manifest(&self) -> &[PimManifestEntry] {
        &self.manifest
    }

    /// Every item with its data (vCard or iCalendar text), in [`manifest`](Self::manifest)
    /// order.
    pub fn items(&self) -> impl Iterator<Item = (&PimManifestEntry, String)> + '_ {
        let data = self
            .contacts
            .iter()
            .map(|c| c.data.clone())
            .chain(self.events.iter().map(EventSpec::text));
        self.manifest.iter().zip(data)
    }

    /// Creates the address book [`ADDRESS_BOOK`] and the profile's calendars under
    /// `/<user>/` and PUTs every item (one resource per contact and per event series).
    pub fn load(&self, radicale: &Radicale, user: &str) -> Result<()> {
        radicale.create_address_book(user, ADDRESS_BOOK, "Contacts")?;
        for cal in self.calendar_names() {
            radicale.create_calendar(user, &cal, &cal, &["VEVENT"])?;
        }
        for (entry, data) in self.items() {
            radicale.put(user, &entry.href, &data)?;
        }
        Ok(())
    }

    fn calendar_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.events.iter().map(|e| e.calendar.clone()).collect();
        names.extend(self.profile.calendars.iter().cloned());
        names.sort();
        names.dedup();
        names
    }

    /// Changes `changed` existing events (a new SUMMARY, one hour later unless all-day, a new
    /// DTSTAMP) and
    /// adds `new` events (every third a series), deterministically; the manifest follows.
    /// Asking for more changes than there are events changes them all.
    pub fn change(&mut self, changed: usize, new: usize) -> PimChangeSet {
        self.generation += 1;
        let g = self.generation;
        let mut r = Rng::new(derive(self.profile.seed, 100 + g, 0));
        let n = self.events.len();
        let mut picked: Vec<usize> = Vec::new();
        // A deterministic sample without repeats: a stride through the events.
        if n > 0 {
            let mut k = r.below(n as u64) as usize;
            let stride = (1..n).rev().find(|s| gcd(*s, n) == 1).unwrap_or(1);
            while picked.len() < changed.min(n) {
                picked.push(k);
                k = (k + stride) % n;
            }
        }
        let mut items = Vec::new();
        for &i in &picked {
            let e = &mut self.events[i];
            e.summary = format!("{} (geändert {g})", e.summary);
            if !e.all_day {
                e.start += 3600;
            }
            e.stamp += g as i64 * DAY;
            if let Some((_, _, s)) = &mut e.moved {
                *s = format!("{s} (geändert {g})");
            }
            items.push((e.href(), e.text(), false));
        }
        let first = self.events.len();
        for j in 0..new {
            let mut e = event(&self.profile, first + j, j % 3 == 0, 100 + g);
            e.stamp += g as i64 * DAY;
            items.push((e.href(), e.text(), true));
            self.events.push(e);
        }
        self.rebuild_manifest();
        PimChangeSet { items }
    }

    /// Writes the corpus as one file per collection into `dir`: `contacts.vcf` (every
    /// vCard) and `<calendar>.ics` (one VCALENDAR with the zones it uses and every event).
    pub fn write_files(&self, dir: &Path) -> Result<()> {
        let io = |what: String| move |e| Error::io(what, e);
        std::fs::create_dir_all(dir).map_err(io(format!("creating {}", dir.display())))?;
        let vcf: String = self.contacts.iter().map(|c| c.data.as_str()).collect();
        let path = dir.join(format!("{ADDRESS_BOOK}.vcf"));
        std::fs::write(&path, vcf).map_err(io(format!("writing {}", path.display())))?;
        let mut by_cal: BTreeMap<String, Vec<&EventSpec>> = BTreeMap::new();
        for e in &self.events {
            by_cal.entry(e.calendar.clone()).or_default().push(e);
        }
        for (cal, events) in by_cal {
            let mut s = String::from(
                "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//o365-migrate//testkit pim corpus//EN\r\n",
            );
            for z in ZONES {
                if events.iter().any(|e| !e.all_day && e.zone == z)
                    && let Some(tz) = z.vtimezone()
                {
                    s.push_str(tz);
                }
            }
            for e in events {
                s.push_str(&e.vevents());
            }
            s.push_str("END:VCALENDAR\r\n");
            let path = dir.join(format!("{cal}.ics"));
            std::fs::write(&path, s).map_err(io(format!("writing {}", path.display())))?;
        }
        Ok(())
    }
}

fn gcd(a: usize, b: usize) -> usize {
    if b == 0 { a } else { gcd(b, a % b) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(civil_from_days(days_from_civil(2027, 1, 4)), (2027, 1, 4));
        assert_eq!(weekday(days_from_civil(2027, 1, 4)), 0); // a Monday
        assert_eq!(civil_from_days(sunday(2027, 3, 0)), (2027, 3, 28));
        assert_eq!(civil_from_days(sunday(2027, 10, 0)), (2027, 10, 31));
        assert_eq!(civil_from_days(sunday(2027, 3, 2)), (2027, 3, 14));
        assert_eq!(civil_from_days(sunday(2027, 11, 1)), (2027, 11, 7));
        assert_eq!(civil_from_days(sunday(2027, 4, 1)), (2027, 4, 4));
        assert_eq!(days_in_month(2028, 2), 29);
        let t = days_from_civil(2027, 3, 31) * DAY + 3600;
        assert_eq!(rfc3339(add_months(t, 24)), "2029-03-31T01:00:00Z");
        assert_eq!(
            rfc3339(add_months(days_from_civil(2027, 1, 31) * DAY, 1)),
            "2027-02-28T00:00:00Z"
        );
        let berlin = days_from_civil(2027, 7, 1) * DAY + 10 * 3600;
        assert_eq!(rfc3339(Zone::Berlin.utc(berlin)), "2027-07-01T08:00:00Z");
        let sydney = days_from_civil(2027, 1, 10) * DAY + 9 * 3600;
        assert_eq!(rfc3339(Zone::Sydney.utc(sydney)), "2027-01-09T22:00:00Z");
        let mut s = String::new();
        fold(&mut s, &"ü".repeat(60));
        assert!(s.split("\r\n").all(|l| l.len() <= 75));
    }

    #[test]
    fn weekly_rule_expands_from_start() {
        // Wednesday 6 January 2027, weekly on MO,WE,FR every 2 weeks: the Monday before the
        // start is not an occurrence.
        let start = days_from_civil(2027, 1, 6) * DAY + 10 * 3600;
        let rule = Rule::Weekly {
            interval: 2,
            days: vec![0, 2, 4],
        };
        let got: Vec<String> = rule
            .expand(start, 4, &|_, _| true)
            .into_iter()
            .map(rfc3339)
            .collect();
        assert_eq!(
            got,
            [
                "2027-01-06T10:00:00Z",
                "2027-01-08T10:00:00Z",
                "2027-01-18T10:00:00Z",
                "2027-01-20T10:00:00Z"
            ]
        );
        let last_friday =
            Rule::MonthlyLastFriday.expand(days_from_civil(2027, 1, 29) * DAY, 3, &|_, _| true);
        assert_eq!(
            last_friday.iter().map(|t| rfc3339(*t)).collect::<Vec<_>>(),
            [
                "2027-01-29T00:00:00Z",
                "2027-02-26T00:00:00Z",
                "2027-03-26T00:00:00Z"
            ]
        );
    }

    #[test]
    fn deterministic_and_counts() {
        let p = PimCorpusProfile::small();
        let a = PimCorpus::generate(&p);
        let b = PimCorpus::generate(&p);
        let da: Vec<String> = a.items().map(|(_, d)| d).collect();
        let db: Vec<String> = b.items().map(|(_, d)| d).collect();
        assert_eq!(da, db);
        assert_eq!(a.manifest(), b.manifest());
        let other = PimCorpus::generate(&PimCorpusProfile {
            seed: 19,
            ..p.clone()
        });
        assert_ne!(da, other.items().map(|(_, d)| d).collect::<Vec<_>>());
        for p in [PimCorpusProfile::small(), PimCorpusProfile::issue18()] {
            let c = PimCorpus::generate(&p);
            let m = c.manifest();
            let count = |k: PimKind| m.iter().filter(|e| e.kind == k).count();
            assert_eq!(count(PimKind::Contact), p.contacts);
            assert_eq!(count(PimKind::Event), p.events);
            let series: Vec<_> = m.iter().filter(|e| e.rrule.is_some()).collect();
            assert_eq!(series.len(), p.recurring);
            assert!(
                series
                    .iter()
                    .all(|e| !e.cancelled.is_empty() || !e.moved.is_empty()),
                "every series has an exception"
            );
            let hrefs: std::collections::BTreeSet<_> = m.iter().map(|e| &e.href).collect();
            assert_eq!(hrefs.len(), m.len(), "hrefs are unique");
            for cal in &p.calendars {
                assert!(m.iter().any(|e| &e.collection == cal));
            }
            for z in ZONES {
                assert!(m.iter().any(|e| e.zone == z.name()), "{z:?}");
            }
            assert!(m.iter().any(|e| e.all_day && e.rrule.is_some()));
            assert!(m.iter().any(|e| e.photo));
            for (e, data) in c.items() {
                assert!(data.split("\r\n").all(|l| l.len() <= 75), "{}", e.href);
                assert!(
                    !data.contains('\n')
                        || data.matches('\n').count() == data.matches("\r\n").count()
                );
            }
        }
    }

    /// Issue 18's corpus holds every kind of rule and end the issue asks for.
    #[test]
    fn issue18_covers_the_rule_kinds() {
        let c = PimCorpus::generate(&PimCorpusProfile::issue18());
        let rules: Vec<&str> = c
            .manifest()
            .iter()
            .filter_map(|e| e.rrule.as_deref())
            .collect();
        let has = |f: &dyn Fn(&str) -> bool| rules.iter().any(|r| f(r));
        for freq in ["DAILY", "WEEKLY", "MONTHLY", "YEARLY"] {
            let f = format!("FREQ={freq}");
            assert!(
                has(&|r| r.contains(&f) && r.contains("COUNT=")),
                "{freq} COUNT"
            );
            assert!(
                has(&|r| r.contains(&f) && r.contains("UNTIL=")),
                "{freq} UNTIL"
            );
            assert!(
                has(&|r| r.contains(&f) && !r.contains("COUNT=") && !r.contains("UNTIL=")),
                "{freq} open-ended"
            );
        }
        assert!(has(&|r| r.contains("BYMONTHDAY=")));
        assert!(has(&|r| r.contains("BYDAY=-1FR")));
        assert!(has(&|r| r.contains("WEEKLY;INTERVAL=2") && r.contains(',')));
        let m = c.manifest();
        assert!(
            m.iter()
                .any(|e| !e.moved.is_empty() && !e.cancelled.is_empty())
        );
        assert!(m.iter().any(|e| e.all_day && !e.cancelled.is_empty()));
        for (e, data) in c.items() {
            if e.zone == "Australia/Sydney" {
                assert!(data.contains("BEGIN:VTIMEZONE\r\nTZID:Australia/Sydney"));
            }
        }
        let text: String = c.items().map(|(_, d)| d).collect();
        for needle in [
            "ö",
            "会議",
            "اجتماع",
            "🎉",
            "PHOTO;ENCODING=b;TYPE=PNG:",
            "BDAY:",
            "NOTE:",
            "ADR;",
        ] {
            assert!(text.contains(needle), "{needle}");
        }
    }

    /// The small corpus's bytes, pinned: any change to the generator's output shows here
    /// (update the digest only for an intended change, and say so in the commit).
    #[test]
    fn small_corpus_bytes_are_pinned() {
        use sha2::{Digest, Sha256};
        let c = PimCorpus::generate(&PimCorpusProfile::small());
        let mut h = Sha256::new();
        for (e, d) in c.items() {
            h.update(e.href.as_bytes());
            h.update(d.as_bytes());
        }
        let hex: String = h.finalize().iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex, PINNED);
    }

    const PINNED: &str = "d4592996ead22dbb36fecbe8cc6ae4064d9ba756041bd3afad3cffb8a38e2771";

    #[test]
    fn change_counts() {
        let mut c = PimCorpus::generate(&PimCorpusProfile::small());
        let before = c.manifest().to_vec();
        let set = c.change(7, 3);
        assert_eq!((set.changed(), set.added()), (7, 3));
        let after = c.manifest();
        assert_eq!(after.len(), before.len() + 3);
        let differ = before.iter().zip(after).filter(|(a, b)| a != b).count();
        assert_eq!(differ, 7);
        let mut again = PimCorpus::generate(&PimCorpusProfile::small());
        assert_eq!(again.change(7, 3), set, "deterministic");
        assert_eq!(c.change(1000, 0).changed(), 43);
    }
}
