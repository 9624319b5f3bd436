//! VEVENT -> Graph `event`, VTODO -> Microsoft To Do `todoTask`.
//!
//! Event fields from Graph v1.0 "event resource type": subject, body (itemBody: contentType,
//! content), location (displayName), start/end (dateTimeTimeZone), isAllDay, recurrence
//! (patternedRecurrence, see [`crate::rrule`]), attendees (attendee: emailAddress, type
//! required/optional/resource), isReminderOn, reminderMinutesBeforeStart, categories,
//! sensitivity (normal, personal, private, confidential), showAs (free, tentative, busy, oof,
//! workingElsewhere, unknown), importance (low, normal, high), transactionId ("to avoid
//! redundant POST operations in case of client retries"), singleValueExtendedProperties.
//! `isCancelled` is read-only, so a cancelled event is reported, not marked.
//! Attachments go through `POST /events/{id}/attachments` (fileAttachment), not the create body.

use std::collections::HashMap;

use calcard::Entry;
use calcard::common::PartialDateTime;
use calcard::icalendar::{
    ICalendarClassification, ICalendarComponent, ICalendarComponentType, ICalendarEntry,
    ICalendarParameterName, ICalendarParameterValue, ICalendarParticipationRole, ICalendarProperty,
    ICalendarStatus, ICalendarTransparency, ICalendarUserTypes, ICalendarValue, ICalendarValueType,
    Uri,
};
use chrono::{Datelike, Duration, NaiveDate, NaiveDateTime, NaiveTime};
use serde_json::{Map, Value, json};

use crate::split::{Block, Broken, Split, prop_name, split_line, truncate};
use crate::{Error, FINGERPRINT_PROPERTY_ID, Result, malformed, tz};

/// Choices for converting calendars.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct CalendarOptions {
    /// Zone for floating times (no TZID, no `Z`) and for all-day events: a Windows name or an
    /// IANA name CLDR maps to one. Default `UTC`.
    pub floating_zone: String,
}

impl Default for CalendarOptions {
    fn default() -> Self {
        Self {
            floating_zone: "UTC".to_string(),
        }
    }
}

impl CalendarOptions {
    /// Options with floating times read in `zone`.
    pub fn with_floating_zone(zone: &str) -> Self {
        Self {
            floating_zone: zone.to_string(),
        }
    }
}

/// One item of a calendar.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum CalendarItem {
    /// A VEVENT (with its RECURRENCE-ID overrides).
    Event(Event),
    /// A VTODO.
    Task(Task),
}

/// A VEVENT series converted for Graph.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Event {
    /// The 1-based line of the master's `BEGIN:VEVENT`.
    pub line: usize,
    /// The iCalendar `UID`.
    pub uid: Option<String>,
    /// `pim1:` + SHA-256 of the normalised master and overrides.
    pub fingerprint: String,
    /// Every property not carried, or carried only in part.
    pub not_carried: Vec<String>,
    /// `true` when the RRULE is one Graph cannot express: the create body then has no
    /// `recurrence` (it is the first occurrence only) and `not_carried` says why; the writer
    /// decides whether to create it, it is not a faithful copy of the series.
    pub series_not_expressible: bool,
    /// EXDATEs (and cancelled overrides): the original starts of occurrences to delete after
    /// the series is created.
    pub cancelled_occurrences: Vec<Occurrence>,
    /// RECURRENCE-ID overrides: occurrences to change after the series is created.
    pub overrides: Vec<Override>,
    /// Inline attachments (ATTACH;VALUE=BINARY), for `POST /events/{id}/attachments`.
    pub attachments: Vec<Attachment>,
    pub(crate) graph: Value,
    attendees: Value,
    /// What [`Event::occurrences`] expands (boxed: most events are never verified).
    pub(crate) source: Box<EventSource>,
}

/// The source of an event as verify reads it.
#[derive(Debug, Clone)]
pub(crate) struct EventSource {
    /// The series as one VCALENDAR (its VTIMEZONEs, master and overrides).
    pub(crate) text: String,
    /// [`CalendarOptions::floating_zone`] the event was read with.
    pub(crate) floating_zone: String,
    /// The master's start zone when it is no zone name but a VTIMEZONE of the input's own.
    pub(crate) custom_zone: Option<CustomZone>,
}

/// A VTIMEZONE whose TZID is no IANA or Windows name: its offsets, to read times in it.
#[derive(Debug, Clone)]
pub(crate) struct CustomZone {
    /// The TZID.
    pub(crate) id: String,
    /// Standard offset, seconds east of UTC.
    pub(crate) standard: i32,
    /// Daylight offset, if any.
    pub(crate) daylight: Option<i32>,
    /// Yearly transitions.
    pub(crate) rules: Vec<tz::Rule>,
}

impl Event {
    /// The Graph `event` create body (JSON text). Never contains `attendees`: see the crate
    /// docs on invitations.
    pub fn graph_json(&self) -> String {
        self.graph.to_string()
    }

    /// The source attendees as a Graph `attendee` array (JSON text), kept out of the create
    /// body so that no invitation is sent.
    pub fn attendees_json(&self) -> String {
        self.attendees.to_string()
    }
}

/// The original start of one occurrence of a series, to find its instance after creation
/// (Graph v1.0 event: an instance's `originalStart` is a DateTimeOffset in UTC, and
/// `GET /events/{id}/instances?startDateTime=..&endDateTime=..` lists a window of them).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Occurrence {
    /// Local `dateTime` in the series' start zone, e.g. `2026-03-16T10:00:00`.
    pub local: String,
    /// The series' zone (Windows name or `UTC`).
    pub zone: String,
    /// The same instant in UTC (`2026-03-16T09:00:00Z`), when the zone is known to the
    /// time-zone database; `None` otherwise.
    pub utc: Option<String>,
}

/// A changed occurrence of a series (a RECURRENCE-ID component).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Override {
    /// The occurrence's original start.
    pub original_start: Occurrence,
    /// What of the override could not be carried.
    pub not_carried: Vec<String>,
    patch: Value,
}

impl Override {
    /// The `PATCH` body for the instance (JSON text).
    pub fn patch_json(&self) -> String {
        self.patch.to_string()
    }
}

/// An inline attachment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attachment {
    /// File name (FILENAME / X-FILENAME parameter), or `attachment-N`.
    pub name: String,
    /// Media type (FMTTYPE), or `application/octet-stream`.
    pub content_type: String,
    /// The decoded bytes.
    pub bytes: Vec<u8>,
}

/// A VTODO converted for Microsoft To Do (Graph v1.0 "todoTask resource type": title, body,
/// status notStarted/inProgress/completed/waitingOnOthers/deferred, importance, categories,
/// dueDateTime, startDateTime, completedDateTime, isReminderOn, reminderDateTime).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Task {
    /// The 1-based line of `BEGIN:VTODO`.
    pub line: usize,
    /// The iCalendar `UID`.
    pub uid: Option<String>,
    /// `pim1:` + SHA-256 of the normalised VTODO.
    pub fingerprint: String,
    /// Every property not carried.
    pub not_carried: Vec<String>,
    graph: Value,
}

impl Task {
    /// The `todoTask` create body (JSON text) for `POST /users/{id}/todo/lists/{id}/tasks`.
    pub fn graph_json(&self) -> String {
        self.graph.to_string()
    }
}

/// What one VTIMEZONE says.
struct ZoneInfo {
    standard: Option<i32>,
    daylight: Option<i32>,
    /// Yearly transitions (STANDARD/DAYLIGHT with an RRULE we can read).
    rules: Vec<tz::Rule>,
    /// The IANA zone calcard recognises the VTIMEZONE as (X-LIC-LOCATION, CDO ids, aliases).
    iana: Option<String>,
}

struct Ctx<'a> {
    label: &'a str,
    zones: HashMap<String, ZoneInfo>,
    options: &'a CalendarOptions,
    /// The input's VTIMEZONE blocks, as text.
    tz_text: String,
}

pub(crate) fn convert_all(
    label: &str,
    split: Split,
    options: &CalendarOptions,
) -> Vec<Result<CalendarItem>> {
    let mut zones = HashMap::new();
    for b in &split.timezones {
        let mut info = ZoneInfo {
            standard: None,
            daylight: None,
            rules: Vec::new(),
            iana: None,
        };
        let (mut from, mut to, mut rrule) = (None, None, None);
        let mut tzid = None;
        let mut section = String::new();
        for l in &b.lines {
            let name = prop_name(&l.text);
            let (_, value) = split_line(&l.text);
            match name.as_str() {
                "BEGIN" => {
                    section = value.trim().to_ascii_uppercase();
                    (from, to, rrule) = (None, None, None);
                }
                "END" => {
                    if let (Some(f), Some(t), Some(r)) = (from, to, rrule.take())
                        && let Some(rule) = tz::parse_rule(r, f, t)
                    {
                        info.rules.push(rule);
                    }
                }
                "TZOFFSETFROM" => from = tz::parse_offset(value),
                "RRULE" => rrule = Some(value),
                "TZID" if tzid.is_none() => tzid = Some(value.trim().to_string()),
                "TZOFFSETTO" if section == "STANDARD" => {
                    info.standard = tz::parse_offset(value);
                    to = info.standard;
                }
                "TZOFFSETTO" if section == "DAYLIGHT" => {
                    info.daylight = tz::parse_offset(value);
                    to = info.daylight;
                }
                _ => {}
            }
        }
        if let Entry::ICalendar(cal) = calcard::Parser::new(&wrap(&b.text())).entry() {
            info.iana = cal
                .components
                .iter()
                .find(|c| c.component_type == ICalendarComponentType::VTimezone)
                .and_then(|c| c.timezone())
                .and_then(|(_, tz)| tz.name().map(|n| n.to_string()));
        }
        if let Some(id) = tzid {
            zones.insert(id, info);
        }
    }
    let tz_text = split.timezones.iter().map(Block::text).collect::<String>();
    let ctx = Ctx {
        label,
        zones,
        options,
        tz_text,
    };

    // Group VEVENTs by UID (a series is the master plus its RECURRENCE-ID overrides).
    let mut out: Vec<(usize, Result<CalendarItem>)> = Vec::new();
    let mut groups: Vec<Vec<Block>> = Vec::new();
    let mut by_uid: HashMap<String, usize> = HashMap::new();
    for item in split.items {
        match item {
            Err(Broken { line, what }) => out.push((line, Err(malformed(label, line, what)))),
            Ok(b) if b.kind == "VEVENT" => {
                let uid = b
                    .lines
                    .iter()
                    .find(|l| prop_name(&l.text) == "UID")
                    .map(|l| split_line(&l.text).1.trim().to_string());
                match uid.as_ref().and_then(|u| by_uid.get(u)) {
                    Some(&i) => groups[i].push(b),
                    None => {
                        if let Some(u) = uid {
                            by_uid.insert(u, groups.len());
                        }
                        groups.push(vec![b]);
                    }
                }
            }
            Ok(b) if b.kind == "VTODO" => {
                out.push((b.start(), convert_task(&ctx, &b).map(CalendarItem::Task)))
            }
            Ok(b) => out.push((
                b.start(),
                Err(Error::Unsupported {
                    label: label.to_string(),
                    line: b.start(),
                    kind: b.kind.clone(),
                    hint: "only VEVENT and VTODO are migrated; this item is skipped",
                }),
            )),
        }
    }
    for g in groups {
        let line = g.iter().map(Block::start).min().unwrap_or(0);
        out.push((line, convert_series(&ctx, g).map(CalendarItem::Event)));
    }
    out.sort_by_key(|(l, _)| *l);
    out.into_iter().map(|(_, r)| r).collect()
}

pub(crate) fn wrap(body: &str) -> String {
    format!("BEGIN:VCALENDAR\r\nVERSION:2.0\r\n{body}END:VCALENDAR\r\n")
}

/// Parses one block with calcard: its main component and its VALARMs.
fn parse_block(
    ctx: &Ctx<'_>,
    b: &Block,
    kind: ICalendarComponentType,
) -> Result<(ICalendarComponent, Vec<ICalendarComponent>)> {
    match calcard::Parser::new(&wrap(&b.text())).entry() {
        Entry::ICalendar(cal) => {
            let main = cal
                .components
                .iter()
                .find(|c| c.component_type == kind)
                .cloned();
            let alarms = cal
                .components
                .iter()
                .filter(|c| c.component_type == ICalendarComponentType::VAlarm)
                .cloned()
                .collect();
            main.map(|m| (m, alarms)).ok_or_else(|| {
                malformed(ctx.label, b.start(), format!("calcard found no {kind:?}"))
            })
        }
        other => Err(malformed(
            ctx.label,
            b.start(),
            format!(
                "calcard could not read it: {}",
                crate::contact::describe(&other)
            ),
        )),
    }
}

/// A date or time value as the source says it.
#[derive(Debug, Clone, Copy)]
enum When<'a> {
    Date(NaiveDate),
    Utc(NaiveDateTime),
    Local(NaiveDateTime, Option<&'a str>),
}

impl When<'_> {
    fn date(&self) -> NaiveDate {
        match self {
            When::Date(d) => *d,
            When::Utc(t) | When::Local(t, _) => t.date(),
        }
    }
}

fn when_of<'a>(e: &'a ICalendarEntry, v: &ICalendarValue) -> Option<When<'a>> {
    let ICalendarValue::PartialDateTime(p) = v else {
        return None;
    };
    when_of_partial(
        p,
        e.parameter(&ICalendarParameterName::Tzid)
            .and_then(|t| t.as_text()),
    )
}

fn when_of_partial<'a>(p: &PartialDateTime, tzid: Option<&'a str>) -> Option<When<'a>> {
    let d = NaiveDate::from_ymd_opt(p.year? as i32, p.month? as u32, p.day? as u32)?;
    let Some(h) = p.hour else {
        return Some(When::Date(d));
    };
    let t = NaiveTime::from_hms_opt(
        h as u32,
        p.minute.unwrap_or(0) as u32,
        p.second.unwrap_or(0).min(59) as u32,
    )?;
    let dt = NaiveDateTime::new(d, t);
    match p.tz_hour {
        Some(th) => {
            let off = (th as i64 * 3600 + p.tz_minute.unwrap_or(0) as i64 * 60)
                * if p.tz_minus { -1 } else { 1 };
            Some(When::Utc(dt - Duration::seconds(off)))
        }
        None => Some(When::Local(dt, tzid)),
    }
}

fn fmt(dt: NaiveDateTime) -> String {
    dt.format("%Y-%m-%dT%H:%M:%S").to_string()
}

fn note(not: &mut Vec<String>, s: String) {
    if !not.contains(&s) {
        not.push(s);
    }
}

impl Ctx<'_> {
    fn floating_zone(&self) -> String {
        tz::windows_name(&self.options.floating_zone)
            .map_or_else(|| self.options.floating_zone.clone(), str::to_string)
    }

    /// Graph (dateTime, timeZone) for a time value, reporting how the zone was found.
    fn graph_time(
        &self,
        w: When<'_>,
        prop: &str,
        not: &mut Vec<String>,
    ) -> (NaiveDateTime, String) {
        match w {
            When::Date(d) => (d.and_time(NaiveTime::MIN), self.floating_zone()),
            When::Utc(t) => (t, "UTC".to_string()),
            When::Local(t, None) => {
                let z = self.floating_zone();
                note(
                    not,
                    format!(
                        "{prop}: floating time (no time zone); read as {z}, the zone the caller chose"
                    ),
                );
                (t, z)
            }
            When::Local(t, Some(id)) => {
                if let Some(w) = tz::windows_name(id) {
                    return (t, w.to_string());
                }
                let info = self.zones.get(id);
                let via_calcard = info.and_then(|i| i.iana.clone()).or_else(|| {
                    id.parse::<calcard::common::timezone::Tz>()
                        .ok()
                        .and_then(|z| z.name().map(|n| n.to_string()))
                });
                // calcard guesses from names too (a "(GMT-05.00) ..." prefix gives a fixed
                // offset): its answer is taken only if it behaves like the VTIMEZONE.
                let agrees = |iana: &str| match info
                    .and_then(|i| i.standard.or(i.daylight).map(|s| (s, i)))
                {
                    Some((std, i)) => tz::fits(iana, std, i.daylight, &i.rules, t.year()),
                    None => true,
                };
                if let Some(iana) = via_calcard
                    && agrees(&iana)
                    && let Some(w) = tz::windows_name(&iana)
                {
                    note(
                        not,
                        format!(
                            "TZID {id:?}: not a zone name Graph knows; identified as {iana}, written as {w:?}"
                        ),
                    );
                    return (t, w.to_string());
                }
                if let Some(info) = info
                    && let Some(std) = info.standard.or(info.daylight)
                {
                    if let Some(w) = tz::match_zone(std, info.daylight, &info.rules, t.year()) {
                        note(
                            not,
                            format!(
                                "TZID {id:?}: unknown zone; its VTIMEZONE's offsets and yearly transition days match {w:?}"
                            ),
                        );
                        return (t, w.to_string());
                    }
                    let offset = tz::offset_on(std, info.daylight, &info.rules, t.date());
                    note(
                        not,
                        format!(
                            "TZID {id:?}: unknown zone matching no Windows zone; converted to UTC with its offset on that date ({})",
                            tz::show_offset(offset)
                        ),
                    );
                    return (t - Duration::seconds(offset as i64), "UTC".to_string());
                }
                let z = self.floating_zone();
                note(
                    not,
                    format!(
                        "TZID {id:?}: unknown zone without a VTIMEZONE; read as {z}, the zone the caller chose"
                    ),
                );
                (t, z)
            }
        }
    }

    /// The original start of an occurrence, local in `zone`.
    fn occurrence(&self, w: When<'_>, zone: &str, not: &mut Vec<String>) -> Occurrence {
        let (t, z) = self.graph_time(w, "RECURRENCE-ID/EXDATE", not);
        let local = tz::convert_local(t, &z, zone).unwrap_or(t);
        Occurrence {
            local: fmt(local),
            zone: zone.to_string(),
            utc: tz::convert_local(local, zone, "UTC").map(|u| format!("{}Z", fmt(u))),
        }
    }
}

fn first_value<'a>(
    c: &'a ICalendarComponent,
    p: &ICalendarProperty,
) -> Option<(&'a ICalendarEntry, &'a ICalendarValue)> {
    c.entries
        .iter()
        .find(|e| &e.name == p)
        .and_then(|e| e.values.first().map(|v| (e, v)))
}

fn text_of(c: &ICalendarComponent, p: &ICalendarProperty) -> Option<String> {
    first_value(c, p).and_then(|(_, v)| v.as_text().map(str::to_string))
}

fn duration_secs(v: &ICalendarValue) -> Option<i64> {
    let ICalendarValue::Duration(d) = v else {
        return None;
    };
    let s = d.weeks as i64 * 604_800
        + d.days as i64 * 86_400
        + d.hours as i64 * 3600
        + d.minutes as i64 * 60
        + d.seconds as i64;
    Some(if d.neg { -s } else { s })
}

/// Start/end/all-day and the plain fields shared by a master and its overrides.
/// Where a converted event starts: its date in the written zone, and whether that date differs
/// from the source's local date (a zone converted to UTC).
#[derive(Debug, Clone, Copy)]
struct Start {
    date: NaiveDate,
    moved: bool,
}

fn fields(
    ctx: &Ctx<'_>,
    b: &Block,
    c: &ICalendarComponent,
    alarms: &[ICalendarComponent],
    not: &mut Vec<String>,
) -> Result<(Map<String, Value>, Start, String)> {
    let mut g = Map::new();
    let start_line = b.line_of("DTSTART").unwrap_or(b.start());
    let (se, sv) = first_value(c, &ICalendarProperty::Dtstart)
        .ok_or_else(|| malformed(ctx.label, b.start(), "VEVENT without DTSTART"))?;
    let start = when_of(se, sv)
        .ok_or_else(|| malformed(ctx.label, start_line, "DTSTART is not a date or date-time"))?;
    let end = match first_value(c, &ICalendarProperty::Dtend) {
        Some((e, v)) => Some(when_of(e, v).ok_or_else(|| {
            malformed(
                ctx.label,
                b.line_of("DTEND").unwrap_or(start_line),
                "DTEND is not a date or date-time",
            )
        })?),
        None => None,
    };
    let duration = first_value(c, &ICalendarProperty::Duration).and_then(|(_, v)| duration_secs(v));
    let (st, sz) = ctx.graph_time(start, "DTSTART", not);
    let (et, ez) = match (end, start) {
        (Some(e), _) => ctx.graph_time(e, "DTEND", not),
        (None, When::Date(d)) => {
            // RFC 5545 §3.6.1: a DATE start without DTEND lasts one day (end exclusive).
            let days = duration.map_or(1, |s| (s / 86_400).max(1));
            (
                (d + Duration::days(days)).and_time(NaiveTime::MIN),
                sz.clone(),
            )
        }
        (None, _) => (st + Duration::seconds(duration.unwrap_or(0)), sz.clone()),
    };
    let all_day = matches!(start, When::Date(_));
    if all_day && end.is_some_and(|e| !matches!(e, When::Date(_))) {
        note(
            not,
            "DTEND: a date-time for an all-day start; the end is taken as its date".to_string(),
        );
    }
    g.insert(
        "start".into(),
        json!({ "dateTime": fmt(st), "timeZone": sz }),
    );
    g.insert("end".into(), json!({ "dateTime": fmt(et), "timeZone": ez }));
    g.insert("isAllDay".into(), json!(all_day));

    let mut html: Option<String> = None;
    let mut categories = Vec::new();
    let mut cancelled = false;
    for e in &c.entries {
        let v = e.values.first();
        let t = v.and_then(|v| v.as_text()).unwrap_or("").to_string();
        match &e.name {
            ICalendarProperty::Summary => {
                g.insert("subject".into(), json!(t));
            }
            // Outlook's HTML body (X-ALT-DESC;FMTTYPE=text/html) beside the plain DESCRIPTION.
            ICalendarProperty::Other(n)
                if n.eq_ignore_ascii_case("X-ALT-DESC")
                    && e.parameter(&ICalendarParameterName::Fmttype)
                        .and_then(|p| p.as_text())
                        .is_some_and(|f| f.eq_ignore_ascii_case("text/html")) =>
            {
                html = Some(t.clone());
            }
            ICalendarProperty::Description => {
                g.insert(
                    "body".into(),
                    json!({ "contentType": "text", "content": t }),
                );
            }
            ICalendarProperty::Location => {
                g.insert("location".into(), json!({ "displayName": t }));
            }
            ICalendarProperty::Categories => categories.extend(
                e.values
                    .iter()
                    .filter_map(|v| v.as_text())
                    .filter(|s| !s.is_empty())
                    .map(str::to_string),
            ),
            ICalendarProperty::Class => {
                let s = match v {
                    Some(ICalendarValue::Classification(ICalendarClassification::Private)) => {
                        "private"
                    }
                    Some(ICalendarValue::Classification(ICalendarClassification::Confidential)) => {
                        "confidential"
                    }
                    Some(ICalendarValue::Classification(ICalendarClassification::Public)) => {
                        "normal"
                    }
                    _ => {
                        note(not, format!("CLASS ({t}): no Graph sensitivity for it"));
                        continue;
                    }
                };
                g.insert("sensitivity".into(), json!(s));
            }
            ICalendarProperty::Transp => {
                let s = if matches!(
                    v,
                    Some(ICalendarValue::Transparency(
                        ICalendarTransparency::Transparent
                    ))
                ) {
                    "free"
                } else {
                    "busy"
                };
                g.insert("showAs".into(), json!(s));
            }
            ICalendarProperty::Status => match v {
                Some(ICalendarValue::Status(ICalendarStatus::Cancelled)) => cancelled = true,
                Some(ICalendarValue::Status(ICalendarStatus::Tentative)) => {
                    g.entry("showAs").or_insert(json!("tentative"));
                }
                _ => {}
            },
            ICalendarProperty::Priority => {
                let p = v.and_then(|v| v.as_integer()).unwrap_or(0);
                let s = match p {
                    1..=4 => "high",
                    6..=9 => "low",
                    _ => "normal",
                };
                g.insert("importance".into(), json!(s));
            }
            _ => {}
        }
    }
    if let Some(h) = html {
        g.insert(
            "body".into(),
            json!({ "contentType": "html", "content": h }),
        );
    }
    if !categories.is_empty() {
        g.insert("categories".into(), json!(categories));
    }
    if cancelled {
        let subject = g
            .get("subject")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        g.insert("subject".into(), json!(format!("Canceled: {subject}")));
        note(not, "STATUS:CANCELLED: Graph's isCancelled is read-only; the subject is prefixed \"Canceled: \" as Outlook does".to_string());
    }
    // Reminders: Graph keeps one, minutes before the start.
    let mut reminder = None;
    for (i, a) in alarms.iter().enumerate() {
        let action = text_of(a, &ICalendarProperty::Action)
            .unwrap_or_default()
            .to_ascii_uppercase();
        let trig = first_value(a, &ICalendarProperty::Trigger);
        let related_end = trig.is_some_and(|(e, _)| {
            e.parameter(&ICalendarParameterName::Related)
                .and_then(|r| r.as_text())
                .is_some_and(|r| r.eq_ignore_ascii_case("END"))
        });
        let secs = trig.and_then(|(_, v)| duration_secs(v));
        match (action.as_str(), secs, related_end) {
            ("DISPLAY" | "AUDIO", Some(s), false) if s <= 0 && reminder.is_none() => {
                reminder = Some((-s) / 60)
            }
            _ => {
                let shown = trig
                    .and_then(|(_, v)| v.clone().into_text())
                    .unwrap_or_default();
                note(
                    not,
                    format!(
                        "VALARM #{} (ACTION={action}, TRIGGER={shown}{}): Graph keeps one display reminder before the start",
                        i + 1,
                        if related_end { ", RELATED=END" } else { "" }
                    ),
                );
            }
        }
    }
    match reminder {
        Some(m) => {
            g.insert("isReminderOn".into(), json!(true));
            g.insert("reminderMinutesBeforeStart".into(), json!(m));
        }
        None => {
            g.insert("isReminderOn".into(), json!(false));
        }
    }
    let zone = g
        .get("start")
        .and_then(|s| s.get("timeZone"))
        .and_then(Value::as_str)
        .unwrap_or("UTC")
        .to_string();
    // The recurrence starts on the date the event starts in the zone it is written in.
    let moved = matches!(start, When::Local(..)) && st.date() != start.date();
    Ok((
        g,
        Start {
            date: st.date(),
            moved,
        },
        zone,
    ))
}

/// A date-time UNTIL (UTC by RFC 5545 when DTSTART has a zone) as a date in the series' zone:
/// Graph's `endDate` is a local date.
fn until_local(
    rule: &calcard::icalendar::ICalendarRecurrenceRule,
    zone: &str,
) -> Option<NaiveDate> {
    let u = rule.until.as_ref()?;
    match when_of_partial(u, None)? {
        When::Date(d) => Some(d),
        When::Utc(t) => Some(tz::convert_local(t, "UTC", zone).unwrap_or(t).date()),
        When::Local(t, _) => Some(t.date()),
    }
}

fn convert_series(ctx: &Ctx<'_>, blocks: Vec<Block>) -> Result<Event> {
    let is_override = |b: &Block| b.line_of("RECURRENCE-ID").is_some();
    let master_idx = blocks.iter().position(|b| !is_override(b)).unwrap_or(0);
    let master = &blocks[master_idx];
    let (c, alarms) = parse_block(ctx, master, ICalendarComponentType::VEvent)?;
    let mut not = Vec::new();
    if is_override(master) {
        not.push(
            "RECURRENCE-ID: an override without its series; converted as a single event"
                .to_string(),
        );
    }
    let (mut g, start, zone) = fields(ctx, master, &c, &alarms, &mut not)?;
    let uid = text_of(&c, &ICalendarProperty::Uid);
    let refs: Vec<&Block> = blocks.iter().collect();
    let fingerprint = crate::fingerprint(&refs);
    let mut series_not_expressible = false;
    let mut attendees = Vec::new();
    let mut attachments = Vec::new();
    let mut cancelled = Vec::new();
    let mut raw_seen: HashMap<String, usize> = HashMap::new();

    for e in &c.entries {
        let v = e.values.first();
        let t = v.and_then(|v| v.as_text()).unwrap_or("").to_string();
        match &e.name {
            ICalendarProperty::Rrule => {
                if let Some(ICalendarValue::RecurrenceRule(rule)) = v {
                    let result = if start.moved
                        && !(rule.byday.is_empty() && rule.bymonthday.is_empty())
                    {
                        Err(vec!["BYDAY/BYMONTHDAY of a zone converted to UTC, where the start falls on another day".to_string()])
                    } else {
                        crate::rrule::convert(rule, start.date, &zone, until_local(rule, &zone))
                    };
                    if zone == "UTC" && not.iter().any(|n| n.contains("converted to UTC")) {
                        not.push("RRULE: the series is kept in UTC (its zone is unknown); occurrences after a daylight-saving change of the source zone are an hour off".to_string());
                    }
                    match result {
                        Ok(r) => {
                            g.insert("recurrence".into(), r);
                        }
                        Err(why) => {
                            series_not_expressible = true;
                            not.push(format!(
                                "RRULE ({}): Graph cannot express it ({}); the series is NOT created as a series (the create body is its first occurrence only)",
                                rule,
                                why.join(", ")
                            ));
                        }
                    }
                }
            }
            ICalendarProperty::Exdate => {
                for v in &e.values {
                    if let Some(w) = when_of(e, v) {
                        cancelled.push(ctx.occurrence(w, &zone, &mut not));
                    }
                }
            }
            ICalendarProperty::Attendee => {
                let addr = e.calendar_address().unwrap_or("").to_string();
                let name = e
                    .parameter(&ICalendarParameterName::Cn)
                    .and_then(|p| p.as_text())
                    .unwrap_or("")
                    .to_string();
                let resource = matches!(
                    e.parameter(&ICalendarParameterName::Cutype),
                    Some(ICalendarParameterValue::Cutype(
                        ICalendarUserTypes::Resource | ICalendarUserTypes::Room
                    ))
                );
                let optional = matches!(
                    e.parameter(&ICalendarParameterName::Role),
                    Some(ICalendarParameterValue::Role(
                        ICalendarParticipationRole::OptParticipant
                            | ICalendarParticipationRole::NonParticipant
                    ))
                );
                let kind = if resource {
                    "resource"
                } else if optional {
                    "optional"
                } else {
                    "required"
                };
                not.push(format!("ATTENDEE ({addr}, {kind}): kept out of the create body so no invitation is sent; see attendees_json"));
                attendees.push(
                    json!({ "emailAddress": { "address": addr, "name": name }, "type": kind }),
                );
            }
            ICalendarProperty::Organizer => {
                let addr = e.calendar_address().unwrap_or("").to_string();
                not.push(format!(
                    "ORGANIZER ({addr}): an imported appointment's organizer is the mailbox owner"
                ));
            }
            ICalendarProperty::Attach => {
                let name = e
                    .parameter(&ICalendarParameterName::Filename)
                    .or_else(|| e.parameter(&ICalendarParameterName::Other("X-FILENAME".into())))
                    .and_then(|p| p.as_text())
                    .map_or_else(
                        || format!("attachment-{}", attachments.len() + 1),
                        str::to_string,
                    );
                let ctype = e
                    .parameter(&ICalendarParameterName::Fmttype)
                    .and_then(|p| p.as_text())
                    .unwrap_or("application/octet-stream")
                    .to_string();
                match v {
                    Some(ICalendarValue::Binary(bytes)) => attachments.push(crate::Attachment {
                        name,
                        content_type: ctype,
                        bytes: bytes.clone(),
                    }),
                    Some(ICalendarValue::Uri(Uri::Data(d))) => {
                        attachments.push(crate::Attachment {
                            name,
                            content_type: d.content_type.clone().unwrap_or(ctype),
                            bytes: d.data.clone(),
                        })
                    }
                    // calcard hands base64 data that decodes to UTF-8 back as text.
                    Some(ICalendarValue::Text(text))
                        if matches!(
                            e.parameter(&ICalendarParameterName::Value),
                            Some(ICalendarParameterValue::Value(ICalendarValueType::Binary))
                        ) =>
                    {
                        attachments.push(crate::Attachment {
                            name,
                            content_type: ctype,
                            bytes: text.as_bytes().to_vec(),
                        })
                    }
                    _ => not.push(format!(
                        "ATTACH ({}): a link, not inline data; the tool does not download it",
                        truncate(&t, 80)
                    )),
                }
            }
            ICalendarProperty::Summary
            | ICalendarProperty::Description
            | ICalendarProperty::Location
            | ICalendarProperty::Categories
            | ICalendarProperty::Class
            | ICalendarProperty::Transp
            | ICalendarProperty::Status
            | ICalendarProperty::Priority
            | ICalendarProperty::Dtstart
            | ICalendarProperty::Dtend
            | ICalendarProperty::Duration
            | ICalendarProperty::Uid
            | ICalendarProperty::Dtstamp
            | ICalendarProperty::Sequence
            | ICalendarProperty::Created
            | ICalendarProperty::LastModified
            | ICalendarProperty::RecurrenceId => {}
            ICalendarProperty::Other(n)
                if n.eq_ignore_ascii_case("X-ALT-DESC")
                    && g.get("body").is_some_and(|b| b["contentType"] == "html") => {}
            ICalendarProperty::Rdate | ICalendarProperty::Exrule => {
                // The source text: calcard renders a TZID date-time as if it were UTC.
                let name = e.name.as_str().to_ascii_uppercase();
                let seen = raw_seen.entry(name.clone()).or_insert(0usize);
                let shown = master
                    .lines
                    .iter()
                    .filter(|l| prop_name(&l.text) == name)
                    .nth(*seen)
                    .map(|l| split_line(&l.text).1.to_string())
                    .unwrap_or_default();
                *seen += 1;
                not.push(format!(
                    "{} ({}): extra or removed occurrences by rule or date; a Graph series holds only its pattern, so the series is NOT created as a series (the create body is its first occurrence only)",
                    e.name.as_str(),
                    truncate(&shown, 60)
                ));
                series_not_expressible = true;
            }
            other => {
                let shown = e
                    .values
                    .iter()
                    .filter_map(|v| v.clone().into_text())
                    .collect::<Vec<_>>()
                    .join(",");
                not.push(format!(
                    "{} ({}): Graph events have no such field",
                    other.as_str().to_ascii_uppercase(),
                    truncate(&shown, 60)
                ));
            }
        }
    }

    let mut overrides = Vec::new();
    for (i, b) in blocks.iter().enumerate() {
        if i == master_idx {
            continue;
        }
        let (oc, oalarms) = parse_block(ctx, b, ICalendarComponentType::VEvent)?;
        let rid_line = b.line_of("RECURRENCE-ID").unwrap_or(b.start());
        let Some((re, rv)) = first_value(&oc, &ICalendarProperty::RecurrenceId) else {
            not.push(format!(
                "line {}: a second VEVENT with the same UID and no RECURRENCE-ID; skipped",
                b.start()
            ));
            continue;
        };
        let rid = when_of(re, rv).ok_or_else(|| {
            malformed(
                ctx.label,
                rid_line,
                "RECURRENCE-ID is not a date or date-time",
            )
        })?;
        let mut onot = Vec::new();
        let original_start = ctx.occurrence(rid, &zone, &mut onot);
        if matches!(oc.status(), Some(ICalendarStatus::Cancelled)) {
            cancelled.push(original_start);
            continue;
        }
        let (patch, _, _) = fields(ctx, b, &oc, &oalarms, &mut onot)?;
        for e in &oc.entries {
            if matches!(
                e.name,
                ICalendarProperty::Attendee
                    | ICalendarProperty::Organizer
                    | ICalendarProperty::Attach
                    | ICalendarProperty::Rrule
            ) {
                onot.push(format!(
                    "{} in an override: not applied to the occurrence",
                    e.name.as_str()
                ));
            }
        }
        overrides.push(Override {
            original_start,
            not_carried: onot,
            patch: Value::Object(patch),
        });
    }
    if series_not_expressible {
        g.remove("recurrence");
        if !cancelled.is_empty() || !overrides.is_empty() {
            not.push(format!(
                "EXDATE/RECURRENCE-ID: {} cancelled and {} changed occurrence(s) not applied, as the series is not created",
                cancelled.len(),
                overrides.len()
            ));
        }
        cancelled.clear();
        overrides.clear();
    }
    g.insert("transactionId".into(), json!(fingerprint));
    g.insert(
        "singleValueExtendedProperties".into(),
        json!([{ "id": FINGERPRINT_PROPERTY_ID, "value": fingerprint }]),
    );
    Ok(Event {
        line: blocks.iter().map(Block::start).min().unwrap_or(0),
        uid,
        fingerprint,
        not_carried: not,
        series_not_expressible,
        cancelled_occurrences: cancelled,
        overrides,
        attachments,
        graph: Value::Object(g),
        attendees: Value::Array(attendees),
        source: Box::new(EventSource {
            text: wrap(&format!(
                "{}{}",
                ctx.tz_text,
                blocks.iter().map(Block::text).collect::<String>()
            )),
            floating_zone: ctx.options.floating_zone.clone(),
            custom_zone: first_value(&c, &ICalendarProperty::Dtstart)
                .and_then(|(e, _)| e.parameter(&ICalendarParameterName::Tzid))
                .and_then(|p| p.as_text())
                .filter(|id| tz::windows_name(id).is_none())
                .and_then(|id| {
                    let info = ctx.zones.get(id)?;
                    Some(CustomZone {
                        id: id.to_string(),
                        standard: info.standard.or(info.daylight)?,
                        daylight: info.daylight,
                        rules: info.rules.clone(),
                    })
                }),
        }),
    })
}

fn convert_task(ctx: &Ctx<'_>, b: &Block) -> Result<Task> {
    let (c, alarms) = parse_block(ctx, b, ICalendarComponentType::VTodo)?;
    let mut g = Map::new();
    let mut not = Vec::new();
    let mut categories = Vec::new();
    for e in &c.entries {
        let v = e.values.first();
        let t = v.and_then(|v| v.as_text()).unwrap_or("").to_string();
        match &e.name {
            ICalendarProperty::Summary => {
                g.insert("title".into(), json!(t));
            }
            ICalendarProperty::Description => {
                g.insert(
                    "body".into(),
                    json!({ "contentType": "text", "content": t }),
                );
            }
            ICalendarProperty::Categories => categories.extend(
                e.values
                    .iter()
                    .filter_map(|v| v.as_text())
                    .map(str::to_string),
            ),
            ICalendarProperty::Due | ICalendarProperty::Dtstart | ICalendarProperty::Completed => {
                let key = match e.name {
                    ICalendarProperty::Due => "dueDateTime",
                    ICalendarProperty::Dtstart => "startDateTime",
                    _ => "completedDateTime",
                };
                match v.and_then(|v| when_of(e, v)) {
                    Some(w) => {
                        let (dt, z) = ctx.graph_time(w, e.name.as_str(), &mut not);
                        g.insert(key.into(), json!({ "dateTime": fmt(dt), "timeZone": z }));
                    }
                    None => not.push(format!("{} ({t}): not a date", e.name.as_str())),
                }
            }
            ICalendarProperty::Status => {
                let s = match v {
                    Some(ICalendarValue::Status(ICalendarStatus::Completed)) => "completed",
                    Some(ICalendarValue::Status(ICalendarStatus::InProcess)) => "inProgress",
                    Some(ICalendarValue::Status(ICalendarStatus::NeedsAction)) => "notStarted",
                    _ => {
                        not.push(format!("STATUS ({t}): no To Do status for it"));
                        continue;
                    }
                };
                g.insert("status".into(), json!(s));
            }
            ICalendarProperty::Priority => {
                let p = v.and_then(|v| v.as_integer()).unwrap_or(0);
                g.insert(
                    "importance".into(),
                    json!(match p {
                        1..=4 => "high",
                        6..=9 => "low",
                        _ => "normal",
                    }),
                );
            }
            ICalendarProperty::Uid
            | ICalendarProperty::Dtstamp
            | ICalendarProperty::Sequence
            | ICalendarProperty::Created
            | ICalendarProperty::LastModified => {}
            other => {
                let shown = e
                    .values
                    .iter()
                    .filter_map(|v| v.clone().into_text())
                    .collect::<Vec<_>>()
                    .join(",");
                not.push(format!(
                    "{} ({}): To Do tasks have no such field",
                    other.as_str().to_ascii_uppercase(),
                    truncate(&shown, 60)
                ));
            }
        }
    }
    if !categories.is_empty() {
        g.insert("categories".into(), json!(categories));
    }
    if !alarms.is_empty() {
        not.push(format!(
            "VALARM ×{}: task reminders are not converted yet",
            alarms.len()
        ));
    }
    Ok(Task {
        line: b.start(),
        uid: text_of(&c, &ICalendarProperty::Uid),
        fingerprint: crate::fingerprint(&[b]),
        not_carried: not,
        graph: Value::Object(g),
    })
}
