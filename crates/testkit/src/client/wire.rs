//! The client's plumbing: command tags, reading one complete response (a line plus its
//! literals), writing with the time limit, collecting until the tagged line, and the helpers
//! that build command text and read response codes.

use super::{AppendRequest, Client};
use crate::error::{Error, Result};
use crate::utf7;

/// Parsed unit: a whole response (line plus any literals, up to the final CRLF).
pub(super) type Unit = Vec<u8>;

pub(super) fn excerpt(b: &[u8]) -> String {
    let s = String::from_utf8_lossy(&b[..b.len().min(200)]);
    s.trim_end().to_owned()
}

impl Client {
    pub(super) fn tag(&mut self) -> String {
        let t = format!("T{}", self.next_tag);
        self.next_tag += 1;
        t
    }

    pub(super) async fn read_greeting(&mut self) -> Result<()> {
        let unit = self.read_unit().await?;
        let text = String::from_utf8_lossy(&unit).trim_end().to_owned();
        if !text.starts_with("* OK") && !text.starts_with("* PREAUTH") {
            return Err(Error::protocol("greeting", excerpt(&unit)));
        }
        self.note_untagged(&unit);
        self.greeting = text.trim_start_matches("* ").to_owned();
        Ok(())
    }

    /// Records capabilities from `* CAPABILITY` or `[CAPABILITY ...]`.
    pub(super) fn note_untagged(&mut self, unit: &[u8]) {
        let text = String::from_utf8_lossy(unit);
        let caps = if let Some(rest) = text.strip_prefix("* CAPABILITY ") {
            Some(rest.trim_end().to_owned())
        } else if let Some(i) = text.find("[CAPABILITY ") {
            let rest = &text[i + 12..];
            rest.find(']').map(|j| rest[..j].to_owned())
        } else {
            None
        };
        if let Some(c) = caps {
            self.capabilities = c.split_whitespace().map(str::to_ascii_uppercase).collect();
        }
    }

    pub(super) async fn write(&mut self, data: &[u8]) -> Result<()> {
        let server = self.server.clone();
        let stream = self
            .stream
            .as_mut()
            .ok_or_else(|| Error::protocol("write", "connection is closed"))?;
        let fut = async {
            stream.write_all(data).await?;
            stream.flush().await
        };
        tokio::time::timeout(self.timeout, fut)
            .await
            .map_err(|_| Error::Timeout {
                what: format!("writing to {server}"),
                seconds: self.timeout.as_secs(),
            })?
            .map_err(|e| Error::io(format!("writing to {server}"), e))
    }

    async fn fill(&mut self) -> Result<()> {
        let server = self.server.clone();
        let stream = self
            .stream
            .as_mut()
            .ok_or_else(|| Error::protocol("read", "connection is closed"))?;
        if self.buf.capacity() - self.buf.len() < 16 * 1024 {
            self.buf.reserve(64 * 1024);
        }
        let n = tokio::time::timeout(self.timeout, stream.read_buf(&mut self.buf))
            .await
            .map_err(|_| Error::Timeout {
                what: format!("waiting for {server}"),
                seconds: self.timeout.as_secs(),
            })?
            .map_err(|e| Error::io(format!("reading from {server}"), e))?;
        if n == 0 {
            return Err(Error::io(
                format!("reading from {server}"),
                std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "server closed the connection",
                ),
            ));
        }
        Ok(())
    }

    /// Reads one complete response: a line and, for each trailing `{n}`, n literal bytes
    /// and the continuation of the line.
    pub(super) async fn read_unit(&mut self) -> Result<Unit> {
        if self.pos > 0 {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        let mut scan = 0;
        loop {
            match self.buf[scan..].iter().position(|&b| b == b'\n') {
                None => {
                    scan = self.buf.len();
                    self.fill().await?;
                }
                Some(p) => {
                    let eol = scan + p + 1;
                    if let Some(n) = literal_len(&self.buf[..eol]) {
                        let need = eol
                            .checked_add(n)
                            .ok_or_else(|| Error::protocol("read", "literal length overflows"))?;
                        while self.buf.len() < need {
                            self.fill().await?;
                        }
                        scan = need;
                        continue;
                    }
                    let unit = self.buf[..eol].to_vec();
                    self.pos = eol;
                    return Ok(unit);
                }
            }
        }
    }

    pub(super) async fn wait_continuation(&mut self, context: &str) -> Result<()> {
        loop {
            let unit = self.read_unit().await?;
            if unit.starts_with(b"+") {
                return Ok(());
            }
            if unit.starts_with(b"* ") {
                self.note_untagged(&unit);
                continue;
            }
            return Err(Error::Refused {
                command: context.to_owned(),
                response: excerpt(&unit),
            });
        }
    }

    pub(super) async fn collect_tagged(
        &mut self,
        name: &str,
        tag: &str,
    ) -> Result<(Vec<Unit>, String)> {
        let mut units = Vec::new();
        let prefix = format!("{tag} ");
        loop {
            let unit = self.read_unit().await?;
            if unit.starts_with(prefix.as_bytes()) {
                let text = String::from_utf8_lossy(&unit).trim_end().to_owned();
                self.note_untagged(&unit);
                return match status_word(&text) {
                    Some("OK") => Ok((units, text)),
                    _ => Err(Error::Refused {
                        command: name.to_owned(),
                        response: text,
                    }),
                };
            }
            if unit.starts_with(b"+") {
                return Err(Error::protocol(
                    name,
                    format!("unexpected continuation request: {}", excerpt(&unit)),
                ));
            }
            self.note_untagged(&unit);
            units.push(unit);
        }
    }

    /// Sends `tag cmd CRLF` (no literals) and collects until the tagged response.
    pub(super) async fn simple(&mut self, name: &str, cmd: Vec<u8>) -> Result<(Vec<Unit>, String)> {
        let tag = self.tag();
        let mut line = format!("{tag} ").into_bytes();
        line.extend_from_slice(&cmd);
        line.extend_from_slice(b"\r\n");
        self.write(&line).await?;
        self.collect_tagged(name, &tag).await
    }
}

/// `APPEND mailbox (flags) "date" {n+}\r\n` and the trailing CRLF.
pub(super) fn append_parts(
    mailbox: &str,
    req: &AppendRequest,
    literal_plus: bool,
) -> (Vec<u8>, Vec<u8>) {
    let mut head = b"APPEND ".to_vec();
    head.extend_from_slice(&quote(utf7::encode(mailbox).as_bytes()));
    head.extend_from_slice(b" (");
    head.extend_from_slice(req.flags.join(" ").as_bytes());
    head.push(b')');
    if let Some(d) = req.internal_date {
        head.extend_from_slice(format!(" \"{}\"", d.to_imap()).as_bytes());
    }
    let plus = if literal_plus { "+" } else { "" };
    head.extend_from_slice(format!(" {{{}{plus}}}\r\n", req.message.len()).as_bytes());
    (head, b"\r\n".to_vec())
}

pub(super) fn status_word(tagged: &str) -> Option<&str> {
    tagged.split(' ').nth(1)
}

pub(super) fn appenduid(tagged: &str) -> Option<u32> {
    let i = tagged.find("[APPENDUID ")?;
    let rest = &tagged[i + 11..];
    let end = rest.find(']')?;
    rest[..end].split(' ').nth(1)?.parse().ok()
}

pub(super) fn bracket_number(text: &str, key: &str) -> Option<u32> {
    let pat = format!("[{key} ");
    let i = text.find(&pat)?;
    let rest = &text[i + pat.len()..];
    let end = rest.find(']')?;
    rest[..end].trim().parse().ok()
}

/// If the line ending at `buf.len()` ends with `{n}` / `{n+}` before CRLF, returns n.
pub(super) fn literal_len(buf: &[u8]) -> Option<usize> {
    let line = buf.strip_suffix(b"\n")?;
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let line = line.strip_suffix(b"}")?;
    let open = line.iter().rposition(|&b| b == b'{')?;
    let digits = &line[open + 1..];
    let digits = digits.strip_suffix(b"+").unwrap_or(digits);
    if digits.is_empty() || digits.len() > 12 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(digits).ok()?.parse().ok()
}

/// Quotes an astring for the wire (the input is ASCII after UTF-7 encoding; other bytes
/// are sent as a quoted string anyway, which Dovecot accepts for UTF-8 passwords).
pub(super) fn quote(s: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len() + 2);
    out.push(b'"');
    for &b in s {
        if b == b'"' || b == b'\\' {
            out.push(b'\\');
        }
        out.push(b);
    }
    out.push(b'"');
    out
}
