//! IMAP `date-time` (INTERNALDATE), e.g. `17-Jul-1996 02:44:25 -0700`.

use crate::Error;
use std::fmt;

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// An instant with the UTC offset it was written in (IMAP INTERNALDATE).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct InternalDate {
    /// Seconds since 1970-01-01T00:00:00Z.
    pub unix: i64,
    /// Offset from UTC in minutes (e.g. -420 for `-0700`).
    pub offset_minutes: i16,
}

fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

impl InternalDate {
    /// Builds a date from Unix seconds and an offset in minutes.
    pub fn from_unix(unix: i64, offset_minutes: i16) -> Self {
        InternalDate {
            unix,
            offset_minutes,
        }
    }

    /// Parses the IMAP form `dd-Mon-yyyy hh:mm:ss +zzzz` (day may be space-padded).
    ///
    /// ```
    /// let d = o365_migrate_imap::InternalDate::parse("17-Jul-1996 02:44:25 -0700").unwrap();
    /// assert_eq!(d.unix, 837_596_665);
    /// assert_eq!(d.to_string(), "17-Jul-1996 02:44:25 -0700");
    /// ```
    pub fn parse(s: &str) -> Result<Self, Error> {
        let bad = || Error::protocol("invalid INTERNALDATE", s.as_bytes());
        let s = s.trim();
        let (date, rest) = s.split_once(' ').ok_or_else(bad)?;
        let mut dp = date.split('-');
        let day: u32 = dp
            .next()
            .ok_or_else(bad)?
            .trim()
            .parse()
            .map_err(|_| bad())?;
        let mon = dp.next().ok_or_else(bad)?;
        let month = MONTHS
            .iter()
            .position(|m| m.eq_ignore_ascii_case(mon))
            .ok_or_else(bad)? as u32
            + 1;
        let year: i64 = dp.next().ok_or_else(bad)?.parse().map_err(|_| bad())?;
        let (time, zone) = rest.trim_start().split_once(' ').ok_or_else(bad)?;
        let mut tp = time.split(':');
        let mut next = || -> Result<i64, Error> {
            tp.next().ok_or_else(bad)?.parse::<i64>().map_err(|_| bad())
        };
        let (h, mi, se) = (next()?, next()?, next()?);
        let zone = zone.trim();
        if zone.len() != 5 || !(1..=31).contains(&day) || h > 23 || mi > 59 || se > 60 {
            return Err(bad());
        }
        let sign = match zone.as_bytes().first() {
            Some(b'+') => 1,
            Some(b'-') => -1,
            _ => return Err(bad()),
        };
        let zh: i64 = zone.get(1..3).ok_or_else(bad)?.parse().map_err(|_| bad())?;
        let zm: i64 = zone.get(3..5).ok_or_else(bad)?.parse().map_err(|_| bad())?;
        let offset = sign * (zh * 60 + zm);
        let days = days_from_civil(year, month, day);
        let unix = days * 86_400 + h * 3600 + mi * 60 + se - offset * 60;
        Ok(InternalDate {
            unix,
            offset_minutes: offset as i16,
        })
    }
}

impl fmt::Display for InternalDate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let local = self.unix + i64::from(self.offset_minutes) * 60;
        let days = local.div_euclid(86_400);
        let secs = local.rem_euclid(86_400);
        let (y, m, d) = civil_from_days(days);
        let off = self.offset_minutes;
        let sign = if off < 0 { '-' } else { '+' };
        let off = off.unsigned_abs();
        write!(
            f,
            "{:02}-{}-{:04} {:02}:{:02}:{:02} {}{:02}{:02}",
            d,
            MONTHS[(m as usize).saturating_sub(1).min(11)],
            y,
            secs / 3600,
            secs % 3600 / 60,
            secs % 60,
            sign,
            off / 60,
            off % 60
        )
    }
}

/// Formats a UTC day for UID SEARCH SINCE/BEFORE (`1-Feb-1994`) from Unix seconds.
pub(crate) fn search_date(unix: i64) -> String {
    let (y, m, d) = civil_from_days(unix.div_euclid(86_400));
    format!(
        "{}-{}-{}",
        d,
        MONTHS[(m as usize).saturating_sub(1).min(11)],
        y
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_padding() {
        let d = InternalDate::parse(" 1-Feb-2024 23:59:59 +0130").unwrap();
        assert_eq!(d.to_string(), "01-Feb-2024 23:59:59 +0130");
        assert_eq!(InternalDate::parse(&d.to_string()).unwrap(), d);
        assert!(InternalDate::parse("garbage").is_err());
        assert!(InternalDate::parse("99-Foo-2024 00:00:00 +0000").is_err());
        assert_eq!(search_date(0), "1-Jan-1970");
    }
}
