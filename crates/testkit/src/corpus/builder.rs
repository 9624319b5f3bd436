//! The message builder: deterministic headers, text in several charsets and transfer
//! encodings, multipart structures, attachments, and the RFC 2045 / 2047 encoders it uses.

use base64::Engine as _;

use super::{CorpusProfile, KB, MB, MessageMeta};
use crate::date::ImapDate;
use crate::rng::{Rng, derive};

pub(super) const DOMAINS: [&str; 5] = [
    "example.org",
    "example.com",
    "mail.example.net",
    "beispiel.de",
    "exemple.fr",
];

const PEOPLE: [(&str, &str); 12] = [
    ("Alice Adams", "alice"),
    ("Bob Brown", "bob"),
    ("Jürgen Müller", "juergen.mueller"),
    ("Zoë Lefèvre", "zoe.lefevre"),
    ("Carol Chen", "carol"),
    ("Søren Østergaard", "soren"),
    ("María José García", "mj.garcia"),
    ("Dave O'Neil", "dave"),
    ("Łukasz Żółć", "lukasz"),
    ("Émilie Dubois", "emilie"),
    ("山田 太郎", "yamada"),
    ("Frank Fischer", "frank"),
];

const WORDS_ASCII: [&str; 40] = [
    "the",
    "project",
    "meeting",
    "report",
    "budget",
    "please",
    "review",
    "attached",
    "draft",
    "schedule",
    "invoice",
    "quarter",
    "results",
    "team",
    "update",
    "status",
    "next",
    "week",
    "thanks",
    "regards",
    "deadline",
    "customer",
    "contract",
    "proposal",
    "follow",
    "up",
    "agenda",
    "minutes",
    "call",
    "Monday",
    "Friday",
    "approve",
    "numbers",
    "plan",
    "risk",
    "migration",
    "mailbox",
    "server",
    "and",
    "with",
];

const WORDS_LATIN1: [&str; 16] = [
    "Grüße",
    "Besprechung",
    "Überweisung",
    "Rechnung",
    "Prüfung",
    "März",
    "août",
    "réunion",
    "échéance",
    "reçu",
    "señor",
    "año",
    "Straße",
    "Größe",
    "naïve",
    "café",
];

const WORDS_UNICODE: [&str; 8] = [
    "Zoë",
    "Łódź",
    "€100",
    "日本語",
    "Ελληνικά",
    "русский",
    "✓",
    "😀",
];

const SUBJECTS: [&str; 14] = [
    "Quarterly report",
    "Re: Budget 2024",
    "Meeting notes",
    "Invoice #",
    "Fwd: Contract draft",
    "Überweisung bestätigt",
    "Réunion de lundi",
    "Status update",
    "Projektplan für März",
    "Urgent: server migration",
    "Your order has shipped",
    "Photos from the trip",
    "Newsletter – Ausgabe",
    "日本語の件名",
];

#[derive(Clone, Copy, PartialEq, Eq)]
enum Charset {
    Ascii,
    Utf8,
    Latin1,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Cte {
    SevenBit,
    EightBit,
    QuotedPrintable,
    Base64,
}

pub(super) struct Builder<'a> {
    profile: &'a CorpusProfile,
    meta: &'a MessageMeta,
    r: Rng,
    out: Vec<u8>,
    boundary_n: u32,
}

impl<'a> Builder<'a> {
    pub(super) fn new(profile: &'a CorpusProfile, meta: &'a MessageMeta) -> Self {
        Builder {
            profile,
            meta,
            r: Rng::new(derive(profile.seed, meta.index as u64, 2)),
            out: Vec::new(),
            boundary_n: 0,
        }
    }

    fn cap(&self, n: u64) -> u64 {
        match self.profile.max_message_bytes {
            Some(c) => n.min(c.saturating_sub(2 * KB).max(KB)),
            None => n,
        }
    }

    pub(super) fn build(mut self) -> Vec<u8> {
        let p = self.profile;
        let huge = p.huge_every.is_some_and(|every| {
            let block = self.meta.index / every;
            let chosen = derive(p.seed, block as u64, 3) % every as u64;
            self.meta.index % every == chosen as usize
        });
        let attach = !huge && self.r.below(1000) < u64::from(p.attachment_per_mille);
        let target = if huge {
            self.r.range(p.huge_min, p.huge_max)
        } else if attach {
            self.r.log_uniform(100 * KB, p.attachment_max)
        } else {
            self.r.log_uniform(2 * KB, 50 * KB)
        };
        let target = self.cap(target);
        let capacity = usize::try_from(target + 4 * KB).unwrap_or(usize::MAX);
        self.out.reserve(capacity);
        self.headers();
        if huge || attach {
            self.mixed(target);
        } else {
            match self.r.below(100) {
                0..=39 => self.text_leaf(target.saturating_sub(1200), false),
                40..=74 => self.alternative(target.saturating_sub(1500)),
                75..=89 => self.related(target.saturating_sub(1500)),
                _ => self.mixed(target),
            }
        }
        self.out
    }

    fn line(&mut self, s: &str) {
        self.out.extend_from_slice(s.as_bytes());
        self.out.extend_from_slice(b"\r\n");
    }

    fn boundary(&mut self) -> String {
        self.boundary_n += 1;
        format!(
            "=_corpus_{}_{}_{:08x}",
            self.meta.index,
            self.boundary_n,
            self.r.next_u64() as u32
        )
    }

    fn person(&mut self) -> String {
        let (name, local) = *self.r.pick(&PEOPLE);
        let domain = *self.r.pick(&DOMAINS);
        let display = if name.is_ascii() {
            if name.contains('\'') {
                format!("\"{name}\"")
            } else {
                name.to_owned()
            }
        } else {
            encode_word(name, self.r.chance(0.5))
        };
        format!("{display} <{local}@{domain}>")
    }

    fn headers(&mut self) {
        let date = self.meta.internal_date;
        let sent = ImapDate::from_unix(
            date.unix_seconds() - self.r.range(0, 600) as i64,
            date.offset_minutes(),
        )
        .unwrap_or(date);
        let hops = self.r.range(1, 2);
        for h in 0..hops {
            let ip = self.r.range(1, 254);
            let id = self.r.next_u64() & 0xffff_ffff_ffff;
            let host = DOMAINS[(self.meta.index + h as usize) % DOMAINS.len()];
            self.line(&format!(
                "Received: from mx{n}.{host} (mx{n}.{host} [192.0.2.{ip}])",
                n = h + 1
            ));
            self.line(&format!("\tby imap.example.org with ESMTPS id {id:012x};"));
            self.line(&format!("\t{}", date.to_rfc5322()));
        }
        let me = format!("Mailbox Owner <owner@{}>", DOMAINS[0]);
        let (from, to) = if matches!(self.meta.folder.as_str(), "Sent" | "Drafts") {
            (me, self.person())
        } else {
            (self.person(), me)
        };
        self.line(&format!("From: {from}"));
        self.line(&format!("To: {to}"));
        if self.r.chance(0.3) {
            let cc = self.person();
            let cc2 = self.person();
            self.line(&format!("Cc: {cc},\r\n {cc2}"));
        }
        let subject = self.subject();
        self.line(&format!("Subject: {subject}"));
        self.line(&format!("Date: {}", sent.to_rfc5322()));
        self.line(&format!("Message-ID: {}", self.meta.message_id));
        if self.meta.flags.iter().any(|f| f == "\\Answered") || self.r.chance(0.2) {
            let parent = format!(
                "<parent.{:x}@{}>",
                self.r.next_u64(),
                DOMAINS[self.meta.index % DOMAINS.len()]
            );
            self.line(&format!("In-Reply-To: {parent}"));
            self.line(&format!("References: {parent}"));
        }
        if self.r.chance(0.1) {
            self.line("X-Priority: 1 (Highest)");
        }
        self.line(&format!("X-Corpus-Index: {}", self.meta.index));
        self.line("MIME-Version: 1.0");
    }

    fn subject(&mut self) -> String {
        let base = *self.r.pick(&SUBJECTS);
        let text = format!("{base} {}", self.r.range(1, 9999));
        if text.is_ascii() {
            if self.r.chance(0.1) {
                // A long subject, folded.
                return format!(
                    "{text} – long thread about {}\r\n {}",
                    self.words(6, Charset::Ascii),
                    self.words(8, Charset::Ascii)
                )
                .replace('–', "-");
            }
            text
        } else {
            match self.r.below(3) {
                0 => encode_word(&text, true),
                1 => encode_word(&text, false),
                _ => encode_latin1_word(&text).unwrap_or_else(|| encode_word(&text, true)),
            }
        }
    }

    fn words(&mut self, n: usize, cs: Charset) -> String {
        let mut s = String::new();
        for i in 0..n {
            if i > 0 {
                s.push(' ');
            }
            let roll = self.r.below(100);
            let w = match cs {
                Charset::Ascii => *self.r.pick(&WORDS_ASCII),
                Charset::Latin1 if roll < 20 => *self.r.pick(&WORDS_LATIN1),
                Charset::Utf8 if roll < 10 => *self.r.pick(&WORDS_LATIN1),
                Charset::Utf8 if roll < 15 => *self.r.pick(&WORDS_UNICODE),
                _ => *self.r.pick(&WORDS_ASCII),
            };
            s.push_str(w);
        }
        s
    }

    /// Paragraphs of text of about `len` bytes, lines ≤ 76 characters.
    fn text(&mut self, len: u64, cs: Charset) -> String {
        let mut s = String::with_capacity(len as usize + 100);
        let mut line_len = 0;
        let mut sentence_start = true;
        while (s.len() as u64) < len {
            let mut w = self.words(1, cs);
            if sentence_start {
                let mut c = w.chars();
                if let Some(f) = c.next() {
                    w = f.to_uppercase().chain(c).collect();
                }
                sentence_start = false;
            }
            if self.r.chance(0.1) {
                w.push('.');
                sentence_start = true;
            }
            if line_len + w.chars().count() > 72 {
                s.push_str("\r\n");
                line_len = 0;
                if self.r.chance(0.15) {
                    s.push_str("\r\n");
                }
            } else if line_len > 0 {
                s.push(' ');
                line_len += 1;
            }
            line_len += w.chars().count();
            s.push_str(&w);
        }
        s.push_str("\r\n");
        s
    }

    fn pick_text_encoding(&mut self) -> (Charset, Cte) {
        match self.r.below(10) {
            0..=3 => (Charset::Utf8, Cte::EightBit),
            4..=5 => (Charset::Utf8, Cte::QuotedPrintable),
            6 => (Charset::Latin1, Cte::EightBit),
            7 => (Charset::Latin1, Cte::QuotedPrintable),
            8 => (Charset::Utf8, Cte::Base64),
            _ => (Charset::Ascii, Cte::SevenBit),
        }
    }

    /// A text/plain (or text/html) leaf with headers.
    fn text_leaf(&mut self, len: u64, html: bool) {
        let (cs, cte) = self.pick_text_encoding();
        let mut body = self.text(len.max(200), cs);
        if html {
            body = format!(
                "<!DOCTYPE html>\r\n<html><head><meta charset=\"{}\"></head><body>\r\n<p>{}</p>\r\n</body></html>\r\n",
                charset_name(cs),
                body.replace("\r\n\r\n", "</p>\r\n<p>")
            );
        }
        self.leaf_from_text(
            &body,
            cs,
            cte,
            if html { "text/html" } else { "text/plain" },
        );
    }

    fn leaf_from_text(&mut self, body: &str, cs: Charset, cte: Cte, ctype: &str) {
        let bytes: Vec<u8> = match cs {
            Charset::Latin1 => body
                .chars()
                .map(|c| u8::try_from(u32::from(c)).unwrap_or(b'?'))
                .collect(),
            _ => body.as_bytes().to_vec(),
        };
        let flowed = ctype == "text/plain" && self.r.chance(0.2);
        self.line(&format!(
            "Content-Type: {ctype}; charset=\"{}\"{}",
            charset_name(cs),
            if flowed { "; format=flowed" } else { "" }
        ));
        let cte = if cs == Charset::Ascii {
            Cte::SevenBit
        } else {
            cte
        };
        self.line(&format!("Content-Transfer-Encoding: {}", cte_name(cte)));
        self.line("");
        match cte {
            Cte::SevenBit | Cte::EightBit => self.out.extend_from_slice(&bytes),
            Cte::QuotedPrintable => quoted_printable(&bytes, &mut self.out),
            Cte::Base64 => base64_lines(&bytes, &mut self.out),
        }
    }

    fn alternative(&mut self, len: u64) {
        let b = self.boundary();
        self.line(&format!(
            "Content-Type: multipart/alternative; boundary=\"{b}\""
        ));
        self.line("");
        self.line("This is a multi-part message in MIME format.");
        self.line(&format!("--{b}"));
        self.text_leaf(len / 2, false);
        self.line(&format!("--{b}"));
        self.text_leaf(len / 2, true);
        self.line(&format!("--{b}--"));
    }

    fn related(&mut self, len: u64) {
        let b = self.boundary();
        let images = self.r.range(1, 2);
        let img_len = (len / 3).clamp(KB, 40 * KB);
        let text_len = len.saturating_sub(img_len * images);
        self.line(&format!(
            "Content-Type: multipart/related; boundary=\"{b}\"; type=\"multipart/alternative\""
        ));
        self.line("");
        self.line(&format!("--{b}"));
        let cids: Vec<String> = (0..images)
            .map(|k| format!("img{k}.{}@corpus.example", self.meta.index))
            .collect();
        // multipart/alternative whose HTML references the images.
        let ab = self.boundary();
        self.line(&format!(
            "Content-Type: multipart/alternative; boundary=\"{ab}\""
        ));
        self.line("");
        self.line(&format!("--{ab}"));
        self.text_leaf(text_len / 2, false);
        self.line(&format!("--{ab}"));
        let (cs, cte) = self.pick_text_encoding();
        let text = self.text(text_len / 2, cs);
        let imgs: String = cids
            .iter()
            .map(|c| format!("<img src=\"cid:{c}\" alt=\"logo\">\r\n"))
            .collect();
        let html = format!(
            "<html><body>\r\n{imgs}<p>{}</p>\r\n</body></html>\r\n",
            text.replace("\r\n\r\n", "</p>\r\n<p>")
        );
        self.leaf_from_text(&html, cs, cte, "text/html");
        self.line(&format!("--{ab}--"));
        for (k, cid) in cids.iter().enumerate() {
            self.line(&format!("--{b}"));
            let png = self.binary(img_len, b"\x89PNG\r\n\x1a\n");
            self.line(&format!("Content-Type: image/png; name=\"image{k}.png\""));
            self.line("Content-Transfer-Encoding: base64");
            self.line(&format!("Content-ID: <{cid}>"));
            self.line(&format!(
                "Content-Disposition: inline; filename=\"image{k}.png\""
            ));
            self.line("");
            base64_lines(&png, &mut self.out);
        }
        self.line(&format!("--{b}--"));
    }

    fn binary(&mut self, len: u64, magic: &[u8]) -> Vec<u8> {
        let len = usize::try_from(len).unwrap_or(usize::MAX).max(magic.len());
        let mut v = vec![0u8; len];
        self.r.fill(&mut v);
        v[..magic.len()].copy_from_slice(magic);
        v
    }

    fn mixed(&mut self, target: u64) {
        let b = self.boundary();
        self.line(&format!("Content-Type: multipart/mixed; boundary=\"{b}\""));
        self.line("");
        self.line("This is a multi-part message in MIME format.");
        self.line(&format!("--{b}"));
        let text_len = self.r.log_uniform(500, 6 * KB).min(target / 4 + 200);
        if self.r.chance(0.5) {
            self.alternative(text_len);
        } else {
            self.text_leaf(text_len, false);
        }
        // Encoded size ≈ raw × 4/3 (+ CRLF per 76 chars): aim the raw total at that.
        let raw_total = target.saturating_sub(text_len + 2 * KB) * 3 / 4 * 76 / 78;
        let count = if target > 20 * MB {
            1
        } else {
            self.r.range(1, 3)
        };
        for k in 0..count {
            let share = if k + 1 == count {
                raw_total / count + raw_total % count
            } else {
                raw_total / count
            };
            self.line(&format!("--{b}"));
            self.attachment(share.max(64), k);
        }
        self.line(&format!("--{b}--"));
    }

    fn attachment(&mut self, raw_len: u64, k: u64) {
        const KINDS: [(&str, &str, &[u8]); 6] = [
            ("application/pdf", "pdf", b"%PDF-1.7\n"),
            ("image/jpeg", "jpg", b"\xff\xd8\xff\xe0\x00\x10JFIF"),
            ("application/zip", "zip", b"PK\x03\x04"),
            (
                "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
                "docx",
                b"PK\x03\x04",
            ),
            ("application/octet-stream", "bin", b""),
            ("text/csv", "csv", b""),
        ];
        let (ctype, ext, magic) = *self.r.pick(&KINDS);
        let stems = [
            "Report",
            "Rechnung_März",
            "Résumé",
            "scan",
            "data",
            "Präsentation",
        ];
        let stem = *self.r.pick(&stems);
        let filename = format!("{stem}_{k}.{ext}");
        let data = if ctype == "text/csv" {
            let mut s = String::from("id;name;amount\r\n");
            let mut i = 0;
            while (s.len() as u64) < raw_len {
                i += 1;
                s.push_str(&format!(
                    "{i};{};{}\r\n",
                    self.words(1, Charset::Utf8),
                    self.r.below(100_000)
                ));
            }
            s.into_bytes()
        } else {
            self.binary(raw_len, magic)
        };
        if filename.is_ascii() {
            self.line(&format!("Content-Type: {ctype}; name=\"{filename}\""));
            self.line(&format!(
                "Content-Disposition: attachment; filename=\"{filename}\"; size={}",
                data.len()
            ));
        } else {
            // RFC 2047 in name= (what many clients send) and RFC 2231 in filename*.
            self.line(&format!(
                "Content-Type: {ctype};\r\n name=\"{}\"",
                encode_word(&filename, true)
            ));
            self.line(&format!(
                "Content-Disposition: attachment;\r\n filename*=UTF-8''{}",
                percent_encode(&filename)
            ));
        }
        self.line("Content-Transfer-Encoding: base64");
        self.line("");
        base64_lines(&data, &mut self.out);
    }
}

fn charset_name(cs: Charset) -> &'static str {
    match cs {
        Charset::Ascii => "us-ascii",
        Charset::Utf8 => "utf-8",
        Charset::Latin1 => "iso-8859-1",
    }
}

fn cte_name(cte: Cte) -> &'static str {
    match cte {
        Cte::SevenBit => "7bit",
        Cte::EightBit => "8bit",
        Cte::QuotedPrintable => "quoted-printable",
        Cte::Base64 => "base64",
    }
}

/// Base64 with CRLF every 76 characters.
fn base64_lines(data: &[u8], out: &mut Vec<u8>) {
    let engine = &base64::engine::general_purpose::STANDARD;
    let mut line = [0u8; 80];
    out.reserve(data.len() / 57 * 78 + 80);
    for chunk in data.chunks(57) {
        let n = engine.encode_slice(chunk, &mut line).unwrap_or(0);
        out.extend_from_slice(&line[..n]);
        out.extend_from_slice(b"\r\n");
    }
}

/// Quoted-printable (RFC 2045 6.7) of text with CRLF line breaks.
pub(super) fn quoted_printable(data: &[u8], out: &mut Vec<u8>) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for (li, line) in data.split(|&b| b == b'\n').enumerate() {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if li > 0 {
            out.extend_from_slice(b"\r\n");
        }
        let mut col = 0;
        for (i, &b) in line.iter().enumerate() {
            let last = i + 1 == line.len();
            let literal =
                (b == b' ' || b == b'\t') && !last || (33..=126).contains(&b) && b != b'=';
            let width = if literal { 1 } else { 3 };
            if col + width > 75 {
                out.extend_from_slice(b"=\r\n");
                col = 0;
            }
            if literal {
                out.push(b);
            } else {
                out.extend_from_slice(&[b'=', HEX[usize::from(b >> 4)], HEX[usize::from(b & 15)]]);
            }
            col += width;
        }
    }
}

/// RFC 2047 encoded-words (UTF-8, B or Q), folded so each word stays ≤ 75 characters.
pub(super) fn encode_word(text: &str, b_encoding: bool) -> String {
    let mut words = Vec::new();
    let mut chunk = String::new();
    let limit = if b_encoding { 45 } else { 20 };
    for c in text.chars() {
        if chunk.len() + c.len_utf8() > limit {
            words.push(std::mem::take(&mut chunk));
        }
        chunk.push(c);
    }
    if !chunk.is_empty() {
        words.push(chunk);
    }
    words
        .iter()
        .map(|w| {
            if b_encoding {
                format!(
                    "=?UTF-8?B?{}?=",
                    base64::engine::general_purpose::STANDARD.encode(w.as_bytes())
                )
            } else {
                format!("=?UTF-8?Q?{}?=", q_encode(w.as_bytes()))
            }
        })
        .collect::<Vec<_>>()
        .join("\r\n ")
}

/// RFC 2047 Q encoding in ISO-8859-1, or `None` when the text is not Latin-1.
pub(super) fn encode_latin1_word(text: &str) -> Option<String> {
    let bytes: Option<Vec<u8>> = text
        .chars()
        .map(|c| u8::try_from(u32::from(c)).ok())
        .collect();
    Some(format!("=?ISO-8859-1?Q?{}?=", q_encode(&bytes?)))
}

fn q_encode(bytes: &[u8]) -> String {
    let mut s = String::new();
    for &b in bytes {
        match b {
            b' ' => s.push('_'),
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'!' | b'*' | b'+' | b'-' | b'/' => {
                s.push(b as char)
            }
            _ => s.push_str(&format!("={b:02X}")),
        }
    }
    s
}

pub(super) fn percent_encode(s: &str) -> String {
    let mut out = String::new();
    for &b in s.as_bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
