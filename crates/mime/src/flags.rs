//! IMAP message state that travels with the raw bytes: flags, keywords and INTERNALDATE.

use std::fmt;

/// The IMAP flags and keywords of one message (RFC 9051 §2.3.2).
///
/// System flags are plain booleans; every other flag (keywords such as `$Forwarded`,
/// `$Label1`, `Important`) is kept verbatim in [`Flags::keywords`], in the order given.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Flags {
    /// `\Seen`: the message has been read.
    pub seen: bool,
    /// `\Flagged`: the message is flagged for attention.
    pub flagged: bool,
    /// `\Answered`: the message has been answered.
    pub answered: bool,
    /// `\Draft`: the message is a draft.
    pub draft: bool,
    /// `\Deleted`: the message is marked for removal.
    pub deleted: bool,
    /// Keywords (any flag not starting with a backslash), verbatim.
    pub keywords: Vec<String>,
}

impl Flags {
    /// Flags from IMAP flag atoms as a server sends them in a `FLAGS (...)` list.
    ///
    /// System flags compare case-insensitively; `\Recent` and unknown backslash flags are
    /// ignored (they cannot be set by a client); keywords are kept verbatim, without duplicates.
    ///
    /// ```
    /// let f = o365_migrate_mime::Flags::from_imap(["\\Seen", "$Forwarded", "\\flagged"]);
    /// assert!(f.seen && f.flagged && !f.draft);
    /// assert_eq!(f.keywords, vec!["$Forwarded".to_string()]);
    /// ```
    pub fn from_imap<'a, I>(atoms: I) -> Self
    where
        I: IntoIterator<Item = &'a str>,
    {
        let mut flags = Self::default();
        for atom in atoms {
            let atom = atom.trim();
            if atom.is_empty() {
                continue;
            }
            if let Some(system) = atom.strip_prefix('\\') {
                match system.to_ascii_lowercase().as_str() {
                    "seen" => flags.seen = true,
                    "flagged" => flags.flagged = true,
                    "answered" => flags.answered = true,
                    "draft" => flags.draft = true,
                    "deleted" => flags.deleted = true,
                    _ => {}
                }
            } else if !flags.keywords.iter().any(|k| k == atom) {
                flags.keywords.push(atom.to_string());
            }
        }
        flags
    }

    /// The flags as IMAP atoms for `APPEND` or `STORE` (system flags first, then keywords),
    /// and the keywords that cannot be sent because they are not IMAP atoms (RFC 9051
    /// `flag-keyword`): callers name those in their report instead of dropping them silently.
    ///
    /// ```
    /// let f = o365_migrate_mime::Flags::from_imap(["\\Seen", "$Forwarded", "bad word"]);
    /// let (atoms, rejected) = f.to_imap();
    /// assert_eq!(atoms, ["\\Seen", "$Forwarded"]);
    /// assert_eq!(rejected, ["bad word"]);
    /// ```
    pub fn to_imap(&self) -> (Vec<String>, Vec<String>) {
        let mut out = Vec::with_capacity(5 + self.keywords.len());
        for (set, name) in [
            (self.seen, "\\Seen"),
            (self.flagged, "\\Flagged"),
            (self.answered, "\\Answered"),
            (self.draft, "\\Draft"),
            (self.deleted, "\\Deleted"),
        ] {
            if set {
                out.push(name.to_string());
            }
        }
        let mut rejected = Vec::new();
        for k in &self.keywords {
            let atom = !k.is_empty()
                && !k.starts_with('\\')
                && k.bytes().all(|b| {
                    b.is_ascii_graphic()
                        && !matches!(b, b'(' | b')' | b'{' | b'"' | b'%' | b'*' | b']')
                });
            if atom {
                out.push(k.clone());
            } else {
                rejected.push(k.clone());
            }
        }
        (out, rejected)
    }
}

/// An instant with the UTC offset it was recorded in, such as an IMAP `INTERNALDATE`.
///
/// Holds whole seconds since the Unix epoch and an offset in minutes east of UTC; years
/// 0000–9999 only, offsets within ±23:59.
///
/// ```
/// use o365_migrate_mime::InternalDate;
/// let d = InternalDate::new(837_596_665, -7 * 60).unwrap();
/// assert_eq!(d.to_rfc3339(), "1996-07-17T02:44:25-07:00");
/// assert_eq!(d.to_utc_iso8601(), "1996-07-17T09:44:25Z");
/// assert_eq!(d.to_imap(), "17-Jul-1996 02:44:25 -0700");
/// assert_eq!(InternalDate::parse_imap("17-Jul-1996 02:44:25 -0700"), Some(d));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct InternalDate {
    unix_seconds: i64,
    offset_minutes: i16,
}

const MIN_UNIX: i64 = -62_167_219_200; // 0000-01-01T00:00:00Z
const MAX_UNIX: i64 = 253_402_300_799; // 9999-12-31T23:59:59Z
const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

impl InternalDate {
    /// 1970-01-01T00:00:00Z.
    pub const UNIX_EPOCH: Self = Self {
        unix_seconds: 0,
        offset_minutes: 0,
    };

    /// Like [`InternalDate::new`], with an error naming the bad value.
    pub fn try_new(unix_seconds: i64, offset_minutes: i16) -> Result<Self, crate::Error> {
        Self::new(unix_seconds, offset_minutes).ok_or_else(|| {
            crate::Error::InvalidDate(format!("{unix_seconds} s, offset {offset_minutes} min"))
        })
    }

    /// An instant from seconds since the Unix epoch and the offset (minutes east of UTC)
    /// it was recorded in. `None` when the offset is beyond ±23:59 or the local date falls
    /// outside the years 0000–9999.
    pub fn new(unix_seconds: i64, offset_minutes: i16) -> Option<Self> {
        if !(-1439..=1439).contains(&offset_minutes) {
            return None;
        }
        let local = unix_seconds.checked_add(i64::from(offset_minutes) * 60)?;
        if !(MIN_UNIX..=MAX_UNIX).contains(&unix_seconds) || !(MIN_UNIX..=MAX_UNIX).contains(&local)
        {
            return None;
        }
        Some(Self {
            unix_seconds,
            offset_minutes,
        })
    }

    /// An instant in UTC (offset zero). `None` outside the years 0000–9999.
    pub fn from_unix_utc(unix_seconds: i64) -> Option<Self> {
        Self::new(unix_seconds, 0)
    }

    /// Seconds since 1970-01-01T00:00:00Z.
    pub fn unix_seconds(&self) -> i64 {
        self.unix_seconds
    }

    /// The original offset from UTC in minutes (east positive).
    pub fn offset_minutes(&self) -> i16 {
        self.offset_minutes
    }

    /// RFC 3339 with the original offset, e.g. `1996-07-17T02:44:25-07:00`.
    pub fn to_rfc3339(&self) -> String {
        let (y, mo, d, h, mi, s) = civil(self.unix_seconds + i64::from(self.offset_minutes) * 60);
        let (sign, off) = sign_abs(self.offset_minutes);
        format!(
            "{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}{sign}{:02}:{:02}",
            off / 60,
            off % 60
        )
    }

    /// ISO 8601 in UTC with a `Z` suffix, e.g. `1996-07-17T09:44:25Z` (the form Graph
    /// `SystemTime` extended properties take).
    pub fn to_utc_iso8601(&self) -> String {
        let (y, mo, d, h, mi, s) = civil(self.unix_seconds);
        format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}Z")
    }

    /// The IMAP `date-time` form (RFC 9051), e.g. `17-Jul-1996 02:44:25 -0700`.
    pub fn to_imap(&self) -> String {
        let (y, mo, d, h, mi, s) = civil(self.unix_seconds + i64::from(self.offset_minutes) * 60);
        let (sign, off) = sign_abs(self.offset_minutes);
        let month = MONTHS
            .get(usize::from(mo).saturating_sub(1))
            .unwrap_or(&"Jan");
        format!(
            "{d:02}-{month}-{y:04} {h:02}:{mi:02}:{s:02} {sign}{:02}{:02}",
            off / 60,
            off % 60
        )
    }

    /// The IMAP `date` form of the UTC day (RFC 9051 `SEARCH SINCE` / `BEFORE`), e.g.
    /// `1-Feb-1994`.
    ///
    /// ```
    /// let d = o365_migrate_mime::InternalDate::from_unix_utc(0).unwrap();
    /// assert_eq!(d.to_imap_search_day(), "1-Jan-1970");
    /// ```
    pub fn to_imap_search_day(&self) -> String {
        let (y, mo, d, ..) = civil(self.unix_seconds);
        let month = MONTHS
            .get(usize::from(mo).saturating_sub(1))
            .unwrap_or(&"Jan");
        format!("{d}-{month}-{y}")
    }

    /// Parses the IMAP `date-time` form (`" 7-Jul-1996 02:44:25 -0700"`, the day may be
    /// space-padded; surrounding quotes are accepted). `None` when malformed.
    pub fn parse_imap(s: &str) -> Option<Self> {
        let s = s.trim().trim_matches('"').trim();
        let (date, rest) = s.split_once(' ')?;
        let (time, zone) = rest.trim().split_once(' ')?;
        let mut dp = date.split('-');
        let day: u32 = dp.next()?.trim().parse().ok()?;
        let mon = dp.next()?;
        let month = MONTHS.iter().position(|m| m.eq_ignore_ascii_case(mon))? as u32 + 1;
        let year: i64 = dp.next()?.parse().ok()?;
        if dp.next().is_some() || !(1..=31).contains(&day) {
            return None;
        }
        let mut tp = time.split(':');
        let h: i64 = tp.next()?.parse().ok()?;
        let mi: i64 = tp.next()?.parse().ok()?;
        let sec: i64 = tp.next()?.parse().ok()?;
        if tp.next().is_some() || h > 23 || mi > 59 || sec > 60 || h < 0 || mi < 0 || sec < 0 {
            return None;
        }
        let zone = zone.trim();
        let (neg, digits) = match zone.as_bytes().first()? {
            b'+' => (false, zone.get(1..)?),
            b'-' => (true, zone.get(1..)?),
            _ => return None,
        };
        if digits.len() != 4 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let zh: i16 = digits.get(..2)?.parse().ok()?;
        let zm: i16 = digits.get(2..)?.parse().ok()?;
        if zm > 59 {
            return None;
        }
        let off = (zh * 60 + zm) * if neg { -1 } else { 1 };
        let local = days_from_civil(year, month, day) * 86_400 + h * 3600 + mi * 60 + sec.min(59);
        Self::new(local - i64::from(off) * 60, off)
    }
}

impl fmt::Display for InternalDate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_rfc3339())
    }
}

fn sign_abs(offset_minutes: i16) -> (char, i32) {
    let off = i32::from(offset_minutes);
    (if off < 0 { '-' } else { '+' }, off.abs())
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

/// (year, month, day, hour, minute, second) of a Unix timestamp read as UTC.
pub(crate) fn civil(t: i64) -> (i64, u8, u8, u8, u8, u8) {
    let days = t.div_euclid(86_400);
    let secs = t.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (
        y,
        m as u8,
        d as u8,
        (secs / 3600) as u8,
        (secs % 3600 / 60) as u8,
        (secs % 60) as u8,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_round_trip() {
        for t in [MIN_UNIX, -1, 0, 1, 951_782_400, 1_700_000_000, MAX_UNIX] {
            let (y, m, d, h, mi, s) = civil(t);
            let back = days_from_civil(y, u32::from(m), u32::from(d)) * 86_400
                + i64::from(h) * 3600
                + i64::from(mi) * 60
                + i64::from(s);
            assert_eq!(back, t);
        }
        assert_eq!(civil(951_782_400), (2000, 2, 29, 0, 0, 0));
    }

    #[test]
    fn rejects_bad_offsets_and_years() {
        assert!(InternalDate::new(0, 1440).is_none());
        assert!(InternalDate::new(MAX_UNIX + 1, 0).is_none());
        assert!(InternalDate::parse_imap("31-Foo-2020 00:00:00 +0000").is_none());
        assert!(InternalDate::parse_imap("1-Jan-2020 00:00:00 0000").is_none());
        let d = InternalDate::parse_imap("\" 1-Jan-2020 23:59:59 +0530\"").unwrap();
        assert_eq!(d.to_rfc3339(), "2020-01-01T23:59:59+05:30");
        assert_eq!(d.to_utc_iso8601(), "2020-01-01T18:29:59Z");
    }

    #[test]
    fn flags_round_trip() {
        let f = Flags::from_imap(["\\SEEN", "\\Recent", "$Label1", "$Label1", "\\Draft"]);
        assert_eq!(f.to_imap().0, vec!["\\Seen", "\\Draft", "$Label1"]);
    }
}
