//! Socket-free tests of the sans-IO response side: RFC 3501 / RFC 9051 / extension examples,
//! truncated and malformed input, oversized literal announcements and unexpected BYE.

use o365_migrate_imap::core::{Progress, ResponseReader, fuzz_responses, parse_frame};
use o365_migrate_imap::{Code, Error, InternalDate, Response, Status, Untagged};
use proptest::prelude::*;

fn all(input: &[u8]) -> Vec<Response> {
    let mut r = ResponseReader::default();
    r.feed(input);
    let mut out = Vec::new();
    loop {
        match r.poll().expect("valid input") {
            Progress::Response(resp) => out.push(resp),
            Progress::LiteralAnnounced(_) => {}
            Progress::NeedMore(_) => return out,
        }
    }
}

fn one(input: &str) -> Response {
    let v = all(input.as_bytes());
    assert_eq!(v.len(), 1, "{input:?} → {v:?}");
    v.into_iter().next().unwrap()
}

#[test]
fn rfc3501_select_example() {
    // RFC 3501 §6.3.1
    let v = all(
        b"* 172 EXISTS\r\n* 1 RECENT\r\n* OK [UNSEEN 12] Message 12 is first unseen\r\n\
* OK [UIDVALIDITY 3857529045] UIDs valid\r\n* OK [UIDNEXT 4392] Predicted next UID\r\n\
* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft)\r\n\
* OK [PERMANENTFLAGS (\\Deleted \\Seen \\*)] Limited\r\nA142 OK [READ-WRITE] SELECT completed\r\n",
    );
    assert_eq!(v.len(), 8);
    assert_eq!(v[0], Response::Untagged(Untagged::Exists(172)));
    assert_eq!(v[1], Response::Untagged(Untagged::Recent(1)));
    let Response::Untagged(Untagged::Condition(c)) = &v[3] else {
        panic!("{:?}", v[3])
    };
    assert_eq!(c.code, Some(Code::UidValidity(3_857_529_045)));
    let Response::Untagged(Untagged::Condition(c)) = &v[4] else {
        panic!()
    };
    assert_eq!(c.code, Some(Code::UidNext(4392)));
    assert_eq!(
        v[5],
        Response::Untagged(Untagged::Flags(
            ["\\Answered", "\\Flagged", "\\Deleted", "\\Seen", "\\Draft"]
                .map(String::from)
                .to_vec()
        ))
    );
    let Response::Tagged { tag, condition } = &v[7] else {
        panic!()
    };
    assert_eq!(tag, "A142");
    assert_eq!(condition.status, Status::Ok);
    assert_eq!(condition.code, Some(Code::ReadWrite));
    assert_eq!(condition.text, "SELECT completed");
}

#[test]
fn rfc3501_list_status_search_fetch() {
    let Response::Untagged(Untagged::List(l)) = one("* LIST (\\Noselect) \"/\" ~/Mail/foo\r\n")
    else {
        panic!()
    };
    assert_eq!(
        (l.name.as_str(), l.delimiter, l.attributes.clone()),
        ("~/Mail/foo", Some('/'), vec!["\\Noselect".to_string()])
    );
    let Response::Untagged(Untagged::Status(s)) =
        one("* STATUS blurdybloop (MESSAGES 231 UIDNEXT 44292)\r\n")
    else {
        panic!()
    };
    assert_eq!(
        (s.mailbox.as_str(), s.messages, s.uid_next),
        ("blurdybloop", Some(231), Some(44292))
    );
    assert_eq!(
        one("* SEARCH 2 84 882\r\n"),
        Response::Untagged(Untagged::Search(vec![2, 84, 882]))
    );
    let Response::Untagged(Untagged::Fetch(f)) = one("* 23 FETCH (FLAGS (\\Seen) UID 4827313)\r\n")
    else {
        panic!()
    };
    assert_eq!(
        (f.seq, f.uid, f.flags.clone()),
        (23, Some(4_827_313), Some(vec!["\\Seen".to_string()]))
    );
    let Response::Untagged(Untagged::Fetch(f)) = one(
        "* 12 FETCH (FLAGS (\\Seen) INTERNALDATE \"17-Jul-1996 02:44:25 -0700\" RFC822.SIZE 4286)\r\n",
    ) else {
        panic!()
    };
    assert_eq!(
        f.internal_date,
        Some(InternalDate::parse_imap("17-Jul-1996 02:44:25 -0700").unwrap())
    );
    assert_eq!(f.size, Some(4286));
    assert_eq!(
        one("+ Ready for literal data\r\n"),
        Response::Continue {
            text: "Ready for literal data".into()
        }
    );
    let Response::Untagged(Untagged::Condition(c)) = one("* BYE IMAP4rev1 Server logging out\r\n")
    else {
        panic!()
    };
    assert_eq!(c.status, Status::Bye);
    let Response::Untagged(Untagged::Capabilities(c)) =
        one("* CAPABILITY IMAP4rev1 STARTTLS AUTH=GSSAPI LOGINDISABLED\r\n")
    else {
        panic!()
    };
    assert_eq!(
        c,
        ["IMAP4rev1", "STARTTLS", "AUTH=GSSAPI", "LOGINDISABLED"]
            .map(String::from)
            .to_vec()
    );
}

#[test]
fn rfc9051_and_extension_examples() {
    // RFC 9051 §6.3.1 NAMESPACE example
    let Response::Untagged(Untagged::Namespace(ns)) = one(
        "* NAMESPACE ((\"\" \"/\")) ((\"~\" \"/\")) ((\"#shared/\" \"/\")(\"#public/\" \"/\")(\"#ftp/\" \"/\")(\"#news.\" \".\"))\r\n",
    ) else {
        panic!()
    };
    assert_eq!(ns.personal.len(), 1);
    assert_eq!(ns.personal[0].delimiter, Some('/'));
    assert_eq!(ns.shared.len(), 4);
    assert_eq!(ns.shared[3].prefix, "#news.");
    // RFC 9051 ENABLED
    assert_eq!(
        one("* ENABLED CONDSTORE QRESYNC\r\n"),
        Response::Untagged(Untagged::Enabled(vec![
            "CONDSTORE".into(),
            "QRESYNC".into()
        ]))
    );
    // RFC 4315 APPENDUID
    let Response::Tagged { condition, .. } =
        one("A003 OK [APPENDUID 38505 3955] APPEND completed\r\n")
    else {
        panic!()
    };
    assert_eq!(
        condition.code,
        Some(Code::AppendUid {
            uid_validity: 38505,
            uids: vec![3955]
        })
    );
    let Response::Tagged { condition, .. } =
        one("A003 OK [APPENDUID 38505 3955:3957] APPEND completed\r\n")
    else {
        panic!()
    };
    assert_eq!(
        condition.code,
        Some(Code::AppendUid {
            uid_validity: 38505,
            uids: vec![3955, 3956, 3957]
        })
    );
    // RFC 6154 SPECIAL-USE
    let Response::Untagged(Untagged::List(l)) =
        one("* LIST (\\Sent \\HasNoChildren) \"/\" \"Sent Mail\"\r\n")
    else {
        panic!()
    };
    assert!(l.attributes.contains(&"\\Sent".to_string()));
    assert_eq!(l.name, "Sent Mail");
    // RFC 5258 LIST-EXTENDED child info (not parsed by imap-proto → fallback)
    let Response::Untagged(Untagged::List(l)) =
        one("* LIST (\\Marked \\NoInferiors) \"/\" \"inbox\" (\"CHILDINFO\" (\"SUBSCRIBED\"))\r\n")
    else {
        panic!()
    };
    assert_eq!(l.name, "INBOX");
    // mUTF-7 names are decoded
    let Response::Untagged(Untagged::List(l)) = one("* LIST () \"/\" \"Entw&APw-rfe\"\r\n") else {
        panic!()
    };
    assert_eq!(
        (l.name.as_str(), l.raw_name.as_str()),
        ("Entwürfe", "Entw&APw-rfe")
    );
    // RFC 2971 ID
    let Response::Untagged(Untagged::Id(id)) =
        one("* ID (\"name\" \"Cyrus\" \"version\" \"1.5\")\r\n")
    else {
        panic!()
    };
    assert!(id.contains(&("name".into(), "Cyrus".into())));
    // Unknown response code keeps its atom; Exchange throttling text intact
    let Response::Tagged { condition, .. } = one(
        "A9 NO [UNAVAILABLE] Request is throttled. Suggested Backoff Time: 299961 milliseconds\r\n",
    ) else {
        panic!()
    };
    assert_eq!(condition.code, Some(Code::Other("UNAVAILABLE".into())));
    assert_eq!(
        o365_migrate_imap::parse_throttle(&condition.text),
        Some(Some(std::time::Duration::from_millis(299_961)))
    );
    // Gmail
    let Response::Untagged(Untagged::Fetch(f)) = one(
        "* 1 FETCH (X-GM-MSGID 1278455344230334865 X-GM-LABELS (\\Inbox \"Work stuff\") UID 9)\r\n",
    ) else {
        panic!()
    };
    assert_eq!(f.gmail_msgid, Some(1_278_455_344_230_334_865));
    assert_eq!(
        f.gmail_labels,
        Some(vec!["\\Inbox".into(), "Work stuff".into()])
    );
}

#[test]
fn fetch_body_is_a_slice_of_the_receive_buffer_and_split_input_works() {
    let wire = b"* 1 FETCH (UID 10 RFC822.SIZE 11 BODY[HEADER.FIELDS (MESSAGE-ID)] {21}\r\nMessage-ID: <a@b>\r\n\r\n BODY[] {12}\r\nHello\r\nWorld)\r\nA1 OK done\r\n";
    // byte by byte
    let mut r = ResponseReader::default();
    let mut got = Vec::new();
    let mut announced = Vec::new();
    for b in wire.iter() {
        r.feed(std::slice::from_ref(b));
        loop {
            match r.poll().unwrap() {
                Progress::Response(x) => got.push(x),
                Progress::LiteralAnnounced(n) => announced.push(n),
                Progress::NeedMore(_) => break,
            }
        }
    }
    assert_eq!(announced, vec![21, 12]);
    assert_eq!(got.len(), 2);
    let Response::Untagged(Untagged::Fetch(f)) = &got[0] else {
        panic!()
    };
    assert_eq!(f.body.as_deref(), Some(&b"Hello\r\nWorld"[..]));
    assert_eq!(f.header.as_deref(), Some(&b"Message-ID: <a@b>\r\n\r\n"[..]));
}

#[test]
fn four_gigabyte_literal_is_refused_without_allocating() {
    let mut r = ResponseReader::new(64 * 1024 * 1024);
    r.feed(b"* 1 FETCH (UID 1 BODY[] {4294967296}\r\nabc");
    let cap_before = r.buffer_mut().capacity();
    match r.poll() {
        Err(Error::LiteralTooLarge { size, limit }) => {
            assert_eq!(size, 4_294_967_296);
            assert_eq!(limit, 64 * 1024 * 1024);
        }
        other => panic!("expected LiteralTooLarge, got {other:?}"),
    }
    assert_eq!(
        r.buffer_mut().capacity(),
        cap_before,
        "no allocation for the literal"
    );
    assert!(r.poll().is_err(), "stays failed");
    // Absurd digit strings overflow cleanly.
    let mut r = ResponseReader::default();
    r.feed(b"* 1 FETCH (BODY[] {99999999999999999999999999}\r\n");
    assert!(matches!(r.poll(), Err(Error::LiteralTooLarge { .. })));
}

#[test]
fn truncated_and_malformed_input_gives_typed_errors() {
    // Truncated: never a response, just NeedMore.
    let mut r = ResponseReader::default();
    r.feed(b"* 1 FETCH (UID 1 BODY[] {100}\r\nonly a little");
    assert!(matches!(r.poll().unwrap(), Progress::LiteralAnnounced(100)));
    assert!(matches!(r.poll().unwrap(), Progress::NeedMore(n) if n > 0));
    // Malformed FETCH → Protocol error, not a silent drop.
    for bad in [
        &b"* 1 FETCH (UID 1 BODY[] {3}\r\nab)\r\n"[..],
        b"* 1 FETCH (UID 1 FLAGS (\\Seen)\r\n",
        b"* 1 FETCH (UID 1 INTERNALDATE NIL)\r\n",
        b"* 1 FETCH (UID 1 INTERNALDATE \"99-Xyz-2020 00:00:00 +0000\")\r\n",
        b"A1 MAYBE whatever\r\n",
        b"\x00\x01\x02\r\n",
    ] {
        match parse_frame(bytes::Bytes::copy_from_slice(bad)) {
            Err(Error::Protocol { .. }) => {}
            other => panic!("{:?} → {other:?}", String::from_utf8_lossy(bad)),
        }
    }
    // Unknown untagged data is kept raw, not an error.
    assert!(matches!(
        one("* XSOMETHING 1 2 3\r\n"),
        Response::Untagged(Untagged::Other(_))
    ));
    // Over-long line without a newline is refused.
    let mut r = ResponseReader::default();
    r.feed(&vec![b'a'; 2 * 1024 * 1024]);
    assert!(matches!(r.poll(), Err(Error::Protocol { .. })));
}

#[test]
fn unexpected_bye_is_a_response_the_driver_can_type() {
    let v = all(b"* 1 FETCH (UID 1 FLAGS ())\r\n* BYE Autologout; idle for too long\r\n");
    let Response::Untagged(Untagged::Condition(c)) = &v[1] else {
        panic!()
    };
    assert_eq!(c.status, Status::Bye);
    assert_eq!(c.text, "Autologout; idle for too long");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]
    #[test]
    fn reader_never_panics_on_arbitrary_bytes(data in proptest::collection::vec(any::<u8>(), 0..400)) {
        let _ = fuzz_responses(&data);
    }

    #[test]
    fn reader_never_panics_on_imap_like_text(s in "(\\* |A1 |\\+ )?(OK|NO|BYE|[0-9]{1,3} FETCH|LIST|STATUS|NAMESPACE|SEARCH)[ (){}\\[\\]\"0-9A-Za-z\\\\]{0,60}(\r\n)?") {
        let _ = fuzz_responses(s.as_bytes());
    }
}
