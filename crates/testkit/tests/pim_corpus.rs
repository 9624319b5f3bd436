//! The contacts/calendar corpus against a real Radicale: load, count what PROPFIND lists and
//! what GET returns, apply a change set, and write the same corpus as files.

use o365_migrate_testkit::pim_corpus::{ADDRESS_BOOK, PimCorpus, PimCorpusProfile, PimKind};
use o365_migrate_testkit::{Radicale, RadicaleOptions};

const PW: &str = "carol-Pw-5e1d";

/// The hrefs PROPFIND (Depth: 1) lists under `/carol/<collection>/`, the collection itself
/// left out.
fn listed(dav: &Radicale, collection: &str) -> Vec<String> {
    let body = "<?xml version=\"1.0\" encoding=\"utf-8\"?><d:propfind xmlns:d=\"DAV:\"><d:prop><d:getetag/></d:prop></d:propfind>";
    let answer = dav
        .request(
            Some("carol"),
            "PROPFIND",
            &format!("carol/{collection}/"),
            &[
                ("Depth", "1"),
                ("Content-Type", "application/xml; charset=utf-8"),
            ],
            body.as_bytes(),
        )
        .unwrap();
    assert_eq!(
        answer.status,
        207,
        "{}",
        String::from_utf8_lossy(&answer.body)
    );
    let text = String::from_utf8(answer.body).unwrap();
    let own = format!("/carol/{collection}/");
    text.split("href>")
        .filter_map(|s| s.strip_suffix("</d:").or_else(|| s.strip_suffix("</")))
        .map(str::to_string)
        .filter(|h| *h != own && h.starts_with('/'))
        .collect()
}

#[test]
fn loads_into_radicale_and_changes() {
    let dav = Radicale::start(RadicaleOptions {
        users: vec![("carol".into(), PW.into())],
        tls: false,
    })
    .expect("start Radicale");
    let mut corpus = PimCorpus::generate(&PimCorpusProfile::small());
    corpus.load(&dav, "carol").unwrap();
    let p = corpus.profile().clone();
    let contacts = listed(&dav, ADDRESS_BOOK);
    assert_eq!(contacts.len(), p.contacts, "{contacts:?}");
    let mut events = 0;
    for cal in &p.calendars {
        events += listed(&dav, cal).len();
    }
    assert_eq!(events, p.events);
    // GET every item back: each is there, with its UID.
    for entry in corpus.manifest() {
        let answer = dav
            .request(
                Some("carol"),
                "GET",
                &format!("carol/{}", entry.href),
                &[],
                b"",
            )
            .unwrap();
        assert_eq!(answer.status, 200, "{}", entry.href);
        let text = String::from_utf8(answer.body).unwrap();
        assert!(
            text.contains(&format!("UID:{}", entry.uid)),
            "{}",
            entry.href
        );
        if entry.kind == PimKind::Event && !entry.moved.is_empty() {
            assert!(text.contains("RECURRENCE-ID"), "{}", entry.href);
        }
    }
    // A change set: 5 changed, 4 new; the new ones are listed, the changed ones read back.
    let set = corpus.change(5, 4);
    assert_eq!((set.changed(), set.added()), (5, 4));
    set.apply(&dav, "carol").unwrap();
    let mut after = 0;
    for cal in &p.calendars {
        after += listed(&dav, cal).len();
    }
    assert_eq!(after, p.events + 4);
    for (href, _, new) in &set.items {
        let entry = corpus.manifest().iter().find(|e| &e.href == href).unwrap();
        let answer = dav
            .request(Some("carol"), "GET", &format!("carol/{href}"), &[], b"")
            .unwrap();
        let text = String::from_utf8(answer.body).unwrap();
        if !new {
            assert!(text.contains("geändert"), "{href}: {text}");
        }
        assert!(text.contains(&entry.uid));
    }
}

#[test]
fn writes_one_file_per_collection() {
    let corpus = PimCorpus::generate(&PimCorpusProfile::small());
    let dir = tempfile::tempdir().unwrap();
    corpus.write_files(dir.path()).unwrap();
    let vcf = std::fs::read_to_string(dir.path().join("contacts.vcf")).unwrap();
    assert_eq!(vcf.matches("BEGIN:VCARD\r\n").count(), 20);
    let mut events = 0;
    for cal in &corpus.profile().calendars {
        let ics = std::fs::read_to_string(dir.path().join(format!("{cal}.ics"))).unwrap();
        assert_eq!(ics.matches("BEGIN:VCALENDAR").count(), 1);
        // Masters only: overrides share the UID and have a RECURRENCE-ID.
        events += ics.matches("BEGIN:VEVENT").count() - ics.matches("RECURRENCE-ID").count();
    }
    assert_eq!(events, 40);
}
