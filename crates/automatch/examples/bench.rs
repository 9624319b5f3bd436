//! Automatch benchmark: N sources against N directory users (default
//! 100,000 each), every rule kind exercised, hints for the unmatched.
//!
//! `cargo run --release -p o365-migrate-automatch --example bench -- [N]`
//!
//! Last line: `{"bench":"automatch", ...}`.

use std::time::Instant;

use o365_migrate_automatch::{
    DirectoryUser, MatchConfig, Matcher, Overrides, Rule, SourceIdentity, default_rules,
};

const FIRST: [&str; 40] = [
    "anna",
    "bernd",
    "clara",
    "david",
    "elif",
    "felix",
    "greta",
    "hans",
    "ines",
    "jonas",
    "karin",
    "lukas",
    "maria",
    "nils",
    "olga",
    "paul",
    "quirin",
    "rita",
    "stefan",
    "tanja",
    "ute",
    "viktor",
    "wanda",
    "xaver",
    "yara",
    "zoe",
    "jörg",
    "rené",
    "noëlle",
    "łukasz",
    "søren",
    "josé",
    "amélie",
    "björn",
    "çağla",
    "dörte",
    "émile",
    "françois",
    "günter",
    "hélène",
];

/// Deterministic syllable surname number `n` (unique for n < 20^3 * 5).
fn surname(n: usize) -> String {
    const SYL: [&str; 20] = [
        "ba", "ke", "mi", "lo", "ru", "sa", "te", "wi", "no", "fe", "gra", "hol", "man", "ber",
        "stei", "mül", "wag", "sch", "ner", "dor",
    ];
    let mut s = String::new();
    let mut x = n;
    for _ in 0..3 {
        s.push_str(SYL[x % SYL.len()]);
        x /= SYL.len();
    }
    s.push_str(["er", "mann", "berg", "ski", "ez"][x % 5]);
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_uppercase().chain(c).collect())
        .unwrap_or_default()
}

fn first(i: usize) -> String {
    let f = FIRST[i % FIRST.len()];
    let mut c = f.chars();
    c.next()
        .map(|x| x.to_uppercase().chain(c).collect())
        .unwrap_or_default()
}

fn ascii_local(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            'ö' => "o".to_owned(),
            'é' | 'ë' => "e".to_owned(),
            'ü' => "u".to_owned(),
            'ł' => "l".to_owned(),
            'ø' => "o".to_owned(),
            'ç' => "c".to_owned(),
            'ğ' => "g".to_owned(),
            c => c.to_lowercase().collect(),
        })
        .collect()
}

/// CPU time (user + system) of this process in ms, from /proc (Linux);
/// 0 elsewhere. The machine is shared, so CPU time is the stable figure.
fn cpu_ms() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0.0;
    };
    // Fields after the command name (which is in parentheses).
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // utime is field 14, stime 15 (1-based); `rest` starts at field 3.
    (ticks(11) + ticks(12)) * 10.0
}

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(100_000);

    let t0 = Instant::now();
    let mut directory = Vec::with_capacity(n);
    let mut sources = Vec::with_capacity(n);
    for i in 0..n {
        let (f, l) = (first(i), surname(i / FIRST.len()));
        let local = format!("{}.{}", ascii_local(&f), ascii_local(&l));
        let upn = format!("{local}@new.example");
        let mut u = DirectoryUser::new(
            format!("{:08x}-{i}", i.wrapping_mul(2_654_435_761) as u32),
            &upn,
        )
        .with_mail(&upn)
        .with_proxy(format!("SMTP:{upn}"))
        .with_proxy("X500:/o=Org/ou=Exchange/cn=Recipients")
        .with_name(&f, &l)
        .with_display(format!("{f} {l}"));
        // Ambiguous by display name: every 20th user shares its neighbour's.
        if i % 20 == 17 {
            let (pf, pl) = (first(i - 1), surname((i - 1) / FIRST.len()));
            u.display_name = Some(format!("{pf} {pl}"));
        }
        let kind = i % 20;
        if kind < 10 {
            u.proxy_addresses.push(format!("smtp:{local}@old.example"));
        }
        directory.push(u);

        let s = match kind {
            // Exact via secondary proxy address.
            0..=9 => SourceIdentity::new(format!("{local}@old.example")),
            // Domain mapping old.example -> new.example (case variant).
            10..=12 => SourceIdentity::new(format!("{}@OLD.example", local.to_uppercase())),
            // Name pattern from names (login is something else).
            13..=14 => SourceIdentity::new(format!("u{i}@legacy.example")).with_name(&f, &l),
            // Display name only ("Last, First").
            15..=16 => SourceIdentity::new(format!("v{i}@legacy.example"))
                .with_display(format!("{l}, {f}")),
            // Ambiguous: same display as the neighbour.
            17 => SourceIdentity::new(format!("w{i}@legacy.example")).with_display(format!(
                "{} {}",
                first(i - 1),
                surname((i - 1) / FIRST.len())
            )),
            // Unmatched: a typo'd login and a name that is nowhere -> hints.
            _ => SourceIdentity::new(format!(
                "{}x.{}@legacy.example",
                ascii_local(&f),
                ascii_local(&l)
            )),
        };
        sources.push(s);
    }
    let gen_ms = t0.elapsed().as_secs_f64() * 1000.0;

    let mut rules = default_rules();
    rules.insert(1, Rule::domain_map([("old.example", "new.example")]));
    let config = MatchConfig {
        rules,
        ..MatchConfig::default()
    };

    let c1 = cpu_ms();
    let t1 = Instant::now();
    let matcher = match Matcher::new(config, directory) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("bench: {e}");
            std::process::exit(1);
        }
    };
    let build_ms = t1.elapsed().as_secs_f64() * 1000.0;
    let c2 = cpu_ms();

    let t2 = Instant::now();
    let report = match matcher.run(&sources, &Overrides::new()) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("bench: {e}");
            std::process::exit(1);
        }
    };
    let run_ms = t2.elapsed().as_secs_f64() * 1000.0;
    let c3 = cpu_ms();
    let (build_cpu, run_cpu) = (c2 - c1, c3 - c2);
    let total_cpu = build_cpu + run_cpu;

    let t3 = Instant::now();
    let mut csv = Vec::new();
    if let Err(e) = report.write_csv(&mut csv) {
        eprintln!("bench: {e}");
        std::process::exit(1);
    }
    let csv_ms = t3.elapsed().as_secs_f64() * 1000.0;

    let s = report.summary();
    let mut per_rule = std::collections::BTreeMap::<String, usize>::new();
    for r in &report.results {
        if let o365_migrate_automatch::Outcome::Matched(m) = &r.outcome {
            *per_rule.entry(m.rule.clone()).or_default() += 1;
        }
    }
    let hinted = report
        .results
        .iter()
        .filter(|r| matches!(&r.outcome, o365_migrate_automatch::Outcome::Unmatched { hints, .. } if !hints.is_empty()))
        .count();
    let total_ms = build_ms + run_ms;
    println!("automatch bench: {n} sources x {n} directory users (generate {gen_ms:.0} ms)");
    println!("  build indexes  {build_ms:8.1} ms wall {build_cpu:8.0} ms CPU");
    println!("  match          {run_ms:8.1} ms wall {run_cpu:8.0} ms CPU");
    println!("  build + match  {total_ms:8.1} ms wall {total_cpu:8.0} ms CPU (goal < 2000 ms)");
    println!("  write CSV      {csv_ms:8.1} ms ({} bytes)", csv.len());
    println!(
        "  matched {} conflict {} ambiguous {} unmatched {} (with hints {hinted}) create {} excluded {}",
        s.matched, s.conflict, s.ambiguous, s.unmatched, s.create, s.excluded
    );
    for (rule, c) in &per_rule {
        println!("    by {rule}: {c}");
    }
    let rules_json: Vec<String> = per_rule
        .iter()
        .map(|(r, c)| format!("\"{r}\":{c}"))
        .collect();
    println!(
        "{{\"bench\":\"automatch\",\"sources\":{n},\"targets\":{n},\"build_ms\":{build_ms:.1},\"match_ms\":{run_ms:.1},\"total_ms\":{total_ms:.1},\"build_cpu_ms\":{build_cpu:.0},\"match_cpu_ms\":{run_cpu:.0},\"total_cpu_ms\":{total_cpu:.0},\"csv_ms\":{csv_ms:.1},\"matched\":{},\"conflict\":{},\"ambiguous\":{},\"unmatched\":{},\"unmatched_with_hints\":{hinted},\"by_rule\":{{{}}}}}",
        s.matched,
        s.conflict,
        s.ambiguous,
        s.unmatched,
        rules_json.join(",")
    );
}
