//! Writes `docs/benchmarks.md` from one `cargo xtask bench` run: the machine, the date, how to
//! reproduce, the side-by-side table, the goals and every other benchmark's figures. Text after
//! the [`NOTES_MARKER`] line of the existing file (profiles, explanations) is kept.

use serde_json::Value;
use std::fmt::Write as _;
use std::time::Duration;

/// Everything below this line in docs/benchmarks.md is written by hand and kept.
pub(crate) const NOTES_MARKER: &str =
    "<!-- Hand-written notes below are kept by `cargo xtask bench`. -->";

/// The machine as the run starts.
pub(crate) struct Machine {
    date: String,
    cpus: usize,
    model: String,
    ram_gib: f64,
    kernel: String,
    load: String,
    tools: String,
}

impl Machine {
    pub(crate) fn now() -> Machine {
        let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
        let cpuinfo = read("/proc/cpuinfo");
        let model = cpuinfo
            .lines()
            .find_map(|l| {
                l.strip_prefix("model name")?
                    .split_once(':')
                    .map(|(_, v)| v.trim().to_owned())
            })
            .unwrap_or_else(|| "unknown".to_owned());
        let ram_kib: f64 = read("/proc/meminfo")
            .lines()
            .find_map(|l| {
                l.strip_prefix("MemTotal:")?
                    .split_whitespace()
                    .next()?
                    .parse()
                    .ok()
            })
            .unwrap_or(0.0);
        let date = std::process::Command::new("date")
            .args(["-u", "+%Y-%m-%d %H:%M UTC"])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
            .unwrap_or_default();
        let version = |cmd: &str, arg: &str| {
            std::process::Command::new(cmd)
                .arg(arg)
                .output()
                .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
                .unwrap_or_default()
        };
        let tools = format!(
            "Dovecot {}, mbsync ({}), {}",
            version("/usr/sbin/dovecot", "--version"),
            version("mbsync", "--version"),
            version("rustc", "--version")
        );
        Machine {
            tools,
            date,
            cpus: std::thread::available_parallelism().map_or(0, |n| n.get()),
            model,
            ram_gib: ram_kib / 1024.0 / 1024.0,
            kernel: read("/proc/sys/kernel/osrelease").trim().to_owned(),
            load: read("/proc/loadavg")
                .split_whitespace()
                .take(3)
                .collect::<Vec<_>>()
                .join(" "),
        }
    }
}

/// A value at a dotted path, shown plainly ("–" when absent).
fn get(v: &Value, path: &str) -> String {
    let mut cur = v;
    for key in path.split('.') {
        match cur.get(key) {
            Some(next) => cur = next,
            None => return "–".to_owned(),
        }
    }
    match cur {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn num(v: &Value, path: &str) -> Option<f64> {
    let mut cur = v;
    for key in path.split('.') {
        cur = cur.get(key)?;
    }
    cur.as_f64()
}

fn find<'a>(results: &'a [Value], name: &str) -> Option<&'a Value> {
    results
        .iter()
        .find(|r| r.get("bench").and_then(Value::as_str) == Some(name))
}

fn verdict(ok: Option<bool>) -> &'static str {
    match ok {
        Some(true) => "met",
        Some(false) => "**not met**",
        None => "not measured",
    }
}

pub(crate) fn render(m: &Machine, took: Duration, results: &[Value]) -> String {
    let mut d = String::new();
    let _ = writeln!(d, "# Benchmarks\n");
    let _ = writeln!(
        d,
        "Written by one `cargo xtask bench` run (every benchmark, {:.0} minutes) on {}. \
         Do not edit above the notes marker: the next run rewrites it.\n",
        took.as_secs_f64() / 60.0,
        m.date
    );
    let _ = writeln!(d, "## Machine\n");
    let _ = writeln!(d, "- CPUs: {} × {}", m.cpus, m.model);
    let _ = writeln!(d, "- RAM: {:.1} GiB", m.ram_gib);
    let _ = writeln!(d, "- Kernel: Linux {}", m.kernel);
    let _ = writeln!(d, "- Software: {}", m.tools);
    let _ = writeln!(
        d,
        "- Load average (1, 5, 15 min) when the run started: {} — the machine is shared with \
         other builds, so figures move by ±20 % between runs.\n",
        m.load
    );
    let _ = writeln!(d, "## How to reproduce\n");
    let _ = writeln!(
        d,
        "```sh\ncargo xtask bench                      # everything; rewrites this file\n\
         cargo xtask bench side-by-side -- --rounds 3 --messages 5000\n\
         cargo xtask bench sync -- --sync-messages 100000\n\
         cargo xtask bench ledger -- --ledger-items 200000\n\
         cargo xtask bench workers -- --worker-mailboxes 1000\n\
         cargo xtask bench mime graph           # single benchmarks (target/bench/NAME.json)\n```\n"
    );
    let _ = writeln!(
        d,
        "Installs `dovecot-imapd`, `isync` (mbsync) and `time` through apt-get when missing.\n"
    );

    if let Some(s) = find(results, "side-by-side") {
        let _ = writeln!(d, "## IMAP to IMAP, side by side\n");
        let _ = writeln!(
            d,
            "{} generated messages ({:.0} MB, seed {}) from a source Dovecot to an empty target \
             Dovecot; {} rounds run A B C in turn, a fresh target for every run, per-folder \
             counts on the target checked against the corpus manifest after every run. {}. \
             Wall time, CPU seconds (user + system) and peak RSS of each contender's process \
             come from GNU `time`; medians over the rounds. o365-migrate: `{}` (checkout at \
             commit {}).\n",
            get(s, "messages"),
            num(s, "bytes").unwrap_or(0.0) / 1e6,
            get(s, "seed"),
            get(s, "rounds"),
            get(s, "servers"),
            get(s, "binary"),
            get(s, "commit"),
        );
        let _ = writeln!(
            d,
            "| contender | messages/s | MB/s | CPU s | peak RSS MiB | wall s per run |"
        );
        let _ = writeln!(d, "|---|---:|---:|---:|---:|---|");
        for (name, what) in [
            (
                "o365-migrate",
                "A: o365-migrate (release build, IMAP target)",
            ),
            (
                "mbsync",
                "B: mbsync (isync; Create Near, CopyArrivalDate yes, Sync Pull)",
            ),
            (
                "floor",
                "C: raw floor (1 conn. UID FETCH, 1 conn. APPEND LITERAL+, pipelined)",
            ),
        ] {
            let c = format!("contenders.{name}");
            let _ = writeln!(
                d,
                "| {what} | {} | {} | {} | {} | {} |",
                get(s, &format!("{c}.median_messages_per_s")),
                get(s, &format!("{c}.median_mb_per_s")),
                get(s, &format!("{c}.median_cpu_s")),
                get(s, &format!("{c}.median_peak_rss_mib")),
                get(s, &format!("{c}.wall_s")),
            );
        }
        let _ = writeln!(
            d,
            "\no365-migrate / mbsync: **{}×** messages/s; o365-migrate / floor: **{}×**.\n",
            get(s, "ratio_vs_mbsync"),
            get(s, "ratio_vs_floor")
        );
        let _ = writeln!(
            d,
            "- {} mailboxes in parallel (`mailboxes_at_once = {}`): {} messages, {} MB/s, \
             **{} messages/s**, {} CPU s, peak RSS **{} MiB**.",
            get(s, "parallel.mailboxes"),
            get(s, "parallel.mailboxes"),
            get(s, "parallel.messages"),
            get(s, "parallel.mb_per_s"),
            get(s, "parallel.messages_per_s"),
            get(s, "parallel.cpu_s"),
            get(s, "parallel.peak_rss_mib"),
        );
        let _ = writeln!(
            d,
            "- Big messages: {} messages of {} MB over {} mailboxes in parallel, \
             `in_flight_bytes = \"{}\"`: {} s, peak RSS **{} MiB**.\n",
            get(s, "big.messages"),
            get(s, "big.message_mb"),
            get(s, "big.mailboxes"),
            get(s, "big.in_flight_bytes"),
            get(s, "big.wall_s"),
            get(s, "big.peak_rss_mib"),
        );
    }

    if let Some(g) = find(results, "graph") {
        let _ = writeln!(d, "## Exchange Online (Graph emulator)\n");
        let _ = writeln!(
            d,
            "The Graph writer against the emulator at Microsoft's per-mailbox limits (10,000 \
             requests / 10 min, 150 MB / 5 min, 4 at a time). An answer takes the way there and \
             back (per HTTP request, a `$batch` once) plus the time in the mailbox (per item, \
             four at a time). Time-scaled rows compress windows and answer times alike; \
             budget-scaled rows keep real answer times and real per-mailbox rates and shorten \
             the windows with their budgets. Shares are of what the limits allow over whole \
             windows; msg/s and MB/h per mailbox are in real time. The writer runs in a process \
             of its own (CPU s and peak RSS are its own). The estimate is `plan`'s model fed \
             with answer times measured the way `target test` measures them, against the time \
             the last write was done, on a second run of about one and a half budgets per mailbox (so \
             that it ends inside a window).\n"
        );
        let _ = writeln!(
            d,
            "| phase | answer ms | mailboxes | batch | messages | failed | binding share | lowest mailbox | msg/s per mailbox | MB/h per mailbox | 429s | sent in a Retry-After window | writer CPU s | writer peak RSS MiB | estimate vs measured |"
        );
        let _ = writeln!(
            d,
            "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"
        );
        for phase in [
            "upload",
            "large",
            "requests",
            "requests_300ms",
            "requests_300ms_unbatched",
            "requests_300ms_in_mailbox",
            "mailboxes_20",
            "mailboxes_200",
        ] {
            if g.get(phase).is_none() {
                continue;
            }
            let f = |k: &str| get(g, &format!("{phase}.{k}"));
            let reference = g
                .get(phase)
                .and_then(|p| p.get("reference"))
                .and_then(Value::as_bool)
                .unwrap_or(false);
            let estimate = match num(g, &format!("{phase}.estimate_error")) {
                Some(e) => format!(
                    "{} s / {} s ({:+.1} %)",
                    f("estimated_seconds"),
                    f("measured_seconds"),
                    e * 100.0
                ),
                None => "–".into(),
            };
            let _ = writeln!(
                d,
                "| {phase}{} | {} + {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {estimate} |",
                if reference { " (reference)" } else { "" },
                f("gateway_ms_real"),
                f("latency_ms_real"),
                f("mailboxes"),
                f("max_batch"),
                f("messages"),
                f("failed"),
                f("binding_share"),
                f("lowest_mailbox_share"),
                f("per_mailbox_messages_per_s_real"),
                f("per_mailbox_mb_per_h_real"),
                f("throttled_answers"),
                f("requests_in_retry_window"),
                f("writer_cpu_seconds"),
                f("writer_peak_rss_mib"),
            );
        }
        let _ = writeln!(d);
    }

    if let Some(y) = find(results, "sync") {
        let _ = writeln!(d, "## sync: a 100,000-message mailbox after 100 changes\n");
        let _ = writeln!(
            d,
            "One mailbox of {} generated messages ({} MB, {} folders) copied by `run` into a \
             target Dovecot, then {} flag changes, {} moves between folders and {} new messages \
             at the source; `o365-migrate sync` timed as a process (wall clock), from a source \
             that offers CONDSTORE/QRESYNC and from one that does not (the same mailbox). Each \
             sync must carry exactly those changes, a second one nothing, and `verify` must \
             exit 0 afterwards. IMAP commands: those `sync` sent to find the changes (EXAMINE, \
             UID SEARCH, the flags FETCH, the reads that confirm a move), as `sync --json` \
             counts them; login, LIST and the copy of the new messages come on top. {}.\n",
            get(y, "messages"),
            get(y, "mb"),
            get(y, "folders"),
            get(y, "changes.flags"),
            get(y, "changes.moves"),
            get(y, "changes.new"),
            get(y, "servers"),
        );
        let _ = writeln!(
            d,
            "| source | first run s | sync s | commands to find the changes | sync, nothing changed, s | its commands | verify s |"
        );
        let _ = writeln!(d, "|---|---:|---:|---:|---:|---:|---:|");
        for (key, label) in [
            ("condstore", "with CONDSTORE"),
            ("plain", "without CONDSTORE"),
        ] {
            let _ = writeln!(
                d,
                "| {label} | {} | {} | {} | {} | {} | {} |",
                get(y, &format!("{key}.first_run_s")),
                get(y, &format!("{key}.sync_s")),
                get(y, &format!("{key}.sync_source_commands")),
                get(y, &format!("{key}.noop_sync_s")),
                get(y, &format!("{key}.noop_source_commands")),
                get(y, &format!("{key}.verify_s")),
            );
        }
        let _ = writeln!(d);
    }

    if let Some(l) = find(results, "ledger") {
        let _ = writeln!(
            d,
            "## Ledger search: the dashboard's item list over {} items\n",
            get(l, "items")
        );
        let _ = writeln!(
            d,
            "`StateStore::search_items` (what `GET /api/items` answers) on a SQLite state store \
             of {} items: {} mailboxes, {} folders, subjects and senders from word lists, \
             INTERNALDATEs over three years; {} migrated, {} skipped, {} failed with realistic \
             reasons. The store is filled through `mark_planned` and `record_batch` in \
             1,000-item transactions ({} s, {} MB; not part of the figures). Each search asks \
             for a page of {} with its total count, once to warm up and then {} times; every \
             answer (total, the page's items, the next page) is checked against the \
             generator.\n",
            get(l, "items"),
            get(l, "mailboxes"),
            get(l, "folders"),
            get(l, "migrated"),
            get(l, "skipped"),
            get(l, "failed"),
            get(l, "build_s"),
            get(l, "db_mb"),
            get(l, "page"),
            get(l, "runs_per_search"),
        );
        let _ = writeln!(d, "| search | total | min ms | median ms | max ms |");
        let _ = writeln!(d, "|---|---:|---:|---:|---:|");
        for key in [
            "mailbox_first_page",
            "reason_all",
            "text_mailbox",
            "sender_all",
            "failed_mailbox",
            "date_folder",
            "deep_page",
        ] {
            let f = |k: &str| get(l, &format!("searches.{key}.{k}"));
            if l.get("searches").and_then(|s| s.get(key)).is_none() {
                continue;
            }
            let _ = writeln!(
                d,
                "| {} | {} | {} | {} | {} |",
                f("search"),
                f("total"),
                f("min_ms"),
                f("median_ms"),
                f("max_ms"),
            );
        }
        let _ = writeln!(d);
    }

    if let Some(w) = find(results, "workers") {
        let _ = writeln!(
            d,
            "## Many workers on one PostgreSQL: {} small mailboxes\n",
            get(w, "mailboxes")
        );
        let _ = writeln!(
            d,
            "{} mailboxes of {} messages in all ({} each, small generated ones) from one source \
             Dovecot to the Graph emulator ({} ms an answer, Microsoft's per-mailbox limits), \
             the state in one private PostgreSQL on 127.0.0.1 (a fresh database and emulator \
             per row). Each row starts that many `o365-migrate worker --lanes {}` processes \
             (release build) at once and waits for all of them; `verify` must exit 0 after \
             every row and the workers' totals must count every message and mailbox once. \
             Lease overhead is the time lanes spent asking the database for a mailbox, per \
             mailbox. Requests are the mailbox requests the emulator admitted during the row; \
             the busiest 10 s is the emulator's sliding app-wide window over the workers' \
             requests only. The capped row sets `[fleet] requests_per_second` to half the rate \
             the uncapped 4-worker row reached. All processes (workers, Dovecot, PostgreSQL, \
             the emulator) run on this one machine, so the rows measure the coordination, not \
             what separate machines would do.\n",
            get(w, "mailboxes"),
            get(w, "messages"),
            get(w, "messages")
                .parse::<f64>()
                .ok()
                .zip(get(w, "mailboxes").parse::<f64>().ok())
                .map_or("–".into(), |(m, b)| format!("{:.0}", m / b)),
            get(w, "emulator_latency_ms"),
            get(w, "lanes_per_worker"),
        );
        let _ = writeln!(
            d,
            "| workers | lanes | s | mailboxes/s | messages/s | lease ms per mailbox | requests/s | busiest 10 s, requests/s | cap | busiest 10 s / cap | verify |"
        );
        let _ = writeln!(d, "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|");
        for r in w
            .get("rows")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let _ = writeln!(
                d,
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                get(r, "workers"),
                get(r, "lanes"),
                get(r, "seconds"),
                get(r, "mailboxes_per_second"),
                get(r, "messages_per_second"),
                get(r, "lease_ms_per_mailbox"),
                get(r, "requests_per_second"),
                get(r, "busiest_10s_requests_per_second"),
                get(r, "cap_requests_per_second"),
                get(r, "busiest_10s_over_cap"),
                get(r, "verify"),
            );
        }
        let _ = writeln!(d);
    }

    let _ = writeln!(d, "## Goals\n");
    let _ = writeln!(d, "| goal | measured | |");
    let _ = writeln!(d, "|---|---|---|");
    let s = find(results, "side-by-side");
    let r = |p: &str| s.and_then(|s| num(s, p));
    let _ = writeln!(
        d,
        "| o365-migrate ≥ 1.3 × mbsync messages/s | {}× | {} |",
        s.map_or("–".into(), |s| get(s, "ratio_vs_mbsync")),
        verdict(r("ratio_vs_mbsync").map(|x| x >= 1.3))
    );
    let _ = writeln!(
        d,
        "| o365-migrate ≥ 90 % of the floor | {}× | {} |",
        s.map_or("–".into(), |s| get(s, "ratio_vs_floor")),
        verdict(r("ratio_vs_floor").map(|x| x >= 0.9))
    );
    let _ = writeln!(
        d,
        "| peak RSS ≤ 64 MiB, 8 mailboxes in parallel at the job file's defaults | {} MiB | {} |",
        s.map_or("–".into(), |s| get(s, "parallel.peak_rss_mib")),
        verdict(r("parallel.peak_rss_mib").map(|x| x <= 64.0))
    );
    let _ = writeln!(
        d,
        "| peak RSS ≤ 64 MiB, 8 mailboxes in parallel, 25 MB messages | {} MiB | {} |",
        s.map_or("–".into(), |s| get(s, "big.peak_rss_mib")),
        verdict(r("big.peak_rss_mib").map(|x| x <= 64.0))
    );
    let g = find(results, "graph");
    let gn = |p: &str| g.and_then(|g| num(g, p));
    let gs = |p: &str| g.map_or("–".into(), |g| get(g, p));
    let min_of = |paths: &[&str]| -> Option<f64> {
        paths
            .iter()
            .map(|p| gn(p))
            .collect::<Option<Vec<f64>>>()
            .map(|v| v.into_iter().fold(f64::INFINITY, f64::min))
    };
    let at_150 = min_of(&[
        "upload.binding_share",
        "large.binding_share",
        "requests.binding_share",
    ]);
    let _ = writeln!(
        d,
        "| Graph at 150 ms: ≥ 90 % of the binding budget (200 KB, 5–25 MB, 1 KB messages) | {} | {} |",
        at_150.map_or("–".into(), |x| format!("{x:.3}")),
        verdict(at_150.map(|x| x >= 0.9))
    );
    // Goals on one figure of the graph benchmark: label, path, unit, whether a value meets it.
    type Goal = (&'static str, &'static str, &'static str, fn(f64) -> bool);
    let simple: [Goal; 7] = [
        (
            "Graph at 150 ms: ≥ 15 messages/s per mailbox on small messages",
            "requests.per_mailbox_messages_per_s_real",
            "",
            |x| x >= 15.0,
        ),
        (
            "Graph at 150 ms: ≥ 1.6 GB/h per mailbox on 5–25 MB messages",
            "large.per_mailbox_mb_per_h_real",
            " MB/h",
            |x| x >= 1600.0,
        ),
        (
            "Graph at 300 ms (100 on the way + 200 in the mailbox): ≥ 90 %",
            "requests_300ms.binding_share",
            "",
            |x| x >= 0.9,
        ),
        (
            "Graph, 200 mailboxes from one process: every mailbox ≥ 85 %",
            "mailboxes_200.lowest_mailbox_share",
            "",
            |x| x >= 0.85,
        ),
        (
            "Graph, 200 mailboxes: writer peak RSS ≤ 256 MiB",
            "mailboxes_200.writer_peak_rss_mib",
            " MiB",
            |x| x <= 256.0,
        ),
        (
            "Graph: no limit exceeded, nothing sent inside a Retry-After window",
            "limit_violations",
            " violations",
            |x| x == 0.0,
        ),
        (
            "`plan`'s estimate within ±15 % of the measured time, every goal row",
            "largest_estimate_error",
            " (largest)",
            |x| x <= 0.15,
        ),
    ];
    for (label, path, unit, ok) in simple {
        let _ = writeln!(
            d,
            "| {label} | {}{unit} | {} |",
            gs(path),
            verdict(gn(path).map(ok))
        );
    }
    let _ = writeln!(
        d,
        "| Graph, 200 mailboxes: app-wide limit never reached (most in one window / limit) | {} / {} | {} |",
        gs("mailboxes_200.app_window_peak"),
        gs("mailboxes_200.app_window_limit"),
        verdict(
            gn("mailboxes_200.app_window_peak")
                .zip(gn("mailboxes_200.app_window_limit"))
                .map(|(p, l)| p <= l)
        )
    );
    let y = find(results, "sync");
    let yn = |p: &str| y.and_then(|y| num(y, p));
    let _ = writeln!(
        d,
        "| sync with CONDSTORE, 100,000 messages, 100 changes: < 15 s, a few hundred commands (≤ 500) | {} s, {} commands | {} |",
        y.map_or("–".into(), |y| get(y, "condstore.sync_s")),
        y.map_or("–".into(), |y| get(y, "condstore.sync_source_commands")),
        verdict(
            yn("condstore.sync_s")
                .zip(yn("condstore.sync_source_commands"))
                .map(|(s, c)| s < 15.0 && c <= 500.0)
        )
    );
    let l = find(results, "ledger");
    let ln = |p: &str| l.and_then(|l| num(l, p));
    let _ = writeln!(
        d,
        "| Ledger search over 200,000 items answers in < 200 ms (slowest median of 7 searches) | {} ms ({}, {} items) | {} |",
        l.map_or("–".into(), |l| get(l, "slowest_median_ms")),
        l.map_or("–".into(), |l| get(l, "slowest")),
        l.map_or("–".into(), |l| get(l, "items")),
        verdict(
            ln("slowest_median_ms")
                .zip(ln("items"))
                .and_then(|(ms, n)| (n >= 200_000.0).then_some(ms < 200.0))
        )
    );
    let capped = find(results, "workers").and_then(|w| {
        w.get("rows")?
            .as_array()?
            .iter()
            .find(|r| r.get("cap_requests_per_second").is_some())
    });
    let _ = writeln!(
        d,
        "| Workers: a fleet cap holds within 5 % (busiest 10 s / cap, 4 workers) | {} | {} |",
        capped.map_or("–".into(), |r| get(r, "busiest_10s_over_cap")),
        verdict(
            capped
                .and_then(|r| num(r, "busiest_10s_over_cap"))
                .map(|x| x <= 1.05)
        )
    );
    let _ = writeln!(d);

    let _ = writeln!(d, "## Other figures\n");
    let _ = writeln!(d, "| benchmark | figure | value |");
    let _ = writeln!(d, "|---|---|---:|");
    let rows: &[(&str, &str, &str)] = &[
        (
            "mime",
            "parse + fingerprint MB/s (per core)",
            "parse_fingerprint_mb_s",
        ),
        (
            "mime",
            "parse + fingerprint + Graph conversion MB/s",
            "parse_fingerprint_graph_mb_s",
        ),
        ("mime", "parse only MB/s", "parse_mb_s"),
        ("automatch", "sources × targets", "sources"),
        ("automatch", "match all, wall ms", "total_ms"),
        ("automatch", "matched", "matched"),
        ("csv", "credential CSV rows/s", "rows_per_s"),
        ("csv", "credential CSV MB/s", "mb_per_s"),
        (
            "imap",
            "IMAP client read, plaintext, messages/s",
            "plain_msgs_per_s",
        ),
        (
            "imap",
            "IMAP client read, TLS, messages/s",
            "tls_msgs_per_s",
        ),
    ];
    for (bench, label, path) in rows {
        if let Some(v) = find(results, bench) {
            let _ = writeln!(d, "| {bench} | {label} | {} |", get(v, path));
        }
    }
    let _ = writeln!(
        d,
        "\nEvery benchmark's full JSON (also in `target/bench/NAME.json`):\n"
    );
    for v in results {
        let _ = writeln!(
            d,
            "<details><summary>{}</summary>\n\n```json\n{v:#}\n```\n\n</details>\n",
            get(v, "bench")
        );
    }
    let _ = writeln!(d, "{NOTES_MARKER}");
    let old = std::fs::read_to_string(crate::root().join("docs/benchmarks.md")).unwrap_or_default();
    if let Some((_, notes)) = old.split_once(NOTES_MARKER) {
        d.push_str(notes);
    } else {
        d.push('\n');
    }
    d
}

#[cfg(test)]
mod tests {
    use super::*;

    fn machine() -> Machine {
        Machine {
            date: "2026-12-03 14:00 UTC".into(),
            cpus: 2,
            model: "test".into(),
            ram_gib: 1.0,
            kernel: "test".into(),
            load: "0 0 0".into(),
            tools: "test".into(),
        }
    }

    fn workers(over_cap: f64) -> Value {
        serde_json::json!({
            "bench": "workers", "mailboxes": 1000, "messages": 3000, "lanes_per_worker": 4,
            "emulator_latency_ms": 50,
            "rows": [
                {"workers": 4, "lanes": 16, "seconds": 124.05, "mailboxes_per_second": 8.06,
                 "messages_per_second": 24.18, "lease_ms_per_mailbox": 12.46,
                 "requests_per_second": 221.65, "busiest_10s_requests_per_second": 247.3,
                 "verify": "exit 0"},
                {"workers": 4, "lanes": 16, "seconds": 250.98, "mailboxes_per_second": 3.98,
                 "messages_per_second": 11.95, "lease_ms_per_mailbox": 8.35,
                 "requests_per_second": 109.56, "busiest_10s_requests_per_second": 112.2,
                 "cap_requests_per_second": 111, "busiest_10s_over_cap": over_cap,
                 "verify": "exit 0"}
            ]
        })
    }

    #[test]
    fn the_workers_bench_gets_its_section_and_goal_row() {
        let d = render(&machine(), Duration::from_secs(60), &[workers(1.01)]);
        assert!(
            d.contains("## Many workers on one PostgreSQL: 1000 small mailboxes"),
            "{d}"
        );
        assert!(
            d.contains(
                "| 4 | 16 | 250.98 | 3.98 | 11.95 | 8.35 | 109.56 | 112.2 | 111 | 1.01 | exit 0 |"
            ),
            "{d}"
        );
        assert!(
            d.contains(
                "| 4 | 16 | 124.05 | 8.06 | 24.18 | 12.46 | 221.65 | 247.3 | – | – | exit 0 |"
            ),
            "{d}"
        );
        assert!(
            d.contains("(busiest 10 s / cap, 4 workers) | 1.01 | met |"),
            "{d}"
        );
        let over = render(&machine(), Duration::from_secs(60), &[workers(1.2)]);
        assert!(
            over.contains("(busiest 10 s / cap, 4 workers) | 1.2 | **not met** |"),
            "{over}"
        );
        let none = render(&machine(), Duration::from_secs(60), &[]);
        assert!(
            none.contains("(busiest 10 s / cap, 4 workers) | – | not measured |"),
            "{none}"
        );
    }
}
