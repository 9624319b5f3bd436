//! Exact values read from the fixtures (the expected reports mask passwords, so these tests check
//! that every encoding and quoting rule yields the right login, password and target).

use std::path::{Path, PathBuf};

use o365_migrate_credentials::{
    AdminLogin, AdminStyle, ColumnMapping, Credentials, Error, Field, HeaderMode, LoginMode,
    MICROSOFT_ROW_LIMIT, PasswordKind, ProblemCode, ReadOptions, Secret, Severity, TargetIdentity,
    TextEncoding, load_file, parse_bytes, read_file,
};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fixtures/csv")
        .join(name)
}

fn load(name: &str) -> Credentials {
    load_file(&fixture(name), &ReadOptions::default()).expect("fixture loads")
}

/// (login, password, target) of every row.
fn triples(c: &Credentials) -> Vec<(String, String, Option<String>)> {
    c.records()
        .iter()
        .map(|r| {
            let pw = r
                .password
                .as_ref()
                .expect("password")
                .resolve()
                .expect("resolves");
            (r.login.clone(), pw.expose().to_owned(), r.target.clone())
        })
        .collect()
}

fn t(l: &str, p: &str, tg: Option<&str>) -> (String, String, Option<String>) {
    (l.to_owned(), p.to_owned(), tg.map(str::to_owned))
}

#[test]
fn microsoft_sample_with_domain_logins() {
    let c = load("microsoft-sample.csv");
    assert_eq!(
        triples(&c),
        vec![
            t(
                "contoso\\terry.adams",
                "1091990",
                Some("terrya@contoso.edu")
            ),
            t("contoso\\ann.beebe", "2111991", Some("annb@contoso.edu")),
            t("contoso\\paul.cannon", "3281986", Some("paulc@contoso.edu")),
        ]
    );
}

#[test]
fn microsoft_user_root_with_shared_admin_login() {
    let c = load("microsoft-userroot.csv");
    let roots: Vec<_> = c
        .records()
        .iter()
        .map(|r| r.user_root.clone().unwrap())
        .collect();
    assert_eq!(roots, ["/users/terry.adams", "/users/ann.beebe"]);
}

#[test]
fn codetwo_quoted_password_with_comma_and_quote() {
    let c = load("codetwo.csv");
    assert_eq!(
        triples(&c)[1],
        t("ann.beebe@fabrikam.com", "pa,ss\"word", None)
    );
    let r = &c.records()[1];
    assert_eq!(r.first_name.as_deref(), Some("Ann"));
    assert_eq!(r.last_name.as_deref(), Some("Beebe"));
    assert_eq!(r.display_name.as_deref(), Some("Beebe, Ann"));
}

#[test]
fn excel_semicolon_utf16le_with_bom() {
    let p = read_file(
        &fixture("excel-semicolon-utf16le.csv"),
        &ReadOptions::default(),
    )
    .unwrap();
    assert_eq!(p.report().encoding, TextEncoding::Utf16Le);
    assert!(p.report().bom);
    assert_eq!(p.report().delimiter, ';');
    let c = p.into_credentials().unwrap();
    assert_eq!(
        triples(&c),
        vec![
            t(
                "jürgen.müller@example.de",
                "Grüße!2024",
                Some("juergen.mueller@contoso.onmicrosoft.com")
            ),
            t(
                "zoë@example.de",
                "semi;colon",
                Some("zoe@contoso.onmicrosoft.com")
            ),
        ]
    );
}

#[test]
fn excel_unicode_text_is_tab_separated_utf16le() {
    let p = read_file(&fixture("excel-unicode-text.txt"), &ReadOptions::default()).unwrap();
    assert_eq!(
        (p.report().encoding, p.report().delimiter),
        (TextEncoding::Utf16Le, '\t')
    );
    let c = p.into_credentials().unwrap();
    assert_eq!(
        triples(&c),
        vec![
            t("terry.adams", "say \"cheese\"", Some("terrya@contoso.edu")),
            t("ann.beebe", "µ-Ωmega", Some("annb@contoso.edu")),
        ]
    );
}

#[test]
fn utf16_be_and_bomless_le() {
    let be = read_file(&fixture("utf16be-pipe.csv"), &ReadOptions::default()).unwrap();
    assert_eq!(
        (be.report().encoding, be.report().delimiter),
        (TextEncoding::Utf16Be, '|')
    );
    assert_eq!(
        triples(&be.into_credentials().unwrap()),
        vec![t("kim@example.org", "Kim#1", Some("kim@contoso.com"))]
    );
    let le = read_file(&fixture("utf16le-nobom.csv"), &ReadOptions::default()).unwrap();
    assert_eq!(
        (le.report().encoding, le.report().bom),
        (TextEncoding::Utf16Le, false)
    );
    assert_eq!(
        triples(&le.into_credentials().unwrap()),
        vec![t("lee@example.org", "Lee-pass-9", None)]
    );
}

#[test]
fn utf8_bom_and_windows_1252_fallback() {
    let c = load("utf8-bom.csv");
    assert_eq!(
        triples(&c),
        vec![t("jose@example.es", "Señor-Contraseña", None)]
    );
    assert_eq!(c.records()[0].display_name.as_deref(), Some("José Núñez"));

    let p = read_file(&fixture("windows-1252.csv"), &ReadOptions::default()).unwrap();
    assert!(p.report().encoding_fallback);
    assert_eq!(p.report().problems[0].code, ProblemCode::NotUtf8);
    let c = p.into_credentials().unwrap();
    assert_eq!(c.warnings().len(), 1);
    assert_eq!(triples(&c), vec![t("rene@example.fr", "Café-2024", None)]);
    assert_eq!(c.records()[0].display_name.as_deref(), Some("René Lefèvre"));

    // Forcing the right encoding removes the warning.
    let forced = ReadOptions::default().encoding(TextEncoding::Windows1252);
    let c = load_file(&fixture("windows-1252.csv"), &forced).unwrap();
    assert!(c.warnings().is_empty());
}

#[test]
fn quoted_newlines_keep_line_numbers() {
    let c = load("quoted-newlines.csv");
    let lines: Vec<usize> = c.records().iter().map(|r| r.line).collect();
    assert_eq!(lines, [2, 4, 7]);
    assert_eq!(
        c.records()[0].display_name.as_deref(),
        Some("Line one\nLine two")
    );
    assert_eq!(
        c.records()[1].display_name.as_deref(),
        Some("Three\r\nlines\r\nhere")
    );
    assert_eq!(triples(&c)[0].1, "comma,inside");
    assert_eq!(triples(&c)[1].1, "quote\"inside");
}

#[test]
fn pipe_trailing_delimiters_and_blank_lines() {
    let p = read_file(&fixture("pipe-trailing.csv"), &ReadOptions::default()).unwrap();
    assert_eq!(p.report().blank_lines, 3);
    assert_eq!(p.report().rows, 2);
    assert_eq!(
        triples(&p.into_credentials().unwrap())[1],
        t("e.five@example.com", "pw5", Some("e.five@contoso.com"))
    );
}

#[test]
fn headerless_needs_mapping() {
    let path = fixture("headerless-mapped.csv");
    let mapping: ColumnMapping = "login,password,target".parse().unwrap();
    let c = load_file(
        &path,
        &ReadOptions::default()
            .mapping(mapping.clone())
            .header(HeaderMode::Absent),
    )
    .unwrap();
    assert_eq!(
        triples(&c)[0],
        t("f.six@example.com", "pw6", Some("f.six@contoso.com"))
    );
    // Auto header mode with an index-only mapping sees that row 1 is data.
    let c = load_file(&path, &ReadOptions::default().mapping(mapping)).unwrap();
    assert_eq!(c.len(), 2);
    // Without a mapping the file is rejected with a located error.
    let err = load_file(&path, &ReadOptions::default()).unwrap_err();
    let Error::Rejected { problems } = err else {
        panic!("rejected expected")
    };
    assert_eq!(problems[0].code, ProblemCode::NoHeader);
    // Header mode Absent without a mapping is an option error.
    assert!(matches!(
        read_file(&path, &ReadOptions::default().header(HeaderMode::Absent)),
        Err(Error::Options { .. })
    ));
}

#[test]
fn mapping_by_header_name_and_letter() {
    let csv = b"Mailbox;Secret;Whatever\nx@example.com;pw;y@contoso.com\n";
    let mapping: ColumnMapping = "login=Mailbox,password=b,target=C".parse().unwrap();
    // `b` (lower case) is a header name, not a letter: it does not exist.
    let p = parse_bytes(csv, "m.csv", &ReadOptions::default().mapping(mapping)).unwrap();
    assert!(
        p.report()
            .problems
            .iter()
            .any(|p| p.code == ProblemCode::BadMapping)
    );
    let mapping: ColumnMapping = "login=Mailbox,password=B,target=C".parse().unwrap();
    let c = parse_bytes(csv, "m.csv", &ReadOptions::default().mapping(mapping))
        .unwrap()
        .into_credentials()
        .unwrap();
    assert_eq!(
        triples(&c),
        vec![t("x@example.com", "pw", Some("y@contoso.com"))]
    );
    assert_eq!(Field::from_header("Mailbox"), None);
}

#[test]
fn delimiter_override_wins_over_detection() {
    let path = fixture("delimiter-override.csv");
    let c = load_file(&path, &ReadOptions::default().delimiter(';')).unwrap();
    assert_eq!(
        triples(&c),
        vec![t("t@example.com", "pw,with,commas", None)]
    );
    // Forcing comma on the same file misreads the columns — and says so instead of guessing.
    let p = read_file(&path, &ReadOptions::default().delimiter(',')).unwrap();
    assert!(p.report().has_errors());
}

#[test]
fn aliases_recognised() {
    let c = load("aliases.csv");
    assert_eq!(
        triples(&c),
        vec![t("height", "pw8", Some("h.eight@contoso.com"))]
    );
    assert_eq!(c.records()[0].display_name.as_deref(), Some("H Eight"));
}

#[test]
fn no_row_limit_by_default_and_an_explicit_one_holds() {
    let mut csv = String::from("Login,Password\n");
    for i in 0..100_000 {
        csv.push_str(&format!("u{i}@example.com,pw\n"));
    }
    // A university's 100,000 rows load; Microsoft's 50,000-row batch cap is a warning only.
    let p = parse_bytes(csv.as_bytes(), "big.csv", &ReadOptions::default()).unwrap();
    assert!(!p.report().has_errors());
    assert_eq!(p.records().len(), 100_000);
    let warn: Vec<_> = p
        .report()
        .problems
        .iter()
        .filter(|p| p.code == ProblemCode::RowLimit)
        .collect();
    assert_eq!(warn.len(), 1);
    assert_eq!(warn[0].severity, Severity::Warning);
    assert!(
        warn[0].message.contains("100000 data rows"),
        "{}",
        warn[0].message
    );
    assert!(
        warn[0].hint.contains("Microsoft's own IMAP migration"),
        "{}",
        warn[0].hint
    );
    assert!(
        p.report()
            .render_human(1)
            .contains("no limit; Microsoft caps")
    );
    // A limit the caller sets is an error past it, at the first row over it.
    let p = parse_bytes(
        csv.as_bytes(),
        "big.csv",
        &ReadOptions::default().row_limit(Some(MICROSOFT_ROW_LIMIT)),
    )
    .unwrap();
    let limit: Vec<_> = p
        .report()
        .problems
        .iter()
        .filter(|p| p.code == ProblemCode::RowLimit)
        .collect();
    assert_eq!(limit.len(), 1);
    assert_eq!(limit[0].severity, Severity::Error);
    assert_eq!(limit[0].location.line, 50_002);
    assert!(limit[0].hint.contains("50,000"), "{}", limit[0].hint);
    let p = parse_bytes(
        csv.as_bytes(),
        "big.csv",
        &ReadOptions::default().row_limit(Some(120_000)),
    )
    .unwrap();
    assert!(!p.report().has_errors());
    assert!(
        p.report()
            .render_human(1)
            .contains("raised above Microsoft's 50000")
    );
}

#[test]
fn secret_references_resolve_on_demand_with_located_errors() {
    let csv = b"Login,Password\nk@example.com,env:O365M_TEST_K_PW\nl@example.com,file:secrets/l.txt\nm@example.com,literal:env:x\n";
    let base = fixture("");
    let mut opts = ReadOptions::default();
    opts.base_dir = Some(base);
    let c = parse_bytes(csv, "refs.csv", &opts)
        .unwrap()
        .into_credentials()
        .unwrap();
    let k = c.records()[0].password.as_ref().unwrap();
    assert_eq!(k.kind(), PasswordKind::Env("O365M_TEST_K_PW".into()));
    let err = k.resolve().unwrap_err().to_string();
    assert!(err.starts_with("refs.csv:2:15"), "{err}");
    assert!(err.contains("O365M_TEST_K_PW is not set"), "{err}");
    assert_eq!(c.check_secrets().len(), 1);
    // A variable that is set resolves (PATH is set wherever tests run; no unsafe set_var).
    let csv_path = b"Login,Password\np@example.com,env:PATH\n";
    let cp = parse_bytes(csv_path, "p.csv", &ReadOptions::default())
        .unwrap()
        .into_credentials()
        .unwrap();
    let v = cp.records()[0]
        .password
        .as_ref()
        .unwrap()
        .resolve()
        .unwrap();
    assert_eq!(v.expose(), std::env::var("PATH").unwrap());
    assert!(cp.check_secrets().is_empty());
    let l = c.records()[1].password.as_ref().unwrap();
    assert_eq!(l.resolve().unwrap().expose(), "l-secret-from-file");
    assert_eq!(
        c.records()[2]
            .password
            .as_ref()
            .unwrap()
            .resolve()
            .unwrap()
            .expose(),
        "env:x"
    );

    // resolve_secrets reports a missing file as a problem at the cell.
    let csv = b"Login,Password\nz@example.com,file:/nonexistent/o365m/pw\n";
    let p = parse_bytes(csv, "z.csv", &ReadOptions::default().resolve_secrets(true)).unwrap();
    let pr = &p.report().problems[0];
    assert_eq!(pr.code, ProblemCode::UnresolvedSecret);
    assert_eq!((pr.location.line, pr.location.column), (2, 15));
}

#[test]
fn admin_mode_dovecot_master_and_plain_authzid() {
    let c = load_file(
        &fixture("admin-mode.csv"),
        &ReadOptions::default().admin_mode(),
    )
    .unwrap();
    let rec = &c.records()[0];
    let dovecot = LoginMode::Admin(
        AdminLogin::new(
            "mailadmin",
            Secret::new("admin-pw"),
            AdminStyle::MasterUserSeparator('*'),
        )
        .unwrap(),
    );
    let l = dovecot.login_for(rec, "admin-mode.csv").unwrap();
    assert_eq!(l.authcid, "i.nine@example.com*mailadmin");
    assert_eq!(l.authzid, None);
    assert_eq!(l.secret.expose(), "admin-pw");
    assert!(l.fits_login_command());

    let plain = LoginMode::Admin(
        AdminLogin::new(
            "mailadmin",
            Secret::new("admin-pw"),
            AdminStyle::PlainAuthzid,
        )
        .unwrap(),
    );
    let l = plain.login_for(rec, "admin-mode.csv").unwrap();
    assert_eq!(
        (l.authcid.as_str(), l.authzid.as_deref()),
        ("mailadmin", Some("i.nine@example.com"))
    );
    assert_eq!(
        l.sasl_plain().expose(),
        "i.nine@example.com\0mailadmin\0admin-pw"
    );
    assert!(!l.fits_login_command());

    // Without admin mode the same file is rejected: no password column.
    assert!(load_file(&fixture("admin-mode.csv"), &ReadOptions::default()).is_err());
    // Per-user mode on a row without password is a located error.
    let err = LoginMode::PerUser
        .login_for(rec, "admin-mode.csv")
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("admin-mode.csv:2:1"), "{err}");
    // Bad admin credentials are refused.
    assert!(AdminLogin::new("", Secret::new("x"), AdminStyle::PlainAuthzid).is_err());
    assert!(
        AdminLogin::new(
            "a*b",
            Secret::new("x"),
            AdminStyle::MasterUserSeparator('*')
        )
        .is_err()
    );
    assert!(AdminLogin::new("a", Secret::new(""), AdminStyle::PlainAuthzid).is_err());
}

#[test]
fn spreadsheet_and_empty_files_are_rejected_clearly() {
    for (name, code) in [
        ("workbook.xlsx", ProblemCode::NotText),
        ("empty.csv", ProblemCode::Empty),
        ("header-only.csv", ProblemCode::Empty),
        ("unterminated-quote.csv", ProblemCode::UnterminatedQuote),
        ("mixed-encoding.csv", ProblemCode::BadEncoding),
        ("duplicate-columns.csv", ProblemCode::DuplicateColumn),
        ("microsoft-missing-username.csv", ProblemCode::MissingColumn),
    ] {
        let Err(Error::Rejected { problems }) = load_file(&fixture(name), &ReadOptions::default())
        else {
            panic!("{name} should be rejected");
        };
        assert!(
            problems.iter().any(|p| p.code == code),
            "{name}: {problems:?}"
        );
    }
}

#[test]
fn every_problem_in_errors_csv_is_located() {
    let Err(Error::Rejected { problems }) =
        load_file(&fixture("errors.csv"), &ReadOptions::default())
    else {
        panic!("errors.csv should be rejected");
    };
    let got: Vec<(usize, usize, ProblemCode)> = problems
        .iter()
        .map(|p| (p.location.line, p.location.column, p.code))
        .collect();
    assert_eq!(
        got,
        vec![
            (2, 1, ProblemCode::EmptyCell),
            (3, 15, ProblemCode::EmptyCell),
            (4, 19, ProblemCode::BadAddress),
            (5, 1, ProblemCode::DuplicateLogin),
            (6, 25, ProblemCode::ExtraFields),
            (7, 1, ProblemCode::Whitespace),
            (7, 17, ProblemCode::Whitespace),
            (7, 28, ProblemCode::BadAddress),
            (8, 15, ProblemCode::ControlCharacter),
            (10, 19, ProblemCode::DuplicateTarget),
            (11, 20, ProblemCode::TextAfterQuote),
            (12, 1, ProblemCode::ShortRow),
            (12, 1, ProblemCode::EmptyCell),
        ]
    );
    assert!(
        problems
            .iter()
            .all(|p| !p.hint.is_empty() && p.location.file.ends_with("errors.csv"))
    );
}

#[test]
fn admin_password_spec_resolves_with_named_errors() {
    use o365_migrate_credentials::PasswordSource;
    let lit = PasswordSource::from_spec("literal:env:x", "--admin-password").unwrap();
    assert_eq!(lit.resolve().unwrap().expose(), "env:x");
    let missing = PasswordSource::from_spec("env:O365M_SPEC_UNSET", "--admin-password").unwrap();
    let err = missing.resolve().unwrap_err().to_string();
    assert!(
        err.starts_with("--admin-password: environment variable O365M_SPEC_UNSET is not set"),
        "{err}"
    );
    assert!(PasswordSource::from_spec("", "--admin-password").is_err());
    assert!(PasswordSource::from_spec("file:", "--admin-password").is_err());
}

#[test]
fn auto_header_with_index_mapping_is_never_silent() {
    let mapping: ColumnMapping = "login,password".parse().unwrap();
    // A first data row whose login reads like a header name is still data...
    let p = parse_bytes(
        b"root,toor\nadmin,pw\n",
        "h.csv",
        &ReadOptions::default().mapping(mapping.clone()),
    )
    .unwrap();
    assert_eq!(p.report().rows, 2);
    // ...and the guess is reported, so an unrecognised header is not silently read as a row.
    let p = parse_bytes(
        b"Mailbox,Secret\nx@example.com,pw\n",
        "h.csv",
        &ReadOptions::default().mapping(mapping.clone()),
    )
    .unwrap();
    assert_eq!(p.report().rows, 2);
    assert!(
        p.report()
            .problems
            .iter()
            .any(|p| p.code == ProblemCode::HeaderAssumed && p.location.line == 1)
    );
    // Saying so explicitly removes the warning.
    let p = parse_bytes(
        b"root,toor\n",
        "h.csv",
        &ReadOptions::default()
            .mapping(mapping.clone())
            .header(HeaderMode::Absent),
    )
    .unwrap();
    assert!(p.report().problems.is_empty());
    let p = parse_bytes(
        b"Mailbox,Secret\nx@example.com,pw\n",
        "h.csv",
        &ReadOptions::default()
            .mapping(mapping)
            .header(HeaderMode::Present),
    )
    .unwrap();
    assert_eq!((p.report().rows, p.report().header_line), (1, Some(1)));
    assert!(p.report().problems.is_empty());
}

#[test]
fn absurd_mapped_column_is_a_problem_not_a_crash() {
    use o365_migrate_credentials::ColumnRef;
    let mapping = ColumnMapping::new()
        .with(Field::Login, ColumnRef::Index(usize::MAX))
        .with(Field::Password, ColumnRef::Index(1));
    let p = parse_bytes(
        b"a,b\n",
        "x.csv",
        &ReadOptions::default()
            .mapping(mapping)
            .header(HeaderMode::Absent),
    )
    .unwrap();
    assert!(
        p.report()
            .problems
            .iter()
            .any(|p| p.code == ProblemCode::BadMapping)
    );
}

#[test]
fn embedders_can_build_records_and_parse_modes() {
    use o365_migrate_credentials::{CredentialRecord, PasswordSource};
    let mut r = CredentialRecord::new("terry");
    r.password = Some(PasswordSource::inline(Secret::new("pw")));
    let l = LoginMode::PerUser.login_for(&r, "elsewhere").unwrap();
    assert_eq!((l.authcid.as_str(), l.secret.expose()), ("terry", "pw"));
    assert_eq!("absent".parse::<HeaderMode>().unwrap(), HeaderMode::Absent);
    assert_eq!(
        "Present".parse::<HeaderMode>().unwrap(),
        HeaderMode::Present
    );
    assert!("maybe".parse::<HeaderMode>().is_err());
    assert_eq!(
        TextEncoding::from_name("UTF-16"),
        Some(TextEncoding::Utf16Le)
    );
    assert_eq!(
        TextEncoding::from_name("cp1252"),
        Some(TextEncoding::Windows1252)
    );
    assert_eq!(TextEncoding::from_name("ebcdic"), None);
}

#[test]
fn the_target_column_is_checked_by_the_target_kind() {
    let csv = b"Login,Password,Target\nalice,pw,alice\nbob,pw,bob@example.org\ncarl,pw,car l\ndora,pw,a/b\n";
    let errors = |identity: TargetIdentity| -> Vec<(usize, String)> {
        let p = parse_bytes(
            csv,
            "t.csv",
            &ReadOptions::default().target_identity(identity),
        )
        .unwrap();
        p.report()
            .problems
            .iter()
            .filter(|p| p.code == ProblemCode::BadAddress)
            .map(|p| (p.location.line, p.message.clone()))
            .collect()
    };
    // Addresses: a bare name, a space and a slash are all wrong.
    let lines: Vec<usize> = errors(TargetIdentity::Address)
        .iter()
        .map(|e| e.0)
        .collect();
    assert_eq!(lines, [2, 4, 5]);
    // IMAP usernames: bare names and addresses are fine, a space is not.
    let e = errors(TargetIdentity::Username);
    assert_eq!(e.len(), 1, "{e:?}");
    assert_eq!(e[0].0, 4);
    assert!(e[0].1.contains("is not an IMAP username"), "{}", e[0].1);
    // Folder names for the export: a slash is not.
    let lines: Vec<usize> = errors(TargetIdentity::FolderName)
        .iter()
        .map(|e| e.0)
        .collect();
    assert_eq!(lines, [5]);
}
