//! Byte-level repairs a transport may need. Nothing here runs unless asked for, and every
//! change is recorded as a [`Problem`] with [`Severity::Repaired`] (or `Approximated` when
//! the content itself had to change).

use std::borrow::Cow;

use base64::Engine as _;
use mail_parser::{Encoding, PartType};

use crate::fingerprint::synthesized_message_id;
use crate::flags::{InternalDate, civil};
use crate::headers::{RawHeader, scan};
use crate::normalize::{parse_message, to_internal_date};
use crate::problem::{Converted, Problem, ProblemKind, Severity};

/// Exchange Online's IMAP service rejects lines over about 10,500 characters; this limit
/// (line content without the line ending) leaves a margin.
pub const EXCHANGE_IMAP_MAX_LINE: usize = 10_000;

/// Which repairs to apply. `Default` applies none.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RepairOptions {
    /// Turn bare LF and bare CR line endings into CRLF.
    pub crlf: bool,
    /// Break lines longer than this many bytes (content without the line ending):
    /// headers are folded, base64 lines re-wrapped, quoted-printable lines get soft breaks
    /// (all lossless); other body lines get a line break, at whitespace where possible.
    pub max_line_length: Option<usize>,
    /// Add a `Date:` when there is none (from INTERNALDATE, else the first `Received:`,
    /// else the Unix epoch).
    pub add_missing_date: bool,
    /// Add a `Message-ID:` when there is no sane one (see
    /// [`crate::synthesized_message_id`]); an insane one is kept as `X-Original-Message-ID`.
    pub add_missing_message_id: bool,
    /// RFC 2047-encode raw 8-bit bytes in headers (UTF-8 when valid, else read as
    /// windows-1252).
    pub encode_eight_bit_headers: bool,
}

impl RepairOptions {
    /// No repairs (the default: what an IMAP target receives unless the user asks).
    pub fn none() -> Self {
        Self::default()
    }

    /// Every repair, with the Exchange Online IMAP line limit.
    pub fn all() -> Self {
        Self {
            crlf: true,
            max_line_length: Some(EXCHANGE_IMAP_MAX_LINE),
            add_missing_date: true,
            add_missing_message_id: true,
            encode_eight_bit_headers: true,
        }
    }
}

fn repaired(kind: ProblemKind, detail: impl Into<String>) -> Problem {
    Problem::new(Severity::Repaired, kind, detail)
}

/// Applies the requested repairs. Returns the input unchanged (borrowed) when nothing
/// needed repairing. Deterministic: the same input and options give the same bytes.
///
/// ```
/// use o365_migrate_mime::{RepairOptions, repair};
/// let raw = b"Subject: x\nFrom: a@b\n\nbody\n";
/// let mut opts = RepairOptions::none();
/// opts.crlf = true;
/// let out = repair(raw, &opts, None);
/// assert_eq!(&out.value[..], b"Subject: x\r\nFrom: a@b\r\n\r\nbody\r\n");
/// assert_eq!(out.problems.len(), 1);
/// ```
pub fn repair<'a>(
    raw: &'a [u8],
    options: &RepairOptions,
    internal_date: Option<&InternalDate>,
) -> Converted<Cow<'a, [u8]>> {
    let mut problems = Vec::new();
    let mut cur: Cow<'a, [u8]> = Cow::Borrowed(raw);

    if options.encode_eight_bit_headers
        && let Some((v, names)) = encode_eight_bit_headers(&cur)
    {
        problems.push(repaired(
            ProblemKind::EightBitHeader,
            format!(
                "RFC 2047-encoded raw 8-bit bytes in header(s) {}",
                names.join(", ")
            ),
        ));
        cur = Cow::Owned(v);
    }
    if options.add_missing_date || options.add_missing_message_id {
        let (v, mut p) = add_missing(&cur, raw, options, internal_date);
        if let Some(v) = v {
            cur = Cow::Owned(v);
        }
        problems.append(&mut p);
    }
    if let Some(max) = options.max_line_length {
        let (v, mut p) = break_long_lines(&cur, max.max(80));
        if let Some(v) = v {
            cur = Cow::Owned(v);
        }
        problems.append(&mut p);
    }
    if options.crlf
        && let Some((v, n)) = to_crlf(&cur)
    {
        problems.push(repaired(
            ProblemKind::BareLineEnding,
            format!("{n} bare LF/CR line ending(s) turned into CRLF"),
        ));
        cur = Cow::Owned(v);
    }
    Converted {
        value: cur,
        problems,
    }
}

/// CRLF normalisation. `None` when there is nothing to change.
fn to_crlf(raw: &[u8]) -> Option<(Vec<u8>, usize)> {
    let mut count = 0usize;
    let mut i = 0;
    while i < raw.len() {
        match raw.get(i) {
            Some(b'\r') if raw.get(i + 1) == Some(&b'\n') => i += 2,
            Some(b'\r' | b'\n') => {
                count += 1;
                i += 1;
            }
            _ => i += 1,
        }
    }
    if count == 0 {
        return None;
    }
    let mut out = Vec::with_capacity(raw.len() + count);
    let mut i = 0;
    while let Some(&b) = raw.get(i) {
        match b {
            b'\r' if raw.get(i + 1) == Some(&b'\n') => {
                out.extend_from_slice(b"\r\n");
                i += 2;
                continue;
            }
            b'\r' | b'\n' => out.extend_from_slice(b"\r\n"),
            _ => out.push(b),
        }
        i += 1;
    }
    Some((out, count))
}

/// The line ending the message mostly uses (from its first line).
fn line_ending(raw: &[u8]) -> &'static [u8] {
    match raw.iter().position(|&b| b == b'\n') {
        Some(i) if i > 0 && raw.get(i - 1) == Some(&b'\r') => b"\r\n",
        Some(_) => b"\n",
        None => b"\r\n",
    }
}

/// Used by the Graph conversion: when the header block holds 8-bit bytes that are not
/// valid UTF-8, returns a copy with them RFC 2047-encoded (read as windows-1252) so the
/// parser does not turn them into replacement characters.
pub(crate) fn encode_eight_bit_headers_if_needed(raw: &[u8]) -> Option<Vec<u8>> {
    // Fast path: no 8-bit byte before the first empty line (or in the whole input).
    let block_end = raw
        .windows(2)
        .position(|w| w == b"\n\n" || w == b"\n\r")
        .unwrap_or(raw.len());
    if raw.get(..block_end).is_none_or(|b| b.is_ascii()) {
        return None;
    }
    let (headers, _) = scan(raw);
    let needs = headers
        .iter()
        .any(|h| h.value.iter().any(|&b| b >= 0x80) && std::str::from_utf8(h.value).is_err());
    if needs {
        encode_eight_bit_headers(raw).map(|(v, _)| v)
    } else {
        None
    }
}

fn decode_8bit(bytes: &[u8]) -> String {
    match std::str::from_utf8(bytes) {
        Ok(s) => s.to_string(),
        Err(_) => mail_parser::decoders::charsets::map::charset_decoder(b"windows-1252")
            .map(|f| f(bytes))
            .unwrap_or_else(|| String::from_utf8_lossy(bytes).into_owned()),
    }
}

/// Encodes text as one or more `=?UTF-8?B?…?=` words (each at most 75 characters),
/// separated by a folding line break.
fn encoded_words(text: &str, eol: &[u8], out: &mut Vec<u8>) {
    let engine = base64::engine::general_purpose::STANDARD;
    let mut start = 0;
    let mut first = true;
    while start < text.len() {
        let mut end = (start + 45).min(text.len());
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        if end == start {
            // A single character longer than 45 bytes cannot happen in UTF-8 (max 4).
            end = text.len();
        }
        if !first {
            out.extend_from_slice(eol);
            out.push(b' ');
        }
        first = false;
        out.extend_from_slice(b"=?UTF-8?B?");
        out.extend_from_slice(
            engine
                .encode(text.get(start..end).unwrap_or_default())
                .as_bytes(),
        );
        out.extend_from_slice(b"?=");
        start = end;
    }
}

/// Encodes one header value's 8-bit parts. Quoted strings with 8-bit content become one
/// encoded word (quotes dropped); other runs of 8-bit words become encoded words, with
/// surrounding punctuation kept outside.
fn encode_value(value: &[u8], eol: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(value.len() * 2);
    let mut i = 0;
    while i < value.len() {
        let b = value.get(i).copied().unwrap_or(b' ');
        if b == b'"' {
            // Quoted string.
            let mut j = i + 1;
            let mut content = Vec::new();
            while let Some(&c) = value.get(j) {
                if c == b'\\' {
                    if let Some(&n) = value.get(j + 1) {
                        content.push(n);
                    }
                    j += 2;
                    continue;
                }
                if c == b'"' {
                    break;
                }
                content.push(c);
                j += 1;
            }
            let end = (j + 1).min(value.len());
            if content.iter().any(|&c| c >= 0x80) {
                encoded_words(&decode_8bit(&content), eol, &mut out);
            } else {
                out.extend_from_slice(value.get(i..end).unwrap_or_default());
            }
            i = end;
            continue;
        }
        if b >= 0x80 {
            // Run of 8-bit words: extend back over the word start already copied.
            let mut run_start = i;
            while run_start > 0
                && out.last().is_some_and(|&c| {
                    !matches!(
                        c,
                        b' ' | b'\t'
                            | b'\r'
                            | b'\n'
                            | b'"'
                            | b'<'
                            | b'>'
                            | b'('
                            | b')'
                            | b','
                            | b';'
                            | b':'
                    )
                })
            {
                out.pop();
                run_start -= 1;
            }
            let is_delim = |c: u8| {
                matches!(
                    c,
                    b'"' | b'<' | b'>' | b'(' | b')' | b',' | b';' | b':' | b'\r' | b'\n'
                )
            };
            let mut j = i;
            let mut last_8bit_word_end = i;
            while let Some(&c) = value.get(j) {
                if is_delim(c) {
                    break;
                }
                // Find the word end.
                let word_start = j;
                while let Some(&d) = value.get(j) {
                    if d == b' ' || d == b'\t' || is_delim(d) {
                        break;
                    }
                    j += 1;
                }
                let word = value.get(word_start..j).unwrap_or_default();
                if word.iter().any(|&d| d >= 0x80) {
                    last_8bit_word_end = j;
                } else if !word.is_empty() {
                    break;
                }
                while matches!(value.get(j), Some(b' ' | b'\t')) {
                    j += 1;
                }
            }
            let run = value.get(run_start..last_8bit_word_end).unwrap_or_default();
            encoded_words(&decode_8bit(run), eol, &mut out);
            i = last_8bit_word_end;
            continue;
        }
        out.push(b);
        i += 1;
    }
    out
}

/// Returns the repaired bytes and the names of the headers changed.
fn encode_eight_bit_headers(raw: &[u8]) -> Option<(Vec<u8>, Vec<String>)> {
    let (headers, body_start) = scan(raw);
    if !headers.iter().any(|h| h.value.iter().any(|&b| b >= 0x80)) {
        return None;
    }
    let eol = line_ending(raw);
    let mut out = Vec::with_capacity(raw.len() + 256);
    let mut names = Vec::new();
    let mut pos = 0;
    for h in &headers {
        if !h.value.iter().any(|&b| b >= 0x80) {
            continue;
        }
        let value_start = h.end - trailing_len(raw, h) - h.value.len();
        out.extend_from_slice(raw.get(pos..value_start).unwrap_or_default());
        out.extend_from_slice(&encode_value(h.value, eol));
        pos = value_start + h.value.len();
        let name = String::from_utf8_lossy(h.name).into_owned();
        if !names.contains(&name) {
            names.push(name);
        }
    }
    let _ = body_start;
    out.extend_from_slice(raw.get(pos..).unwrap_or_default());
    Some((out, names))
}

/// Length of the line ending after a header's value.
fn trailing_len(raw: &[u8], h: &RawHeader<'_>) -> usize {
    let mut n = 0;
    if h.end > 0 && raw.get(h.end - 1) == Some(&b'\n') {
        n += 1;
        if h.end > 1 && raw.get(h.end - 2) == Some(&b'\r') {
            n += 1;
        }
    }
    n
}

const WEEKDAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// RFC 5322 date-time of an instant in its own offset.
pub(crate) fn rfc5322_date(d: &InternalDate) -> String {
    let local = d.unix_seconds() + i64::from(d.offset_minutes()) * 60;
    let (y, mo, day, h, mi, s) = civil(local);
    let wd = WEEKDAYS
        .get(usize::try_from((local.div_euclid(86_400) + 4).rem_euclid(7)).unwrap_or(0))
        .unwrap_or(&"Thu");
    let month = MONTHS
        .get(usize::from(mo).saturating_sub(1))
        .unwrap_or(&"Jan");
    let off = i32::from(d.offset_minutes());
    let sign = if off < 0 { '-' } else { '+' };
    let off = off.abs();
    format!(
        "{wd}, {day:02} {month} {y:04} {h:02}:{mi:02}:{s:02} {sign}{:02}{:02}",
        off / 60,
        off % 60
    )
}

fn add_missing(
    cur: &[u8],
    original: &[u8],
    options: &RepairOptions,
    internal_date: Option<&InternalDate>,
) -> (Option<Vec<u8>>, Vec<Problem>) {
    let mut problems = Vec::new();
    let (headers, body_start) = scan(cur);
    let eol = line_ending(cur);
    let mut add: Vec<u8> = Vec::new();
    let mut rename_mid: Option<(usize, usize)> = None;

    if options.add_missing_date {
        let date = headers.iter().find(|h| h.is("date"));
        let valid = date.is_some_and(|h| {
            std::str::from_utf8(h.value)
                .ok()
                .and_then(|s| mail_parser::DateTime::parse_rfc822(s.trim()))
                .as_ref()
                .and_then(to_internal_date)
                .is_some()
        });
        if date.is_none() {
            let received = headers
                .iter()
                .find(|h| h.is("received"))
                .and_then(|h| std::str::from_utf8(h.value).ok())
                .and_then(|v| v.rsplit_once(';'))
                .and_then(|(_, d)| mail_parser::DateTime::parse_rfc822(d.trim()))
                .as_ref()
                .and_then(to_internal_date);
            let (when, source) = match (internal_date, received) {
                (Some(d), _) => (*d, "INTERNALDATE"),
                (None, Some(d)) => (d, "the first Received header"),
                (None, None) => (InternalDate::UNIX_EPOCH, "nothing (Unix epoch used)"),
            };
            let value = rfc5322_date(&when);
            add.extend_from_slice(b"Date: ");
            add.extend_from_slice(value.as_bytes());
            add.extend_from_slice(eol);
            problems.push(repaired(
                ProblemKind::MissingDate,
                format!("added Date: {value} from {source}"),
            ));
        } else if !valid {
            problems.push(Problem::new(
                Severity::Info,
                ProblemKind::MissingDate,
                "Date header cannot be read; left as it is",
            ));
        }
    }
    if options.add_missing_message_id {
        let mid = headers.iter().find(|h| h.is("message-id"));
        let sane = mid.and_then(|h| crate::fingerprint::sane_message_id(h.value));
        if sane.is_none() {
            let id = synthesized_message_id(original);
            if let Some(h) = mid {
                rename_mid = Some((h.start, h.start + h.name.len()));
            }
            add.extend_from_slice(b"Message-ID: ");
            add.extend_from_slice(id.as_bytes());
            add.extend_from_slice(eol);
            problems.push(repaired(
                ProblemKind::MissingMessageId,
                if mid.is_some() {
                    format!("Message-ID was not sane; kept as X-Original-Message-ID and added Message-ID: {id}")
                } else {
                    format!("added Message-ID: {id}")
                },
            ));
        }
    }
    if add.is_empty() {
        return (None, problems);
    }
    // Insert before the blank line that ends the header block.
    let has_separator = body_start <= cur.len()
        && headers
            .last()
            .is_none_or(|h| h.end < body_start || body_start < cur.len());
    let insert_at = if has_separator && body_start > 0 {
        // body_start is just past the blank line; the blank line is `eol` long or LF only.
        let mut at = body_start;
        if cur.get(at.wrapping_sub(1)) == Some(&b'\n') {
            at -= 1;
            if cur.get(at.wrapping_sub(1)) == Some(&b'\r') {
                at -= 1;
            }
        }
        at.min(headers.last().map_or(0, |h| h.end).max(at.min(cur.len())))
    } else {
        cur.len()
    };
    let mut out = Vec::with_capacity(cur.len() + add.len() + 32);
    match rename_mid {
        Some((s, e)) if e <= insert_at => {
            out.extend_from_slice(cur.get(..s).unwrap_or_default());
            out.extend_from_slice(b"X-Original-Message-ID");
            out.extend_from_slice(cur.get(e..insert_at).unwrap_or_default());
        }
        _ => out.extend_from_slice(cur.get(..insert_at).unwrap_or_default()),
    }
    if !out.is_empty() && out.last() != Some(&b'\n') {
        out.extend_from_slice(eol);
    }
    out.extend_from_slice(&add);
    if insert_at >= cur.len() {
        // Header-only message: end the header block.
        out.extend_from_slice(eol);
    }
    out.extend_from_slice(cur.get(insert_at..).unwrap_or_default());
    (Some(out), problems)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum LineClass {
    Header,
    Base64,
    QuotedPrintable,
    Plain,
}

fn break_long_lines(raw: &[u8], max: usize) -> (Option<Vec<u8>>, Vec<Problem>) {
    // Fast path: no long line at all.
    let mut longest = 0;
    let mut start = 0;
    for (i, &b) in raw.iter().enumerate() {
        if b == b'\n' {
            longest = longest.max(i - start);
            start = i + 1;
        }
    }
    longest = longest.max(raw.len() - start);
    if longest <= max {
        return (None, Vec::new());
    }
    // Where are the encoded leaf parts?
    let mut scratch = Vec::new();
    let msg = parse_message(raw, &mut scratch);
    let mut ranges: Vec<(usize, usize, LineClass)> = Vec::new();
    for p in &msg.parts {
        if matches!(p.body, PartType::Multipart(_) | PartType::Message(_)) {
            continue;
        }
        let class = match p.encoding {
            Encoding::Base64 => LineClass::Base64,
            Encoding::QuotedPrintable => LineClass::QuotedPrintable,
            Encoding::None => LineClass::Plain,
        };
        ranges.push((p.offset_body as usize, p.offset_end as usize, class));
    }
    let (_, body_start) = scan(raw);
    let eol = line_ending(raw);
    let mut out = Vec::with_capacity(raw.len() + raw.len() / max * 3 + 16);
    let (mut headers_n, mut lossless_n, mut hard_n) = (0usize, 0usize, 0usize);
    let mut pos = 0;
    while pos < raw.len() {
        let nl = raw
            .get(pos..)
            .and_then(|r| r.iter().position(|&b| b == b'\n'))
            .map_or(raw.len(), |i| pos + i);
        let mut content_end = nl;
        if content_end > pos && raw.get(content_end - 1) == Some(&b'\r') {
            content_end -= 1;
        }
        let line = raw.get(pos..content_end).unwrap_or_default();
        let ending = raw
            .get(content_end..(nl + 1).min(raw.len()))
            .unwrap_or_default();
        if line.len() <= max {
            out.extend_from_slice(line);
        } else {
            let class = if pos < body_start {
                LineClass::Header
            } else {
                ranges
                    .iter()
                    .find(|(s, e, _)| pos >= *s && pos < *e)
                    .map_or(LineClass::Plain, |r| r.2)
            };
            match class {
                LineClass::Header => {
                    headers_n += 1;
                    split_line(line, max, eol, b" ", true, &mut out);
                }
                LineClass::Base64
                    if line
                        .iter()
                        .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'=')) =>
                {
                    lossless_n += 1;
                    for (k, chunk) in line.chunks(76).enumerate() {
                        if k > 0 {
                            out.extend_from_slice(eol);
                        }
                        out.extend_from_slice(chunk);
                    }
                }
                LineClass::QuotedPrintable => {
                    lossless_n += 1;
                    qp_soft_breaks(line, max.min(998), eol, &mut out);
                }
                _ => {
                    hard_n += 1;
                    split_line(line, max, eol, b"", false, &mut out);
                }
            }
        }
        out.extend_from_slice(ending);
        pos = nl + 1;
    }
    let mut problems = Vec::new();
    if headers_n > 0 {
        problems.push(repaired(
            ProblemKind::LongLine,
            format!("{headers_n} header line(s) over {max} bytes folded"),
        ));
    }
    if lossless_n > 0 {
        problems.push(repaired(
            ProblemKind::LongLine,
            format!(
                "{lossless_n} encoded body line(s) over {max} bytes re-wrapped (content unchanged)"
            ),
        ));
    }
    if hard_n > 0 {
        problems.push(Problem::new(
            Severity::Approximated,
            ProblemKind::LongLine,
            format!("{hard_n} body line(s) over {max} bytes broken at whitespace where possible (a line break was added to the text)"),
        ));
    }
    (Some(out), problems)
}

/// Splits a line into pieces of at most `max` bytes, preferring to break before a space or
/// tab. For headers (`fold`) the break is `eol` followed by the whitespace (or `cont` when
/// there is none).
fn split_line(line: &[u8], max: usize, eol: &[u8], cont: &[u8], fold: bool, out: &mut Vec<u8>) {
    let mut rest = line;
    let mut first = true;
    while !rest.is_empty() {
        let limit = if first {
            max
        } else {
            max.saturating_sub(cont.len()).max(1)
        };
        if !first {
            out.extend_from_slice(eol);
            if !rest.starts_with(b" ") && !rest.starts_with(b"\t") {
                out.extend_from_slice(cont);
            }
        }
        first = false;
        if rest.len() <= limit {
            out.extend_from_slice(rest);
            break;
        }
        let window = rest.get(..limit).unwrap_or(rest);
        let cut = window
            .iter()
            .rposition(|&b| b == b' ' || b == b'\t')
            .filter(|&i| i > limit / 2)
            .unwrap_or(limit);
        // Never cut inside a UTF-8 sequence.
        let mut cut = cut;
        while cut > 1 && rest.get(cut).is_some_and(|&b| (0x80..0xC0).contains(&b)) {
            cut -= 1;
        }
        let (head, tail) = rest.split_at(cut.min(rest.len()));
        out.extend_from_slice(head);
        rest = if !fold && (tail.starts_with(b" ") || tail.starts_with(b"\t")) {
            // The whitespace ends the first line in a plain body.
            out.push(tail.first().copied().unwrap_or(b' '));
            tail.get(1..).unwrap_or_default()
        } else {
            tail
        };
    }
}

/// Inserts quoted-printable soft line breaks (`=` + eol) so no line exceeds `max`, never
/// inside an `=XX` escape.
fn qp_soft_breaks(line: &[u8], max: usize, eol: &[u8], out: &mut Vec<u8>) {
    let limit = max.saturating_sub(1).max(4);
    let mut col = 0;
    let mut i = 0;
    while i < line.len() {
        let step = if line.get(i) == Some(&b'=') {
            3.min(line.len() - i)
        } else {
            1
        };
        if col + step > limit {
            out.push(b'=');
            out.extend_from_slice(eol);
            col = 0;
        }
        out.extend_from_slice(line.get(i..i + step).unwrap_or_default());
        col += step;
        i += step;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eight_bit_subject_and_display_name() {
        let raw =
            b"From: \"J\xf6rg M\xfcller\" <j@x.de>\r\nSubject: Gr\xfc\xdfe aus K\xf6ln\r\n\r\nx";
        let (out, names) = encode_eight_bit_headers(raw).unwrap();
        assert_eq!(names, vec!["From", "Subject"]);
        assert!(out.iter().all(|&b| b < 0x80));
        let n = crate::normalize(&out).value;
        assert_eq!(n.subject.as_deref(), Some("Grüße aus Köln"));
        assert_eq!(n.from[0].name.as_deref(), Some("Jörg Müller"));
        assert_eq!(n.from[0].address.as_deref(), Some("j@x.de"));
    }

    #[test]
    fn adds_date_and_message_id_deterministically() {
        let raw = b"Subject: x\r\n\r\nbody\r\n";
        let d = InternalDate::new(1_700_000_000, 60).unwrap();
        let opts = RepairOptions::all();
        let a = repair(raw, &opts, Some(&d));
        let b = repair(raw, &opts, Some(&d));
        assert_eq!(a.value, b.value);
        let text = String::from_utf8(a.value.to_vec()).unwrap();
        assert!(
            text.contains("Date: Tue, 14 Nov 2023 23:13:20 +0100\r\n"),
            "{text}"
        );
        assert!(
            text.contains("@o365-migrate.invalid>\r\n\r\nbody"),
            "{text}"
        );
        assert_eq!(a.problems.len(), 2);
    }

    #[test]
    fn long_lines_are_broken() {
        let long = "word ".repeat(3000);
        let raw = format!("Subject: {long}\r\n\r\n{long}\r\n");
        let out = repair(raw.as_bytes(), &RepairOptions::all(), None);
        for line in out.value.split(|&b| b == b'\n') {
            assert!(line.len() <= EXCHANGE_IMAP_MAX_LINE + 1);
        }
        let before = crate::normalize(raw.as_bytes()).value;
        let after = crate::normalize(&out.value).value;
        assert_eq!(before.subject, after.subject);
    }

    #[test]
    fn qp_breaks_are_lossless() {
        let body = "=C3=A9".repeat(4000);
        let raw = format!(
            "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n{body}\r\n"
        );
        let mut opts = RepairOptions::none();
        opts.max_line_length = Some(1000);
        let out = repair(raw.as_bytes(), &opts, None);
        assert_ne!(&out.value[..], raw.as_bytes());
        let a = crate::normalize(raw.as_bytes()).value.text_body;
        let b = crate::normalize(&out.value).value.text_body;
        assert_eq!(a, b);
    }
}
