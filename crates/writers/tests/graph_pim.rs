//! The Graph contacts and calendars writer against the Graph emulator: round trips, series with
//! changed occurrences, idempotency, lost answers, throttling, no invitations.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use o365_migrate_graph_emulator::{Emulator, EmulatorConfig, Faults, UserConfig};
use o365_migrate_target::graph::{
    GraphTarget, GraphTargetConfig, PIM_STATE_PROPERTY_ID, RetryPolicy,
};
use o365_migrate_target::pim::{
    FINGERPRINT_PROPERTY_ID, PimBody, PimCollection, PimCollectionSpec, PimKind,
    PimOccurrenceChange, PimWriteItem, PimWriteOutcome, PimWriter,
};
use o365_migrate_target::{Endpoints, ErrorScope, SecretString, Target, identity::Credential};
use serde_json::json;

const USER: &str = "pim@contoso.example";

async fn setup(faults: Faults) -> (Emulator, GraphTarget, Arc<dyn PimWriter>) {
    let mut c = EmulatorConfig::default();
    c.tenants[0].users = vec![UserConfig::with_mailbox(USER)];
    c.faults = faults;
    let emu = Emulator::start(c).await.unwrap();
    let app = &emu.config().tenants[0].apps[0];
    let mut tc = GraphTargetConfig::new(
        emu.tenant_id(),
        app.client_id.clone(),
        Credential::ClientSecret(SecretString::new("emulator-secret")),
        Endpoints::emulator(emu.url()),
    );
    tc.retry = RetryPolicy {
        max_retry_after: Duration::from_millis(50),
        base_delay: Duration::from_millis(10),
        max_attempts: 10,
        ..RetryPolicy::default()
    };
    let target = GraphTarget::new(tc).unwrap();
    let w = target.open_pim(USER).await.unwrap().unwrap();
    (emu, target, w)
}

async fn collection(w: &Arc<dyn PimWriter>, kind: PimKind) -> PimCollection {
    w.ensure_collection(&PimCollectionSpec { kind, name: None })
        .await
        .unwrap()
}

fn contact(n: usize, photo: Option<usize>) -> PimWriteItem {
    PimWriteItem {
        fingerprint: format!("pim1:contact{n:04}"),
        body: PimBody::Contact {
            json: json!({"givenName": format!("Ann{n}"), "surname": "Example",
                "emailAddresses": [{"address": format!("ann{n}@example.com"), "name": "Ann"}]})
            .to_string(),
            photo: photo.map(|len| ("image/jpeg".to_string(), Bytes::from(vec![0xAB; len]))),
        },
    }
}

/// A weekly series in a Windows zone, Mondays 09:00 from 1 March 2027, five occurrences
/// (08:00Z until 28 March, 07:00Z after); the second cancelled, the third moved by two hours.
fn series(n: usize, with_changes: bool) -> PimWriteItem {
    let occurrences = if with_changes {
        vec![
            PimOccurrenceChange {
                original_start_utc: "2027-03-08T08:00:00Z".into(),
                patch_json: None,
            },
            PimOccurrenceChange {
                original_start_utc: "2027-03-15T08:00:00Z".into(),
                patch_json: Some(
                    json!({"subject": "Moved",
                        "start": {"dateTime": "2027-03-15T11:00:00", "timeZone": "W. Europe Standard Time"},
                        "end": {"dateTime": "2027-03-15T11:30:00", "timeZone": "W. Europe Standard Time"}})
                    .to_string(),
                ),
            },
        ]
    } else {
        Vec::new()
    };
    PimWriteItem {
        fingerprint: format!("pim1:series{n:04}"),
        body: PimBody::Event {
            json: json!({"subject": format!("Standup {n}"),
                "start": {"dateTime": "2027-03-01T09:00:00", "timeZone": "W. Europe Standard Time"},
                "end": {"dateTime": "2027-03-01T09:30:00", "timeZone": "W. Europe Standard Time"},
                "recurrence": {"pattern": {"type": "weekly", "interval": 1, "daysOfWeek": ["monday"], "firstDayOfWeek": "monday"},
                    "range": {"type": "numbered", "startDate": "2027-03-01", "numberOfOccurrences": 5,
                        "recurrenceTimeZone": "W. Europe Standard Time"}},
                // Never sent: the writer writes appointments.
                "attendees": [{"emailAddress": {"address": "bob@example.com"}, "type": "required"}],
                "isReminderOn": false})
            .to_string(),
            occurrences,
            attachments: Vec::new(),
        },
    }
}

/// Writes as the engine does: a failure is tried again (up to six times in all).
async fn write_retrying(
    w: &Arc<dyn PimWriter>,
    c: &PimCollection,
    item: &PimWriteItem,
) -> Result<PimWriteOutcome, o365_migrate_target::Error> {
    let mut last = None;
    for _ in 0..6 {
        match w.write(c, item).await {
            Ok(o) => return Ok(o),
            Err(e) => last = Some(e),
        }
    }
    Err(last.expect("six attempts"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_contact_with_a_photo_round_trips() {
    let (emu, _t, w) = setup(Faults::default()).await;
    let c = collection(&w, PimKind::Contacts).await;
    let item = contact(1, Some(5_000));
    let out = w.write(&c, &item).await.unwrap();
    assert!(matches!(out, PimWriteOutcome::Created { .. }), "{out:?}");
    let back = w.read(&c, out.id(), ("", "")).await.unwrap();
    assert_eq!(back.fingerprint.as_deref(), Some("pim1:contact0001"));
    assert_eq!(back.photo_len, Some(5_000));
    let v: serde_json::Value = serde_json::from_str(&back.json).unwrap();
    assert_eq!(v["givenName"], "Ann1");
    let stored = emu.contacts(USER);
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].folder, "Contacts");
    assert_eq!(stored[0].photo, Some(("image/jpeg".to_string(), 5_000)));
    assert_eq!(stored[0].extended(PIM_STATE_PROPERTY_ID), Some("complete"));
    // A named folder: created once, found the second time (names compared ignoring case).
    let spec = PimCollectionSpec {
        kind: PimKind::Contacts,
        name: Some("Friends".into()),
    };
    let a = w.ensure_collection(&spec).await.unwrap();
    let b = w
        .ensure_collection(&PimCollectionSpec {
            kind: PimKind::Contacts,
            name: Some("FRIENDS".into()),
        })
        .await
        .unwrap();
    assert!(a.created && !b.created);
    assert_eq!(a.id, b.id);
    let out = w.write(&a, &contact(2, None)).await.unwrap();
    assert_eq!(w.list(&a).await.unwrap().len(), 1);
    assert_eq!(
        w.read(&a, out.id(), ("", "")).await.unwrap().photo_len,
        None
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_series_with_a_cancelled_and_a_moved_occurrence_reads_back_right() {
    let (emu, _t, w) = setup(Faults::default()).await;
    let c = collection(&w, PimKind::Calendar).await;
    let out = w.write(&c, &series(1, true)).await.unwrap();
    let back = w
        .read(
            &c,
            out.id(),
            ("2027-02-01T00:00:00Z", "2027-05-01T00:00:00Z"),
        )
        .await
        .unwrap();
    let starts: Vec<&str> = back
        .instances
        .iter()
        .map(|i| i.start_utc.as_str())
        .collect();
    assert_eq!(
        starts,
        [
            "2027-03-01T08:00:00Z",
            "2027-03-15T10:00:00Z",
            "2027-03-22T08:00:00Z",
            "2027-03-29T07:00:00Z"
        ]
    );
    assert_eq!(
        back.instances[1].original_start_utc.as_deref(),
        Some("2027-03-15T08:00:00Z")
    );
    assert!(back.instances[1].json.contains("Moved"));
    assert_eq!(back.fingerprint.as_deref(), Some("pim1:series0001"));
    let stored = emu.events(USER);
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].cancelled, ["2027-03-08T08:00:00Z"]);
    assert_eq!(stored[0].extended(PIM_STATE_PROPERTY_ID), Some("complete"));
    assert!(stored[0].properties.get("attendees").is_none());
    assert_eq!(emu.invitations_sent(USER), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_write_twice_is_already_present_and_an_incomplete_one_is_finished() {
    let (emu, target, w) = setup(Faults::default()).await;
    let c = collection(&w, PimKind::Calendar).await;
    let first = w.write(&c, &series(1, true)).await.unwrap();
    let second = w.write(&c, &series(1, true)).await.unwrap();
    assert_eq!(
        second,
        PimWriteOutcome::AlreadyPresent {
            id: first.id().to_string()
        }
    );
    // A new writer (a later run) finds it by listing.
    let w2 = target.open_pim(USER).await.unwrap().unwrap();
    let again = w2.write(&c, &series(1, true)).await.unwrap();
    assert!(matches!(again, PimWriteOutcome::AlreadyPresent { .. }));
    assert_eq!(emu.events(USER).len(), 1);
    let listed = w2.list(&c).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].fingerprint.as_deref(), Some("pim1:series0001"));

    // Work after creation that fails leaves the item incomplete; the next write finishes it.
    let mut broken = series(2, true);
    if let PimBody::Event { occurrences, .. } = &mut broken.body {
        occurrences[1].original_start_utc = "2027-03-16T08:00:00Z".into();
    }
    assert!(w.write(&c, &broken).await.is_err());
    let incomplete = emu
        .events(USER)
        .into_iter()
        .find(|e| e.extended(FINGERPRINT_PROPERTY_ID) == Some("pim1:series0002"))
        .unwrap();
    assert_eq!(
        incomplete.extended(PIM_STATE_PROPERTY_ID),
        Some("incomplete")
    );
    let fixed = w.write(&c, &series(2, true)).await.unwrap();
    assert_eq!(
        fixed,
        PimWriteOutcome::Created {
            id: incomplete.id.clone()
        }
    );
    let done = emu
        .events(USER)
        .into_iter()
        .find(|e| e.id == incomplete.id)
        .unwrap();
    assert_eq!(done.extended(PIM_STATE_PROPERTY_ID), Some("complete"));
    assert_eq!(done.exceptions.len(), 1);
    assert_eq!(emu.events(USER).len(), 2);

    // An item of another kind than the collection's: an item-scope error.
    let err = w
        .write(
            &c,
            &PimWriteItem {
                fingerprint: "pim1:task".into(),
                body: PimBody::Task { json: "{}".into() },
            },
        )
        .await
        .unwrap_err();
    assert_eq!(err.scope(), ErrorScope::Item);
}

/// Answers lost after the write (504, dropped connections) never make a second copy: 50 items
/// end as exactly 50, each complete, within the mailbox's limits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_answers_never_duplicate_and_limits_hold() {
    let faults = Faults {
        seed: 0x18,
        rate_504_after_write: 0.2,
        rate_reset_after_write: 0.15,
        ..Faults::default()
    };
    let (emu, _t, w) = setup(faults).await;
    let contacts = collection(&w, PimKind::Contacts).await;
    let calendar = collection(&w, PimKind::Calendar).await;
    let mut set = tokio::task::JoinSet::new();
    for n in 0..50 {
        let (w, c) = if n % 2 == 0 {
            (w.clone(), contacts.clone())
        } else {
            (w.clone(), calendar.clone())
        };
        set.spawn(async move {
            let item = if n % 2 == 0 {
                contact(n, (n % 4 == 0).then_some(1_000))
            } else {
                series(n, n % 3 == 0)
            };
            write_retrying(&w, &c, &item).await
        });
    }
    while let Some(r) = set.join_next().await {
        r.unwrap().unwrap();
    }
    let cs = emu.contacts(USER);
    let es = emu.events(USER);
    assert_eq!(
        cs.len() + es.len(),
        50,
        "{} contacts, {} events",
        cs.len(),
        es.len()
    );
    let mut fps: Vec<String> = cs
        .iter()
        .map(|c| c.extended(FINGERPRINT_PROPERTY_ID).unwrap().to_string())
        .chain(
            es.iter()
                .map(|e| e.extended(FINGERPRINT_PROPERTY_ID).unwrap().to_string()),
        )
        .collect();
    fps.sort();
    fps.dedup();
    assert_eq!(fps.len(), 50);
    for c in &cs {
        assert_ne!(c.extended(PIM_STATE_PROPERTY_ID), Some("incomplete"));
    }
    for e in &es {
        assert_ne!(e.extended(PIM_STATE_PROPERTY_ID), Some("incomplete"));
    }
    assert!(emu.after_write_faults() > 0);
    assert_eq!(emu.invitations_sent(USER), 0);
    emu.assert_limits_respected().unwrap();
}

/// Every contact and event of the pim crate's fixtures, as that crate converts them, goes into
/// the emulator (whose recurrence expansion is its own): all accepted, and a series reads back
/// without its cancelled occurrences and with its changed ones where they were moved to.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pim_fixtures_write_and_read_back() {
    use base64::Engine;
    let (emu, _t, w) = setup(Faults::default()).await;
    let contacts = collection(&w, PimKind::Contacts).await;
    let calendar = collection(&w, PimKind::Calendar).await;
    let tasks = collection(&w, PimKind::Tasks).await;
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/pim");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(".expected.json"))
        .collect();
    files.sort();
    let (mut written, mut series_checked) = (0, 0);
    for f in files {
        let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&f).unwrap()).unwrap();
        for it in v["items"].as_array().into_iter().flatten() {
            let fingerprint = it["fingerprint"].as_str().unwrap_or_default().to_string();
            let (c, body) =
                match it["kind"].as_str() {
                    Some("contact") => {
                        let photo = it["photo"]["base64"].as_str().map(|b| {
                            (
                                it["photo"]["contentType"].as_str().unwrap().to_string(),
                                Bytes::from(
                                    base64::engine::general_purpose::STANDARD.decode(b).unwrap(),
                                ),
                            )
                        });
                        (
                            &contacts,
                            PimBody::Contact {
                                json: it["graph"].to_string(),
                                photo,
                            },
                        )
                    }
                    Some("event") => {
                        let mut occurrences: Vec<PimOccurrenceChange> = it["cancelled_occurrences"]
                            .as_array()
                            .into_iter()
                            .flatten()
                            .map(|o| PimOccurrenceChange {
                                original_start_utc: o["utc"].as_str().unwrap().to_string(),
                                patch_json: None,
                            })
                            .collect();
                        occurrences.extend(it["overrides"].as_array().into_iter().flatten().map(
                            |o| PimOccurrenceChange {
                                original_start_utc:
                                    o["original_start"]["utc"].as_str().unwrap().to_string(),
                                patch_json: Some(o["patch"].to_string()),
                            },
                        ));
                        (
                            &calendar,
                            PimBody::Event {
                                json: it["graph"].to_string(),
                                occurrences,
                                attachments: Vec::new(),
                            },
                        )
                    }
                    Some("task") => (
                        &tasks,
                        PimBody::Task {
                            json: it["graph"].to_string(),
                        },
                    ),
                    _ => continue,
                };
            let item = PimWriteItem { fingerprint, body };
            let out = w
                .write(c, &item)
                .await
                .unwrap_or_else(|e| panic!("{}: {e}", f.display()));
            written += 1;
            let PimBody::Event { occurrences, .. } = &item.body else {
                continue;
            };
            if it["graph"]["recurrence"].is_null() {
                continue;
            }
            let back = w
                .read(
                    c,
                    out.id(),
                    ("2025-01-01T00:00:00Z", "2028-01-01T00:00:00Z"),
                )
                .await
                .unwrap();
            assert!(!back.instances.is_empty(), "{}", f.display());
            for ch in occurrences {
                let at = back
                    .instances
                    .iter()
                    .find(|i| i.original_start_utc.as_deref() == Some(&ch.original_start_utc));
                match &ch.patch_json {
                    None => assert!(
                        at.is_none(),
                        "{}: cancelled {}",
                        f.display(),
                        ch.original_start_utc
                    ),
                    Some(_) => assert!(
                        at.is_some_and(|i| i.start_utc != ch.original_start_utc),
                        "{}: moved {}",
                        f.display(),
                        ch.original_start_utc
                    ),
                }
            }
            series_checked += 1;
        }
    }
    assert!(written >= 25, "{written}");
    assert!(series_checked >= 4, "{series_checked}");
    assert_eq!(emu.tasks(USER).len(), 1);
    assert_eq!(emu.invitations_sent(USER), 0);
}

/// An event's attachments are added once; one of 3 MB or more is refused before anything is
/// written; a deleted item is gone, and deleting it again is not an error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attachments_and_deletes() {
    use o365_migrate_target::pim::PimAttachment;
    let (emu, _t, w) = setup(Faults::default()).await;
    let c = collection(&w, PimKind::Calendar).await;
    let with = |fp: &str, len: usize| {
        let mut item = series(9, false);
        item.fingerprint = fp.to_string();
        if let PimBody::Event { attachments, .. } = &mut item.body {
            attachments.push(PimAttachment {
                name: "agenda.pdf".into(),
                content_type: "application/pdf".into(),
                bytes: Bytes::from(vec![7u8; len]),
            });
        }
        item
    };
    let out = w.write(&c, &with("pim1:att", 10_000)).await.unwrap();
    let again = w.write(&c, &with("pim1:att", 10_000)).await.unwrap();
    assert!(matches!(again, PimWriteOutcome::AlreadyPresent { .. }));
    let stored = emu.events(USER);
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].attachments.len(), 1);
    assert_eq!(stored[0].attachments[0].size, 10_000);
    let err = w
        .write(&c, &with("pim1:big", 3 * 1024 * 1024))
        .await
        .unwrap_err();
    assert!(
        matches!(err, o365_migrate_target::Error::TooLarge { .. }),
        "{err}"
    );
    assert_eq!(emu.events(USER).len(), 1);
    w.delete(&c, out.id()).await.unwrap();
    assert!(emu.events(USER).is_empty());
    w.delete(&c, out.id()).await.unwrap();
    assert!(w.list(&c).await.unwrap().is_empty());
    // Written anew after the delete: the index forgot it.
    let fresh = w.write(&c, &with("pim1:att", 10_000)).await.unwrap();
    assert!(matches!(fresh, PimWriteOutcome::Created { .. }));
}

fn task(n: usize) -> PimWriteItem {
    PimWriteItem {
        fingerprint: format!("pim1:task{n:04}"),
        body: PimBody::Task {
            json: json!({"title": format!("File report {n}"), "importance": "low", "status": "notStarted",
                "dueDateTime": {"dateTime": "2026-05-10T00:00:00", "timeZone": "W. Europe Standard Time"}})
            .to_string(),
        },
    }
}

/// Tasks go into To Do lists with their fingerprint in a linked resource: written once even when
/// answers are lost, found again by a later writer, read back and deleted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tasks_go_into_todo_lists_once() {
    let faults = Faults {
        seed: 0x7a5c,
        rate_504_after_write: 0.2,
        rate_reset_after_write: 0.15,
        ..Faults::default()
    };
    let (emu, target, w) = setup(faults).await;
    let default = collection(&w, PimKind::Tasks).await;
    assert_eq!(default.name, "Tasks");
    let spec = PimCollectionSpec {
        kind: PimKind::Tasks,
        name: Some("Chores".into()),
    };
    let chores = w.ensure_collection(&spec).await.unwrap();
    assert_eq!(w.ensure_collection(&spec).await.unwrap().id, chores.id);
    let mut set = tokio::task::JoinSet::new();
    for n in 0..20 {
        let (w, c) = (
            w.clone(),
            if n % 2 == 0 {
                default.clone()
            } else {
                chores.clone()
            },
        );
        set.spawn(async move { write_retrying(&w, &c, &task(n)).await });
    }
    while let Some(r) = set.join_next().await {
        r.unwrap().unwrap();
    }
    let tasks = emu.tasks(USER);
    assert_eq!(tasks.len(), 20);
    assert_eq!(tasks.iter().filter(|t| t.list == "Chores").count(), 10);
    let w2 = target.open_pim(USER).await.unwrap().unwrap();
    let again = w2.write(&chores, &task(1)).await.unwrap();
    assert!(
        matches!(again, PimWriteOutcome::AlreadyPresent { .. }),
        "{again:?}"
    );
    let back = w2.read(&chores, again.id(), ("", "")).await.unwrap();
    assert_eq!(back.fingerprint.as_deref(), Some("pim1:task0001"));
    assert!(back.json.contains("File report 1"));
    w2.delete(&chores, again.id()).await.unwrap();
    assert_eq!(emu.tasks(USER).len(), 19);
    emu.assert_limits_respected().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_permission_check_names_a_missing_contacts_calendars_or_tasks_permission() {
    let mut c = EmulatorConfig::default();
    c.tenants[0].users = vec![UserConfig::with_mailbox(USER)];
    c.tenants[0].apps[0]
        .roles
        .retain(|r| r != "Calendars.ReadWrite" && r != "Tasks.ReadWrite.All");
    let emu = Emulator::start(c).await.unwrap();
    let app = &emu.config().tenants[0].apps[0];
    let target = |extra: &[&str]| {
        let mut tc = GraphTargetConfig::new(
            emu.tenant_id(),
            app.client_id.clone(),
            Credential::ClientSecret(SecretString::new("emulator-secret")),
            Endpoints::emulator(emu.url()),
        );
        tc.extra_permissions = extra.iter().map(|s| (*s).to_owned()).collect();
        GraphTarget::new(tc).unwrap()
    };
    // Mail alone needs neither.
    target(&[]).check().await.unwrap();
    target(&["Contacts.ReadWrite"]).check().await.unwrap();
    let err = target(&[
        "Contacts.ReadWrite",
        "Calendars.ReadWrite",
        "Tasks.ReadWrite.All",
    ])
    .check()
    .await
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("Calendars.ReadWrite, Tasks.ReadWrite.All")
            && !err.contains("Contacts.ReadWrite,"),
        "{err}"
    );
    assert!(err.contains("Grant admin consent"), "{err}");
}
