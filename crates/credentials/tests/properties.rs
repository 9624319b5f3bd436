//! Properties: any bytes give a report with located problems and never a panic (the fuzz target
//! body), and any valid set of rows written in any delimiter, encoding and quoting reads back
//! exactly.

use o365_migrate_credentials::{ReadOptions, fuzzing::fuzz_parse, parse_bytes};
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn any_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..1024)) {
        fuzz_parse(&data);
    }

    /// Bytes drawn mostly from CSV's special characters reach the tokenizer's corners faster.
    #[test]
    fn csv_like_bytes_never_panic(
        selector in any::<u8>(),
        parts in proptest::collection::vec(
            prop_oneof![
                Just(&b","[..]), Just(&b";"[..]), Just(&b"\t"[..]), Just(&b"|"[..]),
                Just(&b"\""[..]), Just(&b"\"\""[..]), Just(&b"\r\n"[..]), Just(&b"\n"[..]),
                Just(&b"\r"[..]), Just(&b"Login"[..]), Just(&b"Password"[..]),
                Just(&b"EmailAddress"[..]), Just(&b"UserName"[..]), Just(&b"a@b.com"[..]),
                Just(&b"env:X"[..]), Just(&b"file:"[..]), Just(&b"\xEF\xBB\xBF"[..]),
                Just(&b"\xFF\xFE"[..]), Just(&b"\xE9"[..]), Just(&b"\0"[..]), Just(&b" "[..]),
                Just("é".as_bytes()),
            ],
            0..80,
        ),
    ) {
        let mut data = vec![selector];
        for p in parts {
            data.extend_from_slice(p);
        }
        fuzz_parse(&data);
    }

    #[test]
    fn written_rows_read_back_exactly(
        rows in proptest::collection::vec(
            ("[a-z][a-z0-9.\\\\]{0,12}", "[^\r\n\u{0}]{1,16}", "[a-z]{1,8}@[a-z]{1,8}\\.com"),
            1..20,
        ),
        delim in prop_oneof![Just(','), Just(';'), Just('\t'), Just('|')],
        encoding in 0u8..4,
        crlf in any::<bool>(),
        quote_all in any::<bool>(),
    ) {
        // Logins must be unique (case-insensitively) for the file to be valid.
        let mut seen = std::collections::HashSet::new();
        let rows: Vec<_> = rows.into_iter().enumerate()
            .map(|(i, (l, p, t))| (format!("{l}{i}"), p, t))
            .filter(|(l, _, _)| seen.insert(l.to_lowercase()))
            .collect();
        let nl = if crlf { "\r\n" } else { "\n" };
        let q = |v: &str| -> String {
            if quote_all || v.contains([delim, '"', '\r', '\n']) || v != v.trim() {
                format!("\"{}\"", v.replace('"', "\"\""))
            } else {
                v.to_owned()
            }
        };
        let mut text = format!("UserName{delim}Password{delim}EmailAddress{nl}");
        for (l, p, t) in &rows {
            // `literal:` keeps passwords that happen to start with env:/file: literal.
            text.push_str(&format!("{}{delim}{}{delim}{}{nl}", q(l), q(&format!("literal:{p}")), q(t)));
        }
        let bytes: Vec<u8> = match encoding {
            0 => text.clone().into_bytes(),
            1 => [&[0xEF, 0xBB, 0xBF][..], text.as_bytes()].concat(),
            2 => [0xFF, 0xFE].into_iter().chain(text.encode_utf16().flat_map(u16::to_le_bytes)).collect(),
            _ => [0xFE, 0xFF].into_iter().chain(text.encode_utf16().flat_map(u16::to_be_bytes)).collect(),
        };
        let parsed = parse_bytes(&bytes, "prop.csv", &ReadOptions::default()).unwrap();
        let problems: Vec<String> = parsed.report().problems.iter()
            .filter(|p| p.is_error()).map(ToString::to_string).collect();
        prop_assert!(problems.is_empty(), "{problems:?}\n{text:?}");
        let creds = parsed.into_credentials().unwrap();
        prop_assert_eq!(creds.len(), rows.len());
        for (r, (l, p, t)) in creds.records().iter().zip(&rows) {
            prop_assert_eq!(&r.login, l);
            let secret = r.password.as_ref().unwrap().resolve().unwrap();
            prop_assert_eq!(secret.expose(), p.as_str());
            prop_assert_eq!(r.target.as_deref(), Some(t.as_str()));
        }
    }
}

#[test]
fn fuzz_regressions() {
    // Inputs that once broke invariants or are worth keeping as seeds.
    for data in [
        &b""[..],
        b"\x00",
        b"\x10\"",
        b"\x11a,b\n\"",
        b"\x00\xFF\xFE\x00",
        b"\x00\xFE\xFF\x00\x22",
        b"\x00Login,Password\n\"a\"b,\"c",
        b"\x00\r\r\r\n\n,,,\n",
        b"\x30a,b,c\nd,e,f,g,h\n",
    ] {
        fuzz_parse(data);
    }
}
