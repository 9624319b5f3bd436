//! RRULE -> Graph `patternedRecurrence` (Graph v1.0 "patternedRecurrence", "recurrencePattern"
//! and "recurrenceRange" resource types): pattern types daily, weekly, absoluteMonthly,
//! relativeMonthly, absoluteYearly, relativeYearly; `interval`, `month`, `dayOfMonth`,
//! `daysOfWeek`, `firstDayOfWeek`, `index` (first, second, third, fourth, last); ranges
//! endDate, noEnd, numbered (`numberOfOccurrences`) with `startDate` and
//! `recurrenceTimeZone`.
//!
//! What Graph cannot express is an `Err` with every reason; the caller then does not create a
//! series at all rather than a simplified one.

use calcard::icalendar::{
    ICalendarDay, ICalendarFrequency, ICalendarRecurrenceRule, ICalendarWeekday,
};
use chrono::{Datelike, NaiveDate};
use serde_json::{Map, Value, json};

fn day_name(d: &ICalendarWeekday) -> &'static str {
    match d {
        ICalendarWeekday::Sunday => "sunday",
        ICalendarWeekday::Monday => "monday",
        ICalendarWeekday::Tuesday => "tuesday",
        ICalendarWeekday::Wednesday => "wednesday",
        ICalendarWeekday::Thursday => "thursday",
        ICalendarWeekday::Friday => "friday",
        ICalendarWeekday::Saturday => "saturday",
    }
}

fn weekday_name(d: chrono::Weekday) -> &'static str {
    match d {
        chrono::Weekday::Sun => "sunday",
        chrono::Weekday::Mon => "monday",
        chrono::Weekday::Tue => "tuesday",
        chrono::Weekday::Wed => "wednesday",
        chrono::Weekday::Thu => "thursday",
        chrono::Weekday::Fri => "friday",
        chrono::Weekday::Sat => "saturday",
    }
}

fn index_name(n: i16) -> Option<&'static str> {
    match n {
        1 => Some("first"),
        2 => Some("second"),
        3 => Some("third"),
        4 => Some("fourth"),
        -1 => Some("last"),
        _ => None,
    }
}

/// The one ordinal shared by all BYDAY entries, when they share one.
fn relative(
    byday: &[ICalendarDay],
    why: &mut Vec<String>,
) -> Option<(Vec<&'static str>, &'static str)> {
    let ords: Vec<Option<i16>> = byday.iter().map(|d| d.ordwk).collect();
    let first = ords.first().copied().flatten();
    if ords.iter().any(|o| *o != first) {
        why.push("BYDAY mixes different ordinals".into());
        return None;
    }
    let n = first?;
    let Some(idx) = index_name(n) else {
        why.push(format!(
            "BYDAY ordinal {n} (Graph has first..fourth and last)"
        ));
        return None;
    };
    Some((byday.iter().map(|d| day_name(&d.weekday)).collect(), idx))
}

/// `until` is the rule's UNTIL as a date in the series' zone (computed by the caller).
pub(crate) fn convert(
    rule: &ICalendarRecurrenceRule,
    start: NaiveDate,
    zone: &str,
    until: Option<NaiveDate>,
) -> Result<Value, Vec<String>> {
    let mut why = Vec::new();
    for (name, used) in [
        ("BYSECOND", !rule.bysecond.is_empty()),
        ("BYMINUTE", !rule.byminute.is_empty()),
        ("BYHOUR", !rule.byhour.is_empty()),
        ("BYYEARDAY", !rule.byyearday.is_empty()),
        ("BYWEEKNO", !rule.byweekno.is_empty()),
        ("BYSETPOS", !rule.bysetpos.is_empty()),
        ("RSCALE", rule.rscale.is_some()),
        ("SKIP", rule.skip.is_some()),
    ] {
        if used {
            why.push(name.to_string());
        }
    }
    if rule.bymonth.len() > 1 {
        why.push("BYMONTH with several months".into());
    }
    if rule.bymonth.iter().any(|m| m.is_leap()) {
        why.push("leap months".into());
    }
    if rule.bymonthday.len() > 1 {
        why.push("BYMONTHDAY with several days".into());
    }
    if rule.bymonthday.iter().any(|d| *d < 1) {
        why.push("negative BYMONTHDAY (days from the month's end)".into());
    }
    let interval = rule.interval.unwrap_or(1).max(1);
    let mut p = Map::new();
    let plain_days: Vec<&'static str> = rule
        .byday
        .iter()
        .filter(|d| d.ordwk.is_none())
        .map(|d| day_name(&d.weekday))
        .collect();
    match rule.freq {
        ICalendarFrequency::Daily => {
            if !rule.byday.is_empty() {
                if interval == 1
                    && plain_days.len() == rule.byday.len()
                    && rule.bymonthday.is_empty()
                    && rule.bymonth.is_empty()
                {
                    // Every day restricted to some weekdays is a weekly rule on those days.
                    p.insert("type".into(), json!("weekly"));
                    p.insert("daysOfWeek".into(), json!(plain_days));
                } else {
                    why.push("DAILY with BYDAY and an interval or ordinals".into());
                }
            } else {
                p.insert("type".into(), json!("daily"));
            }
            if !rule.bymonthday.is_empty() || !rule.bymonth.is_empty() {
                why.push("DAILY with BYMONTHDAY or BYMONTH".into());
            }
        }
        ICalendarFrequency::Weekly => {
            if plain_days.len() != rule.byday.len() {
                why.push("WEEKLY with ordinal BYDAY".into());
            }
            if !rule.bymonthday.is_empty() || !rule.bymonth.is_empty() {
                why.push("WEEKLY with BYMONTHDAY or BYMONTH".into());
            }
            let days = if plain_days.is_empty() {
                vec![weekday_name(start.weekday())]
            } else {
                plain_days
            };
            p.insert("type".into(), json!("weekly"));
            p.insert("daysOfWeek".into(), json!(days));
        }
        ICalendarFrequency::Monthly => {
            if !rule.bymonth.is_empty() {
                why.push("MONTHLY with BYMONTH".into());
            }
            match (rule.byday.is_empty(), rule.bymonthday.first()) {
                (true, day) => {
                    p.insert("type".into(), json!("absoluteMonthly"));
                    p.insert(
                        "dayOfMonth".into(),
                        json!(day.map_or(start.day() as i64, |d| *d as i64)),
                    );
                }
                (false, None) => {
                    if let Some((days, idx)) = relative(&rule.byday, &mut why) {
                        p.insert("type".into(), json!("relativeMonthly"));
                        p.insert("daysOfWeek".into(), json!(days));
                        p.insert("index".into(), json!(idx));
                    } else if why.is_empty() {
                        why.push(
                            "MONTHLY BYDAY without an ordinal (every such weekday of the month)"
                                .into(),
                        );
                    }
                }
                (false, Some(_)) => why.push("MONTHLY with both BYDAY and BYMONTHDAY".into()),
            }
        }
        ICalendarFrequency::Yearly => {
            let month = rule
                .bymonth
                .first()
                .map_or(start.month() as i64, |m| m.month() as i64);
            p.insert("month".into(), json!(month));
            match (rule.byday.is_empty(), rule.bymonthday.first()) {
                (true, day) => {
                    p.insert("type".into(), json!("absoluteYearly"));
                    p.insert(
                        "dayOfMonth".into(),
                        json!(day.map_or(start.day() as i64, |d| *d as i64)),
                    );
                }
                (false, None) => {
                    if rule.bymonth.is_empty() {
                        why.push("YEARLY BYDAY without BYMONTH".into());
                    } else if let Some((days, idx)) = relative(&rule.byday, &mut why) {
                        p.insert("type".into(), json!("relativeYearly"));
                        p.insert("daysOfWeek".into(), json!(days));
                        p.insert("index".into(), json!(idx));
                    } else if why.is_empty() {
                        why.push("YEARLY BYDAY without an ordinal".into());
                    }
                }
                (false, Some(_)) => why.push("YEARLY with both BYDAY and BYMONTHDAY".into()),
            }
        }
        ICalendarFrequency::Hourly
        | ICalendarFrequency::Minutely
        | ICalendarFrequency::Secondly => {
            why.push(format!("FREQ={:?} (Graph repeats at most daily)", rule.freq).to_uppercase());
        }
    }
    if !why.is_empty() {
        return Err(why);
    }
    p.insert("interval".into(), json!(interval));
    if p.get("type").and_then(Value::as_str) == Some("weekly") {
        // RFC 5545 §3.3.10: WKST defaults to MO.
        p.insert(
            "firstDayOfWeek".into(),
            json!(rule.wkst.as_ref().map_or("monday", day_name)),
        );
    }
    let mut r = Map::new();
    r.insert(
        "startDate".into(),
        json!(start.format("%Y-%m-%d").to_string()),
    );
    r.insert("recurrenceTimeZone".into(), json!(zone));
    if let Some(c) = rule.count {
        r.insert("type".into(), json!("numbered"));
        r.insert("numberOfOccurrences".into(), json!(c));
    } else if rule.until.is_some() {
        let Some(u) = until else {
            return Err(vec!["UNTIL is not a date".into()]);
        };
        r.insert("type".into(), json!("endDate"));
        r.insert("endDate".into(), json!(u.format("%Y-%m-%d").to_string()));
    } else {
        r.insert("type".into(), json!("noEnd"));
    }
    Ok(json!({ "pattern": Value::Object(p), "range": Value::Object(r) }))
}
