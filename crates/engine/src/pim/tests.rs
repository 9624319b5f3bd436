use super::*;

fn collection(name: &str, kind: PimKind) -> SourceCollection {
    SourceCollection::for_test(name, kind)
}

fn dav(toml_text: &str) -> Dav {
    let text = format!(
        "[source]\nhost = \"imap.example.com\"\ncredentials = \"c.csv\"\n[target]\nkind = \"eml\"\n[target.eml]\ndirectory = \"out\"\n[dav]\n{toml_text}"
    );
    crate::config::Job::parse(&text, "job.toml")
        .unwrap()
        .dav
        .unwrap()
}

#[test]
fn the_first_collection_of_each_kind_goes_to_the_default_and_rules_win() {
    let cols = [
        collection("Contacts", PimKind::Contacts),
        collection("Personal", PimKind::Calendar),
        collection("Work", PimKind::Calendar),
        collection("Old clients", PimKind::Contacts),
        collection("Birthdays", PimKind::Calendar),
    ];
    let placed = Mapper::new(&dav("exclude = [\"birth*\"]\n"))
        .unwrap()
        .place(&cols);
    assert_eq!(
        placed,
        vec![
            Placement::Into(None),
            Placement::Into(None),
            Placement::Into(Some("Work".into())),
            Placement::Into(Some("Old clients".into())),
            Placement::Skip("matched by [dav] exclude".into()),
        ]
    );
    // A rule sends Work to the default calendar; Personal then gets a calendar of its own.
    let rules = "[[dav.map]]\nsource = \"work\"\ntarget = \"#default#\"\n[[dav.map]]\nsource = \"Old*\"\nskip = true\n";
    let cols2 = [
        collection("Work", PimKind::Calendar),
        collection("Personal", PimKind::Calendar),
        collection("Old clients", PimKind::Contacts),
    ];
    assert_eq!(
        Mapper::new(&dav(rules)).unwrap().place(&cols2),
        vec![
            Placement::Into(None),
            Placement::Into(Some("Personal".into())),
            Placement::Skip("skipped by a [[dav.map]] rule".into()),
        ]
    );
    let only = Mapper::new(&dav("contacts = false\ninclude = [\"W*\"]\n"))
        .unwrap()
        .place(&cols);
    assert_eq!(only[0], Placement::Skip("[dav] contacts = false".into()));
    assert_eq!(
        only[1],
        Placement::Skip("not matched by [dav] include".into())
    );
    assert_eq!(only[2], Placement::Into(None));
}

fn resource(href: &str, text: &str) -> SourceResource {
    SourceResource {
        href: href.into(),
        etag: Some("\"1\"".into()),
        data: text.as_bytes().to_vec(),
    }
}

#[test]
fn items_are_keyed_by_href_and_uid_and_a_broken_one_names_its_line() {
    let one = resource(
        "/a/c/ann.vcf",
        "BEGIN:VCARD\r\nVERSION:4.0\r\nUID:ann\r\nFN:Ann\r\nEND:VCARD\r\n",
    );
    let read = read_resource(&one, PimKind::Contacts, &Default::default());
    assert_eq!(read.len(), 1);
    assert_eq!(read[0].key, "/a/c/ann.vcf");
    assert_eq!(read[0].item.as_ref().unwrap().summary(), "Ann");
    let many = resource(
        "people.vcf",
        "BEGIN:VCARD\r\nVERSION:4.0\r\nUID:ann\r\nFN:Ann\r\nEND:VCARD\r\n\
         BEGIN:VCARD\r\nVERSION:4.0\r\nFN:Broken\r\nBDAY:not a date at all\r\nN:;;\r\n\
         BEGIN:VCARD\r\nVERSION:4.0\r\nUID:bob\r\nFN:Bob\r\nEND:VCARD\r\n",
    );
    let read = read_resource(&many, PimKind::Contacts, &Default::default());
    let keys: Vec<&str> = read.iter().map(|r| r.key.as_str()).collect();
    assert_eq!(keys.first(), Some(&"people.vcf#ann"));
    assert_eq!(keys.last(), Some(&"people.vcf#bob"));
    let broken: Vec<&String> = read.iter().filter_map(|r| r.item.as_ref().err()).collect();
    assert_eq!(broken.len(), 1, "{read:?}");
    assert!(
        broken[0].contains("people.vcf") && broken[0].contains("line 6"),
        "{}",
        broken[0]
    );
}

#[test]
fn events_since_keeps_series_that_may_still_run() {
    let ics = |body: &str| {
        format!(
            "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:t\r\nBEGIN:VEVENT\r\nUID:e\r\n\
             DTSTAMP:20240101T000000Z\r\nSUMMARY:E\r\n{body}END:VEVENT\r\nEND:VCALENDAR\r\n"
        )
    };
    let event = |body: &str| match read_resource(
        &resource("e.ics", &ics(body)),
        PimKind::Calendar,
        &Default::default(),
    )
    .remove(0)
    .item
    .unwrap()
    {
        Converted::Event(e) => e,
        other => panic!("{other:?}"),
    };
    let since = crate::config::CivilDate {
        year: 2025,
        month: 1,
        day: 1,
    };
    let old = event("DTSTART:20230105T100000Z\r\nDTEND:20230105T110000Z\r\n");
    let new = event("DTSTART:20250105T100000Z\r\nDTEND:20250105T110000Z\r\n");
    let open = event("DTSTART:20230105T100000Z\r\nDTEND:20230105T110000Z\r\nRRULE:FREQ=WEEKLY\r\n");
    let ended = event(
        "DTSTART:20230105T100000Z\r\nDTEND:20230105T110000Z\r\nRRULE:FREQ=WEEKLY;UNTIL=20230301T000000Z\r\n",
    );
    assert!(!event_since(&old, since));
    assert!(event_since(&new, since));
    assert!(event_since(&open, since));
    assert!(!event_since(&ended, since));
}
