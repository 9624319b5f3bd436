//! Throughput of the MIME crate over a generated, realistic corpus (single thread).
//!
//! Run: `cargo run --release -p o365-migrate-mime --example bench -- [--mb N] [--rounds R]`
//!
//! The corpus is generated in memory (deterministic, seed-based): about 60 % small
//! text/HTML conversations (multipart/alternative, quoted-printable, some non-UTF-8
//! charsets), about 30 % messages with one to three 20 KB–2 MB base64 attachments and an
//! inline image, and about 10 % with a 4–12 MB attachment. Every figure is MB of raw
//! message bytes per second on one core. The last line is one JSON object.

use std::hint::black_box;
use std::time::Instant;

use base64::Engine as _;
use o365_migrate_mime::{Flags, InternalDate, fingerprint, normalize, to_graph};

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn bytes(&mut self, len: usize) -> Vec<u8> {
        let mut v = Vec::with_capacity(len + 8);
        while v.len() < len {
            v.extend_from_slice(&self.next().to_le_bytes());
        }
        v.truncate(len);
        v
    }
}

const WORDS: &[&str] = &[
    "meeting", "report", "quarter", "budget", "the", "and", "please", "review", "attached",
    "thanks", "regards", "project", "deadline", "tomorrow", "customer", "invoice", "update",
    "café", "Grüße", "naïve", "schedule", "next", "week", "team", "numbers", "draft",
];

fn sentence(rng: &mut Rng, words: usize) -> String {
    let mut s = String::new();
    for i in 0..words {
        if i > 0 {
            s.push(' ');
        }
        s.push_str(WORDS[rng.below(WORDS.len() as u64) as usize]);
    }
    s.push('.');
    s
}

fn qp(text: &str) -> String {
    let mut out = String::with_capacity(text.len() * 2);
    let mut col = 0;
    for &b in text.as_bytes() {
        let piece = if b == b'\n' {
            col = 0;
            out.push_str("\r\n");
            continue;
        } else if b == b'=' || b >= 0x80 {
            format!("={b:02X}")
        } else {
            (b as char).to_string()
        };
        if col + piece.len() > 75 {
            out.push_str("=\r\n");
            col = 0;
        }
        col += piece.len();
        out.push_str(&piece);
    }
    out
}

fn b64_lines(data: &[u8]) -> String {
    let s = base64::engine::general_purpose::STANDARD.encode(data);
    let mut out = String::with_capacity(s.len() + s.len() / 38 + 2);
    for chunk in s.as_bytes().chunks(76) {
        out.push_str(std::str::from_utf8(chunk).unwrap_or_default());
        out.push_str("\r\n");
    }
    out
}

fn headers(rng: &mut Rng, i: usize, ctype: &str) -> String {
    let mut h = String::new();
    for hop in 0..(2 + rng.below(5)) {
        h.push_str(&format!(
            "Received: from mx{hop}.example.net (mx{hop}.example.net [192.0.2.{}])\r\n\tby mail.example.com with ESMTPS id {:016x}\r\n\tfor <user@example.com>; Mon, 6 May 2024 09:{:02}:00 +0000\r\n",
            rng.below(250),
            rng.next(),
            rng.below(60)
        ));
    }
    h.push_str("DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d=example.net; s=sel;\r\n\th=from:to:subject:date; bh=47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=;\r\n\tb=dGVzdHRlc3R0ZXN0dGVzdHRlc3R0ZXN0dGVzdHRlc3R0ZXN0dGVzdHRlc3R0ZXN0dGVzdA==\r\n");
    h.push_str(&format!(
        "From: =?UTF-8?Q?J=C3=B6rg_Sender_{}?= <sender{}@example.net>\r\nTo: User <user@example.com>, Other <other{}@example.com>\r\nCc: team@example.com\r\nSubject: {}\r\nDate: Mon, 6 May 2024 09:{:02}:00 +0200\r\nMessage-ID: <{:016x}.{i}@example.net>\r\nMIME-Version: 1.0\r\nX-Mailer: bench\r\nContent-Type: {ctype}\r\n",
        i % 97,
        i % 97,
        i % 13,
        sentence(rng, 5),
        rng.below(60),
        rng.next(),
    ));
    h
}

fn alternative(rng: &mut Rng, paragraphs: usize, boundary: &str, charset: &str) -> String {
    let mut text = String::new();
    for _ in 0..paragraphs {
        let words = 20 + rng.below(40) as usize;
        text.push_str(&sentence(rng, words));
        text.push_str("\n\n");
    }
    let html = format!(
        "<html><body>{}</body></html>\n",
        text.split("\n\n")
            .map(|p| format!("<p>{p}</p>"))
            .collect::<String>()
    );
    let (text_enc, html_enc) = if charset == "utf-8" {
        (qp(&text), qp(&html))
    } else {
        // ISO-8859-1 body: re-encode the few non-ASCII letters.
        let latin: Vec<u8> = text
            .chars()
            .map(|c| u8::try_from(u32::from(c)).unwrap_or(b'?'))
            .collect();
        let latin_html: Vec<u8> = html
            .chars()
            .map(|c| u8::try_from(u32::from(c)).unwrap_or(b'?'))
            .collect();
        (b64_lines(&latin), b64_lines(&latin_html))
    };
    let cte = if charset == "utf-8" {
        "quoted-printable"
    } else {
        "base64"
    };
    format!(
        "--{boundary}\r\nContent-Type: text/plain; charset={charset}\r\nContent-Transfer-Encoding: {cte}\r\n\r\n{text_enc}\r\n--{boundary}\r\nContent-Type: text/html; charset={charset}\r\nContent-Transfer-Encoding: {cte}\r\n\r\n{html_enc}\r\n--{boundary}--\r\n"
    )
}

fn attachment(rng: &mut Rng, name: &str, size: usize, boundary: &str) -> String {
    format!(
        "--{boundary}\r\nContent-Type: application/octet-stream; name=\"{name}\"\r\nContent-Disposition: attachment; filename=\"{name}\"\r\nContent-Transfer-Encoding: base64\r\n\r\n{}",
        b64_lines(&rng.bytes(size))
    )
}

fn message(rng: &mut Rng, i: usize) -> Vec<u8> {
    let kind = rng.below(100);
    let charset = if rng.below(5) == 0 {
        "iso-8859-1"
    } else {
        "utf-8"
    };
    if kind < 60 {
        let mut m = headers(rng, i, "multipart/alternative; boundary=\"alt\"");
        m.push_str("\r\n");
        let paragraphs = 2 + rng.below(20) as usize;
        m.push_str(&alternative(rng, paragraphs, "alt", charset));
        m.into_bytes()
    } else {
        let mut m = headers(rng, i, "multipart/mixed; boundary=\"mix\"");
        m.push_str("\r\n--mix\r\nContent-Type: multipart/alternative; boundary=\"alt\"\r\n\r\n");
        let paragraphs = 2 + rng.below(6) as usize;
        m.push_str(&alternative(rng, paragraphs, "alt", charset));
        let image_len = 8_000 + rng.below(20_000) as usize;
        m.push_str(&format!(
            "--mix\r\nContent-Type: image/png\r\nContent-ID: <img{i}@example.net>\r\nContent-Disposition: inline\r\nContent-Transfer-Encoding: base64\r\n\r\n{}",
            b64_lines(&rng.bytes(image_len))
        ));
        let files = if kind < 90 {
            1 + rng.below(3) as usize
        } else {
            1
        };
        for f in 0..files {
            let size = if kind < 90 {
                20_000 + rng.below(2_000_000) as usize
            } else {
                4_000_000 + rng.below(8_000_000) as usize
            };
            m.push_str(&attachment(rng, &format!("file{f}.bin"), size, "mix"));
        }
        m.push_str("--mix--\r\n");
        m.into_bytes()
    }
}

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Nanoseconds this thread has spent on a CPU (Linux `/proc/thread-self/schedstat`), so
/// that figures stay per-core honest on a shared, loaded machine. `None` elsewhere.
fn thread_cpu_ns() -> Option<u128> {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    s.split_whitespace().next()?.parse().ok()
}

/// Returns (MB/s per core from CPU time, MB/s from wall time), best of `rounds` passes.
fn measure(
    label: &str,
    corpus: &[Vec<u8>],
    total: usize,
    rounds: usize,
    f: impl Fn(&[u8]),
) -> (f64, f64) {
    for m in corpus.iter().take(20) {
        f(m);
    }
    let (mut best_cpu, mut best_wall) = (f64::MAX, f64::MAX);
    for _ in 0..rounds {
        let cpu0 = thread_cpu_ns();
        let start = Instant::now();
        for m in corpus {
            f(m);
        }
        let wall = start.elapsed().as_secs_f64();
        let cpu = match (cpu0, thread_cpu_ns()) {
            (Some(a), Some(b)) => (b.saturating_sub(a)) as f64 / 1e9,
            _ => wall,
        };
        best_cpu = best_cpu.min(cpu);
        best_wall = best_wall.min(wall);
    }
    let cpu_mb_s = total as f64 / 1e6 / best_cpu;
    let wall_mb_s = total as f64 / 1e6 / best_wall;
    println!(
        "{label:<40} {cpu_mb_s:>8.1} MB/s per core (CPU {best_cpu:.3} s)   wall {wall_mb_s:>8.1} MB/s ({best_wall:.3} s)"
    );
    (cpu_mb_s, wall_mb_s)
}

fn main() {
    let target_mb = arg("--mb", 256);
    let rounds = arg("--rounds", 3).max(1);
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut corpus = Vec::new();
    let mut total = 0usize;
    let gen_start = Instant::now();
    while total < target_mb * 1_000_000 {
        let m = message(&mut rng, corpus.len());
        total += m.len();
        corpus.push(m);
    }
    let mean = total / corpus.len().max(1);
    println!(
        "corpus: {} messages, {:.1} MB, mean {:.1} KB (generated in {:.1} s)",
        corpus.len(),
        total as f64 / 1e6,
        mean as f64 / 1e3,
        gen_start.elapsed().as_secs_f64()
    );
    println!("single thread, best of {rounds} passes; MB = 10^6 raw message bytes");

    let flags = Flags::from_imap(["\\Seen"]);
    let date = InternalDate::new(1_715_000_000, 120);
    let small_only = std::env::args().any(|a| a == "--small-only");
    // `--small-only` (for profiling) times the small-message set alone.
    let whole: &[Vec<u8>] = if small_only { &corpus[..1] } else { &corpus };
    let total = if small_only { corpus[0].len() } else { total };
    let fp = measure(
        "fingerprint (SHA-256 + header key)",
        whole,
        total,
        rounds,
        |m| {
            black_box(fingerprint(black_box(m)));
        },
    );
    let parse = measure("parse only (mail-parser)", whole, total, rounds, |m| {
        black_box(
            mail_parser::MessageParser::new()
                .with_mime_headers()
                .parse(black_box(m)),
        );
    });
    let pf = measure(
        "parse + normalize + fingerprint",
        whole,
        total,
        rounds,
        |m| {
            black_box(normalize(black_box(m)));
            black_box(fingerprint(black_box(m)));
        },
    );
    let pfg = measure(
        "parse + fingerprint + Graph conversion",
        whole,
        total,
        rounds,
        |m| {
            black_box(fingerprint(black_box(m)));
            black_box(to_graph(black_box(m), &flags, date.as_ref()));
        },
    );
    // The same over only the small text/HTML messages (no attachments), where per-message
    // overhead rather than base64 and hashing dominates.
    let small_set: Vec<&Vec<u8>> = corpus.iter().filter(|m| m.len() < 100_000).collect();
    let set_bytes: usize = small_set.iter().map(|m| m.len()).sum::<usize>().max(1);
    // Repeat the set to about 32 MB so a pass is long enough to time.
    let repeat = (32_000_000 / set_bytes).max(1);
    let small: Vec<Vec<u8>> = (0..repeat)
        .flat_map(|_| small_set.iter().map(|m| (*m).clone()))
        .collect();
    let small_total: usize = small.iter().map(Vec::len).sum();
    println!(
        "small messages only: {} distinct x {repeat} = {} messages, {:.1} MB, mean {:.1} KB",
        small_set.len(),
        small.len(),
        small_total as f64 / 1e6,
        small_total as f64 / 1e3 / small.len().max(1) as f64
    );
    let small_rounds = rounds;
    let spf = measure(
        "  parse + normalize + fingerprint",
        &small,
        small_total,
        small_rounds,
        |m| {
            black_box(normalize(black_box(m)));
            black_box(fingerprint(black_box(m)));
        },
    );
    let spfg = measure(
        "  parse + fingerprint + Graph conversion",
        &small,
        small_total,
        small_rounds,
        |m| {
            black_box(fingerprint(black_box(m)));
            black_box(to_graph(black_box(m), &flags, date.as_ref()));
        },
    );
    let goal = 200.0;
    println!(
        "goal {goal} MB/s per core for parse + fingerprint: {}",
        if pf.0 >= goal { "met" } else { "NOT met" }
    );
    println!(
        "{{\"bench\":\"mime\",\"messages\":{},\"corpus_mb\":{:.1},\"rounds\":{rounds},\"fingerprint_mb_s\":{:.1},\"parse_mb_s\":{:.1},\"parse_fingerprint_mb_s\":{:.1},\"parse_fingerprint_graph_mb_s\":{:.1},\"parse_fingerprint_wall_mb_s\":{:.1},\"parse_fingerprint_graph_wall_mb_s\":{:.1},\"small_messages\":{},\"small_parse_fingerprint_mb_s\":{:.1},\"small_parse_fingerprint_graph_mb_s\":{:.1},\"per_core_from\":\"{}\",\"goal_parse_fingerprint_mb_s\":{goal},\"goal_met\":{}}}",
        corpus.len(),
        total as f64 / 1e6,
        fp.0,
        parse.0,
        pf.0,
        pfg.0,
        pf.1,
        pfg.1,
        small.len(),
        spf.0,
        spfg.0,
        if thread_cpu_ns().is_some() {
            "thread-cpu-time"
        } else {
            "wall-time"
        },
        pf.0 >= goal
    );
}
