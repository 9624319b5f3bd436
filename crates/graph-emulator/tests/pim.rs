//! Contacts and calendars, checked over HTTP: folders, photos, events, recurrence expansion,
//! occurrences deleted and changed, extended-property lookups, `transactionId`, validation.

use o365_migrate_graph_emulator::{Emulator, EmulatorConfig, UserConfig};
use serde_json::{Value, json};

const UPN: &str = "alice@contoso.example";
const FP: &str = "String {6d3b1f52-8f0e-4d4a-9c8e-1f0a5e7c2b90} Name o365-migrate-pim-fingerprint";

fn http() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder().build().unwrap()
}

async fn start_with(edit: impl FnOnce(&mut EmulatorConfig)) -> (Emulator, String) {
    let mut c = EmulatorConfig::default();
    c.tenants[0].users.push(UserConfig::with_mailbox(UPN));
    edit(&mut c);
    let emu = Emulator::start(c).await.unwrap();
    let app = &emu.config().tenants[0].apps[0];
    let v: Value = http()
        .post(format!(
            "{}/{}/oauth2/v2.0/token",
            emu.url(),
            emu.tenant_id()
        ))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", app.client_id.as_str()),
            ("scope", "https://graph.microsoft.com/.default"),
            ("client_secret", "emulator-secret"),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let tok = v["access_token"].as_str().unwrap().to_string();
    (emu, tok)
}

async fn start() -> (Emulator, String) {
    start_with(|_| {}).await
}

async fn call(
    emu: &Emulator,
    tok: &str,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let mut rb = http()
        .request(m, format!("{}/v1.0/users/{UPN}{path}", emu.url()))
        .bearer_auth(tok);
    if let Some(b) = body {
        rb = rb.json(&b);
    }
    let r = rb.send().await.unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

fn event(subject: &str, start: &str, end: &str, zone: &str, recurrence: Value) -> Value {
    json!({"subject": subject,
        "start": {"dateTime": start, "timeZone": zone},
        "end": {"dateTime": end, "timeZone": zone},
        "recurrence": recurrence})
}

async fn create_event(emu: &Emulator, tok: &str, body: Value) -> String {
    let (s, v) = call(emu, tok, "POST", "/calendar/events", Some(body)).await;
    assert_eq!(s, 201, "{v}");
    v["id"].as_str().unwrap().to_string()
}

async fn instances(emu: &Emulator, tok: &str, id: &str, from: &str, to: &str) -> Vec<Value> {
    let (s, v) = call(
        emu,
        tok,
        "GET",
        &format!("/events/{id}/instances?startDateTime={from}&endDateTime={to}&$top=100"),
        None,
    )
    .await;
    assert_eq!(s, 200, "{v}");
    v["value"].as_array().unwrap().clone()
}

fn starts(list: &[Value]) -> Vec<String> {
    list.iter()
        .map(|i| i["originalStart"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn weekly_series_in_a_windows_zone_shifts_in_utc_across_the_dst_change() {
    let (emu, tok) = start().await;
    let id = create_event(
        &emu,
        &tok,
        event(
            "Standup",
            "2027-03-01T09:00:00.0000000",
            "2027-03-01T09:30:00.0000000",
            "W. Europe Standard Time",
            json!({"pattern": {"type": "weekly", "interval": 1, "daysOfWeek": ["monday"], "firstDayOfWeek": "monday"},
                "range": {"type": "endDate", "startDate": "2027-03-01", "endDate": "2027-04-05",
                    "recurrenceTimeZone": "W. Europe Standard Time"}}),
        ),
    )
    .await;
    let list = instances(
        &emu,
        &tok,
        &id,
        "2027-02-01T00:00:00Z",
        "2027-05-01T00:00:00Z",
    )
    .await;
    // Central European Time is UTC+1 until 28 March 2027, UTC+2 after: 09:00 local is 08:00Z,
    // then 07:00Z.
    assert_eq!(
        starts(&list),
        [
            "2027-03-01T08:00:00Z",
            "2027-03-08T08:00:00Z",
            "2027-03-15T08:00:00Z",
            "2027-03-22T08:00:00Z",
            "2027-03-29T07:00:00Z",
            "2027-04-05T07:00:00Z",
        ]
    );
    assert_eq!(list[4]["start"]["dateTime"], "2027-03-29T07:00:00.0000000");
    assert_eq!(list[4]["end"]["dateTime"], "2027-03-29T07:30:00.0000000");
    assert_eq!(list[0]["type"], "occurrence");
    assert_eq!(list[0]["seriesMasterId"], id.as_str());
    // The inspection API expands the same way.
    let inspected = emu
        .event_instances(UPN, &id, "2027-03-20T00:00:00Z", "2027-04-01T00:00:00Z")
        .unwrap();
    assert_eq!(
        starts(&inspected),
        ["2027-03-22T08:00:00Z", "2027-03-29T07:00:00Z"]
    );
}

#[tokio::test]
async fn relative_monthly_last_friday_with_a_numbered_range() {
    let (emu, tok) = start().await;
    let id = create_event(
        &emu,
        &tok,
        event(
            "Review",
            "2027-01-29T10:00:00",
            "2027-01-29T11:00:00",
            "Eastern Standard Time",
            json!({"pattern": {"type": "relativeMonthly", "interval": 1, "daysOfWeek": ["friday"], "index": "last"},
                "range": {"type": "numbered", "startDate": "2027-01-29", "numberOfOccurrences": 4}}),
        ),
    )
    .await;
    let list = instances(
        &emu,
        &tok,
        &id,
        "2027-01-01T00:00:00Z",
        "2028-12-31T00:00:00Z",
    )
    .await;
    // US daylight time from 14 March 2027: 10:00 local is 15:00Z, then 14:00Z.
    assert_eq!(
        starts(&list),
        [
            "2027-01-29T15:00:00Z",
            "2027-02-26T15:00:00Z",
            "2027-03-26T14:00:00Z",
            "2027-04-30T14:00:00Z",
        ]
    );
}

#[tokio::test]
async fn a_deleted_and_a_patched_occurrence_show_in_later_expansions() {
    let (emu, tok) = start().await;
    let id = create_event(
        &emu,
        &tok,
        event(
            "Daily",
            "2027-06-01T12:00:00",
            "2027-06-01T13:00:00",
            "UTC",
            json!({"pattern": {"type": "daily", "interval": 2},
                "range": {"type": "numbered", "startDate": "2027-06-01", "numberOfOccurrences": 4}}),
        ),
    )
    .await;
    let (from, to) = ("2027-05-01T00:00:00Z", "2027-07-01T00:00:00Z");
    let list = instances(&emu, &tok, &id, from, to).await;
    assert_eq!(list.len(), 4);
    let second = list[1]["id"].as_str().unwrap().to_string();
    let third = list[2]["id"].as_str().unwrap().to_string();
    let (s, _) = call(&emu, &tok, "DELETE", &format!("/events/{second}"), None).await;
    assert_eq!(s, 204);
    // Deleting it again: it is gone.
    let (s, _) = call(&emu, &tok, "DELETE", &format!("/events/{second}"), None).await;
    assert_eq!(s, 404);
    let (s, v) = call(
        &emu,
        &tok,
        "PATCH",
        &format!("/events/{third}"),
        Some(json!({"subject": "Moved",
            "start": {"dateTime": "2027-06-05T15:00:00", "timeZone": "UTC"},
            "end": {"dateTime": "2027-06-05T16:00:00", "timeZone": "UTC"}})),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    let list = instances(&emu, &tok, &id, from, to).await;
    assert_eq!(
        starts(&list),
        [
            "2027-06-01T12:00:00Z",
            "2027-06-05T12:00:00Z",
            "2027-06-07T12:00:00Z"
        ]
    );
    assert_eq!(list[1]["type"], "exception");
    assert_eq!(list[1]["subject"], "Moved");
    assert_eq!(list[1]["start"]["dateTime"], "2027-06-05T15:00:00.0000000");
    let stored = &emu.events(UPN)[0];
    assert_eq!(stored.cancelled, ["2027-06-03T12:00:00Z"]);
    assert_eq!(stored.exceptions.len(), 1);
}

#[tokio::test]
async fn contacts_are_found_by_their_extended_property_and_paged() {
    let (emu, tok) = start().await;
    for (i, fp) in ["pim1:aaa", "pim1:bbb", "pim1:ccc"].iter().enumerate() {
        let (s, v) = call(
            &emu,
            &tok,
            "POST",
            "/contacts",
            Some(json!({"givenName": format!("N{i}"),
                "singleValueExtendedProperties": [{"id": FP, "value": fp}]})),
        )
        .await;
        assert_eq!(s, 201, "{v}");
    }
    let filter = format!(
        "singleValueExtendedProperties/Any(ep: ep/id eq '{FP}' and ep/value eq 'pim1:bbb')"
    );
    let expand = format!("singleValueExtendedProperties($filter=id eq '{FP}')");
    let url = format!(
        "/contacts?$filter={}&$expand={}",
        urlencode(&filter),
        urlencode(&expand)
    );
    let (s, v) = call(&emu, &tok, "GET", &url, None).await;
    assert_eq!(s, 200, "{v}");
    let found = v["value"].as_array().unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0]["givenName"], "N1");
    assert_eq!(
        found[0]["singleValueExtendedProperties"][0]["value"],
        "pim1:bbb"
    );
    // Paging: two pages of two and one.
    let (_, v) = call(&emu, &tok, "GET", "/contacts?$top=2", None).await;
    assert_eq!(v["value"].as_array().unwrap().len(), 2);
    let next = v["@odata.nextLink"].as_str().unwrap().to_string();
    let r: Value = http()
        .get(next)
        .bearer_auth(&tok)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(r["value"].as_array().unwrap().len(), 1);
    assert!(r.get("@odata.nextLink").is_none());
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~$".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

#[tokio::test]
async fn a_repeated_transaction_id_answers_the_event_already_created() {
    let (emu, tok) = start().await;
    let mut body = event(
        "Once",
        "2027-02-01T10:00:00",
        "2027-02-01T11:00:00",
        "UTC",
        Value::Null,
    );
    body["transactionId"] = json!("tx-1");
    let a = create_event(&emu, &tok, body.clone()).await;
    let b = create_event(&emu, &tok, body).await;
    assert_eq!(a, b);
    assert_eq!(emu.events(UPN).len(), 1);
    // Without attendees no invitation goes out; with them, one each.
    assert_eq!(emu.invitations_sent(UPN), 0);
    let mut meeting = event(
        "Meet",
        "2027-02-02T10:00:00",
        "2027-02-02T11:00:00",
        "UTC",
        Value::Null,
    );
    meeting["attendees"] =
        json!([{"emailAddress": {"address": "bob@example.com"}, "type": "required"}]);
    create_event(&emu, &tok, meeting).await;
    assert_eq!(emu.invitations_sent(UPN), 1);
}

#[tokio::test]
async fn an_unsupported_time_zone_or_an_invalid_recurrence_answers_400() {
    let (emu, tok) = start().await;
    let (s, v) = call(
        &emu,
        &tok,
        "POST",
        "/calendar/events",
        Some(event(
            "X",
            "2027-02-01T10:00:00",
            "2027-02-01T11:00:00",
            "Mars Standard Time",
            Value::Null,
        )),
    )
    .await;
    assert_eq!(s, 400, "{v}");
    assert_eq!(v["error"]["code"], "TimeZoneNotSupportedException");
    // IANA names the calendar API supports are accepted.
    let (s, v) = call(
        &emu,
        &tok,
        "POST",
        "/calendar/events",
        Some(event(
            "Y",
            "2027-02-01T10:00:00",
            "2027-02-01T11:00:00",
            "Europe/Paris",
            Value::Null,
        )),
    )
    .await;
    assert_eq!(s, 201, "{v}");
    for rec in [
        // weekly without daysOfWeek
        json!({"pattern": {"type": "weekly", "interval": 1}, "range": {"type": "noEnd", "startDate": "2027-02-01"}}),
        // interval 0
        json!({"pattern": {"type": "daily", "interval": 0}, "range": {"type": "noEnd", "startDate": "2027-02-01"}}),
        // absoluteMonthly without dayOfMonth
        json!({"pattern": {"type": "absoluteMonthly", "interval": 1}, "range": {"type": "noEnd", "startDate": "2027-02-01"}}),
        // range start not the event's start date
        json!({"pattern": {"type": "daily", "interval": 1}, "range": {"type": "noEnd", "startDate": "2027-02-02"}}),
        // endDate range without endDate
        json!({"pattern": {"type": "daily", "interval": 1}, "range": {"type": "endDate", "startDate": "2027-02-01"}}),
    ] {
        let (s, v) = call(
            &emu,
            &tok,
            "POST",
            "/calendar/events",
            Some(event(
                "Z",
                "2027-02-01T10:00:00",
                "2027-02-01T11:00:00",
                "UTC",
                rec.clone(),
            )),
        )
        .await;
        assert_eq!(s, 400, "{rec} -> {v}");
        assert_eq!(v["error"]["code"], "ErrorInvalidRecurrence", "{rec}");
    }
    assert_eq!(emu.events(UPN).len(), 1);
}

#[tokio::test]
async fn folders_calendars_photos_and_permissions() {
    let (emu, tok) = start().await;
    let (s, v) = call(
        &emu,
        &tok,
        "POST",
        "/contactFolders",
        Some(json!({"displayName": "Friends"})),
    )
    .await;
    assert_eq!(s, 201, "{v}");
    let folder = v["id"].as_str().unwrap().to_string();
    let (s, v) = call(
        &emu,
        &tok,
        "POST",
        "/contactFolders",
        Some(json!({"displayName": "FRIENDS"})),
    )
    .await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (409, Some("ErrorFolderExists"))
    );
    let (s, v) = call(
        &emu,
        &tok,
        "POST",
        "/calendars",
        Some(json!({"name": "Holidays"})),
    )
    .await;
    assert_eq!(s, 201, "{v}");
    let (s, v) = call(
        &emu,
        &tok,
        "POST",
        "/calendars",
        Some(json!({"name": "holidays"})),
    )
    .await;
    assert_eq!(s, 409, "{v}");
    let (_, v) = call(&emu, &tok, "GET", "/calendars", None).await;
    let cals = v["value"].as_array().unwrap();
    assert_eq!(cals.len(), 2);
    assert_eq!(cals[0]["isDefaultCalendar"], true);
    assert_eq!(cals[1]["isDefaultCalendar"], false);

    let (s, v) = call(
        &emu,
        &tok,
        "POST",
        &format!("/contactFolders/{folder}/contacts"),
        Some(json!({"givenName": "Ann", "emailAddresses": [{"address": "ann@example.com"}]})),
    )
    .await;
    assert_eq!(s, 201, "{v}");
    let id = v["id"].as_str().unwrap().to_string();
    let url = format!("{}/v1.0/users/{UPN}/contacts/{id}/photo/$value", emu.url());
    let (s, _) = call(
        &emu,
        &tok,
        "GET",
        &format!("/contacts/{id}/photo/$value"),
        None,
    )
    .await;
    assert_eq!(s, 404);
    let r = http()
        .put(&url)
        .bearer_auth(&tok)
        .header("content-type", "image/jpeg")
        .body(vec![0xFFu8, 0xD8, 0xFF, 0xE0, 1, 2, 3])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let r = http().get(&url).bearer_auth(&tok).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(r.bytes().await.unwrap().len(), 7);
    let stored = emu.contacts(UPN);
    assert_eq!(stored[0].folder, "Friends");
    assert_eq!(stored[0].photo, Some(("image/jpeg".to_string(), 7)));

    // Without Calendars.ReadWrite an event cannot be created.
    let (emu2, tok2) = start_with(|c| {
        c.tenants[0].apps[0]
            .roles
            .retain(|r| r != "Calendars.ReadWrite");
    })
    .await;
    let (s, _) = call(
        &emu2,
        &tok2,
        "POST",
        "/calendar/events",
        Some(event(
            "X",
            "2027-02-01T10:00:00",
            "2027-02-01T11:00:00",
            "UTC",
            Value::Null,
        )),
    )
    .await;
    assert_eq!(s, 403);
    let (s, _) = call(&emu2, &tok2, "GET", "/contacts", None).await;
    assert_eq!(s, 200);
}

#[tokio::test]
async fn todo_lists_and_tasks_with_linked_resources() {
    let (emu, tok) = start().await;
    let (s, v) = call(&emu, &tok, "GET", "/todo/lists", None).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["value"][0]["wellknownListName"], "defaultList");
    let list = v["value"][0]["id"].as_str().unwrap().to_string();
    let (s, v) = call(
        &emu,
        &tok,
        "POST",
        &format!("/todo/lists/{list}/tasks"),
        Some(json!({"title": "File the report",
            "dueDateTime": {"dateTime": "2026-05-10T00:00:00", "timeZone": "W. Europe Standard Time"},
            "linkedResources": [{"applicationName": "o365-migrate", "displayName": "fp", "externalId": "pim1:t"}]})),
    )
    .await;
    assert_eq!(s, 201, "{v}");
    let (s, v) = call(
        &emu,
        &tok,
        "POST",
        &format!("/todo/lists/{list}/tasks"),
        Some(json!({"title": "Bad", "dueDateTime": {"dateTime": "2026-05-10T00:00:00", "timeZone": "Nowhere"}})),
    )
    .await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (400, Some("TimeZoneNotSupportedException"))
    );
    // Linked resources only when expanded.
    let (_, v) = call(
        &emu,
        &tok,
        "GET",
        &format!("/todo/lists/{list}/tasks"),
        None,
    )
    .await;
    assert!(v["value"][0].get("linkedResources").is_none());
    let (_, v) = call(
        &emu,
        &tok,
        "GET",
        &format!("/todo/lists/{list}/tasks?$expand=linkedResources"),
        None,
    )
    .await;
    assert_eq!(v["value"][0]["linkedResources"][0]["externalId"], "pim1:t");
    assert!(v["value"][0]["linkedResources"][0]["id"].is_string());
    let tasks = emu.tasks(UPN);
    assert_eq!((tasks.len(), tasks[0].list.as_str()), (1, "Tasks"));
    // Without Tasks.ReadWrite.All nothing is written.
    let (emu2, tok2) = start_with(|c| {
        c.tenants[0].apps[0]
            .roles
            .retain(|r| r != "Tasks.ReadWrite.All");
    })
    .await;
    let (s, _) = call(
        &emu2,
        &tok2,
        "POST",
        "/todo/lists",
        Some(json!({"displayName": "X"})),
    )
    .await;
    assert_eq!(s, 403);
}
