//! IMAP `date-time` values (INTERNALDATE), without a third-party date crate.

use std::fmt;

use crate::error::{Error, Result};

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// An IMAP `date-time` (RFC 3501 `INTERNALDATE`): an instant plus the UTC offset it was written in.
///
/// Equality (`==`) compares instant *and* offset; use [`ImapDate::same_instant`] to compare
/// what a server keeps (Dovecot's Maildir keeps the instant, not the offset).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct ImapDate {
    unix: i64,
    offset_minutes: i16,
}

impl ImapDate {
    /// Builds a date from seconds since the Unix epoch (UTC) and an offset in minutes east of UTC.
    ///
    /// Returns `None` when the offset is outside ±23:59.
    pub fn from_unix(unix_seconds: i64, offset_minutes: i16) -> Option<Self> {
        (offset_minutes.abs() < 24 * 60).then_some(ImapDate {
            unix: unix_seconds,
            offset_minutes,
        })
    }

    /// Builds a UTC (`+0000`) date from seconds since the Unix epoch.
    pub fn from_unix_utc(unix_seconds: i64) -> Self {
        ImapDate {
            unix: unix_seconds,
            offset_minutes: 0,
        }
    }

    /// Seconds since the Unix epoch (the instant, independent of the offset).
    pub fn unix_seconds(&self) -> i64 {
        self.unix
    }

    /// The offset east of UTC, in minutes, that the date is written in.
    pub fn offset_minutes(&self) -> i16 {
        self.offset_minutes
    }

    /// Whether both dates denote the same instant (offsets may differ).
    pub fn same_instant(&self, other: &ImapDate) -> bool {
        self.unix == other.unix
    }

    /// Parses an IMAP `date-time` such as `"17-Jul-1996 02:44:25 -0700"` (day may be
    /// space-padded; surrounding double quotes are accepted).
    pub fn parse(input: &str) -> Result<Self> {
        let bad = || Error::InvalidDate {
            input: input.to_owned(),
        };
        let s = input.trim().trim_matches('"').trim_start();
        let mut parts = s.split(' ').filter(|p| !p.is_empty());
        let (date, time, zone) = match (parts.next(), parts.next(), parts.next(), parts.next()) {
            (Some(d), Some(t), Some(z), None) => (d, t, z),
            _ => return Err(bad()),
        };
        let mut dp = date.split('-');
        let day: u32 = dp.next().and_then(|d| d.parse().ok()).ok_or_else(bad)?;
        let month = dp
            .next()
            .and_then(|m| MONTHS.iter().position(|x| x.eq_ignore_ascii_case(m)))
            .ok_or_else(bad)? as u32
            + 1;
        let year: i64 = dp.next().and_then(|y| y.parse().ok()).ok_or_else(bad)?;
        if dp.next().is_some() || !(1..=days_in_month(year, month)).contains(&day) {
            return Err(bad());
        }
        let mut tp = time.split(':').map(|x| x.parse::<i64>().ok());
        let (h, mi, se) = match (tp.next(), tp.next(), tp.next(), tp.next()) {
            (Some(Some(h)), Some(Some(m)), Some(Some(s)), None)
                if (0..24).contains(&h) && (0..60).contains(&m) && (0..61).contains(&s) =>
            {
                (h, m, s)
            }
            _ => return Err(bad()),
        };
        let zb = zone.as_bytes();
        if zb.len() != 5
            || !(zb[0] == b'+' || zb[0] == b'-')
            || !zb[1..].iter().all(u8::is_ascii_digit)
        {
            return Err(bad());
        }
        let zh: i16 = zone[1..3].parse().map_err(|_| bad())?;
        let zm: i16 = zone[3..5].parse().map_err(|_| bad())?;
        if zm >= 60 {
            return Err(bad());
        }
        let mut offset = zh * 60 + zm;
        if zb[0] == b'-' {
            offset = -offset;
        }
        let local = days_from_civil(year, month, day) * 86_400 + h * 3600 + mi * 60 + se;
        ImapDate::from_unix(local - i64::from(offset) * 60, offset).ok_or_else(bad)
    }

    /// Formats as an IMAP `date-time` without quotes, e.g. `17-Jul-1996 02:44:25 -0700`
    /// (two-digit day, as Dovecot writes it).
    pub fn to_imap(&self) -> String {
        let local = self.unix + i64::from(self.offset_minutes) * 60;
        let days = local.div_euclid(86_400);
        let secs = local.rem_euclid(86_400);
        let (y, m, d) = civil_from_days(days);
        let sign = if self.offset_minutes < 0 { '-' } else { '+' };
        let off = self.offset_minutes.unsigned_abs();
        format!(
            "{:02}-{}-{:04} {:02}:{:02}:{:02} {}{:02}{:02}",
            d,
            MONTHS[(m - 1) as usize],
            y,
            secs / 3600,
            secs / 60 % 60,
            secs % 60,
            sign,
            off / 60,
            off % 60
        )
    }

    /// Formats as an RFC 5322 `Date:` header value, e.g. `Wed, 17 Jul 1996 02:44:25 -0700`.
    pub fn to_rfc5322(&self) -> String {
        const WD: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
        let local = self.unix + i64::from(self.offset_minutes) * 60;
        let days = local.div_euclid(86_400);
        let imap = self.to_imap();
        let (d, rest) = imap.split_once('-').unwrap_or((&imap, ""));
        let (mon, rest) = rest.split_once('-').unwrap_or((rest, ""));
        format!(
            "{}, {} {} {}",
            WD[days.rem_euclid(7) as usize],
            d.trim_start_matches('0'),
            mon,
            rest
        )
    }
}

impl fmt::Display for ImapDate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_imap())
    }
}

impl fmt::Debug for ImapDate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ImapDate({})", self.to_imap())
    }
}

fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

pub(crate) fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        2 if is_leap(y) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 for a proleptic Gregorian date (H. Hinnant's algorithm).
pub(crate) fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The civil date of a day number since 1970-01-01.
pub(crate) fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_rfc3501_example() {
        let d = ImapDate::parse("\"17-Jul-1996 02:44:25 -0700\"").unwrap();
        assert_eq!(d.unix_seconds(), 837_596_665);
        assert_eq!(d.offset_minutes(), -420);
        assert_eq!(d.to_imap(), "17-Jul-1996 02:44:25 -0700");
        assert_eq!(d.to_rfc5322(), "Wed, 17 Jul 1996 02:44:25 -0700");
    }

    #[test]
    fn space_padded_day_and_same_instant() {
        let a = ImapDate::parse(" 1-Jan-2020 00:30:00 +0100").unwrap();
        let b = ImapDate::parse("31-Dec-2019 23:30:00 +0000").unwrap();
        assert!(a.same_instant(&b));
        assert_ne!(a, b);
        assert_eq!(a.to_imap(), "01-Jan-2020 00:30:00 +0100");
    }

    #[test]
    fn rejects_garbage() {
        for s in [
            "",
            "30-Feb-2020 00:00:00 +0000",
            "01-Foo-2020 00:00:00 +0000",
            "01-Jan-2020 24:00:00 +0000",
            "01-Jan-2020 00:00:00 0000",
            "01-Jan-2020 00:00:00 +00a0",
            "01-Jan-2020 00:00:00 +0000 x",
            "01-Jan-2020 00:00:00 +0\u{e9}0",
            "01-Jan-2020 00:00:00 +\u{e9}00",
        ] {
            assert!(ImapDate::parse(s).is_err(), "{s}");
        }
    }

    proptest::proptest! {
        #[test]
        fn roundtrip(unix in -2_000_000_000i64..4_000_000_000, off in -1439i16..1440) {
            let d = ImapDate::from_unix(unix, off).unwrap();
            let back = ImapDate::parse(&d.to_imap()).unwrap();
            proptest::prop_assert_eq!(back, d);
        }

        #[test]
        fn parse_never_panics(s in "\\PC{0,40}") {
            let _ = ImapDate::parse(&s);
        }

        #[test]
        fn parse_never_panics_near_valid(
            s in "[0-9 ]{1,2}-[A-Za-z\u{e9}]{3}-[0-9]{4} [0-9:\u{e9}]{8} [+-][0-9\u{e9}\u{1f600}]{1,4}"
        ) {
            let _ = ImapDate::parse(&s);
        }
    }
}
