//! Unit tests for the response parser and the wire helpers.

use super::parse::Parser;
use super::wire::{appenduid, literal_len, quote};

#[test]
fn parses_dovecot_fetch() {
    let unit = b"* 2 FETCH (UID 7 FLAGS (\\Seen $Label1 \\Recent) INTERNALDATE \" 5-Mar-2021 10:00:00 +0100\" RFC822.SIZE 5 BODY[] {5}\r\nab\r\nc)\r\n";
    let mut p = Parser::new(unit);
    assert_eq!(p.untagged_keyword().as_deref(), Some("2"));
    assert_eq!(p.atom_upper().as_deref(), Some("FETCH"));
    let m = p.fetch_items(2).unwrap();
    assert_eq!(m.uid, Some(7));
    assert_eq!(m.flags, vec!["\\Seen", "$Label1"]);
    assert_eq!(m.size, Some(5));
    assert_eq!(m.body.as_deref(), Some(&b"ab\r\nc"[..]));
    assert_eq!(
        m.internal_date.unwrap().to_imap(),
        "05-Mar-2021 10:00:00 +0100"
    );
}

#[test]
fn parses_list_and_status() {
    let mut p =
        Parser::new(b"* LIST (\\HasNoChildren \\Sent) \"/\" \"&ANw-berweisungen/Ao&APs-t\"\r\n");
    p.untagged_keyword();
    let e = p.list_entry().unwrap();
    assert_eq!(e.name, "Überweisungen/Août");
    assert_eq!(e.delimiter, Some('/'));
    let mut p = Parser::new(b"* STATUS INBOX (MESSAGES 3 UIDNEXT 4)\r\n");
    p.untagged_keyword();
    assert_eq!(
        p.status_items().unwrap(),
        vec![("MESSAGES".into(), 3), ("UIDNEXT".into(), 4)]
    );
}

#[test]
fn literal_detection_and_appenduid() {
    assert_eq!(literal_len(b"* 1 FETCH (BODY[] {12}\r\n"), Some(12));
    assert_eq!(literal_len(b"A APPEND x {3+}\r\n"), Some(3));
    assert_eq!(literal_len(b"* OK {x}\r\n"), None);
    assert_eq!(
        appenduid("T4 OK [APPENDUID 1700 42] Append completed."),
        Some(42)
    );
    assert_eq!(quote(b"a\"b\\"), b"\"a\\\"b\\\\\"".to_vec());
}

proptest::proptest! {
    #[test]
    fn fetch_parser_never_panics(s in proptest::collection::vec(proptest::num::u8::ANY, 0..200)) {
        let mut unit = b"* 1 FETCH ".to_vec();
        unit.extend_from_slice(&s);
        let mut p = Parser::new(&unit);
        p.untagged_keyword();
        p.atom_upper();
        let _ = p.fetch_items(1);
        let mut p = Parser::new(&unit);
        let _ = p.list_entry();
    }
}
