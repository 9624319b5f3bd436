//! `match`, `provision`, certificate sign-in and `run --window`, through the binary against a
//! real Dovecot source and the Graph emulator.

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::time::Duration;

use o365_migrate_graph_emulator::{Emulator, EmulatorConfig, Faults, UserConfig};
use o365_migrate_testkit::{Corpus, CorpusProfile, Dovecot, DovecotOptions, User};

use super::{BIN, DOMAIN, JOB_FILES, SECRET_ENV};

struct Setup {
    source: Dovecot,
    graph: Emulator,
    dir: tempfile::TempDir,
    secret: String,
}

fn pw(u: &str) -> String {
    format!("Sched-{u}-pw")
}

/// A source with `users` (each `per_user` messages) and an emulator with `directory` users.
async fn setup(
    users: &[&str],
    per_user: usize,
    directory: Vec<UserConfig>,
    tweak: impl FnOnce(&mut EmulatorConfig),
) -> Setup {
    let opts = DovecotOptions::default()
        .with_users(users.iter().map(|u| User::new(*u, pw(u))))
        .with_extra_config("mail_fsync = never");
    let source = Dovecot::start(opts).expect("start Dovecot");
    let mut config = EmulatorConfig::default();
    config.tenants[0].users = directory;
    tweak(&mut config);
    let graph = Emulator::start(config).await.expect("start emulator");
    for (i, u) in users.iter().enumerate() {
        if per_user > 0 {
            Corpus::new(CorpusProfile::realistic(700 + i as u64, per_user).with_huge_every(None))
                .load_parallel(&source, u, 2)
                .await
                .expect("load corpus");
        }
    }
    let secret = graph.config().tenants[0].apps[0]
        .client_secret
        .clone()
        .unwrap_or_else(|| "no-secret-this-app-uses-a-certificate".into());
    Setup {
        source,
        graph,
        dir: tempfile::tempdir().expect("tempdir"),
        secret,
    }
}

impl Setup {
    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Writes the job; `graph_auth` is the credential line(s) of `[target.graph]`, `matching`
    /// the body of `[matching]`.
    fn write_job(&self, graph_auth: &str, matching: &str) {
        let app = &self.graph.config().tenants[0].apps[0];
        let job = format!(
            r#"[source]
host = "127.0.0.1"
port = {port}
security = "starttls"
ca_file = "{ca}"
credentials = "users.csv"

[target]
kind = "graph"

[target.graph]
tenant = "{tenant}"
client_id = "{client_id}"
{graph_auth}
authority_url = "{url}"
graph_url = "{url}"

[matching]
{matching}

[filters]
exclude_folders = []

{JOB_FILES}"#,
            port = self.source.imap_port(),
            ca = self.source.ca_path().display(),
            tenant = self.graph.tenant_id(),
            client_id = app.client_id,
            url = self.graph.url(),
        );
        std::fs::write(self.path("o365-migrate.toml"), job).unwrap();
    }

    fn command(&self, args: &[&str]) -> std::process::Command {
        let mut c = std::process::Command::new(BIN);
        c.arg("--config")
            .arg(self.path("o365-migrate.toml"))
            .args(args)
            .current_dir(self.dir.path())
            .env(SECRET_ENV, &self.secret)
            .env("TZ", "UTC")
            .env_remove("RUST_LOG")
            .stdin(std::process::Stdio::null());
        c
    }

    fn cli(&self, args: &[&str]) -> (i32, String, String) {
        let o = self.command(args).output().expect("run binary");
        let out = (
            o.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&o.stdout).into_owned(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        );
        assert!(
            !out.2.contains(&self.secret) && !out.1.contains(&self.secret),
            "the client secret leaked"
        );
        out
    }

    fn json(&self, args: &[&str]) -> serde_json::Value {
        let (code, stdout, stderr) = self.cli(args);
        assert!(code == 0 || code == 1, "{args:?} exited {code}: {stderr}");
        serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{args:?}: {e}: {stdout}"))
    }
}

fn dir_user(upn: &str, display: &str, mailbox: bool) -> UserConfig {
    UserConfig {
        user_principal_name: upn.into(),
        display_name: display.into(),
        mailbox,
        ..UserConfig::with_mailbox(upn)
    }
}

fn row<'a>(m: &'a serde_json::Value, source: &str) -> &'a serde_json::Value {
    m["rows"]
        .as_array()
        .expect("rows")
        .iter()
        .find(|r| r["source"] == source)
        .unwrap_or_else(|| panic!("no row for {source}: {m}"))
}

/// Rewrites one row of the mapping CSV: `source` gets `target` and `status`.
fn edit_mapping(path: &Path, source: &str, target: &str, status: &str) {
    let text = std::fs::read_to_string(path).unwrap();
    let mut out = String::new();
    let mut hit = false;
    for line in text.lines() {
        if line.split(',').next() == Some(source) {
            out.push_str(&format!(
                "{source},{target},manual,{status},edited by the admin\r\n"
            ));
            hit = true;
        } else {
            out.push_str(line);
            out.push_str("\r\n");
        }
    }
    assert!(hit, "{source} not in {}", path.display());
    std::fs::write(path, out).unwrap();
}

/// Automatch against the directory, the admin's edits in the mapping file, and a run that
/// migrates exactly the mapping's matched rows into the mailboxes it names.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn match_writes_a_mapping_that_run_follows() {
    let users = ["alice", "bob", "carol", "dave", "noreply"];
    let s = setup(
        &users,
        6,
        vec![
            dir_user(&format!("alice@{DOMAIN}"), "Alice Archer", true),
            dir_user(&format!("bob.builder@{DOMAIN}"), "Bob Builder", true),
            dir_user(&format!("carol.chen@{DOMAIN}"), "Carol Chen", true),
            dir_user(&format!("cchen@{DOMAIN}"), "Carol Chen", true),
        ],
        |_| {},
    )
    .await;
    let mut csv = String::from("Login,Password,First Name,Last Name,Display Name\r\n");
    csv.push_str(&format!(
        "alice,{},Alice,Archer,Alice Archer\r\n",
        pw("alice")
    ));
    csv.push_str(&format!("bob,{},Bob,Builder,\r\n", pw("bob")));
    csv.push_str(&format!("carol,{},,,Carol Chen\r\n", pw("carol")));
    csv.push_str(&format!("dave,{},Dave,Doe,Dave Doe\r\n", pw("dave")));
    csv.push_str(&format!("noreply,{},,,\r\n", pw("noreply")));
    std::fs::write(s.path("users.csv"), csv).unwrap();
    s.write_job(
        &format!("client_secret = \"env:{SECRET_ENV}\""),
        "exclude = [\"noreply*\"]\npairs_file = \"mapping.csv\"",
    );

    // Without the mapping file, `run` migrates nothing and says what to do.
    let (code, _, stderr) = s.cli(&["run"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("mapping.csv does not exist"), "{stderr}");
    assert!(s.graph.messages(&format!("alice@{DOMAIN}")).is_empty());

    let (code, stdout, stderr) = s.cli(&["match", "--json", "--out", "mapping.csv"]);
    assert_eq!(code, 1, "undecided rows exit 1: {stderr}");
    let m: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(m["directory_users"], 4);
    assert_eq!(row(&m, "alice")["target"], format!("alice@{DOMAIN}"));
    assert_eq!(row(&m, "alice")["status"], "matched");
    assert_eq!(row(&m, "bob")["target"], format!("bob.builder@{DOMAIN}"));
    assert_eq!(row(&m, "bob")["status"], "matched");
    assert_eq!(row(&m, "carol")["status"], "ambiguous", "{m}");
    assert!(
        row(&m, "carol")["note"]
            .as_str()
            .unwrap()
            .contains("cchen@"),
        "candidates are named: {m}"
    );
    assert_eq!(row(&m, "dave")["status"], "unmatched");
    assert_eq!(row(&m, "noreply")["status"], "excluded");
    let mode = std::fs::metadata(s.path("mapping.csv")).unwrap();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&mode.permissions()) & 0o777,
        0o600
    );

    // The admin decides: carol goes to cchen, dave is not migrated.
    edit_mapping(
        &s.path("mapping.csv"),
        "carol",
        &format!("cchen@{DOMAIN}"),
        "matched",
    );
    edit_mapping(&s.path("mapping.csv"), "dave", "", "excluded");
    let m = s.json(&["match", "--json"]);
    assert_eq!(row(&m, "carol")["target"], format!("cchen@{DOMAIN}"));
    assert_eq!(row(&m, "carol")["rule"], "manual");
    assert_eq!(row(&m, "dave")["status"], "excluded");

    // verify before the run: everything missing, and the target is left as it was.
    let folders_before = s.graph.folders(&format!("alice@{DOMAIN}")).len();
    let (code, _, stderr) = s.cli(&["verify"]);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("missing"), "{stderr}");
    assert_eq!(
        s.graph.folders(&format!("alice@{DOMAIN}")).len(),
        folders_before,
        "verify created folders"
    );

    let (code, _, stderr) = s.cli(&["run"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("dave: mailbox skipped"), "{stderr}");
    assert!(stderr.contains("noreply: mailbox skipped"), "{stderr}");
    for (src, target) in [
        ("alice", "alice"),
        ("bob", "bob.builder"),
        ("carol", "cchen"),
    ] {
        let n = s.graph.messages(&format!("{target}@{DOMAIN}")).len();
        assert_eq!(n, 6, "{src} → {target}@{DOMAIN}");
    }
    assert!(s.graph.messages(&format!("carol.chen@{DOMAIN}")).is_empty());
    let (code, _, stderr) = s.cli(&["verify"]);
    assert_eq!(code, 0, "{stderr}");
}

/// `provision`: a dry run changes nothing; a real one creates the missing user, licenses an
/// unlicensed one, waits until both mailboxes answer, updates the mapping, and `run` then
/// migrates into them. The job signs in with a certificate instead of a secret.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provision_creates_licenses_and_waits_then_run_uses_it() {
    let dir = tempfile::tempdir().unwrap();
    let pem = dir.path().join("app.pem");
    let der = dir.path().join("app.der");
    let ok = std::process::Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
        ])
        .arg("/CN=o365-migrate e2e")
        .arg("-keyout")
        .arg(&pem)
        .arg("-out")
        .arg(dir.path().join("cert.pem"))
        .stderr(std::process::Stdio::null())
        .status()
        .expect("openssl (apt-get install openssl)")
        .success();
    assert!(ok, "openssl req failed");
    let ok = std::process::Command::new("openssl")
        .args(["x509", "-outform", "DER", "-in"])
        .arg(dir.path().join("cert.pem"))
        .arg("-out")
        .arg(&der)
        .status()
        .unwrap()
        .success();
    assert!(ok);
    let mut both = std::fs::read(dir.path().join("cert.pem")).unwrap();
    both.extend(std::fs::read(&pem).unwrap());
    std::fs::write(&pem, both).unwrap();
    let der_b64 = {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode(std::fs::read(&der).unwrap())
    };

    let s = setup(
        &["alice", "dave", "frank"],
        4,
        vec![
            dir_user(&format!("alice@{DOMAIN}"), "Alice Archer", true),
            dir_user(&format!("frank@{DOMAIN}"), "Frank Fox", false),
        ],
        |c| {
            c.time_scale = 0.02; // a mailbox appears 1.2 s after its licence
            c.tenants[0].apps[0].client_secret = None;
            c.tenants[0].apps[0].certificates_der_base64 = vec![der_b64.clone()];
        },
    )
    .await;
    std::fs::copy(&pem, s.path("app.pem")).unwrap();
    let mut csv = String::from("Login,Password,First Name,Last Name,Display Name\r\n");
    for (u, first, last) in [
        ("alice", "Alice", "Archer"),
        ("dave", "Dave", "Doe"),
        ("frank", "Frank", "Fox"),
    ] {
        csv.push_str(&format!("{u},{},{first},{last},{first} {last}\r\n", pw(u)));
    }
    std::fs::write(s.path("users.csv"), csv).unwrap();
    s.write_job(
        "certificate = \"app.pem\"",
        &format!(
            "pairs_file = \"mapping.csv\"\nallow_create = true\n\
             create_domain = \"{DOMAIN}\"\nusage_location = \"DE\"\nlicence_sku = \"ENTERPRISEPACK\""
        ),
    );

    let m = s.json(&["match", "--json"]);
    assert_eq!(row(&m, "dave")["status"], "create", "{m}");
    assert_eq!(row(&m, "frank")["status"], "matched");

    let p = s.json(&["provision", "--dry-run", "--json"]);
    let steps = p["steps"].as_array().unwrap();
    let step = |src: &str| steps.iter().find(|st| st["source"] == src).unwrap().clone();
    assert_eq!(step("dave")["action"], "create");
    assert_eq!(step("frank")["action"], "license");
    assert_eq!(step("alice")["action"], "ready");
    assert!(steps.iter().all(|st| st["state"] == "planned"));
    let m = s.json(&["match", "--json"]);
    assert_eq!(
        row(&m, "dave")["status"],
        "create",
        "the dry run created nothing"
    );

    let (code, stdout, stderr) = s.cli(&["provision", "--json", "--wait", "60"]);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    let p: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    for st in p["steps"].as_array().unwrap() {
        assert_eq!(st["state"], "mailbox-ready", "{p}");
    }
    let mapping = std::fs::read_to_string(s.path("mapping.csv")).unwrap();
    assert!(
        mapping.contains(&format!("dave,dave.doe@{DOMAIN},created,matched")),
        "{mapping}"
    );
    // Idempotent: nothing left to create.
    let p = s.json(&["provision", "--dry-run", "--json"]);
    assert!(
        p["steps"]
            .as_array()
            .unwrap()
            .iter()
            .all(|st| st["action"] == "ready"),
        "{p}"
    );

    let (code, _, stderr) = s.cli(&["run"]);
    assert_eq!(code, 0, "{stderr}");
    for u in ["alice", "dave.doe", "frank"] {
        assert_eq!(s.graph.messages(&format!("{u}@{DOMAIN}")).len(), 4, "{u}");
    }
    let (code, _, stderr) = s.cli(&["verify"]);
    assert_eq!(code, 0, "{stderr}");
}

/// `run --window`: inside the window it works; at the window's end it pauses cleanly (in-flight
/// items recorded) and waits for the next opening; Ctrl-C while waiting exits 130; a later
/// run finishes the rest without duplicates.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn window_pauses_at_its_end_and_the_rest_follows() {
    const N: usize = 600;
    let s = setup(
        &["alice"],
        N,
        vec![dir_user(&format!("alice@{DOMAIN}"), "Alice", true)],
        |_| {},
    )
    .await;
    std::fs::write(
        s.path("users.csv"),
        format!(
            "Login,Password,Target\r\nalice,{},alice@{DOMAIN}\r\n",
            pw("alice")
        ),
    )
    .unwrap();
    s.write_job(&format!("client_secret = \"env:{SECRET_ENV}\""), "");

    // A closed window: it waits and migrates nothing.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let hms = |t: u64| {
        let t = t % 86_400;
        format!("{:02}:{:02}:{:02}", t / 3600, t / 60 % 60, t % 60)
    };
    let closed = format!("{}-{}", hms(now + 3600), hms(now + 7200));
    let mut child = s
        .command(&["run", "--window", &closed])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(child.stderr.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    assert!(first.starts_with("pairing: automatch"), "{first}");
    let second = lines.next().unwrap().unwrap();
    assert!(second.contains("outside the window"), "{second}");
    // The binary restarted itself with glibc's trim threshold set (the same process id).
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        let environ = std::fs::read(format!("/proc/{}/environ", child.id())).unwrap();
        assert!(
            environ
                .split(|b| *b == 0)
                .any(|v| v == b"MALLOC_TRIM_THRESHOLD_=131072"),
            "the trim threshold is not set"
        );
    }
    // While it waits it holds the run lock: a second run on the same state refuses to start.
    let (code, _, stderr) = s.cli(&["rescan"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("another o365-migrate run"), "{stderr}");
    interrupt(&mut child, lines, &[]);
    assert!(s.graph.messages(&format!("alice@{DOMAIN}")).is_empty());

    // An open window that closes in 5 s: a pause with part of the mailbox done. Every Graph
    // answer takes the emulator's 50 ms plus 20 ms meanwhile (4 in flight: at most ~60
    // messages/s, ~300 in the window), so the mailbox cannot finish inside the window however
    // fast the machine is, and a loaded machine still gets past the set-up before it closes.
    s.graph.set_faults(Faults {
        rate_slow: 1.0,
        slow_ms: 20,
        ..Faults::default()
    });
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let open = format!("{}-{}", hms(now - 60), hms(now + 5));
    let mut child = s
        .command(&["run", "--window", &open])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let lines = std::io::BufReader::new(child.stderr.take().unwrap()).lines();
    interrupt(
        &mut child,
        lines,
        &["inside the window", "closed: paused", "outside the window"],
    );
    let partial = s.graph.messages(&format!("alice@{DOMAIN}")).len();
    assert!(
        partial > 0 && partial < N,
        "paused part-way: {partial} of {N}"
    );
    eprintln!("window: paused after {partial} of {N} messages");
    let status = s.json(&["status", "--json"]);
    assert_eq!(
        status["counts"]["migrated"], partial as u64,
        "every written item recorded"
    );
    assert_eq!(status["counts"]["failed"], 0);

    s.graph.set_faults(Faults::default());
    let (code, _, stderr) = s.cli(&["run"]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(s.graph.messages(&format!("alice@{DOMAIN}")).len(), N);
    let (code, _, stderr) = s.cli(&["verify"]);
    assert_eq!(code, 0, "{stderr}");
}

/// Reads stderr until every `expect` line fragment was seen in order and the binary waits for
/// the window, then sends SIGINT and expects exit 130.
fn interrupt(
    child: &mut std::process::Child,
    mut lines: std::io::Lines<std::io::BufReader<std::process::ChildStderr>>,
    expect: &[&str],
) {
    let mut seen = Vec::new();
    let mut want = expect.iter().peekable();
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    while want.peek().is_some() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out; saw {seen:#?}"
        );
        let Some(Ok(line)) = lines.next() else {
            panic!("stderr ended; saw {seen:#?}");
        };
        if let Some(w) = want.peek()
            && line.contains(**w)
        {
            want.next();
        }
        seen.push(line);
    }
    let ok = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok);
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130), "saw {seen:#?}");
}
