//! Proof that a migrated item arrived: a source event's occurrences (expanded from its own
//! iCalendar by calcard's `expand_dates`: RRULE, RDATE, EXDATE, RECURRENCE-ID overrides) and
//! the comparison of a source contact or event with what the target stored (Graph GET JSON and
//! a series' `instances`). Pure code: no I/O, no clock.

use calcard::Entry;
use calcard::common::timezone::Tz;
use calcard::icalendar::dates::TimeOrDelta;
use calcard::icalendar::{
    ICalendar, ICalendarComponentType, ICalendarParameterName, ICalendarProperty, ICalendarStatus,
    ICalendarValue,
};
use chrono::{DateTime, Months, NaiveDate, NaiveDateTime, TimeZone, Utc};
use serde_json::Value;

use crate::{Contact, Event, tz};

/// Most occurrences [`Event::occurrences`] expands of one series (a bound for open-ended
/// rules; daily for two years is 731).
const EXPAND_LIMIT: usize = 50_000;

/// An occurrence as the target holds it (what the writer reads back from Graph's `instances`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetInstance {
    /// Start instant, UTC (RFC 3339, or Graph's `dateTime` read in UTC without an offset).
    pub start_utc: String,
    /// End instant, UTC, in the same forms.
    pub end_utc: String,
    /// Graph's `originalStart` of the instance, when it has one.
    pub original_start_utc: Option<String>,
    /// The instance's Graph JSON (its `subject` is compared for overrides).
    pub json: String,
}

/// One occurrence of a source event, expanded from its iCalendar.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceOccurrence {
    /// Start instant, UTC, RFC 3339 (`2027-01-04T09:00:00Z`).
    pub start_utc: String,
    /// End instant, UTC, RFC 3339.
    pub end_utc: String,
    /// The occurrence's subject: an override's own, else the series'.
    pub subject: String,
}

/// An occurrence with what [`compare_event`] needs besides.
#[derive(Debug, Clone)]
struct Occ {
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    /// The start the rule gave it (an override's RECURRENCE-ID).
    original: DateTime<Utc>,
    subject: String,
    overridden: bool,
    /// Local start and end dates in the event's zone (what an all-day occurrence is).
    days: (NaiveDate, NaiveDate),
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// Reads `2027-01-04T09:00:00Z`, `...+01:00`, or an offset-less `dateTime` (with or without
/// Graph's seven fractional digits) taken as UTC.
fn parse_utc(s: &str) -> Option<DateTime<Utc>> {
    let s = s.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&Utc));
    }
    parse_naive(s.trim_end_matches('Z')).map(|n| Utc.from_utc_datetime(&n))
}

fn parse_naive(s: &str) -> Option<NaiveDateTime> {
    let s = s.trim();
    NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f")
        .or_else(|_| NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M"))
        .ok()
        .or_else(|| {
            NaiveDate::parse_from_str(s, "%Y-%m-%d")
                .ok()
                .and_then(|d| d.and_hms_opt(0, 0, 0))
        })
}

/// A zone name as Graph writes it (Windows, `UTC`, or an IANA name) as a chrono zone.
fn zone(name: &str) -> Option<chrono_tz::Tz> {
    let name = name.trim();
    tz::windows_name(name)
        .and_then(tz::iana_of_windows)
        .or_else(|| name.parse().ok())
}

/// Graph `dateTimeTimeZone` JSON -> instant (the earlier one for an ambiguous local time).
fn graph_instant(v: &Value) -> Option<DateTime<Utc>> {
    let local = parse_naive(v.get("dateTime")?.as_str()?)?;
    let z = zone(v.get("timeZone").and_then(Value::as_str).unwrap_or("UTC"))?;
    Some(
        z.from_local_datetime(&local)
            .earliest()?
            .with_timezone(&Utc),
    )
}

fn graph_local(v: &Value) -> String {
    format!(
        "{} ({})",
        v.get("dateTime").and_then(Value::as_str).unwrap_or("none"),
        v.get("timeZone")
            .and_then(Value::as_str)
            .unwrap_or("no zone")
    )
}

impl Event {
    /// The series' first start (DTSTART as an instant), its occurrences expanded from the
    /// source iCalendar (all of them, up to a bound), and whether it is a series.
    ///
    /// `cap` gives, from the first start, the instant after which no occurrence is needed
    /// (an open-ended or later-ending rule is cut a day after it, so an open-ended daily rule
    /// is not expanded to the bound).
    fn expand(
        &self,
        cap: impl Fn(Option<DateTime<Utc>>) -> Option<DateTime<Utc>>,
    ) -> (Option<DateTime<Utc>>, Vec<Occ>, bool) {
        let Entry::ICalendar(mut cal) = calcard::Parser::new(&self.source.text).entry() else {
            return (None, Vec::new(), false);
        };
        // calcard matches an override to its occurrence by (SEQUENCE, RECURRENCE-ID); a
        // client that bumps SEQUENCE on the master only would lose its overrides.
        for c in &mut cal.components {
            c.entries.retain(|e| e.name != ICalendarProperty::Sequence);
        }
        // A zone of the input's own (no IANA or Windows name): calcard knows zones by name
        // only (and guesses "(GMT-05.00) ..." as a fixed offset), so its times are read as
        // floating and placed with the VTIMEZONE's own offsets.
        let custom = self.source.custom_zone.as_ref();
        if let Some(z) = custom {
            for c in &mut cal.components {
                if c.component_type == ICalendarComponentType::VTimezone {
                    continue;
                }
                for e in &mut c.entries {
                    e.params.retain(|p| {
                        !(p.name == ICalendarParameterName::Tzid
                            && p.value.as_text() == Some(z.id.as_str()))
                    });
                }
            }
        }
        let place = |t: &DateTime<Tz>| match custom {
            Some(z) if t.timezone().is_floating() => {
                let local = t.naive_local();
                let off = tz::offset_on(z.standard, z.daylight, &z.rules, local.date());
                Utc.from_utc_datetime(
                    &local
                        .checked_sub_signed(chrono::Duration::seconds(i64::from(off)))
                        .unwrap_or(local),
                )
            }
            _ => t.with_timezone(&Utc),
        };
        let events: Vec<usize> = (0..cal.components.len())
            .filter(|&i| cal.components[i].component_type == ICalendarComponentType::VEvent)
            .collect();
        let master = events
            .iter()
            .copied()
            .find(|&i| {
                !cal.components[i]
                    .entries
                    .iter()
                    .any(|e| e.name == ICalendarProperty::RecurrenceId)
            })
            .or(events.first().copied());
        let Some(master) = master else {
            return (None, Vec::new(), false);
        };
        let dtstart = cal.components[master]
            .entries
            .iter()
            .find(|e| e.name == ICalendarProperty::Dtstart);
        let start_is_utc = dtstart
            .and_then(|e| match e.values.first() {
                Some(ICalendarValue::PartialDateTime(p)) => Some(p.tz_hour.is_some()),
                _ => None,
            })
            .unwrap_or(false);
        // calcard reads a UTC DTSTART's rule dates in the default zone: give it UTC then.
        let default: Tz = if custom.is_some() {
            Tz::Floating
        } else if start_is_utc {
            Tz::UTC
        } else {
            zone(&self.source.floating_zone).map_or(Tz::UTC, Tz::from)
        };
        let series = cal.components[master]
            .entries
            .iter()
            .any(|e| matches!(e.name, ICalendarProperty::Rrule | ICalendarProperty::Rdate));
        let first = {
            let resolver = cal.build_tz_resolver().with_default(default);
            dtstart.and_then(|e| match e.values.first() {
                Some(ICalendarValue::PartialDateTime(p)) => p
                    .to_date_time_with_tz(resolver.resolve_or_default(e.tz_id()))
                    .map(|t| place(&t)),
                _ => None,
            })
        };
        let cap = cap(first).map(|c| c.checked_add_signed(chrono::Duration::days(1)).unwrap_or(c));
        localise_until(&mut cal, master, default, custom, cap);
        let resolver = cal.build_tz_resolver().with_default(default);
        let master_subject = self
            .graph
            .get("subject")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let occs = expand_cal(&cal, default, &resolver, &master_subject, &place);
        (first, occs, series)
    }

    /// The window (UTC, RFC 3339 start and end) verify reads instances in: from the series'
    /// first start to two years later (for a single event: its start and end).
    pub fn verify_window(&self) -> (String, String) {
        let (first, occs, series) = self.expand(|first| first);
        let start = first
            .or_else(|| occs.first().map(|o| o.start))
            .or_else(|| self.graph.get("start").and_then(graph_instant))
            .unwrap_or_default();
        let end = if series {
            start.checked_add_months(Months::new(24)).unwrap_or(start)
        } else {
            occs.first()
                .map(|o| o.end)
                .or_else(|| self.graph.get("end").and_then(graph_instant))
                .unwrap_or(start)
        };
        (rfc3339(start), rfc3339(end))
    }

    fn occurrences_in(&self, window: (&str, &str)) -> Vec<Occ> {
        let (Some(from), Some(to)) = (parse_utc(window.0), parse_utc(window.1)) else {
            return Vec::new();
        };
        let (_, occs, _) = self.expand(|_| Some(to));
        occs.into_iter()
            .filter(|o| {
                // Graph's instances: those overlapping the window (a zero-length one: starting
                // in it).
                o.start < to && (o.end > from || (o.end == o.start && o.start >= from))
            })
            .collect()
    }

    /// The source's occurrences in `window` (UTC RFC 3339), expanded from the iCalendar
    /// itself (not from the Graph JSON), sorted by start: start/end instants plus the subject
    /// of each (an override's own). An occurrence is in the window when it overlaps it, as
    /// Graph's `instances` reads them; an unreadable window gives none.
    pub fn occurrences(&self, window: (&str, &str)) -> Vec<SourceOccurrence> {
        self.occurrences_in(window)
            .into_iter()
            .map(|o| SourceOccurrence {
                start_utc: rfc3339(o.start),
                end_utc: rfc3339(o.end),
                subject: o.subject,
            })
            .collect()
    }
}

/// calcard compares a UTC `UNTIL` with the rule's local times as if they were UTC (it
/// iterates in floating time), dropping a last occurrence whose local time is later in the day
/// than UNTIL's UTC time (east of UTC). RFC 5545 §3.3.10: UNTIL is an instant, inclusive. So
/// a UTC UNTIL is rewritten as the local time in the start's zone before expanding. A rule
/// without COUNT whose end is later than `cap` (or that has none) is cut at `cap`.
fn localise_until(
    cal: &mut ICalendar,
    master: usize,
    default: Tz,
    custom: Option<&crate::event::CustomZone>,
    cap: Option<DateTime<Utc>>,
) {
    let start_tz = {
        let resolver = cal.build_tz_resolver().with_default(default);
        cal.components[master]
            .entries
            .iter()
            .find(|e| e.name == ICalendarProperty::Dtstart)
            .map(|e| resolver.resolve_or_default(e.tz_id()))
    };
    let Some(start_tz) = start_tz else {
        return;
    };
    let cal_is_all_day = cal.components[master].entries.iter().any(|e| {
        e.name == ICalendarProperty::Dtstart
            && matches!(e.values.first(), Some(ICalendarValue::PartialDateTime(p)) if p.hour.is_none())
    });
    for e in &mut cal.components[master].entries {
        if e.name != ICalendarProperty::Rrule {
            continue;
        }
        for v in &mut e.values {
            let ICalendarValue::RecurrenceRule(rule) = v else {
                continue;
            };
            let to_local = |utc: DateTime<Utc>| match (custom, start_tz.is_floating()) {
                (Some(z), true) => {
                    let off = tz::offset_on(z.standard, z.daylight, &z.rules, utc.date_naive());
                    utc.naive_utc()
                        .checked_add_signed(chrono::Duration::seconds(i64::from(off)))
                }
                (None, true) => None,
                _ => Some(utc.with_timezone(&start_tz).naive_local()),
            };
            let partial = |local: NaiveDateTime| {
                use chrono::{Datelike, Timelike};
                calcard::common::PartialDateTime {
                    year: u16::try_from(local.year()).ok(),
                    month: u8::try_from(local.month()).ok(),
                    day: u8::try_from(local.day()).ok(),
                    hour: u8::try_from(local.hour()).ok(),
                    minute: u8::try_from(local.minute()).ok(),
                    second: u8::try_from(local.second()).ok(),
                    tz_hour: None,
                    tz_minute: None,
                    tz_minus: false,
                }
            };
            if let Some(until) = rule.until.as_mut()
                && until.tz_hour.is_some()
                && until.hour.is_some()
                && let Some(utc) = until
                    .to_date_time()
                    .and_then(|d| d.to_date_time_with_tz(Tz::UTC))
                && let Some(local) = to_local(utc.with_timezone(&Utc))
            {
                *until = partial(local);
            }
            let Some(cap_local) = cap.and_then(to_local) else {
                continue;
            };
            let later = match rule.until.as_ref().and_then(|u| u.to_date_time()) {
                Some(u) => u.date_time > cap_local,
                None => true,
            };
            if rule.count.is_none() && later {
                // A DATE until stays a DATE (an all-day rule's UNTIL must be one).
                let date_only =
                    rule.until.as_ref().is_some_and(|u| u.hour.is_none()) || cal_is_all_day;
                let mut p = partial(cap_local);
                if date_only {
                    (p.hour, p.minute, p.second) = (None, None, None);
                }
                rule.until = Some(p);
            }
        }
    }
}

fn expand_cal(
    cal: &ICalendar,
    default: Tz,
    resolver: &calcard::icalendar::timezone::TzResolver<&str>,
    master_subject: &str,
    place: &dyn Fn(&DateTime<Tz>) -> DateTime<Utc>,
) -> Vec<Occ> {
    let expanded = cal.expand_dates(default, EXPAND_LIMIT);
    let mut out = Vec::new();
    for ev in expanded.events {
        let Some(comp) = cal.components.get(ev.comp_id as usize) else {
            continue;
        };
        let rid = comp
            .entries
            .iter()
            .find(|e| e.name == ICalendarProperty::RecurrenceId);
        let overridden = rid.is_some();
        if overridden && matches!(comp.status(), Some(ICalendarStatus::Cancelled)) {
            continue; // a cancelled occurrence, as EXDATE
        }
        let start = place(&ev.start);
        // The end as Graph keeps it: a local wall time in the event's zone, so a nominal
        // duration (an all-day event across a DST change still ends at midnight).
        let (end, end_day) = match ev.end {
            TimeOrDelta::Time(t) => (place(&t), t.naive_local().date()),
            TimeOrDelta::Delta(d) => {
                let naive = ev.start.naive_local();
                let local = naive.checked_add_signed(d).unwrap_or(naive);
                (
                    ev.start
                        .timezone()
                        .from_local_datetime(&local)
                        .earliest()
                        .map_or(start.checked_add_signed(d).unwrap_or(start), |t| place(&t)),
                    local.date(),
                )
            }
        };
        let original = rid
            .and_then(|e| match e.values.first() {
                Some(ICalendarValue::PartialDateTime(p)) => p
                    .to_date_time_with_tz(resolver.resolve_or_default(e.tz_id()))
                    .map(|t| place(&t)),
                _ => None,
            })
            .unwrap_or(start);
        let subject = if overridden {
            comp.entries
                .iter()
                .find(|e| e.name == ICalendarProperty::Summary)
                .and_then(|e| e.values.first())
                .and_then(|v| v.as_text())
                .map_or_else(|| master_subject.to_string(), str::to_string)
        } else {
            master_subject.to_string()
        };
        out.push(Occ {
            start,
            end,
            original,
            subject,
            overridden,
            days: (ev.start.naive_local().date(), end_day),
        });
    }
    out.sort_by_key(|o| (o.start, o.end));
    out
}

fn s<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or("")
}

/// Line endings and surrounding blanks normalised.
fn norm(t: &str) -> String {
    t.replace("\r\n", "\n").trim().to_string()
}

/// The text of a Graph `itemBody`: an HTML body's tags dropped and entities decoded, blanks
/// collapsed.
fn body_text(b: Option<&Value>) -> String {
    let Some(b) = b else {
        return String::new();
    };
    let content = s(b, "content");
    let text = if s(b, "contentType").eq_ignore_ascii_case("html") {
        let mut out = String::new();
        let mut in_tag = false;
        let lower = content.to_ascii_lowercase();
        let body_at = lower.find("<body").unwrap_or(0);
        for c in content[body_at..].chars() {
            match c {
                '<' => in_tag = true,
                '>' if in_tag => {
                    in_tag = false;
                    out.push(' ');
                }
                _ if !in_tag => out.push(c),
                _ => {}
            }
        }
        out.replace("&nbsp;", " ")
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&quot;", "\"")
            .replace("&#39;", "'")
            .replace("&amp;", "&")
    } else {
        content.to_string()
    };
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn differ(out: &mut Vec<String>, what: &str, source: &str, target: &str) {
    if source != target {
        out.push(format!("{what}: source {source:?}, target {target:?}"));
    }
}

fn sorted_strings(v: Option<&Value>) -> Vec<String> {
    let mut l: Vec<String> = v
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    l.sort();
    l
}

fn parse_target(what: &str, json: &str) -> Result<Value, String> {
    serde_json::from_str::<Value>(json)
        .map_err(|e| format!("target {what} JSON is not readable ({e})"))
}

/// Differences between a source contact and the target's stored JSON (Graph `contact` as GET
/// returns it) and photo size; empty = same. Each difference a sentence naming the property
/// and both values.
///
/// Every field the source's create body sets is compared: text after line-ending
/// normalisation, e-mail addresses case-insensitively in order, categories as a set, the
/// birthday by its date, addresses field by field. Fields the source does not set are not
/// looked at (GET returns many of Graph's own). The photo is compared by presence: a
/// source photo needs a target photo of at least one byte and none the other way; Exchange
/// may store a photo re-encoded, so its size is not required to be the source's.
pub fn compare_contact(
    source: &Contact,
    target_json: &str,
    target_photo_len: Option<u64>,
) -> Vec<String> {
    let target = match parse_target("contact", target_json) {
        Ok(t) => t,
        Err(e) => return vec![e],
    };
    let mut out = Vec::new();
    let empty = Value::Null;
    let Some(src) = source.graph.as_object() else {
        return out;
    };
    for (key, sv) in src {
        let tv = target.get(key).unwrap_or(&empty);
        match key.as_str() {
            "singleValueExtendedProperties" => {}
            "emailAddresses" => {
                let addrs = |v: &Value| -> Vec<String> {
                    v.as_array()
                        .map(|a| {
                            a.iter()
                                .map(|e| s(e, "address").trim().to_ascii_lowercase())
                                .filter(|a| !a.is_empty())
                                .collect()
                        })
                        .unwrap_or_default()
                };
                differ(
                    &mut out,
                    "emailAddresses",
                    &addrs(sv).join(", "),
                    &addrs(tv).join(", "),
                );
            }
            "categories" => differ(
                &mut out,
                "categories",
                &sorted_strings(Some(sv)).join(", "),
                &sorted_strings(Some(tv)).join(", "),
            ),
            "birthday" => {
                let date = |v: &Value| {
                    v.as_str()
                        .unwrap_or("")
                        .chars()
                        .take(10)
                        .collect::<String>()
                };
                differ(&mut out, "birthday", &date(sv), &date(tv));
            }
            _ => match sv {
                Value::Object(fields) => {
                    for (f, fv) in fields {
                        differ(
                            &mut out,
                            &format!("{key}.{f}"),
                            &norm(fv.as_str().unwrap_or("")),
                            &norm(tv.get(f).and_then(Value::as_str).unwrap_or("")),
                        );
                    }
                }
                Value::Array(items) => {
                    let list = |a: &[Value]| {
                        a.iter()
                            .map(|v| norm(v.as_str().unwrap_or("")))
                            .collect::<Vec<_>>()
                            .join(", ")
                    };
                    let t = tv.as_array().map(|a| list(a)).unwrap_or_default();
                    differ(&mut out, key, &list(items), &t);
                }
                _ => differ(
                    &mut out,
                    key,
                    &norm(sv.as_str().unwrap_or("")),
                    &norm(tv.as_str().unwrap_or("")),
                ),
            },
        }
    }
    match (&source.photo, target_photo_len) {
        (Some(p), None | Some(0)) => out.push(format!(
            "photo: source has one ({} bytes, {}), target has none",
            p.bytes.len(),
            p.content_type
        )),
        (None, Some(n)) if n > 0 => out.push(format!(
            "photo: source has none, target has one ({n} bytes)"
        )),
        _ => {}
    }
    out
}

/// Compares the recurrence pattern and range the source writes with the target's.
fn compare_recurrence(out: &mut Vec<String>, src: Option<&Value>, tgt: Option<&Value>) {
    let tgt = tgt.filter(|v| !v.is_null());
    match (src, tgt) {
        (None, None) => {}
        (Some(_), None) => out.push("recurrence: source is a series, target is not".to_string()),
        (None, Some(_)) => out.push("recurrence: source is no series, target is one".to_string()),
        (Some(sr), Some(tr)) => {
            for part in ["pattern", "range"] {
                let (Some(sp), tp) = (sr.get(part).and_then(Value::as_object), tr.get(part)) else {
                    continue;
                };
                for (k, sv) in sp {
                    if k == "recurrenceTimeZone" {
                        continue;
                    }
                    let tv = tp.and_then(|t| t.get(k)).unwrap_or(&Value::Null);
                    let show = |v: &Value| match v {
                        Value::String(x) => x.to_ascii_lowercase(),
                        Value::Array(_) => sorted_strings(Some(v)).join(",").to_ascii_lowercase(),
                        Value::Null => "none".to_string(),
                        other => other.to_string(),
                    };
                    differ(out, &format!("recurrence.{part}.{k}"), &show(sv), &show(tv));
                }
            }
        }
    }
}

/// Differences between a source event and the target's event JSON (Graph GET: start/end in
/// their own timeZone — Windows names — compared as instants, isAllDay, subject, body text,
/// location, categories, showAs, sensitivity, reminder, recurrence pattern) and, for a
/// series, its instances in `event.verify_window()`: every source occurrence must match
/// exactly one target instance with the same start and end instants (and subject for
/// overrides), and no extra target instance.
///
/// All-day events compare dates (Graph keeps them as midnights of the event's zone). A
/// series the source cannot give Graph ([`Event::series_not_expressible`]) is written as its
/// first occurrence, so its instances are not compared.
pub fn compare_event(
    source: &Event,
    target_json: &str,
    instances: &[TargetInstance],
) -> Vec<String> {
    let target = match parse_target("event", target_json) {
        Ok(t) => t,
        Err(e) => return vec![e],
    };
    let src = &source.graph;
    let mut out = Vec::new();
    let all_day = src
        .get("isAllDay")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let t_all_day = target
        .get("isAllDay")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    if all_day != t_all_day {
        out.push(format!("isAllDay: source {all_day}, target {t_all_day}"));
    }
    for key in ["start", "end"] {
        let (sv, tv) = (
            src.get(key).unwrap_or(&Value::Null),
            target.get(key).unwrap_or(&Value::Null),
        );
        if all_day {
            let date = |v: &Value| s(v, "dateTime").chars().take(10).collect::<String>();
            differ(&mut out, &format!("{key} date"), &date(sv), &date(tv));
            continue;
        }
        match (graph_instant(sv), graph_instant(tv)) {
            (Some(a), Some(b)) if a == b => {}
            (a, b) => out.push(format!(
                "{key}: source {} = {}, target {} = {}",
                graph_local(sv),
                a.map_or_else(|| "an unknown instant".to_string(), rfc3339),
                graph_local(tv),
                b.map_or_else(|| "an unknown instant".to_string(), rfc3339),
            )),
        }
    }
    differ(
        &mut out,
        "subject",
        &norm(s(src, "subject")),
        &norm(s(&target, "subject")),
    );
    differ(
        &mut out,
        "body",
        &body_text(src.get("body")),
        &body_text(target.get("body")),
    );
    let loc = |v: &Value| norm(v.get("location").map_or("", |l| s(l, "displayName")));
    differ(&mut out, "location", &loc(src), &loc(&target));
    differ(
        &mut out,
        "categories",
        &sorted_strings(src.get("categories")).join(", "),
        &sorted_strings(target.get("categories")).join(", "),
    );
    let or = |v: &Value, k: &str, d: &str| {
        let x = s(v, k);
        if x.is_empty() {
            d.to_string()
        } else {
            x.to_ascii_lowercase()
        }
    };
    differ(
        &mut out,
        "showAs",
        &or(src, "showAs", "busy"),
        &or(&target, "showAs", "busy"),
    );
    differ(
        &mut out,
        "sensitivity",
        &or(src, "sensitivity", "normal"),
        &or(&target, "sensitivity", "normal"),
    );
    let reminder = |v: &Value| {
        if v.get("isReminderOn")
            .and_then(Value::as_bool)
            .unwrap_or(false)
        {
            format!(
                "{} minutes before the start",
                v.get("reminderMinutesBeforeStart")
                    .and_then(Value::as_i64)
                    .unwrap_or(0)
            )
        } else {
            "off".to_string()
        }
    };
    differ(&mut out, "reminder", &reminder(src), &reminder(&target));
    compare_recurrence(&mut out, src.get("recurrence"), target.get("recurrence"));
    if src.get("recurrence").is_some() && !source.series_not_expressible {
        let window = source.verify_window();
        let occs = source.occurrences_in((&window.0, &window.1));
        let floating = all_day
            .then(|| zone(&source.source.floating_zone))
            .flatten();
        compare_instances(&mut out, &occs, instances, floating);
    }
    out
}

/// The date an all-day instance stands for: Graph gives all-day times as midnight of the zone
/// they are read in: a UTC midnight is its date, anything else is read in the event's zone.
fn day_of(t: DateTime<Utc>, floating: chrono_tz::Tz) -> NaiveDate {
    if t.time() == chrono::NaiveTime::MIN {
        t.date_naive()
    } else {
        t.with_timezone(&floating).date_naive()
    }
}

/// Matches source occurrences with target instances; `all_day` is the zone of an all-day
/// series (compared by dates), `None` for a timed one (compared by instants).
fn compare_instances(
    out: &mut Vec<String>,
    occs: &[Occ],
    instances: &[TargetInstance],
    all_day: Option<chrono_tz::Tz>,
) {
    struct Inst {
        start: Option<DateTime<Utc>>,
        end: Option<DateTime<Utc>>,
        original: Option<DateTime<Utc>>,
        subject: Option<String>,
        raw: (String, String),
        used: bool,
    }
    let mut insts: Vec<Inst> = instances
        .iter()
        .map(|i| {
            let json: Value = serde_json::from_str(&i.json).unwrap_or(Value::Null);
            Inst {
                start: parse_utc(&i.start_utc),
                end: parse_utc(&i.end_utc),
                original: i.original_start_utc.as_deref().and_then(parse_utc),
                subject: json.get("subject").and_then(Value::as_str).map(norm),
                raw: (i.start_utc.clone(), i.end_utc.clone()),
                used: false,
            }
        })
        .collect();
    let what = if all_day.is_some() {
        "all-day occurrence"
    } else {
        "occurrence"
    };
    let same = |o: &Occ, i: &Inst| match (all_day, i.start, i.end) {
        (Some(z), Some(s), Some(e)) => (day_of(s, z), day_of(e, z)) == o.days,
        (None, Some(s), Some(e)) => (s, e) == (o.start, o.end),
        _ => false,
    };
    let mut missing = Vec::new();
    for o in occs {
        let found = insts.iter_mut().find(|i| !i.used && same(o, i));
        match found {
            Some(i) => {
                i.used = true;
                if o.overridden
                    && let Some(ts) = &i.subject
                    && *ts != norm(&o.subject)
                {
                    out.push(format!(
                        "{what} {}–{} (moved or changed from {}): subject: source {:?}, target {:?}",
                        rfc3339(o.start),
                        rfc3339(o.end),
                        rfc3339(o.original),
                        o.subject,
                        ts
                    ));
                }
            }
            None => missing.push(o),
        }
    }
    for o in missing {
        // The target instance for the same original start, if it is there at another time.
        let other = insts
            .iter_mut()
            .find(|i| !i.used && i.original.is_some() && i.original == Some(o.original));
        match other {
            Some(i) => {
                i.used = true;
                out.push(format!(
                    "{what} originally at {}: source {}–{}, target {}–{}",
                    rfc3339(o.original),
                    rfc3339(o.start),
                    rfc3339(o.end),
                    i.raw.0,
                    i.raw.1
                ));
            }
            None => out.push(format!(
                "{what} {}–{} ({:?}): no target instance with that start and end",
                rfc3339(o.start),
                rfc3339(o.end),
                o.subject
            )),
        }
    }
    for i in insts.iter().filter(|i| !i.used) {
        out.push(format!(
            "target instance {}–{}{}: no source occurrence at that start and end",
            i.raw.0,
            i.raw.1,
            i.original
                .map(|t| format!(" (originalStart {})", rfc3339(t)))
                .unwrap_or_default()
        ));
    }
}
