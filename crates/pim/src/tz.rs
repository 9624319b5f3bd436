//! Time-zone names for Graph's `dateTimeTimeZone`.
//!
//! Graph v1.0 "dateTimeTimeZone resource type": `timeZone` "can be set to any of the time
//! zones currently supported by Windows, as well as the other time zones supported by the
//! calendar API" (a short list of IANA names), and "methods such as create or update might not
//! support all" of them. So we always write the Windows name: IANA -> Windows through CLDR's
//! windowsZones table ([`crate::windows_zones`], generated, source named there).

use chrono::{Datelike, NaiveDate, NaiveDateTime, Offset, TimeZone, Weekday};

use crate::windows_zones::{IANA_TO_WINDOWS, WINDOWS_TO_IANA};

/// Windows name for a TZID that is an IANA zone CLDR lists, or already a Windows name.
pub(crate) fn windows_name(tzid: &str) -> Option<&'static str> {
    let tzid = tzid.trim();
    if matches!(tzid, "UTC" | "Etc/UTC" | "GMT" | "Etc/GMT" | "Z") {
        return Some("UTC");
    }
    if let Ok(i) = WINDOWS_TO_IANA.binary_search_by(|(w, _)| (*w).cmp(tzid)) {
        return Some(WINDOWS_TO_IANA[i].0);
    }
    IANA_TO_WINDOWS
        .binary_search_by(|(i, _)| (*i).cmp(tzid))
        .ok()
        .map(|i| IANA_TO_WINDOWS[i].1)
}

/// The IANA zone behind a Windows name (CLDR's primary, territory "001").
pub(crate) fn iana_of_windows(win: &str) -> Option<chrono_tz::Tz> {
    if win == "UTC" {
        return Some(chrono_tz::UTC);
    }
    iana_for_windows(win)?.parse().ok()
}

/// The IANA zone name CLDR maps a Windows time-zone name to (its primary zone, territory
/// "001"), e.g. `W. Europe Standard Time` → `Europe/Berlin`; `UTC` → `Etc/UTC`; `None` for a
/// name CLDR does not list. Exact (case-sensitive) match, as Windows names are spelled.
pub fn iana_for_windows(name: &str) -> Option<&'static str> {
    if name == "UTC" {
        return Some("Etc/UTC");
    }
    WINDOWS_TO_IANA
        .binary_search_by(|(w, _)| (*w).cmp(name))
        .ok()
        .map(|i| WINDOWS_TO_IANA[i].1)
}

fn offset_at(tz: chrono_tz::Tz, d: NaiveDate) -> i32 {
    tz.offset_from_utc_date(&d).fix().local_minus_utc()
}

/// One yearly transition of a VTIMEZONE (`STANDARD` or `DAYLIGHT` with an RRULE such as
/// `FREQ=YEARLY;BYMONTH=3;BYDAY=-1SU`): from one offset to another on the n-th weekday.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Rule {
    pub(crate) from: i32,
    pub(crate) to: i32,
    month: u32,
    ord: i32,
    weekday: Weekday,
}

/// Reads the usual yearly rule; anything else (BYMONTHDAY, several days, ...) gives `None`.
pub(crate) fn parse_rule(rrule: &str, from: i32, to: i32) -> Option<Rule> {
    let mut month = None;
    let mut day = None;
    for part in rrule.split(';') {
        let (k, v) = part.split_once('=')?;
        match k.trim().to_ascii_uppercase().as_str() {
            "FREQ" if !v.eq_ignore_ascii_case("YEARLY") => return None,
            "BYMONTH" => month = v.trim().parse::<u32>().ok(),
            "BYDAY" => day = Some(v.trim().to_ascii_uppercase()),
            "FREQ" | "UNTIL" | "COUNT" | "INTERVAL" | "WKST" => {}
            _ => return None,
        }
    }
    let day = day?;
    let (ord, wd) = day.split_at(day.len().checked_sub(2)?);
    let weekday = match wd {
        "MO" => Weekday::Mon,
        "TU" => Weekday::Tue,
        "WE" => Weekday::Wed,
        "TH" => Weekday::Thu,
        "FR" => Weekday::Fri,
        "SA" => Weekday::Sat,
        "SU" => Weekday::Sun,
        _ => return None,
    };
    let ord: i32 = ord.trim_start_matches('+').parse().ok()?;
    Some(Rule {
        from,
        to,
        month: month.filter(|m| (1..=12).contains(m))?,
        ord,
        weekday,
    })
}

fn nth_weekday(year: i32, month: u32, ord: i32, wd: Weekday) -> Option<NaiveDate> {
    if ord > 0 {
        NaiveDate::from_weekday_of_month_opt(year, month, wd, u8::try_from(ord).ok()?)
    } else if ord == -1 {
        let last = NaiveDate::from_ymd_opt(year + i32::from(month == 12), month % 12 + 1, 1)?
            .pred_opt()?;
        let back = (7 + last.weekday().num_days_from_monday() - wd.num_days_from_monday()) % 7;
        last.checked_sub_days(chrono::Days::new(u64::from(back)))
    } else {
        None
    }
}

/// Whether IANA zone `iana` behaves like a VTIMEZONE in `year` (see [`match_zone`]).
pub(crate) fn fits(
    iana: &str,
    standard: i32,
    daylight: Option<i32>,
    rules: &[Rule],
    year: i32,
) -> bool {
    let (Some(jan), Some(jul)) = (
        NaiveDate::from_ymd_opt(year, 1, 15),
        NaiveDate::from_ymd_opt(year, 7, 15),
    ) else {
        return false;
    };
    let Ok(tz) = iana.parse::<chrono_tz::Tz>() else {
        return false;
    };
    let (a, b) = (offset_at(tz, jan), offset_at(tz, jul));
    let offsets = match daylight {
        Some(d) if d != standard => (a == standard && b == d) || (a == d && b == standard),
        _ => a == standard && b == standard,
    };
    offsets
        && rules.iter().all(|r| {
            let Some(d) = nth_weekday(year, r.month, r.ord, r.weekday) else {
                return true;
            };
            let (Some(before), Some(after)) = (
                d.checked_sub_days(chrono::Days::new(2)),
                d.checked_add_days(chrono::Days::new(2)),
            ) else {
                return true;
            };
            offset_at(tz, before) == r.from && offset_at(tz, after) == r.to
        })
}

/// The VTIMEZONE's offset on a local date: the daylight offset between its daylight and
/// standard transition days (northern or southern order), else the standard one. Without
/// readable rules, the standard offset.
pub(crate) fn offset_on(
    standard: i32,
    daylight: Option<i32>,
    rules: &[Rule],
    date: NaiveDate,
) -> i32 {
    let Some(dst) = daylight.filter(|d| *d != standard) else {
        return standard;
    };
    let day = |to: i32| {
        let r = rules.iter().find(|r| r.to == to)?;
        nth_weekday(date.year(), r.month, r.ord, r.weekday)
    };
    let (Some(on), Some(off)) = (day(dst), day(standard)) else {
        return standard;
    };
    let in_dst = if on < off {
        on <= date && date < off
    } else {
        !(off <= date && date < on)
    };
    if in_dst { dst } else { standard }
}

/// `+01:00` style.
pub(crate) fn show_offset(secs: i32) -> String {
    let sign = if secs < 0 { '-' } else { '+' };
    let a = secs.abs();
    format!("{sign}{:02}:{:02}", a / 3600, a % 3600 / 60)
}

/// Windows zones tried first when several match the same offsets (the most used ones).
const PREFERRED: &[&str] = &[
    "UTC",
    "GMT Standard Time",
    "W. Europe Standard Time",
    "Romance Standard Time",
    "Central Europe Standard Time",
    "E. Europe Standard Time",
    "FLE Standard Time",
    "Eastern Standard Time",
    "Central Standard Time",
    "Mountain Standard Time",
    "Pacific Standard Time",
    "AUS Eastern Standard Time",
    "New Zealand Standard Time",
];

/// A Windows zone that behaves like a VTIMEZONE in `year`: the same (standard, daylight)
/// offsets (seconds east of UTC) on 15 January and 15 July and, for each yearly transition
/// rule the VTIMEZONE gives, the rule's offsets two days before and after its date.
pub(crate) fn match_zone(
    standard: i32,
    daylight: Option<i32>,
    rules: &[Rule],
    year: i32,
) -> Option<&'static str> {
    let fits = |iana: &str| fits(iana, standard, daylight, rules, year);
    let preferred = PREFERRED.iter().filter_map(|w| {
        let i = WINDOWS_TO_IANA.binary_search_by(|(x, _)| x.cmp(w)).ok()?;
        Some(WINDOWS_TO_IANA[i])
    });
    preferred
        .chain(WINDOWS_TO_IANA.iter().copied())
        .find(|(_, iana)| fits(iana))
        .map(|(w, _)| w)
}

/// Local wall time in one zone -> local wall time in another (both Windows names).
pub(crate) fn convert_local(dt: NaiveDateTime, from: &str, to: &str) -> Option<NaiveDateTime> {
    if from == to {
        return Some(dt);
    }
    let f = iana_of_windows(from)?;
    let t = iana_of_windows(to)?;
    let utc = f.from_local_datetime(&dt).earliest()?.naive_utc();
    Some(t.from_utc_datetime(&utc).naive_local())
}

/// `+0100` / `-0530` / `+010000` -> seconds east of UTC.
pub(crate) fn parse_offset(s: &str) -> Option<i32> {
    let s = s.trim();
    let (sign, rest) = match s.as_bytes().first()? {
        b'+' => (1, &s[1..]),
        b'-' => (-1, &s[1..]),
        _ => (1, s),
    };
    if rest.len() < 4 || !rest.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let h: i32 = rest[0..2].parse().ok()?;
    let m: i32 = rest[2..4].parse().ok()?;
    let sec: i32 = if rest.len() >= 6 {
        rest[4..6].parse().ok()?
    } else {
        0
    };
    Some(sign * (h * 3600 + m * 60 + sec))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(
            windows_name("Europe/Berlin"),
            Some("W. Europe Standard Time")
        );
        assert_eq!(
            windows_name("America/New_York"),
            Some("Eastern Standard Time")
        );
        assert_eq!(
            windows_name("Pacific Standard Time"),
            Some("Pacific Standard Time")
        );
        assert_eq!(windows_name("Mars/Olympus_Mons"), None);
        assert_eq!(parse_offset("-0530"), Some(-(5 * 3600 + 30 * 60)));
        let eu = [
            parse_rule("FREQ=YEARLY;BYMONTH=3;BYDAY=-1SU", 3600, 7200).unwrap(),
            parse_rule("FREQ=YEARLY;BYMONTH=10;BYDAY=-1SU", 7200, 3600).unwrap(),
        ];
        assert_eq!(
            match_zone(3600, Some(7200), &eu, 2026),
            Some("W. Europe Standard Time")
        );
        let us = [
            parse_rule("FREQ=YEARLY;BYMONTH=3;BYDAY=2SU", -18000, -14400).unwrap(),
            parse_rule("FREQ=YEARLY;BYMONTH=11;BYDAY=1SU", -14400, -18000).unwrap(),
        ];
        assert_eq!(
            match_zone(-18000, Some(-14400), &us, 2026),
            Some("Eastern Standard Time")
        );
        // US offsets with EU dates: no Windows zone does that.
        let odd = [
            parse_rule("FREQ=YEARLY;BYMONTH=3;BYDAY=-1SU", -18000, -14400).unwrap(),
            parse_rule("FREQ=YEARLY;BYMONTH=10;BYDAY=-1SU", -14400, -18000).unwrap(),
        ];
        assert_eq!(match_zone(-18000, Some(-14400), &odd, 2026), None);
    }
}
