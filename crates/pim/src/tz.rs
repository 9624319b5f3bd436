//! Time-zone names for Graph's `dateTimeTimeZone`.
//!
//! Graph v1.0 "dateTimeTimeZone resource type": `timeZone` "can be set to any of the time
//! zones currently supported by Windows, as well as the other time zones supported by the
//! calendar API" (a short list of IANA names), and "methods such as create or update might not
//! support all" of them. So we always write the Windows name: IANA -> Windows through CLDR's
//! windowsZones table ([`crate::windows_zones`], generated, source named there).

use chrono::{NaiveDate, NaiveDateTime, Offset, TimeZone};

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
    let i = WINDOWS_TO_IANA
        .binary_search_by(|(w, _)| (*w).cmp(win))
        .ok()?;
    WINDOWS_TO_IANA[i].1.parse().ok()
}

fn offset_at(tz: chrono_tz::Tz, d: NaiveDate) -> i32 {
    tz.offset_from_utc_date(&d).fix().local_minus_utc()
}

/// A Windows zone whose offsets in `year` are the VTIMEZONE's (standard, daylight) offsets
/// (seconds east of UTC): winter and summer offsets compared on 15 January and 15 July. The
/// transition dates are not compared; the caller reports the match as approximate.
pub(crate) fn match_offsets(
    standard: i32,
    daylight: Option<i32>,
    year: i32,
) -> Option<&'static str> {
    let jan = NaiveDate::from_ymd_opt(year, 1, 15)?;
    let jul = NaiveDate::from_ymd_opt(year, 7, 15)?;
    // Prefer the Windows zones whose display offsets are the plain ones first (table order).
    for (win, iana) in WINDOWS_TO_IANA {
        let Ok(tz) = iana.parse::<chrono_tz::Tz>() else {
            continue;
        };
        let (a, b) = (offset_at(tz, jan), offset_at(tz, jul));
        let ok = match daylight {
            None => a == standard && b == standard,
            Some(d) if d == standard => a == standard && b == standard,
            Some(d) => (a == standard && b == d) || (a == d && b == standard),
        };
        if ok {
            return Some(win);
        }
    }
    None
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
        assert!(match_offsets(3600, Some(7200), 2026).is_some());
    }
}
