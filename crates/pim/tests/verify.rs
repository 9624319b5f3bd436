//! Verify: a source event's occurrences and the comparison of source items with what the
//! target stored (hand-written Graph GET JSON and instances).

use o365_migrate_pim::{
    CalendarItem, CalendarOptions, Contact, Event, TargetInstance, compare_contact, compare_event,
    parse_calendar_with, parse_contacts,
};
use serde_json::{Value, json};

/// Weekly on Mondays at 10:00 Berlin, 8 times from 1 March 2027 (Europe goes to summer time
/// on 28 March 2027): 15 March cancelled, 22 March moved to 14:00 with its own subject.
const WEEKLY: &str = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\n\
BEGIN:VTIMEZONE\r\nTZID:Europe/Berlin\r\n\
BEGIN:DAYLIGHT\r\nTZOFFSETFROM:+0100\r\nTZOFFSETTO:+0200\r\nTZNAME:CEST\r\n\
DTSTART:19700329T020000\r\nRRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=-1SU\r\nEND:DAYLIGHT\r\n\
BEGIN:STANDARD\r\nTZOFFSETFROM:+0200\r\nTZOFFSETTO:+0100\r\nTZNAME:CET\r\n\
DTSTART:19701025T030000\r\nRRULE:FREQ=YEARLY;BYMONTH=10;BYDAY=-1SU\r\nEND:STANDARD\r\n\
END:VTIMEZONE\r\n\
BEGIN:VEVENT\r\nUID:weekly@test\r\nDTSTAMP:20270101T000000Z\r\nSEQUENCE:2\r\n\
DTSTART;TZID=Europe/Berlin:20270301T100000\r\nDTEND;TZID=Europe/Berlin:20270301T103000\r\n\
RRULE:FREQ=WEEKLY;BYDAY=MO;COUNT=8\r\nEXDATE;TZID=Europe/Berlin:20270315T100000\r\n\
SUMMARY:Jour fixe\r\nDESCRIPTION:Agenda: Zahlen & Fakten\r\nLOCATION:Raum 1\r\n\
END:VEVENT\r\n\
BEGIN:VEVENT\r\nUID:weekly@test\r\nDTSTAMP:20270101T000000Z\r\n\
RECURRENCE-ID;TZID=Europe/Berlin:20270322T100000\r\n\
DTSTART;TZID=Europe/Berlin:20270322T140000\r\nDTEND;TZID=Europe/Berlin:20270322T143000\r\n\
SUMMARY:Jour fixe (verschoben)\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n";

fn event(ics: &str, floating: &str) -> Event {
    let items = parse_calendar_with(
        "t.ics",
        ics.as_bytes(),
        &CalendarOptions::with_floating_zone(floating),
    )
    .unwrap();
    match items.into_iter().next().unwrap().unwrap() {
        CalendarItem::Event(e) => e,
        other => panic!("not an event: {other:?}"),
    }
}

/// (start, end, subject) of each expected occurrence of [`WEEKLY`].
const EXPECTED: &[(&str, &str, &str)] = &[
    ("2027-03-01T09:00:00Z", "2027-03-01T09:30:00Z", "Jour fixe"),
    ("2027-03-08T09:00:00Z", "2027-03-08T09:30:00Z", "Jour fixe"),
    (
        "2027-03-22T13:00:00Z",
        "2027-03-22T13:30:00Z",
        "Jour fixe (verschoben)",
    ),
    ("2027-03-29T08:00:00Z", "2027-03-29T08:30:00Z", "Jour fixe"),
    ("2027-04-05T08:00:00Z", "2027-04-05T08:30:00Z", "Jour fixe"),
    ("2027-04-12T08:00:00Z", "2027-04-12T08:30:00Z", "Jour fixe"),
    ("2027-04-19T08:00:00Z", "2027-04-19T08:30:00Z", "Jour fixe"),
];

/// The series as Graph GET returns it: HTML body, seven fractional digits, its own fields.
fn target_series() -> String {
    json!({
        "id": "AAMk1",
        "subject": "Jour fixe",
        "body": { "contentType": "html", "content": "<html><head><meta charset=\"utf-8\"></head><body><div>Agenda: Zahlen &amp; Fakten</div></body></html>" },
        "start": { "dateTime": "2027-03-01T10:00:00.0000000", "timeZone": "W. Europe Standard Time" },
        "end": { "dateTime": "2027-03-01T10:30:00.0000000", "timeZone": "W. Europe Standard Time" },
        "isAllDay": false,
        "location": { "displayName": "Raum 1", "locationType": "default" },
        "categories": [],
        "showAs": "busy",
        "sensitivity": "normal",
        "isReminderOn": false,
        "reminderMinutesBeforeStart": 15,
        "recurrence": {
            "pattern": { "type": "weekly", "interval": 1, "month": 0, "dayOfMonth": 0, "daysOfWeek": ["monday"], "firstDayOfWeek": "monday", "index": "first" },
            "range": { "type": "numbered", "startDate": "2027-03-01", "endDate": "0001-01-01", "recurrenceTimeZone": "W. Europe Standard Time", "numberOfOccurrences": 8 }
        }
    })
    .to_string()
}

/// Instances as the writer reads them back (UTC, Graph's `dateTime` form).
fn target_instances() -> Vec<TargetInstance> {
    EXPECTED
        .iter()
        .map(|(s, e, subject)| {
            let original = if subject.contains("verschoben") {
                "2027-03-22T09:00:00Z".to_string()
            } else {
                s.to_string()
            };
            TargetInstance {
                start_utc: s.trim_end_matches('Z').to_string() + ".0000000",
                end_utc: e.trim_end_matches('Z').to_string() + ".0000000",
                original_start_utc: Some(original),
                json: json!({ "subject": subject, "type": "occurrence" }).to_string(),
            }
        })
        .collect()
}

#[test]
fn weekly_series_occurrences_across_dst() {
    let ev = event(WEEKLY, "Europe/Berlin");
    let window = ev.verify_window();
    assert_eq!(
        window,
        (
            "2027-03-01T09:00:00Z".to_string(),
            "2029-03-01T09:00:00Z".to_string()
        )
    );
    let occs = ev.occurrences((&window.0, &window.1));
    let got: Vec<(&str, &str, &str)> = occs
        .iter()
        .map(|o| (o.start_utc.as_str(), o.end_utc.as_str(), o.subject.as_str()))
        .collect();
    assert_eq!(got, EXPECTED);
    // A narrower window: overlapping occurrences only.
    let some = ev.occurrences(("2027-03-08T09:15:00Z", "2027-03-29T08:00:00Z"));
    assert_eq!(some.len(), 2, "{some:?}");
    assert!(
        ev.occurrences(("nonsense", "2027-01-01T00:00:00Z"))
            .is_empty()
    );
}

#[test]
fn weekly_series_matches_its_target() {
    let ev = event(WEEKLY, "Europe/Berlin");
    let diffs = compare_event(&ev, &target_series(), &target_instances());
    assert!(diffs.is_empty(), "{diffs:#?}");
}

#[test]
fn weekly_series_instance_shifted_by_an_hour() {
    let ev = event(WEEKLY, "Europe/Berlin");
    let mut inst = target_instances();
    // 5 April as if the target had missed the change to summer time.
    inst[4].start_utc = "2027-04-05T09:00:00Z".into();
    inst[4].end_utc = "2027-04-05T09:30:00Z".into();
    let diffs = compare_event(&ev, &target_series(), &inst);
    assert_eq!(diffs.len(), 1, "{diffs:#?}");
    assert!(
        diffs[0].contains("2027-04-05T08:00:00Z") && diffs[0].contains("2027-04-05T09:00:00Z"),
        "{diffs:#?}"
    );
}

#[test]
fn weekly_series_missing_and_extra_instances() {
    let ev = event(WEEKLY, "Europe/Berlin");
    let mut inst = target_instances();
    inst.remove(1);
    let diffs = compare_event(&ev, &target_series(), &inst);
    assert_eq!(diffs.len(), 1, "{diffs:#?}");
    assert!(
        diffs[0].contains("2027-03-08T09:00:00Z") && diffs[0].contains("no target instance"),
        "{diffs:#?}"
    );
    // The cancelled 15 March still there.
    let mut inst = target_instances();
    inst.push(TargetInstance {
        start_utc: "2027-03-15T09:00:00Z".into(),
        end_utc: "2027-03-15T09:30:00Z".into(),
        original_start_utc: Some("2027-03-15T09:00:00Z".into()),
        json: "{}".into(),
    });
    let diffs = compare_event(&ev, &target_series(), &inst);
    assert_eq!(diffs.len(), 1, "{diffs:#?}");
    assert!(
        diffs[0].contains("2027-03-15T09:00:00Z") && diffs[0].contains("no source occurrence"),
        "{diffs:#?}"
    );
    // The moved one kept its subject but not the master's: a difference naming it.
    let mut inst = target_instances();
    inst[2].json = json!({ "subject": "Jour fixe" }).to_string();
    let diffs = compare_event(&ev, &target_series(), &inst);
    assert_eq!(diffs.len(), 1, "{diffs:#?}");
    assert!(diffs[0].contains("verschoben"), "{diffs:#?}");
}

#[test]
fn event_fields_differ() {
    let ev = event(WEEKLY, "Europe/Berlin");
    let mut t: Value = serde_json::from_str(&target_series()).unwrap();
    t["subject"] = json!("Jour fixe!");
    t["start"] = json!({ "dateTime": "2027-03-01T09:00:00.0000000", "timeZone": "UTC" });
    t["recurrence"]["pattern"]["daysOfWeek"] = json!(["tuesday"]);
    let diffs = compare_event(&ev, &t.to_string(), &target_instances());
    assert_eq!(diffs.len(), 2, "{diffs:#?}");
    assert!(diffs.iter().any(|d| d.starts_with("subject:")));
    assert!(
        diffs
            .iter()
            .any(|d| d.starts_with("recurrence.pattern.daysOfWeek"))
    );
    t["end"] = json!({ "dateTime": "2027-03-01T10:30:00", "timeZone": "UTC" });
    let diffs = compare_event(&ev, &t.to_string(), &target_instances());
    assert!(diffs.iter().any(|d| d.starts_with("end:")), "{diffs:#?}");
    assert_eq!(
        compare_event(&ev, "not json", &[]).len(),
        1,
        "unreadable target"
    );
}

const ALLDAY: &str = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\n\
BEGIN:VEVENT\r\nUID:allday@test\r\nDTSTAMP:20270101T000000Z\r\n\
DTSTART;VALUE=DATE:20270326\r\nDTEND;VALUE=DATE:20270329\r\n\
RRULE:FREQ=YEARLY;COUNT=2\r\nSUMMARY:Messe\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n";

#[test]
fn all_day_series_across_dst_compares_dates() {
    let ev = event(ALLDAY, "Europe/Berlin");
    let (a, b) = ev.verify_window();
    let occs = ev.occurrences((&a, &b));
    assert_eq!(occs.len(), 2, "{occs:?}");
    // Midnight Berlin to midnight Berlin, across the change to summer time on 28 March.
    assert_eq!(occs[0].start_utc, "2027-03-25T23:00:00Z");
    assert_eq!(occs[0].end_utc, "2027-03-28T22:00:00Z");
    let target = json!({
        "subject": "Messe", "isAllDay": true, "isReminderOn": false,
        "start": { "dateTime": "2027-03-26T00:00:00.0000000", "timeZone": "W. Europe Standard Time" },
        "end": { "dateTime": "2027-03-29T00:00:00.0000000", "timeZone": "W. Europe Standard Time" },
        "recurrence": {
            "pattern": { "type": "absoluteYearly", "interval": 1, "month": 3, "dayOfMonth": 26 },
            "range": { "type": "numbered", "startDate": "2027-03-26", "numberOfOccurrences": 2 }
        }
    })
    .to_string();
    // Read back in UTC, Graph gives all-day instances as UTC midnights.
    let inst = |s: &str, e: &str| TargetInstance {
        start_utc: s.into(),
        end_utc: e.into(),
        original_start_utc: None,
        json: "{}".into(),
    };
    let good = [
        inst("2027-03-26T00:00:00", "2027-03-29T00:00:00"),
        inst("2028-03-25T23:00:00Z", "2028-03-28T22:00:00Z"),
    ];
    let diffs = compare_event(&ev, &target, &good);
    assert!(diffs.is_empty(), "{diffs:#?}");
    let bad = [
        inst("2027-03-26T00:00:00", "2027-03-29T00:00:00"),
        inst("2028-03-27T00:00:00", "2028-03-29T00:00:00"),
    ];
    let diffs = compare_event(&ev, &target, &bad);
    assert_eq!(diffs.len(), 2, "{diffs:#?}");
}

#[test]
fn single_event_window_is_its_span() {
    let ics = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nBEGIN:VEVENT\r\nUID:one@test\r\n\
DTSTART:20270104T090000Z\r\nDTEND:20270104T100000Z\r\nSUMMARY:Once\r\nEND:VEVENT\r\n\
END:VCALENDAR\r\n";
    let ev = event(ics, "Europe/Berlin");
    assert_eq!(
        ev.verify_window(),
        (
            "2027-01-04T09:00:00Z".to_string(),
            "2027-01-04T10:00:00Z".to_string()
        )
    );
    let target = json!({
        "subject": "Once", "isAllDay": false, "isReminderOn": false,
        "start": { "dateTime": "2027-01-04T10:00:00.0000000", "timeZone": "W. Europe Standard Time" },
        "end": { "dateTime": "2027-01-04T05:00:00.0000000", "timeZone": "Eastern Standard Time" },
    })
    .to_string();
    let diffs = compare_event(&ev, &target, &[]);
    assert!(diffs.is_empty(), "{diffs:#?}");
}

const ANN: &str = "BEGIN:VCARD\r\nVERSION:4.0\r\nUID:urn:uuid:ann\r\nFN:Änne Müller\r\n\
N:Müller;Änne;;;\r\nEMAIL;TYPE=work:anne@example.com\r\nEMAIL:anne@example.org\r\n\
TEL;TYPE=cell:+49 170 1\r\nTEL;TYPE=work:+49 30 2\r\nORG:Beispiel GmbH;Forschung\r\n\
TITLE:Leiterin\r\nBDAY:19800412\r\nNOTE:Zeile 1\\nZeile 2\r\n\
ADR;TYPE=work:;;Hauptstr. 1;Berlin;;10115;Germany\r\nCATEGORIES:A,B\r\nEND:VCARD\r\n";

fn contact(vcf: &str) -> Contact {
    parse_contacts("t.vcf", vcf.as_bytes())
        .unwrap()
        .into_iter()
        .next()
        .unwrap()
        .unwrap()
}

/// Ann as Graph GET returns her.
fn target_ann() -> Value {
    json!({
        "id": "AAMkC", "createdDateTime": "2027-01-04T09:00:00Z", "parentFolderId": "x",
        "displayName": "Änne Müller", "givenName": "Änne", "surname": "Müller",
        "middleName": null, "title": null, "generation": null,
        "emailAddresses": [
            { "name": "anne@example.com", "address": "Anne@Example.com" },
            { "name": "anne@example.org", "address": "anne@example.org" }
        ],
        "mobilePhone": "+49 170 1", "businessPhones": ["+49 30 2"], "homePhones": [],
        "companyName": "Beispiel GmbH", "department": "Forschung", "jobTitle": "Leiterin",
        "birthday": "1980-04-12T11:59:00Z",
        "personalNotes": "Zeile 1\r\nZeile 2",
        "businessAddress": { "street": "Hauptstr. 1", "city": "Berlin", "state": "", "postalCode": "10115", "countryOrRegion": "Germany" },
        "homeAddress": {}, "otherAddress": {},
        "categories": ["B", "A"]
    })
}

#[test]
fn contact_matches_graph_get() {
    let ann = contact(ANN);
    let diffs = compare_contact(&ann, &target_ann().to_string(), None);
    assert!(diffs.is_empty(), "{diffs:#?}");
}

#[test]
fn contact_changed_email_is_one_difference() {
    let ann = contact(ANN);
    let mut t = target_ann();
    t["emailAddresses"][1]["address"] = json!("anne@example.net");
    let diffs = compare_contact(&ann, &t.to_string(), None);
    assert_eq!(diffs.len(), 1, "{diffs:#?}");
    assert!(
        diffs[0].contains("emailAddresses")
            && diffs[0].contains("anne@example.org")
            && diffs[0].contains("anne@example.net"),
        "{diffs:#?}"
    );
    // A photo on the target only; an unreadable target.
    assert_eq!(
        compare_contact(&ann, &target_ann().to_string(), Some(120)).len(),
        1
    );
    assert_eq!(compare_contact(&ann, "[", None).len(), 1);
}

/// Sydney in summer (+11:00): UNTIL 2027-01-12T12:59:59Z is 23:59:59 local on 12 January, so
/// the afternoon occurrence that day is in the series (RFC 5545: UNTIL is an inclusive
/// instant). calcard alone compares UNTIL's UTC clock time with local times and drops it.
#[test]
fn utc_until_east_of_utc_keeps_the_last_afternoon() {
    let ics = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nBEGIN:VTIMEZONE\r\nTZID:Australia/Sydney\r\n\
BEGIN:STANDARD\r\nTZOFFSETFROM:+1100\r\nTZOFFSETTO:+1000\r\nDTSTART:19700405T030000\r\n\
RRULE:FREQ=YEARLY;BYMONTH=4;BYDAY=1SU\r\nEND:STANDARD\r\nBEGIN:DAYLIGHT\r\n\
TZOFFSETFROM:+1000\r\nTZOFFSETTO:+1100\r\nDTSTART:19701004T020000\r\n\
RRULE:FREQ=YEARLY;BYMONTH=10;BYDAY=1SU\r\nEND:DAYLIGHT\r\nEND:VTIMEZONE\r\n\
BEGIN:VEVENT\r\nUID:syd@test\r\nDTSTART;TZID=Australia/Sydney:20270111T140000\r\n\
DTEND;TZID=Australia/Sydney:20270111T150000\r\nRRULE:FREQ=DAILY;UNTIL=20270112T125959Z\r\n\
SUMMARY:Arvo\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n";
    let ev = event(ics, "UTC");
    let (a, b) = ev.verify_window();
    let occs = ev.occurrences((&a, &b));
    let starts: Vec<&str> = occs.iter().map(|o| o.start_utc.as_str()).collect();
    assert_eq!(starts, ["2027-01-11T03:00:00Z", "2027-01-12T03:00:00Z"]);
}

/// Every fixture event against odd targets: empty, wrong types, unreadable instances. The
/// answer is a list of differences, never a panic.
#[test]
fn odd_targets_never_panic() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/pim");
    let odd_instances = [TargetInstance {
        start_utc: "yesterday".into(),
        end_utc: "".into(),
        original_start_utc: Some("2027-13-45T99:00:00Z".into()),
        json: "[1,2".into(),
    }];
    let targets = [
        "{}",
        "null",
        "[]",
        r#"{"start":{"dateTime":5,"timeZone":"Mars/Olympus"},"end":"x","isAllDay":"yes","recurrence":{"pattern":7,"range":null},"body":{"contentType":"html","content":"<body<<>>&amp;"},"categories":"a"}"#,
    ];
    let mut events = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("ics") {
            continue;
        }
        let bytes = std::fs::read(&path).unwrap();
        let Ok(items) = parse_calendar_with("x.ics", &bytes, &CalendarOptions::default()) else {
            continue;
        };
        for item in items.into_iter().flatten() {
            if let CalendarItem::Event(ev) = item {
                events += 1;
                for t in targets {
                    let _ = compare_event(&ev, t, &odd_instances);
                    let _ = compare_event(&ev, t, &[]);
                }
                let _ = ev.occurrences(("2100-01-01T00:00:00Z", "1900-01-01T00:00:00Z"));
            }
        }
    }
    assert!(events >= 10);
    let ann = contact(ANN);
    for t in targets {
        let _ = compare_contact(&ann, t, Some(0));
    }
}
