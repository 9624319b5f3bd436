use super::*;

const MINIMAL: &str = r#"
[source]
host = "imap.example.com"
credentials = "users.csv"

[target]
kind = "eml"

[target.eml]
directory = "out"
"#;

fn parse(s: &str) -> Result<Job> {
    Job::parse(s, "o365-migrate.toml")
}

fn parse_err(s: &str) -> String {
    match parse(s) {
        Ok(_) => panic!("expected an error for:\n{s}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn template_parses_and_documents_every_key() {
    let job = parse(TEMPLATE).expect("template parses");
    assert_eq!(job.target.kind, TargetKind::Graph);
    assert!(matches!(
        job.target.settings(),
        Some(TargetSettings::Graph(_))
    ));
    assert_eq!(job.source.security, Security::Tls);
    assert_eq!(job.filters.max_message_size, Some(ByteSize(150 << 20)));
    assert_eq!(
        job.filters.exclude_folders,
        vec![
            FolderPattern::WellKnown(WellKnownFolder::JunkEmail),
            FolderPattern::WellKnown(WellKnownFolder::DeletedItems)
        ]
    );
    // Every key of every struct appears in the template (commented or not).
    let keys = [
        "host",
        "port",
        "security",
        "accept_invalid_certs",
        "ca_file",
        "login",
        "credentials",
        "connections_per_host",
        "logins_per_second",
        "max_bytes_per_second",
        "user",
        "secret",
        "kind",
        "tenant",
        "client_id",
        "client_secret",
        "certificate",
        "certificate_secret",
        "cloud",
        "authority_url",
        "graph_url",
        "url",
        "auth",
        "directory",
        "rules",
        "domains",
        "pairs_file",
        "exclude",
        "allow_create",
        "usage_location",
        "licence_sku",
        "since",
        "before",
        "include_folders",
        "exclude_folders",
        "max_message_size",
        "migrate_system_folders",
        "source",
        "target",
        "skip",
        "mailboxes_at_once",
        "in_flight_bytes",
        "max_attempts",
        "path",
        "file",
        "level",
        "events",
    ];
    for k in keys {
        let found = TEMPLATE.lines().any(|l| {
            let l = l.trim_start_matches('#').trim_start();
            l.starts_with(&format!("{k} =")) || l.starts_with(&format!("{k}="))
        });
        assert!(found, "template does not document `{k}`");
    }
    for t in [
        "[source.admin]",
        "[target.imap]",
        "[target.imap.admin]",
        "[target.ews]",
        "[target.eml]",
        "[[folders.map]]",
    ] {
        assert!(TEMPLATE.contains(t), "template lacks {t}");
    }
}

/// Switches the template to another target kind by deleting the graph block and uncommenting
/// the block introduced by `# For kind = "<kind>" use instead:`.
fn template_for(kind: &str) -> String {
    let mut out = String::new();
    let mut skipping_graph = false;
    let mut uncommenting = false;
    for line in TEMPLATE.lines() {
        if line == "[target.graph]" {
            skipping_graph = true;
            continue;
        }
        if skipping_graph && line.starts_with("# For kind") {
            skipping_graph = false;
        }
        if skipping_graph {
            continue;
        }
        if line == format!("# For kind = \"{kind}\" use instead:")
            || line.starts_with(&format!("# For kind = \"{kind}\" ("))
        {
            uncommenting = true;
            continue;
        }
        if uncommenting && line.is_empty() {
            uncommenting = false;
        }
        if uncommenting {
            out.push_str(line.strip_prefix("# ").unwrap_or(line));
        } else if line == "kind = \"graph\"" {
            out.push_str(&format!("kind = \"{kind}\""));
        } else {
            out.push_str(line);
        }
        out.push('\n');
    }
    out
}

#[test]
fn every_commented_target_alternative_in_the_template_parses() {
    let text =
        template_for("imap").replace("login = \"per-user\"              #", "login = \"admin\" #");
    let job = parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    let Some(TargetSettings::Imap(i)) = job.target.settings() else {
        panic!("imap")
    };
    assert_eq!(i.port(), 993);
    assert_eq!(i.login, LoginMode::Admin);
    let text = template_for("ews");
    let job = parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    let Some(TargetSettings::Ews(e)) = job.target.settings() else {
        panic!("ews")
    };
    assert_eq!(e.auth, EwsAuth::Basic);
    let text = template_for("eml");
    let job = parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert!(matches!(
        job.target.settings(),
        Some(TargetSettings::Eml(_))
    ));
    assert_eq!(job.secret_refs().len(), 0);
}

#[test]
fn minimal_job_gets_defaults() {
    let job = parse(MINIMAL).unwrap();
    assert_eq!(job.source.port(), 993);
    assert_eq!(job.source.connections_per_host, 6);
    assert_eq!(job.state.path, PathBuf::from("./o365-migrate.db"));
    assert_eq!(job.limits.mailboxes_at_once, 4);
    assert_eq!(job.limits.in_flight_bytes, ByteSize(32 << 20));
    assert_eq!(job.log.level, "info");
    assert!(!job.source.accept_invalid_certs);
    assert_eq!(job.source.login, LoginMode::PerUser);
}

#[test]
fn a_message_size_cap_above_the_in_flight_budget_is_allowed() {
    // A message larger than the budget takes all of it and runs alone (ByteBudget), so the
    // default budget needs no raising for Exchange Online's 150MB.
    let job = parse(&format!(
        "{MINIMAL}\n[filters]\nmax_message_size = \"150MB\"\n"
    ))
    .unwrap();
    assert_eq!(job.filters.max_message_size, Some(ByteSize(150 << 20)));
    assert_eq!(job.limits.in_flight_bytes, ByteSize(32 << 20));
}

#[test]
fn unknown_key_names_file_line_column_and_suggests() {
    let text = MINIMAL.replace(
        "credentials = \"users.csv\"",
        "credentials = \"users.csv\"\nconections_per_host = 4",
    );
    let e = parse_err(&text);
    assert_eq!(
        e,
        "unknown key `conections_per_host` in [source] at o365-migrate.toml:5:1; did you mean `connections_per_host`?"
    );
}

#[test]
fn unknown_top_level_table_suggests() {
    let e = parse_err(&format!("{MINIMAL}\n[limit]\nmailboxes_at_once = 2\n"));
    assert!(e.contains("unknown key `limit` at the top level"), "{e}");
    assert!(e.contains("o365-migrate.toml:12:2"), "{e}");
    assert!(e.contains("did you mean `limits`?"), "{e}");
}

#[test]
fn unknown_enum_value_suggests() {
    let e = parse_err(&MINIMAL.replace("credentials =", "security = \"tsl\"\ncredentials ="));
    assert!(e.contains("unknown value `tsl` in [source]"), "{e}");
    assert!(e.contains(":4:12"), "{e}");
    assert!(e.contains("did you mean `tls`?"), "{e}");
}

#[test]
fn missing_key_is_named() {
    let e = parse_err(&MINIMAL.replace("host = \"imap.example.com\"\n", ""));
    assert!(e.contains("missing key `host` in [source]"), "{e}");
    assert!(e.contains("add `host = ...`"), "{e}");
}

#[test]
fn literal_secret_is_rejected_without_echoing_it() {
    let text = MINIMAL.replace(
        "credentials = \"users.csv\"",
        "credentials = \"users.csv\"\nlogin = \"admin\"\n[source.admin]\nuser = \"root\"\nsecret = \"Hunter2-Sup3rS3cret\"",
    );
    let e = parse_err(&text);
    assert!(!e.contains("Hunter2"), "secret echoed: {e}");
    assert!(e.contains("literal secret"), "{e}");
    assert!(e.contains("env:VARIABLE"), "{e}");
    assert!(e.contains("o365-migrate.toml:8:10"), "{e}");
    // Debug of the error does not leak either.
    let err = parse(&text).unwrap_err();
    assert!(!format!("{err:?}").contains("Hunter2"));
}

#[test]
fn password_key_gets_reference_hint() {
    let e = parse_err(&MINIMAL.replace("credentials =", "password = \"x\"\ncredentials ="));
    assert!(e.contains("unknown key `password`"), "{e}");
    assert!(e.contains("by reference"), "{e}");
    assert!(!e.contains("\"x\""), "{e}");
}

#[test]
fn secret_refs_resolve_and_never_print() {
    let dir = tempfile::tempdir().unwrap();
    let secret_file = dir.path().join("s.txt");
    std::fs::write(&secret_file, "file-secret-value\n").unwrap();
    let text = MINIMAL.replace(
        "credentials = \"users.csv\"",
        "credentials = \"users.csv\"\nlogin = \"admin\"\n[source.admin]\nuser = \"root\"\nsecret = \"file:s.txt\"",
    );
    let job = Job::parse(&text, dir.path().join("job.toml")).unwrap();
    let r = &job.source.admin.as_ref().unwrap().secret;
    assert_eq!(r.source, SecretSource::File(dir.path().join("s.txt")));
    assert!(
        r.origin.contains("[source.admin] secret at"),
        "{}",
        r.origin
    );
    assert!(r.origin.contains("job.toml:8:1"), "{}", r.origin);
    let s = r.resolve().unwrap();
    assert_eq!(s.expose(), "file-secret-value");
    assert_eq!(format!("{s:?}"), "Secret([REDACTED])");
    assert!(!format!("{job:?}").contains("file-secret-value"));
    assert_eq!(job.secret_refs().len(), 1);
}

#[test]
fn env_secret_missing_is_located_error() {
    let r = SecretRef {
        source: SecretSource::Env("O365_ENGINE_TEST_DEFINITELY_UNSET".into()),
        origin: "[target.graph] client_secret at job.toml:9:1".into(),
    };
    let e = r.resolve().unwrap_err().to_string();
    assert!(e.contains("env:O365_ENGINE_TEST_DEFINITELY_UNSET"), "{e}");
    assert!(e.contains("job.toml:9:1"), "{e}");
    assert!(e.contains("not set"), "{e}");
    assert!(e.contains("export"), "{e}");
}

#[test]
fn env_secret_resolves() {
    // PATH is set in every test process; setting our own variable would need `unsafe`.
    let r = SecretRef::parse("env:PATH").unwrap();
    assert!(!r.resolve().unwrap().expose().is_empty());
}

#[test]
fn secret_ref_syntax() {
    assert!(SecretRef::parse("env:").is_err());
    assert!(SecretRef::parse("env:1ABC").is_err());
    assert!(SecretRef::parse("env:A-B").is_err());
    assert!(SecretRef::parse("file:").is_err());
    assert!(SecretRef::parse("file:/x").is_ok());
    assert!(SecretRef::parse("env:O365_SECRET").is_ok());
    let e = SecretRef::parse("plain-password").unwrap_err();
    assert!(!e.contains("plain-password"));
}

#[test]
fn graph_needs_exactly_one_credential() {
    let base = r#"
[source]
host = "h"
credentials = "u.csv"
[target]
kind = "graph"
[target.graph]
tenant = "t"
client_id = "c"
"#;
    let e = parse_err(base);
    assert!(e.contains("no app credential"), "{e}");
    assert!(e.contains(":7:1"), "{e}");
    let both = format!("{base}client_secret = \"env:X\"\ncertificate = \"a.pem\"\n");
    let e = parse_err(&both);
    assert!(e.contains("both"), "{e}");
    assert!(e.contains(":11:1"), "{e}");
    let ok = format!(
        "{base}certificate = \"a.pem\"\ncertificate_secret = \"env:P\"\ncloud = \"gcc-high\"\n"
    );
    let job = parse(&ok).unwrap();
    let g = job.target.graph.as_ref().unwrap();
    assert_eq!(g.cloud, Cloud::UsGovHigh);
    assert_eq!(g.authority_url(), "https://login.microsoftonline.us");
    assert_eq!(g.graph_url(), "https://graph.microsoft.us");
}

#[test]
fn endpoint_overrides_allow_http_only_on_loopback() {
    let base = r#"
[source]
host = "h"
credentials = "u.csv"
[target]
kind = "graph"
[target.graph]
tenant = "t"
client_id = "c"
client_secret = "env:S"
"#;
    let job = parse(&format!(
        "{base}graph_url = \"http://127.0.0.1:8080/\"\nauthority_url = \"http://localhost:9/\"\n"
    ))
    .unwrap();
    let g = job.target.graph.as_ref().unwrap();
    assert_eq!(g.graph_url(), "http://127.0.0.1:8080");
    assert_eq!(g.authority_url(), "http://localhost:9");
    let e = parse_err(&format!("{base}graph_url = \"http://graph.example.com\"\n"));
    assert!(e.contains("only allowed for a local emulator"), "{e}");
    assert!(e.contains(":11:13"), "{e}");
    for c in [Cloud::Global, Cloud::UsGovDod, Cloud::China] {
        assert!(c.endpoints().graph.starts_with("https://"));
        assert!(c.endpoints().authority.starts_with("https://"));
    }
}

#[test]
fn target_kind_needs_its_table_and_only_it() {
    let e = parse_err(&MINIMAL.replace("kind = \"eml\"", "kind = \"imap\""));
    assert!(
        e.contains("kind = \"imap\" but there is no [target.imap] table"),
        "{e}"
    );
    assert!(e.contains(":7:1"), "{e}");
}

#[test]
fn plaintext_only_when_named_and_login_modes_checked() {
    let job =
        parse(&MINIMAL.replace("credentials =", "security = \"none\"\ncredentials =")).unwrap();
    assert_eq!(job.source.security, Security::None);
    assert_eq!(job.source.port(), 143);
    let e = parse_err(&MINIMAL.replace(
        "credentials =",
        "security = \"none\"\naccept_invalid_certs = true\ncredentials =",
    ));
    assert!(e.contains("no meaning"), "{e}");
    let e = parse_err(&MINIMAL.replace("credentials =", "login = \"admin\"\ncredentials ="));
    assert!(e.contains("no [source.admin] table"), "{e}");
    assert!(e.contains(":4:1"), "{e}");
}

#[test]
fn filters_parse_dates_sizes_and_tokens() {
    let text = format!(
        "{MINIMAL}\n[filters]\nsince = 2020-01-01\nbefore = \"2024-02-29\"\ninclude_folders = [\"#Inbox#\", \"Projects/**\"]\nmax_message_size = \"35MB\"\n[limits]\nin_flight_bytes = \"1GB\"\n"
    );
    let job = parse(&text).unwrap();
    let f = &job.filters;
    assert_eq!(
        f.since,
        Some(CivilDate {
            year: 2020,
            month: 1,
            day: 1
        })
    );
    assert_eq!(f.before.unwrap().to_string(), "2024-02-29");
    assert_eq!(f.max_message_size, Some(ByteSize(35 * 1024 * 1024)));
    assert!(f.date_allows(1_577_836_800)); // 2020-01-01T00:00:00Z
    assert!(!f.date_allows(1_577_836_799));
    assert!(!f.date_allows(1_709_164_800)); // 2024-02-29T00:00:00Z (before is exclusive)
    assert!(f.date_allows(1_709_164_799));
    assert!(f.size_allows(35 * 1024 * 1024));
    assert!(!f.size_allows(35 * 1024 * 1024 + 1));

    let e = parse_err(&format!(
        "{MINIMAL}\n[filters]\ninclude_folders = [\"#Sent#\"]\n"
    ));
    assert!(e.contains("unknown folder token `#Sent#`"), "{e}");
    assert!(e.contains("did you mean `#SentItems#`?"), "{e}");
    assert!(e.contains(":13:19"), "{e}");
    let e = parse_err(&format!("{MINIMAL}\n[filters]\nsince = \"2023-02-30\"\n"));
    assert!(e.contains("has no day 30"), "{e}");
    let e = parse_err(&format!(
        "{MINIMAL}\n[filters]\nsince = \"2024-01-01\"\nbefore = \"2023-01-01\"\n"
    ));
    assert!(e.contains("not after"), "{e}");
    let e = parse_err(&format!(
        "{MINIMAL}\n[filters]\nmax_message_size = \"35 parsecs\"\n"
    ));
    assert!(e.contains("unknown size unit"), "{e}");
}

#[test]
fn byte_sizes() {
    let cases = [
        ("35MB", 35 << 20),
        ("35 mb", 35 << 20),
        ("512KiB", 512 << 10),
        ("1.5GB", 3 << 29),
        ("100", 100),
        ("7B", 7),
        ("2TB", 2 << 40),
    ];
    for (s, v) in cases {
        assert_eq!(ByteSize::parse(s), Ok(ByteSize(v)), "{s}");
    }
    for bad in [
        "",
        "MB",
        "1.2.3MB",
        "-5MB",
        "99999999999999999999GB",
        "5 XB",
    ] {
        assert!(ByteSize::parse(bad).is_err(), "{bad}");
    }
    assert_eq!(ByteSize(35 << 20).to_string(), "35MB");
    assert_eq!(ByteSize(1000).to_string(), "1000B");
}

#[test]
fn folder_rules_need_valid_regex_and_one_action() {
    let e = parse_err(&format!(
        "{MINIMAL}\n[[folders.map]]\nsource = \"^(unclosed\"\ntarget = \"x\"\n"
    ));
    assert!(
        e.contains("invalid regular expression: unclosed group at o365-migrate.toml:13:10"),
        "{e}"
    );
    let e = parse_err(&format!("{MINIMAL}\n[[folders.map]]\nsource = \"^a$\"\n"));
    assert!(
        e.contains("exactly one of `target` or `skip = true`"),
        "{e}"
    );
    let job = parse(&format!(
        "{MINIMAL}\n[[folders.map]]\nsource = \"^a$\"\nskip = true\n"
    ))
    .unwrap();
    assert!(job.folders.map[0].skip);
}

#[test]
fn matching_section() {
    let job = parse(&format!(
        "{MINIMAL}\n[matching]\nrules = [\"exact-address\"]\ndomains = {{ \"old.example\" = \"new.example\" }}\nallow_create = true\ncreate_domain = \"new.example\"\nusage_location = \"de\"\nlicence_sku = \"EXCHANGESTANDARD\"\n"
    ))
    .unwrap();
    assert_eq!(job.matching.usage_location.as_deref(), Some("DE"));
    assert_eq!(
        job.matching.domains.get("old.example").map(String::as_str),
        Some("new.example")
    );
    let e = parse_err(&format!("{MINIMAL}\n[matching]\nlicence_sku = \"X\"\n"));
    assert!(e.contains("needs `usage_location`"), "{e}");
    let e = parse_err(&format!(
        "{MINIMAL}\n[matching]\nusage_location = \"Germany\"\n"
    ));
    assert!(e.contains("two-letter"), "{e}");
    let e = parse_err(&format!(
        "{MINIMAL}\n[matching]\nallow_create = true\nusage_location = \"DE\"\n"
    ));
    assert!(e.contains("needs `create_domain`"), "{e}");
    let e = parse_err(&format!(
        "{MINIMAL}\n[matching]\nrules = [\"nearest-guess\"]\n"
    ));
    assert!(e.contains("unknown matching rule 'nearest-guess'"), "{e}");
    assert!(e.contains("rules"), "{e}");
}

#[test]
fn invalid_type_and_syntax_errors_are_located() {
    let e = parse_err(&MINIMAL.replace("credentials =", "port = \"993\"\ncredentials ="));
    assert!(e.contains("invalid type"), "{e}");
    assert!(e.contains(":4:8"), "{e}");
    let e = parse_err("[source\nhost = 1");
    assert!(e.contains("o365-migrate.toml:1:"), "{e}");
}

#[test]
fn relative_paths_resolve_against_job_dir() {
    let job = Job::parse(MINIMAL, "/etc/o365/job.toml").unwrap();
    assert_eq!(
        job.resolve_path(&job.state.path),
        PathBuf::from("/etc/o365/./o365-migrate.db")
    );
    assert_eq!(job.resolve_path(Path::new("/abs")), PathBuf::from("/abs"));
    let job = Job::parse(MINIMAL, "job.toml").unwrap();
    assert_eq!(job.base_dir(), PathBuf::from("."));
}

#[test]
fn load_missing_file_says_so() {
    let e = Job::load("/nonexistent/o365.toml").unwrap_err().to_string();
    assert!(
        e.contains("cannot read job file /nonexistent/o365.toml"),
        "{e}"
    );
}

#[test]
fn did_you_mean_is_conservative() {
    assert_eq!(
        did_you_mean("conections", ["connections", "host"].into_iter()),
        Some("connections")
    );
    assert_eq!(
        did_you_mean("zzzzzz", ["connections", "host"].into_iter()),
        None
    );
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]
    #[test]
    fn parsing_arbitrary_text_never_panics(s in "\\PC{0,400}") {
        let _ = Job::parse(&s, "fuzz.toml");
    }

    #[test]
    fn mutated_template_never_panics(pos in 0usize..4000, insert in "[\\[\\]=\"#a-z0-9 \\n.]{0,12}") {
        let mut t = TEMPLATE.to_owned();
        let mut p = pos.min(t.len());
        while !t.is_char_boundary(p) { p -= 1; }
        t.insert_str(p, &insert);
        let _ = Job::parse(&t, "fuzz.toml");
    }
}
