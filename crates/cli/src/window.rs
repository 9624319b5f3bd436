//! `run --window HH:MM-HH:MM`: a daily time window (local time) the migration works in.

use std::fmt;
use std::time::Duration;

const DAY: u32 = 24 * 3600;

/// A daily window, as seconds after local midnight; `start > end` crosses midnight.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Window {
    start: u32,
    end: u32,
}

/// Where "now" is relative to the window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Position {
    /// Inside; the window closes after this long.
    Open(Duration),
    /// Outside; the window opens after this long.
    Closed(Duration),
}

impl Window {
    /// Parses `HH:MM-HH:MM` (seconds optional: `HH:MM:SS`). Start and end must differ.
    pub(crate) fn parse(s: &str) -> Result<Window, String> {
        let hint =
            "write it as HH:MM-HH:MM in local time, e.g. 22:00-06:00 (crossing midnight is fine)";
        let (a, b) = s
            .split_once('-')
            .ok_or_else(|| format!("--window `{s}` has no `-`; {hint}"))?;
        let start = parse_time(a.trim())
            .ok_or_else(|| format!("--window start `{a}` is not a time; {hint}"))?;
        let end = parse_time(b.trim())
            .ok_or_else(|| format!("--window end `{b}` is not a time; {hint}"))?;
        if start == end {
            return Err(format!(
                "--window `{s}` starts and ends at the same time; leave --window out to run without one"
            ));
        }
        Ok(Window { start, end })
    }

    /// Whether `now` (seconds after local midnight, fractional) is inside, and how long until
    /// that changes.
    pub(crate) fn position(&self, now: f64) -> Position {
        let now = now.rem_euclid(f64::from(DAY));
        let (s, e) = (f64::from(self.start), f64::from(self.end));
        let until = |t: f64| {
            let d = (t - now).rem_euclid(f64::from(DAY));
            Duration::from_secs_f64(if d == 0.0 { f64::from(DAY) } else { d })
        };
        let inside = if self.start < self.end {
            now >= s && now < e
        } else {
            now >= s || now < e
        };
        if inside {
            Position::Open(until(e))
        } else {
            Position::Closed(until(s))
        }
    }
}

fn parse_time(t: &str) -> Option<u32> {
    let mut it = t.split(':');
    let h: u32 = it.next()?.parse().ok()?;
    let m: u32 = it.next()?.parse().ok()?;
    let s: u32 = match it.next() {
        Some(s) => s.parse().ok()?,
        None => 0,
    };
    if it.next().is_some() || h > 24 || m > 59 || s > 59 || (h == 24 && (m, s) != (0, 0)) {
        return None;
    }
    Some((h * 3600 + m * 60 + s) % DAY)
}

impl fmt::Display for Window {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hm = |t: u32| {
            if t.is_multiple_of(60) {
                format!("{:02}:{:02}", t / 3600, t / 60 % 60)
            } else {
                format!("{:02}:{:02}:{:02}", t / 3600, t / 60 % 60, t % 60)
            }
        };
        write!(f, "{}-{}", hm(self.start), hm(self.end))
    }
}

/// The local UTC offset in seconds. Read once at start-up while the process is still
/// single-threaded (the only time it can be read safely); 0 (UTC) when it cannot be read.
pub(crate) fn local_offset_seconds() -> i32 {
    time::UtcOffset::current_local_offset()
        .map(|o| o.whole_seconds())
        .unwrap_or(0)
}

/// Seconds after local midnight now.
pub(crate) fn now_local(offset: i32) -> f64 {
    let unix = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0);
    (unix + f64::from(offset)).rem_euclid(f64::from(DAY))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(h: u32, m: u32) -> f64 {
        f64::from(h * 3600 + m * 60)
    }

    #[test]
    fn parses_and_rejects() {
        assert_eq!(
            Window::parse("22:00-06:00").unwrap().to_string(),
            "22:00-06:00"
        );
        assert_eq!(
            Window::parse("08:30:15-9:00").unwrap().to_string(),
            "08:30:15-09:00"
        );
        assert!(
            Window::parse("00:00-24:00")
                .unwrap_err()
                .contains("same time")
        );
        for bad in [
            "",
            "22:00",
            "25:00-06:00",
            "22:60-06:00",
            "a-b",
            "22:00-06:00:00:00",
        ] {
            assert!(Window::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn same_day_window() {
        let w = Window::parse("09:00-17:00").unwrap();
        assert_eq!(
            w.position(at(8, 0)),
            Position::Closed(Duration::from_secs(3600))
        );
        assert_eq!(
            w.position(at(9, 0)),
            Position::Open(Duration::from_secs(8 * 3600))
        );
        assert_eq!(
            w.position(at(16, 59)),
            Position::Open(Duration::from_secs(60))
        );
        assert_eq!(
            w.position(at(17, 0)),
            Position::Closed(Duration::from_secs(16 * 3600))
        );
    }

    #[test]
    fn window_across_midnight() {
        let w = Window::parse("22:00-06:00").unwrap();
        assert_eq!(
            w.position(at(23, 0)),
            Position::Open(Duration::from_secs(7 * 3600))
        );
        assert_eq!(
            w.position(at(1, 0)),
            Position::Open(Duration::from_secs(5 * 3600))
        );
        assert_eq!(
            w.position(at(6, 0)),
            Position::Closed(Duration::from_secs(16 * 3600))
        );
        assert_eq!(
            w.position(at(21, 30)),
            Position::Closed(Duration::from_secs(1800))
        );
    }
}
