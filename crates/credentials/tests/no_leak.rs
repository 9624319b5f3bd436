//! A planted password must appear in no Debug output, Display, error, log line or JSON output —
//! on the happy path and on every error path that involves the password cell.

use std::io::Write;
use std::sync::{Arc, Mutex};

use o365_migrate_credentials::{
    AdminLogin, AdminStyle, ColumnMapping, HeaderMode, LoginMode, ReadOptions, Secret, parse_bytes,
};

const PLANTED: &str = "Planted-S3cret-7Qx";

/// A `MakeWriter` that appends every log line to a shared buffer.
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Capture {
    type Writer = Capture;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

/// Files that carry the planted password in every position that can go wrong.
fn cases() -> Vec<(&'static str, String, ReadOptions)> {
    let p = PLANTED;
    let headerless = ReadOptions::default()
        .mapping("login,password,target".parse::<ColumnMapping>().unwrap())
        .header(HeaderMode::Absent);
    vec![
        (
            "clean",
            format!("Login,Password,Target\nalice@example.com,{p},alice@contoso.com\n"),
            ReadOptions::default(),
        ),
        (
            "quoted",
            format!("Login;Password\nalice@example.com;\"{p};x\"\"y\"\n"),
            ReadOptions::default(),
        ),
        (
            "duplicate",
            format!("Login,Password\na@example.com,{p}\nA@example.com,{p}\n"),
            ReadOptions::default(),
        ),
        (
            "spaces",
            format!("Login,Password\na@example.com, {p} \n"),
            ReadOptions::default(),
        ),
        (
            "line-break",
            format!("Login,Password\na@example.com,\"{p}\n{p}\"\n"),
            ReadOptions::default(),
        ),
        (
            "unterminated",
            format!("Login,Password\na@example.com,\"{p}\n"),
            ReadOptions::default(),
        ),
        (
            "text-after-quote",
            format!("Login,Password\na@example.com,\"{p}\"{p}\n"),
            ReadOptions::default(),
        ),
        // An unquoted delimiter splits the password; its halves must not be echoed as a target.
        (
            "split",
            format!(
                "Login,Password,Target\na@example.com,{}-,-{},a@contoso.com\n",
                &p[..9],
                &p[9..]
            ),
            ReadOptions::default(),
        ),
        (
            "split-headerless",
            format!("a@example.com,{}-,-{},a@contoso.com\n", &p[..9], &p[9..]),
            headerless,
        ),
        (
            "empty-login",
            format!("Login,Password\n,{p}\n"),
            ReadOptions::default(),
        ),
        (
            "admin-mode",
            format!("Login,Password\na@example.com,{p}\n"),
            ReadOptions::default().admin_mode(),
        ),
        (
            "env-ref",
            "Login,Password\na@example.com,env:O365M_NO_LEAK_UNSET\n".to_owned(),
            ReadOptions::default().resolve_secrets(true),
        ),
        (
            "literal",
            format!("Login,Password\na@example.com,literal:{p}\n"),
            ReadOptions::default(),
        ),
        (
            "row-limit",
            format!("Login,Password\na@example.com,{p}\nb@example.com,{p}\n"),
            ReadOptions::default().row_limit(Some(1)),
        ),
        (
            "windows-1252",
            format!("Login,Password\nrené@example.com,{p}\n"),
            ReadOptions::default(),
        ),
    ]
}

fn assert_clean(what: &str, text: &str) {
    // Also look for halves, so that a split or truncated echo is caught.
    for needle in [PLANTED, &PLANTED[..9], &PLANTED[9..]] {
        assert!(!text.contains(needle), "{what} leaks `{needle}`:\n{text}");
    }
}

#[test]
fn planted_password_never_printed() {
    let capture = Capture::default();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(capture.clone())
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let admin = LoginMode::Admin(
        AdminLogin::new("mailadmin", Secret::new(PLANTED), AdminStyle::PlainAuthzid).unwrap(),
    );
    let mut seen_problems = 0;
    for (name, text, options) in cases() {
        let mut bytes = text.into_bytes();
        if name == "windows-1252" {
            // é as Windows-1252 to exercise the encoding warning path.
            let pos = bytes.windows(2).position(|w| w == "é".as_bytes()).unwrap();
            bytes.splice(pos..pos + 2, [0xE9]);
        }
        let parsed = parse_bytes(&bytes, "planted.csv", &options).unwrap();
        let report = parsed.report();
        seen_problems += report.problems.len();
        assert_clean(&format!("{name}: Debug of Parsed"), &format!("{parsed:?}"));
        assert_clean(&format!("{name}: Debug of report"), &format!("{report:?}"));
        assert_clean(&format!("{name}: Display of report"), &report.to_string());
        assert_clean(&format!("{name}: human report"), &report.render_human(1000));
        assert_clean(&format!("{name}: JSON report"), &report.to_json());
        for p in &report.problems {
            assert_clean(&format!("{name}: problem"), &p.to_string());
        }
        for r in parsed.records() {
            assert_clean(&format!("{name}: record"), &format!("{r:?} {r:#?}"));
            if let Some(src) = &r.password {
                assert_clean(
                    &format!("{name}: source"),
                    &format!("{src:?} {}", src.masked()),
                );
                match src.resolve() {
                    Ok(secret) => assert_clean(&format!("{name}: secret"), &format!("{secret:?}")),
                    Err(e) => {
                        assert_clean(&format!("{name}: resolve error"), &format!("{e} {e:?}"))
                    }
                }
            }
            for mode in [&LoginMode::PerUser, &admin] {
                match mode.login_for(r, "planted.csv") {
                    Ok(login) => {
                        assert_clean(
                            &format!("{name}: ImapLogin"),
                            &format!("{login:?} {:?}", login.sasl_plain()),
                        );
                    }
                    Err(e) => assert_clean(&format!("{name}: login error"), &format!("{e} {e:?}")),
                }
            }
        }
        match parsed.into_credentials() {
            Ok(c) => assert_clean(&format!("{name}: credentials"), &format!("{c:?}")),
            Err(e) => assert_clean(&format!("{name}: rejection"), &format!("{e} {e:?}")),
        }
    }
    assert!(
        seen_problems > 10,
        "the cases should exercise the error paths"
    );
    let logs = String::from_utf8(capture.0.lock().unwrap().clone()).unwrap();
    // The capture must have seen the crate's log lines, or this check proves nothing.
    assert!(
        logs.contains("credentials file checked"),
        "no log captured:\n{logs}"
    );
    assert!(
        logs.contains("credentials problem"),
        "no problem logged:\n{logs}"
    );
    assert_clean("log output", &logs);
}

#[test]
fn secret_values_are_still_usable() {
    // The masking must not break the value itself.
    let csv = format!("Login,Password\nalice@example.com,{PLANTED}\n");
    let c = parse_bytes(csv.as_bytes(), "x.csv", &ReadOptions::default())
        .unwrap()
        .into_credentials()
        .unwrap();
    let login = LoginMode::PerUser
        .login_for(&c.records()[0], "x.csv")
        .unwrap();
    assert_eq!(login.secret.expose(), PLANTED);
}
