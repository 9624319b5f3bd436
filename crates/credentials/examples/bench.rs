//! Benchmark: generate a credentials CSV of N rows (default 100,000), then parse and validate it,
//! best of several runs, for UTF-8 comma-separated and UTF-16 LE semicolon-separated (Excel).
//!
//! `cargo run --release -p o365-migrate-credentials --example bench -- [ROWS] [RUNS]`
//! Last line: `{"bench":"csv",...}`.

use std::time::{Duration, Instant};

use o365_migrate_credentials::{ReadOptions, parse_bytes};

fn generate(rows: usize, delim: char) -> String {
    let mut s = String::with_capacity(rows * 80);
    s.push_str(&format!(
        "EmailAddress{delim}UserName{delim}Password{delim}UserRoot\r\n"
    ));
    for i in 0..rows {
        // Every 7th password needs quoting (delimiter and quote inside), every 11th is a reference.
        let pw = if i % 11 == 0 {
            format!("env:PW_{i}")
        } else if i % 7 == 0 {
            format!("\"p{delim}w\"\"{i}\"")
        } else {
            format!("Pässwörd-{i:08}")
        };
        s.push_str(&format!(
            "user{i}@contoso.onmicrosoft.com{delim}contoso\\user.{i}{delim}{pw}{delim}/users/user.{i}\r\n"
        ));
    }
    s
}

fn utf16le_with_bom(s: &str) -> Vec<u8> {
    let mut out = vec![0xFF, 0xFE];
    for u in s.encode_utf16() {
        out.extend_from_slice(&u.to_le_bytes());
    }
    out
}

/// CPU time this thread has used (Linux `/proc/thread-self/schedstat`), so that a loaded
/// machine (other builds running) does not inflate the figure; `None` elsewhere.
fn thread_cpu() -> Option<Duration> {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let ns: u64 = s.split_whitespace().next()?.parse().ok()?;
    Some(Duration::from_nanos(ns))
}

/// Best wall time and best CPU time over `runs` parses (parse + validate + into_credentials).
fn time_parse(bytes: &[u8], rows: usize, runs: usize) -> (Duration, Option<Duration>) {
    let options = ReadOptions::default().row_limit(None); // above Microsoft's 50,000: said so in the report
    let mut best = Duration::MAX;
    let mut best_cpu: Option<Duration> = None;
    for _ in 0..runs {
        let cpu0 = thread_cpu();
        let start = Instant::now();
        let parsed = parse_bytes(bytes, "bench.csv", &options).expect("options valid");
        let creds = parsed.into_credentials().expect("generated file is valid");
        let elapsed = start.elapsed();
        let cpu = thread_cpu().zip(cpu0).map(|(b, a)| b.saturating_sub(a));
        assert_eq!(creds.len(), rows);
        drop(creds);
        best = best.min(elapsed);
        best_cpu = match (best_cpu, cpu) {
            (Some(b), Some(c)) => Some(b.min(c)),
            (None, c) => c,
            (b, None) => b,
        };
    }
    (best, best_cpu)
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "null".to_owned())
}

fn main() {
    let mut args = std::env::args().skip(1);
    let rows: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(100_000);
    let runs: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(5).max(1);

    let t = Instant::now();
    let utf8 = generate(rows, ',');
    let utf16 = utf16le_with_bom(&generate(rows, ';'));
    let gen_ms = t.elapsed().as_secs_f64() * 1e3;
    println!(
        "generated {rows} rows twice in {gen_ms:.1} ms ({} bytes UTF-8, {} bytes UTF-16)",
        utf8.len(),
        utf16.len()
    );

    let (d8, c8) = time_parse(utf8.as_bytes(), rows, runs);
    let (d16, c16) = time_parse(&utf16, rows, runs);
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let (ms8, ms16) = (ms(d8), ms(d16));
    let cpu8 = c8.map_or(f64::NAN, ms);
    let cpu16 = c16.map_or(f64::NAN, ms);
    let rps8 = rows as f64 / d8.as_secs_f64();
    let mbs8 = utf8.len() as f64 / d8.as_secs_f64() / 1e6;
    let load = load_average();
    println!(
        "load average (1 min): {load} on {} CPU(s)",
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    println!(
        "UTF-8 comma:                {rows} rows parsed+validated: wall {ms8:.1} ms, CPU {cpu8:.1} ms (best of {runs}) = {rps8:.0} rows/s, {mbs8:.1} MB/s"
    );
    println!(
        "UTF-16LE semicolon (Excel): {rows} rows parsed+validated: wall {ms16:.1} ms, CPU {cpu16:.1} ms (best of {runs})"
    );
    let goal_ms = 1000.0 * rows as f64 / 100_000.0;
    let pass = ms8 < goal_ms && ms16 < goal_ms;
    println!(
        "goal: < {goal_ms:.0} ms wall for {rows} rows: {}",
        if pass { "met" } else { "NOT met" }
    );
    let json_num = |v: f64| {
        if v.is_finite() {
            format!("{v:.2}")
        } else {
            "null".to_owned()
        }
    };
    println!(
        "{{\"bench\":\"csv\",\"rows\":{rows},\"runs\":{runs},\"utf8_ms\":{ms8:.2},\"utf8_cpu_ms\":{},\"utf16_ms\":{ms16:.2},\"utf16_cpu_ms\":{},\"rows_per_s\":{rps8:.0},\"mb_per_s\":{mbs8:.1},\"load_avg\":{load},\"goal_ms\":{goal_ms:.0},\"pass\":{pass}}}",
        json_num(cpu8),
        json_num(cpu16)
    );
}
