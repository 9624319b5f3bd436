//! `o365-migrate worker`: several processes share one migration through PostgreSQL.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use o365_migrate_testkit::{DovecotOptions, Postgres, PostgresOptions};

use super::{DOMAIN, Env, dump, reliability};

const PG_ENV: &str = "E2E_PG_PASSWORD";

/// Points the job's `[state]` at `pg` (password by reference, TLS opted out by name on
/// loopback).
fn use_postgres(env: &Env, pg: &Postgres) {
    let job = std::fs::read_to_string(env.job_path()).unwrap();
    let job = job.replace(
        "[state]\npath = \"state.db\"\n",
        &format!(
            "[state]\nurl = \"{}?sslmode=disable\"\npassword = \"env:{PG_ENV}\"\n",
            pg.url()
        ),
    );
    assert!(job.contains("postgres://"), "{job}");
    std::fs::write(env.job_path(), job).unwrap();
}

/// A running worker: its pid, and its output read from the start (a pipe nobody reads fills
/// up and stops the worker at its next line).
struct Worker {
    pid: u32,
    output: tokio::task::JoinHandle<std::io::Result<std::process::Output>>,
}

fn worker(env: &Env, pg: &Postgres, id: &str) -> Worker {
    let child = env
        .command(&["worker", "--id", id, "--lanes", "2", "--lease-seconds", "3"])
        .env(PG_ENV, pg.password())
        .spawn()
        .expect("start a worker");
    Worker {
        pid: child.id().expect("a pid"),
        output: tokio::spawn(child.wait_with_output()),
    }
}

fn signal(w: &Worker, signal: &str) {
    let kill = std::process::Command::new("kill")
        .args([signal, &w.pid.to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
}

async fn cli_pg(env: &Env, pg: &Postgres, args: &[&str]) -> super::Out {
    let o = env
        .command(args)
        .env(PG_ENV, pg.password())
        .output()
        .await
        .expect("run binary");
    super::Out {
        code: o.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
    }
}

async fn fleet(env: &Env, pg: &Postgres) -> serde_json::Value {
    let o = cli_pg(env, pg, &["status", "--json"]).await;
    assert_eq!(o.code, 0, "{}", dump(&o));
    let v: serde_json::Value = serde_json::from_str(&o.stdout).unwrap();
    v["fleet"].clone()
}

/// Waits (bounded) until `worker` holds a mailbox and `done` mailboxes are finished.
async fn wait_for(env: &Env, pg: &Postgres, worker: &str, done: u64) {
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let f = fleet(env, pg).await;
        let holds = f["workers"].as_array().is_some_and(|ws| {
            ws.iter().any(|w| {
                w["id"] == worker && w["holding"].as_array().is_some_and(|h| !h.is_empty())
            })
        });
        if holds && f["done"].as_u64().unwrap_or(0) >= done {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{worker} never held a mailbox with {done} done: {f}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn exit_of(w: Worker) -> (i32, String) {
    let o = tokio::time::timeout(Duration::from_secs(300), w.output)
        .await
        .expect("the worker ends")
        .unwrap()
        .unwrap();
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_workers_share_sixty_mailboxes_and_take_over_a_killed_and_a_stopped_one() {
    let names: Vec<String> = (0..60).map(|i| format!("u{i:02}")).collect();
    let users: Vec<&str> = names.iter().map(String::as_str).collect();
    let env =
        reliability::start_env_with(&users, 16, 0x2000, DovecotOptions::default(), None, |c| {
            c.latency_ms = 60;
        })
        .await;
    let pg = Postgres::start(PostgresOptions::default()).expect("start PostgreSQL");
    use_postgres(&env, &pg);
    // A worker refuses a database whose schema was not migrated by the admin.
    let o = cli_pg(&env, &pg, &["status"]).await;
    assert_ne!(o.code, 0);
    assert!(
        o.stderr.contains("o365-migrate state migrate"),
        "{}",
        dump(&o)
    );
    let o = cli_pg(&env, &pg, &["state", "migrate"]).await;
    assert_eq!(o.code, 0, "{}", dump(&o));
    assert!(o.stderr.contains("version"), "{}", dump(&o));
    let o = cli_pg(&env, &pg, &["match"]).await;
    assert_eq!(o.code, 0, "{}", dump(&o));

    let w1 = worker(&env, &pg, "w1");
    let w2 = worker(&env, &pg, "w2");
    let w3 = worker(&env, &pg, "w3");
    // A run cannot start beside workers.
    wait_for(&env, &pg, "w1", 6).await;
    let o = cli_pg(&env, &pg, &["run"]).await;
    assert_ne!(o.code, 0, "{}", dump(&o));
    assert!(o.stderr.contains("worker"), "{}", dump(&o));
    // w1 dies while holding mailboxes; w2 is stopped cleanly later.
    signal(&w1, "-KILL");
    let (code1, _) = exit_of(w1).await;
    assert_eq!(code1, -1, "SIGKILL");
    wait_for(&env, &pg, "w2", 20).await;
    signal(&w2, "-TERM");
    let (code2, err2) = exit_of(w2).await;
    assert_eq!(code2, 0, "{err2}");
    assert!(err2.contains("stopped"), "{err2}");
    let (code3, err3) = exit_of(w3).await;
    assert_eq!(code3, 0, "{err3}");

    // Everything once.
    let o = cli_pg(&env, &pg, &["verify"]).await;
    assert_eq!(o.code, 0, "{}", dump(&o));
    for u in &env.users {
        let index = env.target_index(u);
        let dups: Vec<_> = index.iter().filter(|(_, n)| **n != 1).collect();
        assert!(dups.is_empty(), "{u}: duplicated in the target: {dups:?}");
        assert_eq!(
            index.len(),
            env.manifests[u].len(),
            "{u}@{DOMAIN}: every message in the target"
        );
    }

    // The lease history: one holder at a time, takeovers only after expiry.
    let f = fleet(&env, &pg).await;
    assert_eq!(f["done"], 60, "{f}");
    assert_eq!(f["waiting"], 0, "{f}");
    let mut by_mailbox: BTreeMap<i64, Vec<&serde_json::Value>> = BTreeMap::new();
    for l in f["leases"].as_array().unwrap() {
        by_mailbox
            .entry(l["mailbox"].as_i64().unwrap())
            .or_default()
            .push(l);
    }
    assert_eq!(by_mailbox.len(), 60);
    let (mut expired, mut released) = (0, 0);
    for spans in by_mailbox.values() {
        for pair in spans.windows(2) {
            let (a, b) = (pair[0], pair[1]);
            assert_eq!(
                b["generation"].as_i64(),
                a["generation"].as_i64().map(|g| g + 1)
            );
            let end = a["ended_at"].as_i64().expect("an earlier lease ended");
            assert!(
                end <= b["acquired_at"].as_i64().unwrap(),
                "two holders at once: {a} {b}"
            );
            match a["ended"].as_str() {
                Some("expired") => {
                    assert_eq!(a["worker"], "w1", "{a}");
                    expired += 1;
                }
                Some("released") => {
                    assert_eq!(a["worker"], "w2", "{a}");
                    released += 1;
                }
                other => panic!("a lease ended {other:?} before another: {a}"),
            }
        }
        let last = spans.last().unwrap();
        assert_eq!(last["ended"], "done", "{last}");
    }
    assert!(
        expired >= 1,
        "the killed worker's mailboxes were taken over"
    );
    assert!(
        released >= 1,
        "the stopped worker's mailboxes were taken over"
    );
    let workers = f["workers"].as_array().unwrap();
    assert_eq!(workers.len(), 3);
    let migrated: u64 = workers
        .iter()
        .map(|w| w["migrated"].as_u64().unwrap())
        .sum();
    let total: u64 = env.manifests.values().map(|m| m.len() as u64).sum();
    assert_eq!(
        migrated, total,
        "the workers' runs count every message once"
    );
    assert!(
        !err3.contains(pg.password()) && !err2.contains(pg.password()),
        "no password in the output"
    );
    // People get the fleet in a few lines: the counts and one line per worker.
    let o = cli_pg(&env, &pg, &["status"]).await;
    assert_eq!(o.code, 0, "{}", dump(&o));
    assert!(
        o.stderr.contains(
            "fleet: 0 mailboxes waiting (0 leased, 0 stuck on an expired lease), 60 done, 0 failed"
        ),
        "{}",
        dump(&o)
    );
    for w in ["w1", "w2", "w3"] {
        assert!(
            o.stderr.contains(&format!("  worker {w} on ")),
            "{}",
            dump(&o)
        );
    }
    // The report carries the fleet too.
    let o = cli_pg(&env, &pg, &["report", "--format", "json"]).await;
    assert_eq!(o.code, 0, "{}", dump(&o));
    let fleet_json: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(env.dir.path().join("report/fleet.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(fleet_json["done"], 60);
    assert_eq!(fleet_json["leases"], f["leases"]);
}

async fn migrated(env: &Env, pg: &Postgres) -> u64 {
    let o = cli_pg(env, pg, &["status", "--json"]).await;
    assert_eq!(o.code, 0, "{}", dump(&o));
    let v: serde_json::Value = serde_json::from_str(&o.stdout).unwrap();
    v["counts"]["migrated"].as_u64().unwrap()
}

/// Who holds what: (worker, mailbox) pairs of the live leases.
fn holdings(f: &serde_json::Value) -> Vec<(String, String)> {
    let mut held = Vec::new();
    for w in f["workers"].as_array().unwrap() {
        for m in w["holding"].as_array().unwrap() {
            held.push((
                w["id"].as_str().unwrap().to_owned(),
                m.as_str().unwrap().to_owned(),
            ));
        }
    }
    held.sort();
    held
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_reaches_every_worker_which_keeps_its_leases_until_resume() {
    // Four mailboxes for four lanes, each long enough (400 messages, 100 ms an answer) that a
    // run which missed the pause would go on for hundreds of messages.
    let names: Vec<String> = (0..4).map(|i| format!("p{i:02}")).collect();
    let users: Vec<&str> = names.iter().map(String::as_str).collect();
    let env =
        reliability::start_env_with(&users, 400, 0x2100, DovecotOptions::default(), None, |c| {
            c.latency_ms = 100;
        })
        .await;
    let pg = Postgres::start(PostgresOptions::default()).expect("start PostgreSQL");
    use_postgres(&env, &pg);
    for step in [&["state", "migrate"][..], &["match"][..]] {
        let o = cli_pg(&env, &pg, step).await;
        assert_eq!(o.code, 0, "{}", dump(&o));
    }
    let w1 = worker(&env, &pg, "w1");
    let w2 = worker(&env, &pg, "w2");
    wait_for(&env, &pg, "w1", 0).await;
    wait_for(&env, &pg, "w2", 0).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    while migrated(&env, &pg).await < 20 {
        assert!(Instant::now() < deadline, "the workers migrate nothing");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let before_pause = migrated(&env, &pg).await;
    let o = cli_pg(&env, &pg, &["pause"]).await;
    assert_eq!(o.code, 0, "{}", dump(&o));
    // Every worker's runs record what was in flight and stop: the count stands still for two
    // seconds, within seconds of the pause (15 s is the bound on a loaded machine), having
    // grown by at most what four lanes had in flight (about 220 in all when measured: batches
    // of 20 four at a time per mailbox, plus what moved while the pause command started) — a
    // run that missed the pause adds the rest of its 400-message mailbox, over 1,000 in all.
    let asked = Instant::now();
    let mut last = migrated(&env, &pg).await;
    let mut still_since = Instant::now();
    while still_since.elapsed() < Duration::from_secs(2) {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let now = migrated(&env, &pg).await;
        if now != last {
            (last, still_since) = (now, Instant::now());
        }
        assert!(
            still_since.duration_since(asked) < Duration::from_secs(15),
            "the fleet kept migrating after the pause: {last} and counting"
        );
    }
    eprintln!(
        "pause: {} migrated after it, still within {:?}",
        last - before_pause,
        still_since.duration_since(asked)
    );
    assert!(
        last - before_pause <= 4 * 150,
        "{} messages migrated after the pause (from {before_pause} to {last})",
        last - before_pause
    );
    let total: u64 = env.manifests.values().map(|m| m.len() as u64).sum();
    assert!(last < total, "paused before the end: {last} of {total}");
    // Paused, the workers keep their mailboxes: after more than a lease time (3 s) the same
    // workers hold the same ones, none expired, nothing was taken over, nothing migrated.
    let before = fleet(&env, &pg).await;
    let held = holdings(&before);
    assert!(
        held.iter().any(|(w, _)| w == "w1") && held.iter().any(|(w, _)| w == "w2"),
        "both workers hold mailboxes while paused: {before}"
    );
    tokio::time::sleep(Duration::from_secs(4)).await;
    let after = fleet(&env, &pg).await;
    assert_eq!(holdings(&after), held, "{after}");
    assert_eq!(after["stuck"], 0, "{after}");
    assert!(
        after["leases"]
            .as_array()
            .unwrap()
            .iter()
            .all(|l| l["ended"] != "expired"),
        "{after}"
    );
    assert_eq!(migrated(&env, &pg).await, last, "migrated while paused");

    let o = cli_pg(&env, &pg, &["resume"]).await;
    assert_eq!(o.code, 0, "{}", dump(&o));
    let (code1, err1) = exit_of(w1).await;
    assert_eq!(code1, 0, "{err1}");
    let (code2, err2) = exit_of(w2).await;
    assert_eq!(code2, 0, "{err2}");
    let o = cli_pg(&env, &pg, &["verify"]).await;
    assert_eq!(o.code, 0, "{}", dump(&o));
    for u in &env.users {
        let index = env.target_index(u);
        assert!(index.values().all(|n| *n == 1), "{u}: duplicated");
        assert_eq!(index.len(), env.manifests[u].len(), "{u}: every message");
    }
}
