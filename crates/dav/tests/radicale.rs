//! The client against a real Radicale (testkit): discovery, listing, multiget, sync-collection,
//! wrong credentials and TLS.

use o365_migrate_dav::{
    Collection, CollectionKind, Credentials, DavClient, DavClientOptions, Error, Href,
};
use o365_migrate_testkit::{Radicale, RadicaleOptions};

const ALICE_PW: &str = "alice-Pw-7f3a";
const BOB_PW: &str = "bob-Pw-91c2";

// Radicale stores what vobject re-serializes (properties in its order), so these are written
// in that order: then the bytes served are the bytes PUT.
fn vcard(uid: &str, name: &str) -> String {
    format!(
        "BEGIN:VCARD\r\nVERSION:3.0\r\nUID:{uid}\r\nEMAIL:{uid}@example.com\r\nFN:{name}\r\nN:{name};;;;\r\nEND:VCARD\r\n"
    )
}

fn vevent(uid: &str, summary: &str) -> String {
    format!(
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//o365-migrate//tests//EN\r\nBEGIN:VEVENT\r\nUID:{uid}\r\nDTSTART:20260105T090000Z\r\nDTEND:20260105T100000Z\r\nDTSTAMP:20260101T120000Z\r\nSUMMARY:{summary}\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
    )
}

fn vtodo(uid: &str, summary: &str) -> String {
    format!(
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//o365-migrate//tests//EN\r\nBEGIN:VTODO\r\nDTSTAMP:20260101T120000Z\r\nSUMMARY:{summary}\r\nUID:{uid}\r\nEND:VTODO\r\nEND:VCALENDAR\r\n"
    )
}

/// Alice: address book `contacts` (3 cards), calendars `work` (VEVENT, 2 events) and
/// `tasks` (VTODO, 1 task). Bob: address book `bob-book` (1 card).
struct Fixture {
    dav: Radicale,
    /// (path under /alice/, data, etag) of every item PUT.
    items: Vec<(String, String, String)>,
}

fn fixture(tls: bool) -> Fixture {
    let dav = Radicale::start(RadicaleOptions {
        users: vec![
            ("alice".into(), ALICE_PW.into()),
            ("bob".into(), BOB_PW.into()),
        ],
        tls,
    })
    .expect("start Radicale");
    dav.create_address_book("alice", "contacts", "Alice's contacts")
        .unwrap();
    dav.create_calendar("alice", "work", "Work", &["VEVENT"])
        .unwrap();
    dav.create_calendar("alice", "tasks", "Tasks", &["VTODO"])
        .unwrap();
    dav.create_address_book("bob", "bob-book", "Bob's book")
        .unwrap();
    dav.put("bob", "bob-book/b1.vcf", &vcard("b1", "Bob One"))
        .unwrap();
    let mut items = Vec::new();
    let mut put = |path: &str, data: String| {
        let etag = dav.put("alice", path, &data).unwrap();
        items.push((path.to_owned(), data, etag));
    };
    put("contacts/c1.vcf", vcard("c1", "Ann Able"));
    put("contacts/c2.vcf", vcard("c2", "Ben Baker"));
    // A name that needs percent-encoding.
    put("contacts/c 3@x.vcf", vcard("c3", "Cleo Cole"));
    put("work/e1.ics", vevent("e1", "Planning"));
    put("work/e2.ics", vevent("e2", "Review"));
    put("tasks/t1.ics", vtodo("t1", "Write the report"));
    Fixture { dav, items }
}

fn client(user: &str, password: &str) -> DavClient {
    DavClient::new(
        Credentials::basic(user, password),
        DavClientOptions::default(),
    )
    .unwrap()
}

fn href(dav: &Radicale, path: &str) -> Href {
    Href::parse(&dav.url_of(path)).unwrap()
}

async fn collection(client: &DavClient, dav: &Radicale, name: &str) -> Collection {
    let found = client.discover(&dav.url()).await.unwrap();
    found
        .collections
        .into_iter()
        .find(|c| c.href == href(dav, &format!("alice/{name}/")))
        .unwrap_or_else(|| panic!("no collection {name}"))
}

#[tokio::test]
async fn discovery_finds_alices_address_book_and_two_calendars_only() {
    let f = fixture(false);
    let alice = client("alice", ALICE_PW);
    let found = alice.discover(&f.dav.url()).await.expect("discover");
    assert_eq!(found.principals, vec![href(&f.dav, "alice/")]);
    assert_eq!(found.addressbook_homes, vec![href(&f.dav, "alice/")]);
    assert_eq!(found.calendar_homes, vec![href(&f.dav, "alice/")]);
    let summary: Vec<(String, CollectionKind, Option<String>, Vec<String>)> = found
        .collections
        .iter()
        .map(|c| {
            (
                c.href.path().to_owned(),
                c.kind,
                c.display_name.clone(),
                c.components.clone(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            (
                "/alice/contacts/".to_owned(),
                CollectionKind::AddressBook,
                Some("Alice's contacts".to_owned()),
                vec![]
            ),
            (
                "/alice/tasks/".to_owned(),
                CollectionKind::Calendar,
                Some("Tasks".to_owned()),
                vec!["VTODO".to_owned()]
            ),
            (
                "/alice/work/".to_owned(),
                CollectionKind::Calendar,
                Some("Work".to_owned()),
                vec!["VEVENT".to_owned()]
            ),
        ]
    );
    for c in &found.collections {
        assert!(c.supports_sync, "{c:?}");
        assert!(
            c.sync_token.as_deref().is_some_and(|t| !t.is_empty()),
            "{c:?}"
        );
        assert!(c.ctag.as_deref().is_some_and(|t| !t.is_empty()), "{c:?}");
    }

    // Bob sees his book only.
    let bob = client("bob", BOB_PW);
    let found = bob.discover(&f.dav.url()).await.expect("discover as bob");
    let hrefs: Vec<&str> = found.collections.iter().map(|c| c.href.path()).collect();
    assert_eq!(hrefs, vec!["/bob/bob-book/"]);
}

#[tokio::test]
async fn listing_gives_every_href_with_its_etag() {
    let f = fixture(false);
    let alice = client("alice", ALICE_PW);
    for name in ["contacts", "work", "tasks"] {
        let c = collection(&alice, &f.dav, name).await;
        let listed = alice.list_items(&c.href).await.expect("list");
        let mut expected: Vec<(Href, Option<String>)> = f
            .items
            .iter()
            .filter(|(p, _, _)| p.starts_with(&format!("{name}/")))
            .map(|(p, _, etag)| (href(&f.dav, &format!("alice/{p}")), Some(etag.clone())))
            .collect();
        expected.sort();
        let got: Vec<(Href, Option<String>)> =
            listed.into_iter().map(|r| (r.href, r.etag)).collect();
        assert_eq!(got, expected, "{name}");
    }
}

#[tokio::test]
async fn multiget_returns_exactly_the_bytes_put() {
    let f = fixture(false);
    // Batches of two: three cards take two REPORTs.
    let alice = DavClient::new(
        Credentials::basic("alice", ALICE_PW),
        DavClientOptions {
            multiget_batch: 2,
            ..DavClientOptions::default()
        },
    )
    .unwrap();
    for name in ["contacts", "work", "tasks"] {
        let c = collection(&alice, &f.dav, name).await;
        let mut hrefs: Vec<Href> = alice
            .list_items(&c.href)
            .await
            .unwrap()
            .into_iter()
            .map(|r| r.href)
            .collect();
        let gone = href(&f.dav, &format!("alice/{name}/never-there.vcf"));
        hrefs.push(gone.clone());
        let log_before = std::fs::read_to_string(f.dav.log_path()).unwrap();
        let fetched = alice.fetch(&c, &hrefs).await.expect("fetch");
        assert_eq!(fetched.missing, vec![gone], "{name}");
        // All of it came by multiget REPORTs, two hrefs each, and no GET.
        let log = std::fs::read_to_string(f.dav.log_path()).unwrap();
        let new_lines = &log[log_before.len()..];
        assert_eq!(
            new_lines
                .matches(&format!("REPORT request for '/alice/{name}/'"))
                .count(),
            hrefs.len().div_ceil(2),
            "{new_lines}"
        );
        assert!(!new_lines.contains("GET request"), "{new_lines}");
        assert_eq!(fetched.items.len(), hrefs.len() - 1, "{name}");
        for item in &fetched.items {
            let (_, data, etag) = f
                .items
                .iter()
                .find(|(p, _, _)| href(&f.dav, &format!("alice/{p}")) == item.href)
                .unwrap_or_else(|| panic!("unexpected {:?}", item.href));
            assert_eq!(
                String::from_utf8_lossy(&item.data),
                data.as_str(),
                "{:?}",
                item.href
            );
            assert_eq!(item.etag.as_ref(), Some(etag));
            // And the bytes a plain GET serves.
            let got = f
                .dav
                .request(Some("alice"), "GET", item.href.path(), &[], b"")
                .unwrap();
            assert_eq!(got.body, item.data, "{:?}", item.href);
        }
    }
}

#[tokio::test]
async fn sync_changes_returns_exactly_what_changed() {
    let f = fixture(false);
    let alice = client("alice", ALICE_PW);
    let c = collection(&alice, &f.dav, "contacts").await;
    let initial = alice
        .sync_changes(&c.href, None)
        .await
        .expect("initial sync");
    assert_eq!(initial.changed.len(), 3);
    assert!(initial.deleted.is_empty());
    let token = initial.token.clone();

    // Change two, add one, delete one.
    let e1 = f
        .dav
        .put("alice", "contacts/c1.vcf", &vcard("c1", "Ann Changed"))
        .unwrap();
    let e2 = f
        .dav
        .put("alice", "contacts/c 3@x.vcf", &vcard("c3", "Cleo Changed"))
        .unwrap();
    let e4 = f
        .dav
        .put("alice", "contacts/c4.vcf", &vcard("c4", "Dora New"))
        .unwrap();
    f.dav.delete("alice", "contacts/c2.vcf").unwrap();

    let changes = alice
        .sync_changes(&c.href, Some(&token))
        .await
        .expect("incremental sync");
    let mut expected = vec![
        (href(&f.dav, "alice/contacts/c1.vcf"), Some(e1)),
        (href(&f.dav, "alice/contacts/c 3@x.vcf"), Some(e2)),
        (href(&f.dav, "alice/contacts/c4.vcf"), Some(e4)),
    ];
    expected.sort();
    let got: Vec<(Href, Option<String>)> = changes
        .changed
        .iter()
        .map(|r| (r.href.clone(), r.etag.clone()))
        .collect();
    assert_eq!(got, expected);
    assert_eq!(changes.deleted, vec![href(&f.dav, "alice/contacts/c2.vcf")]);
    assert_ne!(changes.token, token);
    assert!(!changes.truncated);

    // Nothing since the new token.
    let none = alice
        .sync_changes(&c.href, Some(&changes.token))
        .await
        .unwrap();
    assert!(
        none.changed.is_empty() && none.deleted.is_empty(),
        "{none:?}"
    );
}

#[tokio::test]
async fn a_refused_sync_token_is_its_own_error() {
    let f = fixture(false);
    let alice = client("alice", ALICE_PW);
    let c = collection(&alice, &f.dav, "work").await;
    let unknown = format!("http://radicale.org/ns/sync/{}", "0".repeat(64));
    for token in ["bogus", unknown.as_str()] {
        let err = alice
            .sync_changes(&c.href, Some(token))
            .await
            .expect_err("a bogus token");
        assert!(
            matches!(&err, Error::InvalidSyncToken { url } if url.ends_with("/alice/work/")),
            "{token}: {err:?}"
        );
        assert!(
            err.to_string().contains("list the collection in full"),
            "{err}"
        );
    }
}

#[tokio::test]
async fn a_wrong_password_names_the_url_and_the_credentials_but_not_the_password() {
    let f = fixture(false);
    let wrong = "Wrong-Pass-5521";
    let err = client("alice", wrong)
        .discover(&f.dav.url())
        .await
        .expect_err("wrong password");
    assert!(matches!(err, Error::Unauthorized { .. }), "{err:?}");
    let text = err.to_string();
    assert!(
        text.contains(&format!("127.0.0.1:{}/", f.dav.port())),
        "{text}"
    );
    assert!(text.contains("check the user name and password"), "{text}");
    let debug = format!("{err:?}");
    for shown in [&text, &debug] {
        assert!(!shown.contains(wrong), "{shown}");
        assert!(!shown.contains(ALICE_PW), "{shown}");
    }
}

#[tokio::test]
async fn tls_with_the_testkit_ca_works_and_without_it_is_refused() {
    let f = fixture(true);
    assert!(f.dav.url().starts_with("https://"));
    let trusting = DavClient::new(
        Credentials::basic("alice", ALICE_PW),
        DavClientOptions {
            extra_ca_pem: f.dav.ca_pem(),
            ..DavClientOptions::default()
        },
    )
    .unwrap();
    let found = trusting
        .discover(&f.dav.url())
        .await
        .expect("discover over TLS");
    assert_eq!(found.collections.len(), 3);
    // A bare host (and port) means https.
    let from_host = trusting
        .discover(&format!("127.0.0.1:{}", f.dav.port()))
        .await
        .expect("discover from a host name");
    assert_eq!(from_host, found);

    let err = client("alice", ALICE_PW)
        .discover(&f.dav.url())
        .await
        .expect_err("an untrusted certificate");
    assert!(matches!(err, Error::Tls { .. }), "{err:?}");
    let text = err.to_string();
    assert!(text.contains("extra CA PEM"), "{text}");
    assert!(!text.contains(ALICE_PW), "{text}");
}
