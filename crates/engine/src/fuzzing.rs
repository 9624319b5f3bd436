//! Fuzz targets on stable Rust: the job-file target's body ([`parse_job`]), every target of the
//! workspace in one list ([`targets`]) and a small time-bounded mutation fuzzer ([`fuzz_for`])
//! that `cargo xtask fuzz --seconds N` runs (cargo-fuzz itself needs a nightly toolchain; the
//! cargo-fuzz project of the job-file target is `crates/engine/fuzz`).
//!
//! ```
//! use o365_migrate_engine::fuzzing::{fuzz_for, targets};
//! use std::time::Duration;
//!
//! for target in targets() {
//!     let stats = fuzz_for(&target, Duration::from_millis(20), 7, &[]);
//!     assert!(stats.executions > 0);
//!     assert!(stats.crash.is_none(), "{}: {:?}", target.name, stats.crash);
//! }
//! ```

use std::path::Path;
use std::time::{Duration, Instant};

use crate::config::{Job, TEMPLATE};

/// The job-file fuzz target: any bytes as job-file text. Parsing and validation must return a
/// value or a located error, never panic; an error's message names the file, and a job that
/// parses answers its accessors.
///
/// Panics when an invariant is broken (that is what a fuzzer looks for).
pub fn parse_job(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    match Job::parse(&text, "fuzz.toml") {
        Ok(job) => {
            let _ = job.base_dir();
            let _ = job.resolve_path(&job.state.path);
            let _ = job.source.port();
            let _ = job.secret_refs();
            let _ = job.target.settings();
            let _ = format!("{job:?}");
        }
        Err(e) => {
            let msg = e.to_string();
            assert!(!msg.is_empty(), "empty error message");
            assert!(
                msg.contains("fuzz.toml"),
                "error does not name the file: {msg}"
            );
        }
    }
}

/// One fuzz target: a name and its body.
#[derive(Clone, Copy)]
pub struct FuzzTarget {
    /// Short name (`csv`, `imap-responses`, `mime-normalize`, `job-file`).
    pub name: &'static str,
    /// The body: panics on a finding.
    pub run: fn(&[u8]),
    /// Built-in seed inputs.
    pub seeds: fn() -> Vec<Vec<u8>>,
}

impl std::fmt::Debug for FuzzTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FuzzTarget")
            .field("name", &self.name)
            .finish()
    }
}

fn run_csv(data: &[u8]) {
    o365_migrate_credentials::fuzzing::fuzz_parse(data);
}

fn run_imap(data: &[u8]) {
    let _ = o365_migrate_imap::core::fuzz_responses(data);
}

fn run_mime(data: &[u8]) {
    o365_migrate_mime::fuzzing::parse_normalize(data);
}

fn seeds_csv() -> Vec<Vec<u8>> {
    vec![
        b"\x01EmailAddress,UserName,Password\r\nalice@example.com,alice,pw1\r\nbob@example.com,bob,\"p,w\"\"2\"\r\n".to_vec(),
        b"\x02Login;Password;Target\nalice;secret;alice@contoso.com\n".to_vec(),
        b"\x90\x00\x01a,b\r\n\"unterminated\r\n".to_vec(),
    ]
}

fn seeds_imap() -> Vec<Vec<u8>> {
    vec![
        b"* OK [CAPABILITY IMAP4rev1 STARTTLS AUTH=PLAIN] ready.\r\n".to_vec(),
        b"* 1 FETCH (UID 7 FLAGS (\\Seen) INTERNALDATE \"01-Mar-2024 12:00:00 +0000\" RFC822.SIZE 5 BODY[] {5}\r\nHello)\r\na1 OK done\r\n".to_vec(),
        b"* LIST (\\HasNoChildren \\Sent) \"/\" \"Sent\"\r\n* STATUS INBOX (MESSAGES 3 UIDNEXT 4 UIDVALIDITY 9)\r\n* SEARCH 1 2 3\r\n* BYE bye\r\n".to_vec(),
    ]
}

fn seeds_mime() -> Vec<Vec<u8>> {
    vec![
        b"From: a@example.com\r\nTo: b@example.com\r\nSubject: =?utf-8?q?Gr=C3=BC=C3=9Fe?=\r\nMessage-ID: <1@x>\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n--b1\r\nContent-Type: text/plain; charset=iso-8859-1\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\nH=E9llo\r\n--b1\r\nContent-Type: application/octet-stream; name=\"a.bin\"\r\nContent-Transfer-Encoding: base64\r\n\r\nAAEC\r\n--b1--\r\n".to_vec(),
        b"Subject: bare\nContent-Type: text/html\n\n<p>x</p>\n".to_vec(),
    ]
}

fn seeds_job() -> Vec<Vec<u8>> {
    vec![
        TEMPLATE.as_bytes().to_vec(),
        b"[source]\nhost = \"h\"\ncredentials = \"u.csv\"\n[target]\nkind = \"eml\"\n[target.eml]\ndirectory = \"out\"\n".to_vec(),
    ]
}

/// Every fuzz target of the workspace: the CSV reader, IMAP response handling, MIME normalize
/// and the job file.
pub fn targets() -> Vec<FuzzTarget> {
    vec![
        FuzzTarget {
            name: "csv",
            run: run_csv,
            seeds: seeds_csv,
        },
        FuzzTarget {
            name: "imap-responses",
            run: run_imap,
            seeds: seeds_imap,
        },
        FuzzTarget {
            name: "mime-normalize",
            run: run_mime,
            seeds: seeds_mime,
        },
        FuzzTarget {
            name: "job-file",
            run: parse_job,
            seeds: seeds_job,
        },
    ]
}

/// The regression fixtures of a target: every file in `dir/<target name>/` (sorted), as kept
/// after each finding.
pub fn load_fixtures(dir: &Path, target: &FuzzTarget) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir.join(target.name)) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_file()
                && let Ok(bytes) = std::fs::read(&p)
            {
                out.push((e.file_name().to_string_lossy().into_owned(), bytes));
            }
        }
    }
    out.sort();
    out
}

/// What [`fuzz_for`] did.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct FuzzStats {
    /// Inputs run.
    pub executions: u64,
    /// Largest input tried.
    pub max_input: usize,
    /// The first input that panicked, with the panic message.
    pub crash: Option<(Vec<u8>, String)>,
}

/// A xorshift generator (reproducible from the seed).
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
    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
}

/// Bytes and tokens that tend to matter to these parsers.
const TOKENS: &[&[u8]] = &[
    b"\r\n",
    b"\n",
    b"\0",
    b"\"",
    b",",
    b";",
    b"{",
    b"}",
    b"{4294967295}\r\n",
    b"{0}\r\n",
    b"(",
    b")",
    b"[",
    b"]",
    b"=",
    b"\\",
    b"* ",
    b"--",
    b"boundary=",
    b"Content-Type: multipart/mixed; boundary=x\r\n",
    b"Content-Transfer-Encoding: base64\r\n",
    b"=?utf-8?b?",
    b"?=",
    b"\xff\xfe",
    b"\xc3\x28",
    b"[source]\n",
    b"[target]\n",
    b"env:",
    b"file:",
    b"999999999999999999999",
    b"-1",
];

fn mutate(rng: &mut Rng, input: &mut Vec<u8>, pool: &[Vec<u8>], max_len: usize) {
    let rounds = 1 + rng.below(4);
    for _ in 0..rounds {
        let len = input.len();
        match rng.below(9) {
            0 if len > 0 => {
                let i = rng.below(len);
                input[i] ^= 1 << rng.below(8);
            }
            1 if len > 0 => {
                let i = rng.below(len);
                input[i] = rng.next() as u8;
            }
            2 => {
                let t = TOKENS[rng.below(TOKENS.len())];
                let at = rng.below(len + 1);
                input.splice(at..at, t.iter().copied());
            }
            3 if len > 0 => {
                let a = rng.below(len);
                let b = (a + 1 + rng.below(64)).min(len);
                input.drain(a..b);
            }
            4 if len > 0 => {
                let a = rng.below(len);
                let b = (a + 1 + rng.below(256)).min(len);
                let piece: Vec<u8> = input[a..b].to_vec();
                let at = rng.below(len + 1);
                input.splice(at..at, piece);
            }
            5 if !pool.is_empty() => {
                let other = &pool[rng.below(pool.len())];
                if !other.is_empty() {
                    let a = rng.below(other.len());
                    let b = (a + 1 + rng.below(512)).min(other.len());
                    let at = rng.below(len + 1);
                    input.splice(at..at, other[a..b].iter().copied());
                }
            }
            6 => input.truncate(rng.below(len + 1)),
            7 => {
                let at = rng.below(len + 1);
                let n = 1 + rng.below(8);
                let bytes: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
                input.splice(at..at, bytes);
            }
            _ => {
                // Repeat a short run: long lines, deep nesting, huge counts.
                let at = rng.below(len + 1);
                let t = TOKENS[rng.below(TOKENS.len())];
                let n = 1 + rng.below(200);
                let rep: Vec<u8> = t.iter().copied().cycle().take(t.len() * n).collect();
                input.splice(at..at, rep);
            }
        }
        input.truncate(max_len);
    }
}

/// Runs `target` on mutations of its seeds and of `extra` for about `duration` (at least one
/// execution per seed first), stopping at the first panic. Reproducible from `seed`.
pub fn fuzz_for(
    target: &FuzzTarget,
    duration: Duration,
    seed: u64,
    extra: &[Vec<u8>],
) -> FuzzStats {
    let mut pool: Vec<Vec<u8>> = (target.seeds)();
    pool.extend(extra.iter().cloned());
    let mut stats = FuzzStats::default();
    let mut rng = Rng(seed | 1);
    let started = Instant::now();
    let max_len = 64 * 1024;
    let try_one = |input: &[u8], stats: &mut FuzzStats| -> bool {
        stats.executions += 1;
        stats.max_input = stats.max_input.max(input.len());
        let run = target.run;
        match std::panic::catch_unwind(|| run(input)) {
            Ok(()) => true,
            Err(payload) => {
                let msg = payload
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| payload.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                    .unwrap_or_else(|| "panic".to_owned());
                stats.crash = Some((input.to_vec(), msg));
                false
            }
        }
    };
    for s in pool.clone() {
        if !try_one(&s, &mut stats) {
            return stats;
        }
    }
    while started.elapsed() < duration {
        let base = &pool[rng.below(pool.len())];
        let mut input = base.clone();
        mutate(&mut rng, &mut input, &pool, max_len);
        if !try_one(&input, &mut stats) {
            return stats;
        }
        // Keep some mutants as new starting points (a crude corpus without coverage).
        if rng.below(64) == 0 && pool.len() < 256 {
            pool.push(input);
        }
    }
    stats
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn fixtures_dir() -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/fuzz")
    }

    #[test]
    fn every_regression_fixture_never_panics() {
        let mut n = 0;
        for t in targets() {
            for (name, bytes) in load_fixtures(&fixtures_dir(), &t) {
                let run = t.run;
                let r = std::panic::catch_unwind(|| run(&bytes));
                assert!(r.is_ok(), "{}/{name} panics again", t.name);
                n += 1;
            }
        }
        assert!(
            n > 0,
            "no fixtures found under {}",
            fixtures_dir().display()
        );
    }

    #[test]
    fn the_mutation_fuzzer_never_panics_briefly() {
        for t in targets() {
            let stats = fuzz_for(&t, Duration::from_millis(300), 0x5eed, &[]);
            assert!(stats.executions > 10, "{}: {stats:?}", t.name);
            assert!(stats.crash.is_none(), "{}: {:?}", t.name, stats.crash);
        }
    }

    #[test]
    fn fuzz_for_reports_a_panicking_target() {
        fn boom(d: &[u8]) {
            assert!(!d.contains(&b'!'), "found a bang");
        }
        let t = FuzzTarget {
            name: "boom",
            run: boom,
            seeds: || vec![b"abc".to_vec()],
        };
        let hook = std::panic::take_hook();
        std::panic::set_hook(Box::new(|_| {}));
        let stats = fuzz_for(&t, Duration::from_secs(5), 3, &[b"x!".to_vec()]);
        std::panic::set_hook(hook);
        let (input, msg) = stats.crash.expect("the bang is found");
        assert!(input.contains(&b'!') && msg.contains("bang"), "{msg}");
    }

    proptest! {
        #[test]
        fn job_file_never_panics(data in proptest::collection::vec(any::<u8>(), 0..600)) {
            parse_job(&data);
        }

        #[test]
        fn job_file_mutated_template_never_panics(
            pos in 0usize..8000,
            cut in 0usize..200,
            insert in proptest::collection::vec(any::<u8>(), 0..40),
        ) {
            let mut t = TEMPLATE.as_bytes().to_vec();
            let at = pos.min(t.len());
            let end = (at + cut).min(t.len());
            t.splice(at..end, insert);
            parse_job(&t);
        }
    }
}
