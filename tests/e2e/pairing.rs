//! One pairing for every command: a CodeTwo credentials file with bare logins, no mapping
//! file, and the tenant's directory decide where each mailbox goes — `match` shows it, and
//! `target test`, `plan`, `run` and `verify` use exactly that.

use o365_migrate_graph_emulator::UserConfig;
use o365_migrate_testkit::DovecotOptions;

use super::{DOMAIN, check_messages_in, dump, password, reliability};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn automatch_drives_every_command_without_a_mapping_file() {
    // Source logins are bare names; the tenant knows alice and bob under other spellings,
    // has no carol, and two daves in two domains.
    let users = ["alice", "bob", "carol", "dave"];
    let env = reliability::start_env_with(
        &users,
        12,
        1616,
        DovecotOptions::default(),
        None,
        |config| {
            let tenant = &mut config.tenants[0];
            tenant.domains.push("other.example".into());
            tenant.users.clear();
            for (upn, display) in [
                (format!("alice@{DOMAIN}"), "Alice Archer"),
                (format!("bob.brown@{DOMAIN}"), "Bob Brown"),
                (format!("dave@{DOMAIN}"), "Dave Dent"),
                ("dave@other.example".to_owned(), "Dave Doyle"),
            ] {
                let mut u = UserConfig::with_mailbox(upn);
                u.display_name = display.into();
                tenant.users.push(u);
            }
        },
    )
    .await;
    let mut csv = String::from("Login;Password;First Name;Last Name;Display Name\r\n");
    for (login, first, last) in [
        ("alice", "Alice", "Archer"),
        ("bob", "Bob", "Brown"),
        ("carol", "Carol", "Cole"),
        ("dave", "", ""),
    ] {
        csv.push_str(&format!(
            "{login};{};{first};{last};{}\r\n",
            password(login),
            format!("{first} {last}").trim()
        ));
    }
    std::fs::write(env.dir.path().join("users.csv"), csv).unwrap();

    // `match` decides (and keeps the decision); two rows are left for the admin.
    let o = env.cli(&["match", "--json"]).await;
    assert_eq!(o.code, 1, "two sources are undecided: {}", dump(&o));
    let m: serde_json::Value = serde_json::from_str(&o.stdout).expect("match json");
    let rows: Vec<(String, String, String)> = m["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["source"].as_str().unwrap().to_owned(),
                r["status"].as_str().unwrap().to_owned(),
                r["target"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let row = |s: &str| rows.iter().find(|r| r.0 == s).cloned().unwrap();
    assert_eq!(row("alice").1, "matched");
    assert_eq!(row("alice").2, format!("alice@{DOMAIN}"));
    assert_eq!(row("bob").1, "matched");
    assert_eq!(row("bob").2, format!("bob.brown@{DOMAIN}"));
    assert_eq!(row("carol").1, "unmatched");
    assert_eq!(row("dave").1, "ambiguous");
    let o = env.cli(&["match"]).await;
    assert!(
        o.stderr.contains("this is the job's pairing now")
            && o.stderr.contains("migrate the 2 matched rows"),
        "{}",
        dump(&o)
    );

    let o = env.cli(&["target", "test"]).await;
    assert_eq!(o.code, 0, "{}", dump(&o));
    assert!(
        o.stderr.contains(&format!("ok    alice@{DOMAIN}")),
        "{}",
        dump(&o)
    );
    assert!(
        o.stderr.contains(&format!("ok    bob.brown@{DOMAIN}")),
        "{}",
        dump(&o)
    );
    assert!(
        o.stderr.contains("kept in the state store"),
        "the decision `match` made is reused: {}",
        dump(&o)
    );
    for (who, why) in [
        ("carol", "automatch: no target user matched"),
        ("dave", "automatch: ambiguous"),
    ] {
        assert!(
            o.stderr.contains(&format!("skip  {who}: {why}")),
            "{who}: {}",
            dump(&o)
        );
    }

    let o = env.cli(&["plan", "--json"]).await;
    assert_eq!(o.code, 0, "{}", dump(&o));
    let plan: serde_json::Value = serde_json::from_str(&o.stdout).expect("plan json");
    let planned: Vec<(&str, &str, u64)> = plan["mailboxes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["source"].as_str().unwrap(),
                m["target"].as_str().unwrap(),
                m["messages"].as_u64().unwrap(),
            )
        })
        .collect();
    let alice_dom = format!("alice@{DOMAIN}");
    let bob_dom = format!("bob.brown@{DOMAIN}");
    assert_eq!(
        planned,
        vec![
            (
                "alice",
                alice_dom.as_str(),
                env.manifests["alice"].entries().len() as u64
            ),
            (
                "bob",
                bob_dom.as_str(),
                env.manifests["bob"].entries().len() as u64
            ),
        ]
    );
    let skipped: Vec<&str> = plan["skipped"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["source"].as_str().unwrap())
        .collect();
    assert_eq!(skipped, ["carol", "dave"]);

    // After `plan`, the report shows what is planned per mailbox.
    let o = env.cli(&["report", "--format", "csv"]).await;
    assert_eq!(o.code, 1, "planned but not run is incomplete: {}", dump(&o));
    let mut lines = o.stdout.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let col = |name: &str| header.iter().position(|h| *h == name).unwrap();
    for line in lines {
        let cells: Vec<&str> = line.split(',').collect();
        let n = env.manifests[cells[0]].entries().len().to_string();
        assert_eq!(cells[col("planned")], n, "{line}");
        assert_eq!(cells[col("plan_messages")], n, "{line}");
    }

    let o = env.cli(&["run"]).await;
    assert_eq!(o.code, 0, "{}", dump(&o));
    let first = o.stderr.lines().next().unwrap_or_default();
    assert!(
        first.starts_with("pairing: automatch against the target directory (4 users)"),
        "the first line names the pairing: {}",
        dump(&o)
    );
    assert!(
        o.stderr
            .contains("carol: mailbox skipped: automatch: no target user matched"),
        "{}",
        dump(&o)
    );
    assert!(
        o.stderr
            .contains("dave: mailbox skipped: automatch: ambiguous"),
        "{}",
        dump(&o)
    );

    let o = env.cli(&["verify"]).await;
    assert_eq!(o.code, 0, "{}", dump(&o));
    assert!(
        o.stderr.contains("skip  dave: automatch: ambiguous"),
        "{}",
        dump(&o)
    );

    // Every message went where `match` said, nothing anywhere else.
    let a = check_messages_in(&env, "alice", &alice_dom, &[]);
    let b = check_messages_in(&env, "bob", &bob_dom, &[]);
    assert_eq!(a, env.manifests["alice"].entries().len());
    assert_eq!(b, env.manifests["bob"].entries().len());
    assert_eq!(env.graph.messages(&alice_dom).len(), a);
    assert_eq!(env.graph.messages(&bob_dom).len(), b);
    for other in [format!("dave@{DOMAIN}"), "dave@other.example".to_owned()] {
        assert_eq!(env.graph.messages(&other).len(), 0, "{other}");
    }
    let o = env.cli(&["report", "--format", "csv"]).await;
    assert_eq!(o.code, 0, "{}", dump(&o));

    // Microsoft's own batch from the same pairing: its CSV columns, owner-only.
    let o = env.cli(&["export-batch", "--out", "batch"]).await;
    assert_eq!(o.code, 0, "{}", dump(&o));
    let csv_path = env.dir.path().join("batch/migration.csv");
    let csv = std::fs::read_to_string(&csv_path).unwrap();
    assert_eq!(
        csv.lines().collect::<Vec<_>>(),
        [
            "EmailAddress,UserName,Password".to_owned(),
            format!("{alice_dom},alice,{}", password("alice")),
            format!("{bob_dom},bob,{}", password("bob")),
        ]
    );
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&csv_path).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let script =
        std::fs::read_to_string(env.dir.path().join("batch/new-migration-batch.ps1")).unwrap();
    assert!(script.contains("New-MigrationEndpoint -IMAP"), "{script}");
    assert!(
        o.stderr
            .contains("left out carol: automatch: no target user matched"),
        "{}",
        dump(&o)
    );

    // The admin pins dave by hand in the credentials file: the kept decision no longer fits
    // its inputs, so the next command decides again and pairs dave.
    let csv = std::fs::read_to_string(env.dir.path().join("users.csv")).unwrap();
    let mut pinned = String::new();
    for (i, line) in csv.lines().enumerate() {
        let extra = match i {
            0 => ";Target",
            _ if line.starts_with("dave;") => ";dave@other.example",
            _ => ";",
        };
        pinned.push_str(&format!("{line}{extra}\r\n"));
    }
    std::fs::write(env.dir.path().join("users.csv"), pinned).unwrap();
    let o = env.cli(&["target", "test"]).await;
    assert_eq!(o.code, 0, "{}", dump(&o));
    assert!(o.stderr.contains("just now"), "{}", dump(&o));
    assert!(
        o.stderr.contains("ok    dave@other.example"),
        "{}",
        dump(&o)
    );
    assert!(!o.stderr.contains("skip  dave"), "{}", dump(&o));
    env.assert_no_secrets();
}
