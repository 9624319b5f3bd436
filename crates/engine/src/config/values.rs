//! Value types of the job file (`ByteSize`, `CivilDate`, folder patterns) and the
//! deserializers for checked strings (regexes, URLs, countries, log levels).

use super::*;

/// A byte count written as an integer or with a unit: `"35MB"`, `"512 KiB"`, `"1.5GB"`.
///
/// Units are binary as mail admins and Exchange use them: `KB`/`KiB` = 1024, `MB`/`MiB` = 1024²,
/// `GB`/`GiB` = 1024³; `B` or no unit = bytes. Case-insensitive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct ByteSize(pub u64);

impl ByteSize {
    /// Parses `"35MB"` and friends.
    pub fn parse(s: &str) -> std::result::Result<ByteSize, String> {
        let t = s.trim();
        let split = t
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(t.len());
        let (num, unit) = t.split_at(split);
        let unit = unit.trim().to_ascii_lowercase();
        let mult: u64 = match unit.as_str() {
            "" | "b" => 1,
            "k" | "kb" | "kib" => 1 << 10,
            "m" | "mb" | "mib" => 1 << 20,
            "g" | "gb" | "gib" => 1 << 30,
            "t" | "tb" | "tib" => 1 << 40,
            _ => {
                return Err(format!(
                    "unknown size unit `{unit}`; write e.g. \"35MB\", \"512KB\" or \"1GB\""
                ));
            }
        };
        if num.is_empty() {
            return Err("a size needs a number, e.g. \"35MB\"".to_owned());
        }
        let bytes = if num.contains('.') {
            let f: f64 = num
                .parse()
                .map_err(|_| format!("`{num}` is not a number; write e.g. \"1.5GB\""))?;
            let v = f * mult as f64;
            if !v.is_finite() || v < 0.0 || v > u64::MAX as f64 {
                return Err("size out of range".to_owned());
            }
            v.round() as u64
        } else {
            let n: u64 = num
                .parse()
                .map_err(|_| format!("`{num}` is not a whole number"))?;
            n.checked_mul(mult).ok_or("size out of range")?
        };
        Ok(ByteSize(bytes))
    }
}

impl fmt::Display for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0;
        if b >= 1 << 30 && b.is_multiple_of(1 << 30) {
            write!(f, "{}GB", b >> 30)
        } else if b >= 1 << 20 && b.is_multiple_of(1 << 20) {
            write!(f, "{}MB", b >> 20)
        } else if b >= 1 << 10 && b.is_multiple_of(1 << 10) {
            write!(f, "{}KB", b >> 10)
        } else {
            write!(f, "{b}B")
        }
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = ByteSize;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a size such as \"35MB\" or a number of bytes")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> std::result::Result<ByteSize, E> {
                u64::try_from(v)
                    .map(ByteSize)
                    .map_err(|_| E::custom("a size cannot be negative"))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> std::result::Result<ByteSize, E> {
                Ok(ByteSize(v))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> std::result::Result<ByteSize, E> {
                ByteSize::parse(v).map_err(E::custom)
            }
        }
        d.deserialize_any(V)
    }
}

/// A calendar day (UTC), written `"2024-01-31"` or as a TOML date `2024-01-31`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct CivilDate {
    /// Year.
    pub year: i32,
    /// Month 1–12.
    pub month: u8,
    /// Day 1–31.
    pub day: u8,
}

impl CivilDate {
    /// Parses `YYYY-MM-DD`.
    pub fn parse(s: &str) -> std::result::Result<CivilDate, String> {
        let hint = "write a date as \"YYYY-MM-DD\", e.g. \"2024-01-31\"";
        let mut parts = s.trim().splitn(3, '-');
        let (Some(y), Some(m), Some(d)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(format!("not a date; {hint}"));
        };
        let (Ok(year), Ok(month), Ok(day)) = (y.parse::<i32>(), m.parse::<u8>(), d.parse::<u8>())
        else {
            return Err(format!("not a date; {hint}"));
        };
        let month_t =
            time::Month::try_from(month).map_err(|_| format!("no month {month}; {hint}"))?;
        time::Date::from_calendar_date(year, month_t, day)
            .map_err(|_| format!("{y}-{m} has no day {day}; {hint}"))?;
        Ok(CivilDate { year, month, day })
    }

    /// Unix seconds of this day's 00:00 UTC.
    pub fn unix_midnight(self) -> i64 {
        time::Month::try_from(self.month)
            .ok()
            .and_then(|m| time::Date::from_calendar_date(self.year, m, self.day).ok())
            .map(|d| d.midnight().assume_utc().unix_timestamp())
            .unwrap_or(0)
    }
}

impl fmt::Display for CivilDate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}-{:02}", self.year, self.month, self.day)
    }
}

impl<'de> Deserialize<'de> for CivilDate {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = CivilDate;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a date such as \"2024-01-31\"")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> std::result::Result<CivilDate, E> {
                CivilDate::parse(v).map_err(E::custom)
            }
            fn visit_map<A: de::MapAccess<'de>>(
                self,
                map: A,
            ) -> std::result::Result<CivilDate, A::Error> {
                // A native TOML date arrives as toml's private datetime map.
                let dt =
                    toml::value::Datetime::deserialize(de::value::MapAccessDeserializer::new(map))?;
                if dt.time.is_some() || dt.offset.is_some() {
                    return Err(de::Error::custom(
                        "give a day without time, e.g. 2024-01-31 (days are UTC)",
                    ));
                }
                CivilDate::parse(&dt.to_string()).map_err(de::Error::custom)
            }
        }
        d.deserialize_any(V)
    }
}

impl<'de> Deserialize<'de> for FolderPattern {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        parse_folder_pattern(&s).map_err(de::Error::custom)
    }
}

pub(super) fn parse_folder_pattern(s: &str) -> std::result::Result<FolderPattern, String> {
    if s.trim().is_empty() {
        return Err("an empty folder pattern matches nothing; remove it".to_owned());
    }
    if s.len() > 1 && s.starts_with('#') && s.ends_with('#') {
        if let Some(k) = WellKnownFolder::from_token(s) {
            return Ok(FolderPattern::WellKnown(k));
        }
        let tokens: Vec<&str> = WellKnownFolder::ALL.iter().map(|k| k.token()).collect();
        let mut msg = format!(
            "unknown folder token `{s}`; known tokens: {}",
            tokens.join(", ")
        );
        let inner: Vec<&str> = tokens.iter().map(|t| t.trim_matches('#')).collect();
        if let Some(best) = did_you_mean(s.trim_matches('#'), inner.iter().copied()) {
            msg.push_str(&format!("; did you mean `#{best}#`?"));
        }
        return Err(msg);
    }
    Ok(FolderPattern::Glob(s.to_owned()))
}

pub(super) fn de_regex<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<String, D::Error> {
    let s = String::deserialize(d)?;
    regex::Regex::new(&s).map_err(|e| {
        de::Error::custom(format!(
            "invalid regular expression: {}; check the pattern (regex crate syntax)",
            regex_error_text(&e)
        ))
    })?;
    Ok(s)
}

/// The useful last line of a regex error ("error: unclosed group" → "unclosed group").
pub(crate) fn regex_error_text(e: &regex::Error) -> String {
    let t = e.to_string();
    let last = t.lines().last().unwrap_or("").trim();
    last.strip_prefix("error: ").unwrap_or(last).to_owned()
}

pub(super) fn de_country<'de, D: Deserializer<'de>>(
    d: D,
) -> std::result::Result<Option<String>, D::Error> {
    let s = String::deserialize(d)?;
    if s.len() == 2 && s.bytes().all(|b| b.is_ascii_alphabetic()) {
        Ok(Some(s.to_ascii_uppercase()))
    } else {
        Err(de::Error::custom(
            "usage_location is a two-letter ISO 3166 country code, e.g. \"DE\" or \"US\"",
        ))
    }
}

pub(super) fn de_level<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<String, D::Error> {
    let s = String::deserialize(d)?.to_ascii_lowercase();
    const LEVELS: [&str; 5] = ["error", "warn", "info", "debug", "trace"];
    if LEVELS.contains(&s.as_str()) {
        Ok(s)
    } else {
        let mut m = format!("unknown log level `{s}`; use one of error, warn, info, debug, trace");
        if let Some(b) = did_you_mean(&s, LEVELS.iter().copied()) {
            m.push_str(&format!("; did you mean `{b}`?"));
        }
        Err(de::Error::custom(m))
    }
}

pub(super) fn check_url(s: &str) -> std::result::Result<(), String> {
    let lower = s.to_ascii_lowercase();
    if lower.starts_with("https://") {
        return Ok(());
    }
    if let Some(rest) = lower.strip_prefix("http://") {
        let host = rest.split(['/', '?']).next().unwrap_or("");
        let host = host
            .rsplit_once(':')
            .map(|(h, p)| {
                if p.chars().all(|c| c.is_ascii_digit()) {
                    h
                } else {
                    host
                }
            })
            .unwrap_or(host);
        if matches!(host, "localhost" | "127.0.0.1" | "[::1]") {
            return Ok(());
        }
        return Err("plain http:// is only allowed for a local emulator on 127.0.0.1 / localhost; use https://".to_owned());
    }
    Err("expected a URL starting with https://".to_owned())
}

pub(super) fn de_url<'de, D: Deserializer<'de>>(
    d: D,
) -> std::result::Result<Option<String>, D::Error> {
    let s = String::deserialize(d)?;
    check_url(&s).map_err(de::Error::custom)?;
    Ok(Some(s.trim_end_matches('/').to_owned()))
}

pub(super) fn de_url_required<'de, D: Deserializer<'de>>(
    d: D,
) -> std::result::Result<String, D::Error> {
    let s = String::deserialize(d)?;
    check_url(&s).map_err(de::Error::custom)?;
    Ok(s)
}
