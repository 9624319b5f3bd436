//! The whole generated contacts/calendar corpus (testkit's `PimCorpus`, issue 18's profile)
//! parses without errors, and every event's occurrences, expanded by this crate from the
//! iCalendar, agree with the generator's own expectations (an independent oracle).

use o365_migrate_pim::{CalendarItem, parse_calendar, parse_contacts};
use o365_migrate_testkit::pim_corpus::{PimCorpus, PimCorpusProfile, PimKind, PimManifestEntry};
use o365_migrate_testkit::{Radicale, RadicaleOptions};

fn check(corpus: &PimCorpus) {
    check_items(corpus, corpus.items());
}

/// Checks each (manifest entry, item text) pair against the manifest.
fn check_items<'a>(
    corpus: &PimCorpus,
    items: impl Iterator<Item = (&'a PimManifestEntry, String)>,
) {
    let mut failures = Vec::new();
    let (mut contacts, mut events) = (0, 0);
    for (entry, data) in items {
        match entry.kind {
            PimKind::Contact => {
                let items = parse_contacts(&entry.href, data.as_bytes()).unwrap();
                assert_eq!(items.len(), 1, "{}", entry.href);
                match &items[0] {
                    Ok(c) => {
                        assert_eq!(c.uid.as_deref(), Some(entry.uid.as_str()));
                        assert_eq!(c.photo.is_some(), entry.photo, "{}", entry.href);
                        let json: serde_json::Value =
                            serde_json::from_str(&c.graph_json()).unwrap();
                        assert_eq!(json["displayName"], entry.summary.as_str());
                        let emails: Vec<&str> = json["emailAddresses"]
                            .as_array()
                            .unwrap()
                            .iter()
                            .map(|e| e["address"].as_str().unwrap())
                            .collect();
                        assert_eq!(emails, entry.emails, "{}", entry.href);
                        contacts += 1;
                    }
                    Err(e) => failures.push(format!("{}: {e}", entry.href)),
                }
            }
            PimKind::Event => {
                let items = parse_calendar(&entry.href, data.as_bytes()).unwrap();
                assert_eq!(items.len(), 1, "{}", entry.href);
                let ev = match &items[0] {
                    Ok(CalendarItem::Event(ev)) => ev,
                    Ok(other) => panic!("{}: not an event: {other:?}", entry.href),
                    Err(e) => {
                        failures.push(format!("{}: {e}", entry.href));
                        continue;
                    }
                };
                events += 1;
                assert_eq!(
                    ev.series_not_expressible, !entry.expressible,
                    "{}",
                    entry.href
                );
                let window = ev.verify_window();
                if window != entry.window {
                    failures.push(format!(
                        "{}: window {window:?}, generator {:?}",
                        entry.href, entry.window
                    ));
                }
                let got: Vec<(String, String, String)> = ev
                    .occurrences((&entry.window.0, &entry.window.1))
                    .into_iter()
                    .map(|o| (o.start_utc, o.end_utc, o.subject))
                    .collect();
                let want: Vec<(String, String, String)> = entry
                    .occurrences
                    .iter()
                    .map(|o| (o.start_utc.clone(), o.end_utc.clone(), o.subject.clone()))
                    .collect();
                if got != want {
                    let first = got
                        .iter()
                        .zip(&want)
                        .position(|(a, b)| a != b)
                        .unwrap_or(got.len().min(want.len()));
                    failures.push(format!(
                        "{} ({} {:?}): {} occurrences, generator {}; first difference at #{first}: {:?} vs {:?}",
                        entry.href,
                        entry.zone,
                        entry.rrule,
                        got.len(),
                        want.len(),
                        got.get(first),
                        want.get(first)
                    ));
                }
                assert_eq!(
                    ev.cancelled_occurrences.len(),
                    entry.cancelled.len(),
                    "{}",
                    entry.href
                );
                assert_eq!(ev.overrides.len(), entry.moved.len(), "{}", entry.href);
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} items disagree:\n{}",
        failures.len(),
        corpus.manifest().len(),
        failures.join("\n")
    );
    let p = corpus.profile();
    assert_eq!(contacts, p.contacts);
    assert!(events >= p.events);
}

#[test]
fn issue18_corpus_parses_and_occurrences_agree_with_the_generator() {
    let mut corpus = PimCorpus::generate(&PimCorpusProfile::issue18());
    check(&corpus);
    // After a change set: changed series (an hour later, new subjects) and new ones.
    corpus.change(50, 20);
    check(&corpus);
}

/// The small corpus as Radicale serves it back (Radicale re-serialises what it stores):
/// every item still parses and its occurrences still agree with the generator.
#[test]
fn small_corpus_served_by_radicale_agrees() {
    let dav = Radicale::start(RadicaleOptions {
        users: vec![("dora".into(), "dora-Pw-2b7e".into())],
        tls: false,
    })
    .expect("start Radicale");
    let corpus = PimCorpus::generate(&PimCorpusProfile::small());
    corpus.load(&dav, "dora").unwrap();
    let served: Vec<(&PimManifestEntry, String)> = corpus
        .manifest()
        .iter()
        .map(|e| {
            let answer = dav
                .request(Some("dora"), "GET", &format!("dora/{}", e.href), &[], b"")
                .unwrap();
            assert_eq!(answer.status, 200, "{}", e.href);
            (e, String::from_utf8(answer.body).unwrap())
        })
        .collect();
    check_items(&corpus, served.into_iter());
}

/// A perfect target for every event of issue 18's corpus: the create body as the stored event
/// and the generator's occurrences as its instances. `compare_event` finds nothing; without
/// one instance, exactly that one.
#[test]
fn compare_event_agrees_with_a_perfect_target() {
    use o365_migrate_pim::{TargetInstance, compare_event};
    let corpus = PimCorpus::generate(&PimCorpusProfile::issue18());
    let mut failures = Vec::new();
    for (entry, data) in corpus.items() {
        if entry.kind != PimKind::Event {
            continue;
        }
        let items = parse_calendar(&entry.href, data.as_bytes()).unwrap();
        let Some(Ok(CalendarItem::Event(ev))) = items.into_iter().next() else {
            panic!("{}: not an event", entry.href);
        };
        let instances: Vec<TargetInstance> = if entry.rrule.is_some() {
            entry
                .occurrences
                .iter()
                .map(|o| TargetInstance {
                    start_utc: o.start_utc.clone(),
                    end_utc: o.end_utc.clone(),
                    original_start_utc: Some(
                        entry
                            .moved
                            .iter()
                            .find(|m| m.start_utc == o.start_utc)
                            .map_or(o.start_utc.clone(), |m| m.original_start_utc.clone()),
                    ),
                    json: serde_json::json!({ "subject": o.subject }).to_string(),
                })
                .collect()
        } else {
            Vec::new()
        };
        let diffs = compare_event(&ev, &ev.graph_json(), &instances);
        if !diffs.is_empty() {
            failures.push(format!("{}: {diffs:?}", entry.href));
        }
        if instances.len() > 1 {
            let fewer = &instances[1..];
            let diffs = compare_event(&ev, &ev.graph_json(), fewer);
            if diffs.len() != 1 {
                failures.push(format!(
                    "{} without its first instance: {diffs:?}",
                    entry.href
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
