//! A small deterministic message generator private to this crate's tests and bench.
//! (testkit's corpus generator had not landed when these tests were written.)

#![allow(dead_code, unreachable_pub)]

/// xorshift64* — deterministic, no dependency.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

const WORDS: &[&str] = &[
    "migration",
    "mailbox",
    "quarterly",
    "report",
    "meeting",
    "invoice",
    "project",
    "Grüße",
    "schedule",
    "review",
    "the",
    "and",
    "of",
    "to",
    "budget",
    "déjà",
    "vu",
    "contract",
    "update",
    "team",
    "日本語",
];

/// One generated message: RFC 5322 bytes with CRLF line endings.
pub fn message(rng: &mut Rng, index: usize, target_size: usize) -> Vec<u8> {
    let mut m = Vec::with_capacity(target_size + 1024);
    let day = 1 + (index % 28);
    m.extend_from_slice(
        format!(
            "From: Sender {index} <sender{index}@example.com>\r\nTo: alice@example.org\r\n\
Subject: Corpus message {index} {}\r\nDate: {day:02} Mar 2024 10:{:02}:00 +0100\r\n\
Message-ID: <corpus-{index}@example.com>\r\nMIME-Version: 1.0\r\n",
            WORDS[rng.below(WORDS.len() as u64) as usize],
            index % 60
        )
        .as_bytes(),
    );
    if target_size < 8 * 1024 {
        m.extend_from_slice(
            b"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n",
        );
        text(rng, &mut m, target_size);
    } else {
        m.extend_from_slice(b"Content-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n--b1\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n");
        text(rng, &mut m, 2048);
        m.extend_from_slice(b"\r\n--b1\r\nContent-Type: application/octet-stream; name=\"data.bin\"\r\nContent-Transfer-Encoding: base64\r\n\r\n");
        const B64: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        while m.len() + 80 < target_size {
            for _ in 0..76 {
                m.push(B64[rng.below(64) as usize]);
            }
            m.extend_from_slice(b"\r\n");
        }
        m.extend_from_slice(b"--b1--\r\n");
    }
    m
}

fn text(rng: &mut Rng, m: &mut Vec<u8>, size: usize) {
    let start = m.len();
    let mut col = 0;
    while m.len() - start < size {
        let w = WORDS[rng.below(WORDS.len() as u64) as usize];
        m.extend_from_slice(w.as_bytes());
        col += w.len() + 1;
        if col > 70 {
            m.extend_from_slice(b"\r\n");
            col = 0;
        } else {
            m.push(b' ');
        }
    }
    m.extend_from_slice(b"\r\n");
}

/// Sizes with a heavy tail around `mean` bytes (most small, a few large).
pub fn size(rng: &mut Rng, mean: usize) -> usize {
    let r = rng.below(100);
    let base = match r {
        0..=59 => mean / 5,
        60..=89 => mean,
        _ => mean * 5,
    };
    // ±50 % jitter; mean stays ≈ 0.6*0.2+0.3*1+0.1*5 = 0.92 × mean
    let jitter = rng.below(base as u64 + 1) as usize;
    (base / 2 + jitter).max(600)
}
