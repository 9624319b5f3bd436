//! Contacts and calendars (issue 18): a real Radicale (CardDAV / CalDAV over TLS) loaded with
//! testkit's generated corpus, migrated by the binary into the Graph emulator next to the
//! mail, killed ten times, verified, rerun and rescanned after changes; and local `.vcf` /
//! `.ics` files with malformed items.

use std::collections::HashMap;
use std::time::Duration;

use o365_migrate_testkit::pim_corpus::{PimCorpus, PimCorpusProfile, PimKind, PimManifestEntry};
use o365_migrate_testkit::{DovecotOptions, Radicale, RadicaleOptions};

use super::{DOMAIN, Env, dump, password, proof, reliability};

/// `[dav]` reading `user`'s collections from `radicale`, verified against its CA.
fn dav_section(radicale: &Radicale) -> String {
    format!(
        "[dav]\nurl = \"{}\"\nca_file = \"{}\"\n",
        radicale.url(),
        radicale.ca_path().expect("TLS").display()
    )
}

/// Adds `section` to the end of the job file.
fn append_to_job(env: &Env, section: &str) {
    let mut job = std::fs::read_to_string(env.job_path()).unwrap();
    job.push('\n');
    job.push_str(section);
    std::fs::write(env.job_path(), job).unwrap();
}

/// "N migrated" from a run's summary line.
pub(super) fn migrated(stderr: &str) -> u64 {
    let line = stderr
        .lines()
        .rev()
        .find(|l| l.contains(" migrated, "))
        .unwrap_or_else(|| panic!("no summary in {stderr}"));
    line.split(", ")
        .find_map(|p| p.strip_suffix(" migrated"))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no count in {line}"))
}

/// The first 19 characters of a UTC date-time (`2027-01-04T09:00:00`), whatever its fraction
/// or `Z`.
fn instant(s: &str) -> &str {
    s.get(..19).unwrap_or(s)
}

/// Checks the emulator against the generator's manifest, independently of the pim crate:
/// the contacts as a multiset of (name, e-mail addresses); each event matched to exactly one
/// target event with its subject whose occurrences over the event's window are the expected
/// ones one by one (start, end, subject); no invitation sent. Returns the number of
/// occurrences compared.
fn assert_emulator_holds(env: &Env, corpus: &PimCorpus) -> usize {
    let mb = format!("alice@{DOMAIN}");
    let contacts = env.graph.contacts(&mb);
    let events = env.graph.events(&mb);
    let manifest = corpus.manifest();
    let n_contacts = manifest
        .iter()
        .filter(|m| m.kind == PimKind::Contact)
        .count();
    assert_eq!(contacts.len(), n_contacts, "contacts in the target");
    assert_eq!(
        events.len(),
        manifest.len() - n_contacts,
        "events in the target"
    );
    let key = |name: &str, mut emails: Vec<String>| {
        emails.iter_mut().for_each(|e| *e = e.to_lowercase());
        emails.sort();
        (name.to_owned(), emails)
    };
    let mut want: Vec<(String, Vec<String>)> = manifest
        .iter()
        .filter(|m| m.kind == PimKind::Contact)
        .map(|m| key(&m.summary, m.emails.clone()))
        .collect();
    let mut got: Vec<(String, Vec<String>)> = contacts
        .iter()
        .map(|c| {
            let emails = c.properties["emailAddresses"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|e| e["address"].as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default();
            key(c.properties["displayName"].as_str().unwrap_or(""), emails)
        })
        .collect();
    want.sort();
    got.sort();
    assert_eq!(got, want, "contacts (name, e-mail addresses)");
    let mut by_subject: HashMap<String, Vec<&o365_migrate_graph_emulator::StoredEvent>> =
        HashMap::new();
    for e in &events {
        let s = e.properties["subject"].as_str().unwrap_or("").to_owned();
        by_subject.entry(s).or_default().push(e);
    }
    let mut occurrences = 0;
    for m in manifest.iter().filter(|m| m.kind == PimKind::Event) {
        let expected = expected_occurrences(m);
        let candidates = by_subject.get_mut(&m.summary);
        let found = candidates.and_then(|c| {
            let i = c
                .iter()
                .position(|e| target_occurrences(env, &mb, e, m) == expected)?;
            Some(c.remove(i))
        });
        assert!(
            found.is_some(),
            "no target event {:?} ({}) with the occurrences {expected:?} over {:?}",
            m.summary,
            m.href,
            m.window
        );
        occurrences += expected.len();
    }
    assert_eq!(env.graph.invitations_sent(&mb), 0, "no invitation sent");
    occurrences
}

/// The manifest's occurrences as sorted (start, end, subject), UTC to the second.
fn expected_occurrences(m: &PimManifestEntry) -> Vec<(String, String, String)> {
    let mut v: Vec<(String, String, String)> = m
        .occurrences
        .iter()
        .map(|o| {
            (
                instant(&o.start_utc).to_owned(),
                instant(&o.end_utc).to_owned(),
                o.subject.clone(),
            )
        })
        .collect();
    v.sort();
    v
}

/// A target event's occurrences in the manifest entry's window, as the emulator expands them.
fn target_occurrences(
    env: &Env,
    mb: &str,
    e: &o365_migrate_graph_emulator::StoredEvent,
    m: &PimManifestEntry,
) -> Vec<(String, String, String)> {
    if e.properties["recurrence"].is_null() {
        let Some((start, end)) = &e.span_utc else {
            return Vec::new();
        };
        return vec![(
            instant(start).to_owned(),
            instant(end).to_owned(),
            e.properties["subject"].as_str().unwrap_or("").to_owned(),
        )];
    }
    let mut v: Vec<(String, String, String)> = env
        .graph
        .event_instances(mb, &e.id, &m.window.0, &m.window.1)
        .unwrap_or_default()
        .iter()
        .map(|i| {
            (
                utc_of(&i["start"]),
                utc_of(&i["end"]),
                i["subject"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    v.sort();
    v
}

/// A Graph `dateTimeTimeZone` as a UTC instant (`YYYY-MM-DDTHH:MM:SS`): the emulator renders
/// instances in UTC; a single event's start is read in its own zone through the emulator's
/// instance view of one occurrence.
fn utc_of(v: &serde_json::Value) -> String {
    let dt = v["dateTime"].as_str().unwrap_or("");
    let zone = v["timeZone"].as_str().unwrap_or("UTC");
    assert_eq!(zone, "UTC", "instances are rendered in UTC: {v}");
    instant(dt).to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contacts_and_calendars_from_radicale_are_exact_resumable_and_incremental() {
    let env = reliability::start_env_with(
        &["alice"],
        3,
        18_018,
        DovecotOptions::default(),
        None,
        |c| {
            c.latency_ms = 10;
            c.faults = o365_migrate_graph_emulator::Faults {
                seed: 0x18,
                rate_504_after_write: 0.01,
                rate_reset_after_write: 0.01,
                retry_after_secs: 1,
                ..Default::default()
            };
        },
    )
    .await;
    let radicale = Radicale::start(RadicaleOptions {
        users: vec![("alice".into(), password("alice"))],
        tls: true,
    })
    .expect("start Radicale");
    let mut corpus = PimCorpus::generate(&PimCorpusProfile::issue18());
    corpus.load(&radicale, "alice").expect("load the corpus");
    append_to_job(&env, &dav_section(&radicale));
    // source test signs in to the DAV server too.
    let o = env.cli(&["source", "test"]).await;
    assert_eq!(o.code, 0, "{}", dump(&o));
    assert!(
        o.stderr
            .contains("ok    alice (contacts and calendars): 3 address books and calendars"),
        "{}",
        o.stderr
    );

    // plan: three collections, the corpus's counts, nothing that cannot be migrated.
    let o = env.cli(&["plan", "--json"]).await;
    assert_eq!(o.code, 0, "{}", dump(&o));
    let plan: serde_json::Value = serde_json::from_str(&o.stdout).unwrap();
    let cols = plan["mailboxes"][0]["collections"].as_array().unwrap();
    let sum = |k: &str| cols.iter().map(|c| c[k].as_u64().unwrap()).sum::<u64>();
    assert_eq!(cols.len(), 3, "{cols:?}");
    assert_eq!(
        (sum("contacts"), sum("events"), sum("recurring")),
        (500, 1000, 200)
    );
    assert!(
        cols.iter()
            .all(|c| c["problems"].as_array().unwrap().is_empty()),
        "{cols:?}"
    );

    // Ten SIGKILLs at seeded points of progress (contacts and events in the target), each
    // followed by `run` again; then a run to the end.
    let mb = format!("alice@{DOMAIN}");
    let in_target = || env.graph.contacts(&mb).len() + env.graph.events(&mb).len();
    for at in proof::kill_points(0x18_2026, 10, 1500) {
        let killed = proof::kill_at(
            env.command(&["run"]),
            in_target,
            at,
            Duration::from_secs(300),
        )
        .await;
        assert!(killed, "the run was still going at {at} items");
    }
    let o = env.cli(&["run"]).await;
    assert_eq!(o.code, 0, "{}", dump(&o));
    let occurrences = assert_emulator_holds(&env, &corpus);
    assert!(occurrences > 5_000, "{occurrences} occurrences compared");
    env.graph.assert_limits_respected().unwrap();

    // verify compares every item (occurrence by occurrence over two years) and finds nothing.
    let o = env.cli(&["verify", "--json"]).await;
    assert_eq!(o.code, 0, "{}", dump(&o));
    let v: serde_json::Value = serde_json::from_str(&o.stdout).unwrap();
    let vcols = v["mailboxes"][0]["collections"].as_array().unwrap();
    let found: u64 = vcols.iter().map(|c| c["found"].as_u64().unwrap()).sum();
    assert_eq!(found, 1500, "{vcols:?}");

    // A rerun writes nothing: no request body sent, the same items under the same ids.
    let ids = |env: &Env| {
        let mut v: Vec<String> = env.graph.contacts(&mb).into_iter().map(|c| c.id).collect();
        v.extend(env.graph.events(&mb).into_iter().map(|e| e.id));
        v.sort();
        v
    };
    let before = (env.graph.counters(&mb), ids(&env));
    let o = env.cli(&["run"]).await;
    assert_eq!(o.code, 0, "{}", dump(&o));
    assert_eq!(migrated(&o.stderr), 0, "{}", dump(&o));
    let after = env.graph.counters(&mb);
    assert_eq!(
        after.upload_bytes, before.0.upload_bytes,
        "the rerun sent bodies"
    );
    assert_eq!(ids(&env), before.1, "the rerun changed the target's items");
    let requests = after.requests - before.0.requests;

    // 10 changed and 5 new events: a rescan writes those 15 (the changed ones replaced).
    let changes = corpus.change(10, 5);
    assert_eq!((changes.changed(), changes.added()), (10, 5));
    changes.apply(&radicale, "alice").unwrap();
    let o = env.cli(&["rescan"]).await;
    assert_eq!(o.code, 0, "{}", dump(&o));
    assert_eq!(migrated(&o.stderr), 15, "{}", dump(&o));
    assert_emulator_holds(&env, &corpus);
    let o = env.cli(&["verify"]).await;
    assert_eq!(o.code, 0, "{}", dump(&o));

    // The report counts each collection; no secret anywhere.
    let o = env.cli(&["report"]).await;
    assert_eq!(o.code, 0, "{}", dump(&o));
    let items: serde_json::Value = serde_json::from_slice(
        &std::fs::read(env.dir.path().join("report/contacts-calendars.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(items.as_array().unwrap().len(), 1505);
    env.assert_no_secrets();
    eprintln!("rerun sent {requests} requests (reads only); {occurrences} occurrences compared");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_files_migrate_and_broken_items_are_reported_with_file_and_line() {
    let env = reliability::start_env(&["alice"], 2, 18_019, DovecotOptions::default(), None).await;
    let corpus = PimCorpus::generate(&PimCorpusProfile::small());
    let dir = env.dir.path().join("exports/alice");
    corpus.write_files(&dir).unwrap();
    // A card cut off before its END (line `broken_card`), then two good ones, one with a
    // property Outlook has no field for.
    let vcf_path = dir.join("contacts.vcf");
    let mut vcf = std::fs::read_to_string(&vcf_path).unwrap();
    let broken_card = vcf.lines().count() + 1;
    vcf.push_str("BEGIN:VCARD\r\nVERSION:4.0\r\nUID:broken-card\r\nFN:Broken Card\r\n");
    vcf.push_str(
        "BEGIN:VCARD\r\nVERSION:4.0\r\nUID:zed\r\nFN:Zed After\r\nN:After;Zed;;;\r\nEND:VCARD\r\n",
    );
    vcf.push_str(
        "BEGIN:VCARD\r\nVERSION:4.0\r\nUID:geo\r\nFN:Gea Located\r\nN:Located;Gea;;;\r\n\
         GEO:geo:48.137,11.575\r\nEND:VCARD\r\n",
    );
    std::fs::write(&vcf_path, vcf).unwrap();
    // An event whose start is not a date, before the calendar's end.
    let ics_path = dir.join("calendar.ics");
    let ics = std::fs::read_to_string(&ics_path).unwrap();
    let end = ics.rfind("END:VCALENDAR").unwrap();
    // The line of its DTSTART: BEGIN, UID and DTSTAMP come first.
    let broken_event = ics[..end].lines().count() + 4;
    // And a task, which goes to the default To Do list (the calendar goes to the default
    // calendar).
    let ics = format!(
        "{}BEGIN:VEVENT\r\nUID:broken-event\r\nDTSTAMP:20270101T000000Z\r\nDTSTART:not-a-date\r\n\
         SUMMARY:Broken event\r\nEND:VEVENT\r\nBEGIN:VTODO\r\nUID:todo-1\r\n\
         DTSTAMP:20270101T000000Z\r\nSUMMARY:Renew the lease\r\nDUE;VALUE=DATE:20270301\r\n\
         PRIORITY:1\r\nEND:VTODO\r\n{}",
        &ics[..end],
        &ics[end..]
    );
    std::fs::write(&ics_path, ics).unwrap();
    append_to_job(&env, "[dav]\nfiles = \"exports/{login}\"\n");
    // The app has the contacts, calendars and tasks permissions [dav] needs.
    let o = env.cli(&["target", "test"]).await;
    assert_eq!(o.code, 0, "{}", dump(&o));

    let o = env.cli(&["plan", "--json"]).await;
    assert_eq!(o.code, 0, "{}", dump(&o));
    let plan: serde_json::Value = serde_json::from_str(&o.stdout).unwrap();
    let problems: Vec<String> = plan["mailboxes"][0]["collections"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|c| c["problems"].as_array().unwrap().clone())
        .map(|p| p.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(problems.len(), 2, "{problems:?}");

    // The run migrates the rest and ends with exit 1: two items failed, each with a reason.
    let o = env.cli(&["run"]).await;
    assert_eq!(o.code, 1, "{}", dump(&o));
    let mb = format!("alice@{DOMAIN}");
    let manifest = corpus.manifest();
    let n_contacts = manifest
        .iter()
        .filter(|m| m.kind == PimKind::Contact)
        .count();
    assert_eq!(env.graph.contacts(&mb).len(), n_contacts + 2);
    assert_eq!(env.graph.events(&mb).len(), manifest.len() - n_contacts);
    let tasks = env.graph.tasks(&mb);
    assert_eq!(tasks.len(), 1, "{tasks:?}");
    assert_eq!(tasks[0].properties["title"], "Renew the lease");
    assert_eq!(tasks[0].properties["importance"], "high");
    let o = env.cli(&["report"]).await;
    assert_eq!(o.code, 0, "{}", dump(&o));
    let items: Vec<serde_json::Value> = serde_json::from_slice(
        &std::fs::read(env.dir.path().join("report/contacts-calendars.json")).unwrap(),
    )
    .unwrap();
    let failed: Vec<&serde_json::Value> =
        items.iter().filter(|i| i["status"] == "failed").collect();
    assert_eq!(failed.len(), 2, "{failed:?}");
    let reason = |key: &str| {
        failed
            .iter()
            .find(|i| i["key"].as_str().unwrap_or("").starts_with(key))
            .and_then(|i| i["reason"].as_str())
            .unwrap_or_else(|| panic!("no failed item in {key}: {failed:?}"))
            .to_owned()
    };
    let card = reason("contacts.vcf");
    assert!(card.contains(&format!("line {broken_card}")), "{card}");
    let event = reason("calendar.ics");
    assert!(event.contains(&format!("line {broken_event}")), "{event}");
    // What Outlook cannot hold is listed for that item.
    let geo = items
        .iter()
        .find(|i| i["summary"] == "Gea Located")
        .expect("the GEO contact");
    assert_eq!(geo["status"], "migrated");
    assert!(
        geo["not_carried"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n.as_str().unwrap_or("").contains("GEO")),
        "{geo}"
    );
    // verify names the two items it cannot find, and nothing else.
    let o = env.cli(&["verify", "--json"]).await;
    assert_eq!(o.code, 1, "{}", dump(&o));
    let v: serde_json::Value = serde_json::from_str(&o.stdout).unwrap();
    let missing: Vec<&serde_json::Value> = v["mailboxes"][0]["collections"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|c| c["missing"].as_array().unwrap())
        .collect();
    assert_eq!(missing.len(), 2, "{missing:?}");
    let differs: usize = v["mailboxes"][0]["collections"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["differs"].as_array().unwrap().len() + c["extra"].as_array().unwrap().len())
        .sum();
    assert_eq!(differs, 0, "{}", o.stdout);
}
