//! A small cursor over one response unit: atoms, strings and literals, flag lists, and the
//! LIST, STATUS and FETCH data this client reads.

use super::{FetchedMessage, ListEntry};
use crate::date::ImapDate;
use crate::utf7;

/// A small cursor over one response unit.
pub(super) struct Parser<'a> {
    b: &'a [u8],
    i: usize,
}

type PResult<T> = std::result::Result<T, String>;

impl<'a> Parser<'a> {
    pub(super) fn new(b: &'a [u8]) -> Self {
        Parser { b, i: 0 }
    }

    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    fn sp(&mut self) {
        while self.peek() == Some(b' ') {
            self.i += 1;
        }
    }

    fn expect(&mut self, c: u8) -> PResult<()> {
        self.sp();
        if self.peek() == Some(c) {
            self.i += 1;
            Ok(())
        } else {
            Err(format!("expected '{}' at byte {}", c as char, self.i))
        }
    }

    /// After `* `, the first word, upper-cased.
    pub(super) fn untagged_keyword(&mut self) -> Option<String> {
        if !self.b.starts_with(b"* ") {
            return None;
        }
        self.i = 2;
        self.atom_upper()
    }

    /// An atom; brackets (`BODY[HEADER.FIELDS (A B)]`) are kept inside the atom.
    fn atom(&mut self) -> Option<&'a [u8]> {
        self.sp();
        let start = self.i;
        let mut depth = 0usize;
        while let Some(c) = self.peek() {
            match c {
                b'[' => depth += 1,
                b']' => depth = depth.saturating_sub(1),
                b' ' | b'(' | b')' | b'\r' | b'\n' | b'{' | b'"' if depth == 0 => break,
                _ => {}
            }
            self.i += 1;
        }
        (self.i > start).then(|| &self.b[start..self.i])
    }

    pub(super) fn atom_upper(&mut self) -> Option<String> {
        self.atom()
            .map(|a| String::from_utf8_lossy(a).to_ascii_uppercase())
    }

    fn number(&mut self) -> PResult<u64> {
        let a = self.atom().ok_or("expected a number")?;
        std::str::from_utf8(a)
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| format!("expected a number, got {:?}", String::from_utf8_lossy(a)))
    }

    /// nstring / astring: quoted, literal, NIL (→ None) or atom.
    fn string(&mut self) -> PResult<Option<Vec<u8>>> {
        self.sp();
        match self.peek() {
            Some(b'"') => {
                self.i += 1;
                let mut out = Vec::new();
                loop {
                    match self.peek() {
                        None | Some(b'\r') | Some(b'\n') => {
                            return Err("unterminated quoted string".into());
                        }
                        Some(b'\\') => {
                            let c = self.b.get(self.i + 1).copied().ok_or("bad escape")?;
                            out.push(c);
                            self.i += 2;
                        }
                        Some(b'"') => {
                            self.i += 1;
                            return Ok(Some(out));
                        }
                        Some(c) => {
                            out.push(c);
                            self.i += 1;
                        }
                    }
                }
            }
            Some(b'{') => {
                let close = self.b[self.i..]
                    .iter()
                    .position(|&c| c == b'}')
                    .ok_or("unterminated literal")?
                    + self.i;
                let digits = &self.b[self.i + 1..close];
                let digits = digits.strip_suffix(b"+").unwrap_or(digits);
                let n: usize = std::str::from_utf8(digits)
                    .ok()
                    .and_then(|s| s.parse().ok())
                    .ok_or("bad literal length")?;
                let mut j = close + 1;
                if self.b.get(j) == Some(&b'\r') {
                    j += 1;
                }
                if self.b.get(j) != Some(&b'\n') {
                    return Err("literal length not followed by CRLF".into());
                }
                j += 1;
                let end = j.checked_add(n).ok_or("literal too long")?;
                let data = self.b.get(j..end).ok_or("literal shorter than announced")?;
                self.i = end;
                Ok(Some(data.to_vec()))
            }
            _ => {
                let a = self.atom().ok_or("expected a string")?;
                if a.eq_ignore_ascii_case(b"NIL") {
                    Ok(None)
                } else {
                    Ok(Some(a.to_vec()))
                }
            }
        }
    }

    pub(super) fn flag_list(&mut self) -> PResult<Vec<String>> {
        self.expect(b'(')?;
        let mut flags = Vec::new();
        loop {
            self.sp();
            if self.peek() == Some(b')') {
                self.i += 1;
                return Ok(flags);
            }
            let a = self.atom().ok_or("expected a flag")?;
            flags.push(String::from_utf8_lossy(a).into_owned());
        }
    }

    /// Skips any value: atom, string, literal or a parenthesized list.
    fn skip_value(&mut self) -> PResult<()> {
        self.sp();
        if self.peek() == Some(b'(') {
            self.i += 1;
            loop {
                self.sp();
                match self.peek() {
                    Some(b')') => {
                        self.i += 1;
                        return Ok(());
                    }
                    None | Some(b'\r') | Some(b'\n') => return Err("unterminated list".into()),
                    _ => self.skip_value()?,
                }
            }
        }
        self.string().map(|_| ())
    }

    pub(super) fn list_entry(&mut self) -> PResult<ListEntry> {
        let attributes = self.flag_list()?;
        let delim = self.string()?;
        let delimiter = match delim {
            None => None,
            Some(d) => Some(*d.first().ok_or("empty delimiter")? as char),
        };
        let raw = self.string()?.ok_or("NIL mailbox name")?;
        let raw_name = String::from_utf8(raw).map_err(|_| "mailbox name is not UTF-8")?;
        let name = if raw_name.eq_ignore_ascii_case("INBOX") {
            "INBOX".to_owned()
        } else {
            utf7::decode(&raw_name).map_err(|e| e.to_string())?
        };
        Ok(ListEntry {
            name,
            raw_name,
            delimiter,
            attributes,
        })
    }

    pub(super) fn status_items(&mut self) -> PResult<Vec<(String, u32)>> {
        self.string()?;
        self.expect(b'(')?;
        let mut items = Vec::new();
        loop {
            self.sp();
            if self.peek() == Some(b')') {
                return Ok(items);
            }
            let k = self.atom_upper().ok_or("expected a STATUS item")?;
            let v = self.number()?;
            items.push((k, u32::try_from(v).map_err(|_| "STATUS value too large")?));
        }
    }

    pub(super) fn fetch_items(&mut self, seq: u32) -> PResult<FetchedMessage> {
        let mut m = FetchedMessage {
            seq,
            ..FetchedMessage::default()
        };
        self.expect(b'(')?;
        loop {
            self.sp();
            if self.peek() == Some(b')') {
                return Ok(m);
            }
            let key = self.atom_upper().ok_or("expected a FETCH item name")?;
            match key.as_str() {
                "UID" => {
                    m.uid = Some(u32::try_from(self.number()?).map_err(|_| "UID too large")?);
                }
                "FLAGS" => {
                    m.flags = self
                        .flag_list()?
                        .into_iter()
                        .filter(|f| !f.eq_ignore_ascii_case("\\Recent"))
                        .collect();
                }
                "INTERNALDATE" => {
                    let s = self.string()?.ok_or("NIL INTERNALDATE")?;
                    let s = String::from_utf8_lossy(&s).into_owned();
                    m.internal_date = Some(ImapDate::parse(&s).map_err(|e| e.to_string())?);
                }
                "RFC822.SIZE" => m.size = Some(self.number()?),
                k if k.starts_with("BODY[") || k.starts_with("RFC822") && k != "RFC822.SIZE" => {
                    m.body = self.string()?;
                }
                _ => self.skip_value()?,
            }
        }
    }
}
