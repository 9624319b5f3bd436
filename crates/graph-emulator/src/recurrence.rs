//! Graph's `dateTimeTimeZone` and `patternedRecurrence`: validation as the calendar API does it,
//! and the expansion of a series into its occurrences (`GET /events/{id}/instances`).
//!
//! Sources, Microsoft Graph v1.0: "dateTimeTimeZone resource type" (`timeZone` is a Windows
//! time-zone name or one of the IANA names the calendar API supports), "patternedRecurrence",
//! "recurrencePattern" (`daily`, `weekly` with `daysOfWeek` and `firstDayOfWeek`,
//! `absoluteMonthly` with `dayOfMonth`, `relativeMonthly` with `daysOfWeek` and `index`,
//! `absoluteYearly` with `dayOfMonth` and `month`, `relativeYearly` with `daysOfWeek`, `index`
//! and `month`; `interval` ≥ 1) and "recurrenceRange" (`endDate`, `noEnd`, `numbered`;
//! `startDate` "must be the same value as the start property of the recurring event";
//! `recurrenceTimeZone` defaults to the start's zone).
//!
//! The expansion is the emulator's own and deliberately independent of the `o365-migrate-pim`
//! crate's conversion (only CLDR's Windows → IANA table is shared): it checks that conversion.

use chrono::{DateTime, Datelike, Duration, LocalResult, NaiveDate, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Tz;
use serde_json::{Map, Value};

/// The zone behind a Graph `timeZone` value: a Windows name (CLDR's table), `UTC`, or an IANA
/// name.
pub(crate) fn zone(name: &str) -> Option<Tz> {
    if name == "UTC" {
        return Some(chrono_tz::UTC);
    }
    if let Some(iana) = o365_migrate_pim::iana_for_windows(name) {
        return iana.parse().ok();
    }
    // IANA names contain a slash (`Europe/Berlin`); bare abbreviations are not accepted.
    if name.contains('/') {
        return name.parse().ok();
    }
    None
}

/// Parses Graph's local `dateTime` (`2027-03-01T09:00:00` with an optional fraction).
pub(crate) fn parse_local(s: &str) -> Option<NaiveDateTime> {
    let s = s.trim();
    let base = s.split('.').next().unwrap_or(s);
    NaiveDateTime::parse_from_str(base, "%Y-%m-%dT%H:%M:%S")
        .or_else(|_| NaiveDateTime::parse_from_str(base, "%Y-%m-%dT%H:%M"))
        .ok()
}

/// The instant of a local time in a zone: the earlier of two in a repeated hour, one hour later
/// in a skipped hour (as Outlook places it).
pub(crate) fn resolve(tz: Tz, local: NaiveDateTime) -> DateTime<Utc> {
    match tz.from_local_datetime(&local) {
        LocalResult::Single(t) | LocalResult::Ambiguous(t, _) => t.with_timezone(&Utc),
        LocalResult::None => match tz.from_local_datetime(&(local + Duration::hours(1))) {
            LocalResult::Single(t) | LocalResult::Ambiguous(t, _) => t.with_timezone(&Utc),
            LocalResult::None => Utc.from_utc_datetime(&local),
        },
    }
}

/// Why a body was refused: the Graph error code and message.
pub(crate) type Invalid = (&'static str, String);

fn unsupported_zone(name: &str) -> Invalid {
    (
        "TimeZoneNotSupportedException",
        format!(
            "A valid TimeZone value must be specified. The following TimeZone value is not supported: '{name}'."
        ),
    )
}

/// A `dateTimeTimeZone` value: its local time, zone and instant.
pub(crate) fn date_time_zone(
    v: &Value,
    what: &str,
) -> Result<(NaiveDateTime, Tz, DateTime<Utc>), Invalid> {
    let tz_name = v["timeZone"].as_str().unwrap_or("UTC");
    let tz = zone(tz_name).ok_or_else(|| unsupported_zone(tz_name))?;
    let local = v["dateTime"]
        .as_str()
        .and_then(parse_local)
        .ok_or_else(|| {
            (
                "ErrorInvalidRequest",
                format!("The {what} dateTime is missing or not a date and time."),
            )
        })?;
    Ok((local, tz, resolve(tz, local)))
}

fn bad_recurrence(msg: impl Into<String>) -> Invalid {
    ("ErrorInvalidRecurrence", msg.into())
}

const WEEKDAYS: [&str; 7] = [
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
    "sunday",
];

fn weekday(name: &str) -> Option<chrono::Weekday> {
    WEEKDAYS
        .iter()
        .position(|w| w.eq_ignore_ascii_case(name))
        .and_then(|i| chrono::Weekday::try_from(i as u8).ok())
}

/// A parsed recurrence, in the zone its occurrences are computed in.
#[derive(Debug, Clone)]
pub(crate) struct Series {
    kind: Kind,
    interval: u32,
    days: Vec<chrono::Weekday>,
    first_day: chrono::Weekday,
    day_of_month: u32,
    month: u32,
    index: usize,
    start_date: NaiveDate,
    end_date: Option<NaiveDate>,
    count: Option<usize>,
    tz: Tz,
    time: chrono::NaiveTime,
    /// End minus start of one occurrence.
    pub(crate) duration: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Daily,
    Weekly,
    AbsoluteMonthly,
    RelativeMonthly,
    AbsoluteYearly,
    RelativeYearly,
}

/// Validates an event's `start`, `end` and `recurrence` (if any) together; answers the series
/// when there is one.
pub(crate) fn validate_event(props: &Map<String, Value>) -> Result<Option<Series>, Invalid> {
    let start = props
        .get("start")
        .filter(|v| v.is_object())
        .ok_or_else(|| {
            (
                "ErrorInvalidRequest",
                "The event needs a start.".to_string(),
            )
        })?;
    let end = props
        .get("end")
        .filter(|v| v.is_object())
        .ok_or_else(|| ("ErrorInvalidRequest", "The event needs an end.".to_string()))?;
    let (start_local, _, start_at) = date_time_zone(start, "start")?;
    let (_, _, end_at) = date_time_zone(end, "end")?;
    if end_at < start_at {
        return Err((
            "ErrorInvalidRequest",
            "The end of the event is before its start.".into(),
        ));
    }
    match props.get("recurrence") {
        None | Some(Value::Null) => Ok(None),
        Some(r) => parse_series(r, start, start_local, start_at, end_at - start_at).map(Some),
    }
}

fn parse_series(
    r: &Value,
    start: &Value,
    start_local: NaiveDateTime,
    start_at: DateTime<Utc>,
    duration: Duration,
) -> Result<Series, Invalid> {
    let p = &r["pattern"];
    let g = &r["range"];
    if !p.is_object() || !g.is_object() {
        return Err(bad_recurrence("A recurrence needs a pattern and a range."));
    }
    let kind = match p["type"].as_str().unwrap_or_default() {
        "daily" => Kind::Daily,
        "weekly" => Kind::Weekly,
        "absoluteMonthly" => Kind::AbsoluteMonthly,
        "relativeMonthly" => Kind::RelativeMonthly,
        "absoluteYearly" => Kind::AbsoluteYearly,
        "relativeYearly" => Kind::RelativeYearly,
        other => return Err(bad_recurrence(format!("Unknown pattern type '{other}'."))),
    };
    let interval = p["interval"].as_u64().unwrap_or(0);
    if interval == 0 || interval > 99 {
        return Err(bad_recurrence("The pattern's interval must be 1 to 99."));
    }
    let mut days = Vec::new();
    for d in p["daysOfWeek"].as_array().into_iter().flatten() {
        match d.as_str().and_then(weekday) {
            Some(w) => days.push(w),
            None => return Err(bad_recurrence(format!("Unknown day of week {d}."))),
        }
    }
    if days.is_empty()
        && matches!(
            kind,
            Kind::Weekly | Kind::RelativeMonthly | Kind::RelativeYearly
        )
    {
        return Err(bad_recurrence("This pattern needs daysOfWeek."));
    }
    let day_of_month = p["dayOfMonth"].as_u64().unwrap_or(0) as u32;
    if matches!(kind, Kind::AbsoluteMonthly | Kind::AbsoluteYearly)
        && !(1..=31).contains(&day_of_month)
    {
        return Err(bad_recurrence(
            "This pattern needs a dayOfMonth of 1 to 31.",
        ));
    }
    let month = p["month"].as_u64().unwrap_or(0) as u32;
    if matches!(kind, Kind::AbsoluteYearly | Kind::RelativeYearly) && !(1..=12).contains(&month) {
        return Err(bad_recurrence("This pattern needs a month of 1 to 12."));
    }
    let index = match p["index"].as_str().unwrap_or("first") {
        "first" => 0,
        "second" => 1,
        "third" => 2,
        "fourth" => 3,
        "last" => usize::MAX,
        other => return Err(bad_recurrence(format!("Unknown index '{other}'."))),
    };
    let first_day = match p.get("firstDayOfWeek").and_then(Value::as_str) {
        None => chrono::Weekday::Sun,
        Some(d) => weekday(d).ok_or_else(|| bad_recurrence("Unknown firstDayOfWeek."))?,
    };
    let date = |v: &Value, what: &str| {
        v.as_str()
            .and_then(|s| NaiveDate::parse_from_str(s, "%Y-%m-%d").ok())
            .ok_or_else(|| bad_recurrence(format!("The range needs a {what} (yyyy-MM-dd).")))
    };
    let start_date = date(&g["startDate"], "startDate")?;
    if start_date != start_local.date() {
        return Err(bad_recurrence(
            "The range's startDate must be the date of the event's start.",
        ));
    }
    let (end_date, count) = match g["type"].as_str().unwrap_or_default() {
        "noEnd" => (None, None),
        "endDate" => {
            let e = date(&g["endDate"], "endDate")?;
            if e < start_date {
                return Err(bad_recurrence(
                    "The range's endDate is before its startDate.",
                ));
            }
            (Some(e), None)
        }
        "numbered" => match g["numberOfOccurrences"].as_u64() {
            Some(n) if n >= 1 => (None, Some(n as usize)),
            _ => {
                return Err(bad_recurrence(
                    "A numbered range needs numberOfOccurrences ≥ 1.",
                ));
            }
        },
        other => return Err(bad_recurrence(format!("Unknown range type '{other}'."))),
    };
    let tz_name = g["recurrenceTimeZone"]
        .as_str()
        .filter(|s| !s.is_empty())
        .or_else(|| start["timeZone"].as_str())
        .unwrap_or("UTC");
    let tz = zone(tz_name).ok_or_else(|| unsupported_zone(tz_name))?;
    let time = start_at.with_timezone(&tz).naive_local().time();
    Ok(Series {
        kind,
        interval: interval as u32,
        days,
        first_day,
        day_of_month,
        month,
        index,
        start_date,
        end_date,
        count,
        tz,
        time,
        duration,
    })
}

fn add_months(d: NaiveDate, months: u32) -> Option<(i32, u32)> {
    let m0 = d.month0() + months;
    Some((d.year() + (m0 / 12) as i32, m0 % 12 + 1))
}

fn days_in_month(year: i32, month: u32) -> u32 {
    let next = if month == 12 {
        NaiveDate::from_ymd_opt(year + 1, 1, 1)
    } else {
        NaiveDate::from_ymd_opt(year, month + 1, 1)
    };
    next.and_then(|n| n.pred_opt()).map_or(28, |d| d.day())
}

/// `dayOfMonth` in a month; a month without that day has it on its last day (Outlook's rule).
fn absolute(year: i32, month: u32, day: u32) -> Vec<NaiveDate> {
    NaiveDate::from_ymd_opt(year, month, day.min(days_in_month(year, month)))
        .into_iter()
        .collect()
}

/// The `index`-th day of the month that is one of `days` (`usize::MAX`: the last).
fn relative(year: i32, month: u32, days: &[chrono::Weekday], index: usize) -> Vec<NaiveDate> {
    let all: Vec<NaiveDate> = (1..=days_in_month(year, month))
        .filter_map(|d| NaiveDate::from_ymd_opt(year, month, d))
        .filter(|d| days.contains(&d.weekday()))
        .collect();
    let pick = if index == usize::MAX {
        all.last()
    } else {
        all.get(index)
    };
    pick.copied().into_iter().collect()
}

impl Series {
    /// The dates of period `k` (the k-th day, week, month or year of the pattern), sorted.
    fn period(&self, k: u32) -> Vec<NaiveDate> {
        let step = k.saturating_mul(self.interval);
        match self.kind {
            Kind::Daily => self
                .start_date
                .checked_add_signed(Duration::days(step as i64))
                .into_iter()
                .collect(),
            Kind::Weekly => {
                let back = (7 + self.start_date.weekday().num_days_from_monday()
                    - self.first_day.num_days_from_monday())
                    % 7;
                let week =
                    self.start_date - Duration::days(back as i64) + Duration::weeks(step as i64);
                (0..7)
                    .map(|i| week + Duration::days(i))
                    .filter(|d| self.days.contains(&d.weekday()))
                    .collect()
            }
            Kind::AbsoluteMonthly | Kind::RelativeMonthly => {
                let Some((y, m)) = add_months(self.start_date, step) else {
                    return Vec::new();
                };
                if self.kind == Kind::AbsoluteMonthly {
                    absolute(y, m, self.day_of_month)
                } else {
                    relative(y, m, &self.days, self.index)
                }
            }
            Kind::AbsoluteYearly | Kind::RelativeYearly => {
                let y = self.start_date.year() + step as i32;
                if self.kind == Kind::AbsoluteYearly {
                    absolute(y, self.month, self.day_of_month)
                } else {
                    relative(y, self.month, &self.days, self.index)
                }
            }
        }
    }

    /// The original starts of the series' occurrences before `until`, in order (cancelled
    /// ones included; at most 5,000).
    pub(crate) fn starts_before(&self, until: DateTime<Utc>) -> Vec<DateTime<Utc>> {
        let mut out = Vec::new();
        for k in 0..20_000u32 {
            for d in self.period(k) {
                if d < self.start_date {
                    continue;
                }
                if self.end_date.is_some_and(|e| d > e) {
                    return out;
                }
                let at = resolve(self.tz, d.and_time(self.time));
                if at >= until || out.len() >= 5_000 {
                    return out;
                }
                out.push(at);
                if self.count.is_some_and(|n| out.len() >= n) {
                    return out;
                }
            }
        }
        out
    }

    /// Whether `at` is an occurrence's original start.
    pub(crate) fn has_occurrence(&self, at: DateTime<Utc>) -> bool {
        self.starts_before(at + Duration::seconds(1)).contains(&at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn series(rec: Value, start: &str, zone: &str) -> Series {
        let props = json!({"start": {"dateTime": start, "timeZone": zone},
            "end": {"dateTime": start, "timeZone": zone}, "recurrence": rec});
        validate_event(props.as_object().unwrap()).unwrap().unwrap()
    }

    #[test]
    fn relative_monthly_last_friday() {
        let s = series(
            json!({"pattern": {"type": "relativeMonthly", "interval": 1, "daysOfWeek": ["friday"], "index": "last"},
                "range": {"type": "numbered", "startDate": "2027-01-29", "numberOfOccurrences": 3}}),
            "2027-01-29T10:00:00",
            "UTC",
        );
        let got: Vec<String> = s
            .starts_before(Utc::now() + Duration::days(99_999))
            .iter()
            .map(|d| d.to_rfc3339())
            .collect();
        assert_eq!(
            got,
            [
                "2027-01-29T10:00:00+00:00",
                "2027-02-26T10:00:00+00:00",
                "2027-03-26T10:00:00+00:00"
            ]
        );
    }

    #[test]
    fn zones_windows_iana_and_unknown() {
        assert!(zone("W. Europe Standard Time").is_some());
        assert!(zone("Europe/Paris").is_some());
        assert!(zone("Mars Standard Time").is_none());
    }
}
