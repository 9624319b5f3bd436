//! EWS writer contract tests against wiremock, with request and response shapes from
//! Microsoft's EWS reference (CreateItem, FindFolder, CreateFolder, FindItem, GetFolder,
//! ErrorServerBusy with BackOffMilliseconds, ErrorItemSave, ErrorFolderExists). Request bodies
//! are asserted too.

use std::time::{Duration, Instant};

use base64::Engine as _;
use bytes::Bytes;
use o365_migrate_target::ews::{EwsAuth, EwsTarget, EwsTargetConfig};
use o365_migrate_target::{
    Error, ErrorScope, Flags, FolderSpec, InternalDate, Target, WellKnownFolder, WriteItem,
    WriteOutcome,
};
use wiremock::matchers::{body_string_contains, method, path};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

const RAW: &[u8] = b"Message-ID: <m1@example.org>\r\nDate: Tue, 1 Jul 2003 10:52:37 +0200\r\nFrom: a@example.org\r\nTo: b@example.org\r\nSubject: R&D <report>\r\n\r\nHello\r\n";

fn soap(body: &str) -> String {
    format!(
        r#"<?xml version="1.0" encoding="utf-8"?><s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Header><h:ServerVersionInfo MajorVersion="15" MinorVersion="2" MajorBuildNumber="1544" MinorBuildNumber="4" xmlns:h="http://schemas.microsoft.com/exchange/services/2006/types"/></s:Header><s:Body xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xmlns:xsd="http://www.w3.org/2001/XMLSchema">{body}</s:Body></s:Envelope>"#
    )
}

fn response(op: &str, inner: &str) -> String {
    soap(&format!(
        r#"<m:{op}Response xmlns:m="http://schemas.microsoft.com/exchange/services/2006/messages" xmlns:t="http://schemas.microsoft.com/exchange/services/2006/types"><m:ResponseMessages>{inner}</m:ResponseMessages></m:{op}Response>"#
    ))
}

fn ok_xml(op: &str, inner: &str) -> ResponseTemplate {
    ResponseTemplate::new(200)
        .insert_header("Content-Type", "text/xml; charset=utf-8")
        .set_body_string(response(
            op,
            &format!(
                r#"<m:{op}ResponseMessage ResponseClass="Success"><m:ResponseCode>NoError</m:ResponseCode>{inner}</m:{op}ResponseMessage>"#
            ),
        ))
}

fn error_xml(op: &str, code: &str, text: &str) -> ResponseTemplate {
    ResponseTemplate::new(200)
        .insert_header("Content-Type", "text/xml; charset=utf-8")
        .set_body_string(response(
            op,
            &format!(
                r#"<m:{op}ResponseMessage ResponseClass="Error"><m:MessageText>{text}</m:MessageText><m:ResponseCode>{code}</m:ResponseCode><m:DescriptiveLinkKey>0</m:DescriptiveLinkKey></m:{op}ResponseMessage>"#
            ),
        ))
}

fn busy_fault(ms: u64) -> ResponseTemplate {
    ResponseTemplate::new(500)
        .insert_header("Content-Type", "text/xml; charset=utf-8")
        .set_body_string(format!(
            r#"<?xml version="1.0" encoding="utf-8"?><s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body><s:Fault><faultcode xmlns:a="http://schemas.microsoft.com/exchange/services/2006/types">a:ErrorServerBusy</faultcode><faultstring xml:lang="en-US">The server cannot service this request right now. Try again later.</faultstring><detail><e:ResponseCode xmlns:e="http://schemas.microsoft.com/exchange/services/2006/errors">ErrorServerBusy</e:ResponseCode><e:Message xmlns:e="http://schemas.microsoft.com/exchange/services/2006/errors">The server cannot service this request right now. Try again later.</e:Message><t:MessageXml xmlns:t="http://schemas.microsoft.com/exchange/services/2006/types"><t:Value Name="BackOffMilliseconds">{ms}</t:Value></t:MessageXml></detail></s:Fault></s:Body></s:Envelope>"#
        ))
}

fn folders(list: &[(&str, &str)]) -> String {
    let f: String = list
        .iter()
        .map(|(id, name)| {
            format!(
                r#"<t:Folder><t:FolderId Id="{id}" ChangeKey="AQAAABYAAAA"/><t:DisplayName>{name}</t:DisplayName></t:Folder>"#
            )
        })
        .collect();
    format!(
        r#"<m:RootFolder TotalItemsInView="{}" IncludesLastItemInRange="true"><t:Folders>{f}</t:Folders></m:RootFolder>"#,
        list.len()
    )
}

const NO_ITEMS: &str = r#"<m:RootFolder TotalItemsInView="0" IncludesLastItemInRange="true"><t:Items/></m:RootFolder>"#;

fn created_item(id: &str) -> String {
    format!(
        r#"<m:Items><t:Message><t:ItemId Id="{id}" ChangeKey="CQAAABYAAAA"/></t:Message></m:Items>"#
    )
}

fn op(name: &str) -> wiremock::matchers::BodyContainsMatcher {
    body_string_contains(format!("<m:{name}"))
}

async fn server() -> MockServer {
    let s = MockServer::start().await;
    // Opening the mailbox reads its inbox.
    Mock::given(method("POST"))
        .and(path("/EWS/Exchange.asmx"))
        .and(op("GetFolder"))
        .respond_with(ok_xml(
            "GetFolder",
            r#"<m:Folders><t:Folder><t:FolderId Id="INBOXID"/><t:TotalCount>7</t:TotalCount></t:Folder></m:Folders>"#,
        ))
        .mount(&s)
        .await;
    s
}

fn config(s: &MockServer) -> EwsTargetConfig {
    let mut c = EwsTargetConfig::new(
        format!("{}/EWS/Exchange.asmx", s.uri()),
        EwsAuth::Basic {
            user: "CONTOSO\\svc-migrate".into(),
            password: "svc-secret".into(),
        },
    );
    c.default_backoff = Duration::from_millis(50);
    c
}

fn item() -> WriteItem {
    WriteItem {
        raw: Bytes::from_static(RAW),
        flags: Flags {
            seen: true,
            flagged: true,
            answered: true,
            keywords: vec!["Kunde & Partner".into()],
            ..Default::default()
        },
        internal_date: Some(InternalDate::from_unix_utc(1_057_049_557).unwrap()),
        fingerprint: "mid:<m1@example.org>".into(),
        internet_message_id: None,
    }
}

async fn inbox(
    c: EwsTargetConfig,
) -> (
    std::sync::Arc<dyn o365_migrate_target::MailboxWriter>,
    o365_migrate_target::FolderHandle,
) {
    let writer = EwsTarget::new(c)
        .unwrap()
        .open_mailbox("alice@contoso.com")
        .await
        .unwrap();
    let h = writer
        .ensure_folders(&[FolderSpec::well_known("INBOX", WellKnownFolder::Inbox)])
        .await
        .unwrap()
        .remove(0);
    (writer, h)
}

fn bodies(requests: &[Request], operation: &str) -> Vec<String> {
    requests
        .iter()
        .map(|r| String::from_utf8_lossy(&r.body).into_owned())
        .filter(|b| b.contains(&format!("<m:{operation}")))
        .collect()
}

fn between<'a>(s: &'a str, start: &str, end: &str) -> &'a str {
    let a = s.find(start).map(|p| p + start.len()).unwrap();
    let b = s[a..].find(end).unwrap();
    &s[a..a + b]
}

#[tokio::test]
async fn creates_folders_and_a_non_draft_item_with_mime_content() {
    let s = server().await;
    Mock::given(op("FindFolder"))
        .respond_with(ok_xml("FindFolder", &folders(&[("OTHER", "Other")])))
        .mount(&s)
        .await;
    Mock::given(op("CreateFolder"))
        .respond_with(ok_xml(
            "CreateFolder",
            r#"<m:Folders><t:Folder><t:FolderId Id="F1" ChangeKey="AQAAAB"/></t:Folder></m:Folders>"#,
        ))
        .mount(&s)
        .await;
    Mock::given(op("FindItem"))
        .respond_with(ok_xml("FindItem", NO_ITEMS))
        .mount(&s)
        .await;
    Mock::given(op("CreateItem"))
        .respond_with(ok_xml("CreateItem", &created_item("AAMkI1")))
        .mount(&s)
        .await;
    let target = EwsTarget::new(config(&s)).unwrap();
    let writer = target.open_mailbox("alice@contoso.com").await.unwrap();
    let plan = [FolderSpec::under(
        "INBOX/Receipts",
        WellKnownFolder::Inbox,
        ["Receipts & <Bills>"],
    )];
    let handles = writer.ensure_folders(&plan).await.unwrap();
    assert_eq!(handles[0].target_id, "F1");
    assert!(handles[0].created);
    let out = writer.write(&handles[0], &item()).await.unwrap();
    assert_eq!(
        out,
        WriteOutcome::Written {
            target_id: "AAMkI1".into(),
            notes: vec![]
        }
    );

    let reqs = s.received_requests().await.unwrap();
    for r in &reqs {
        let auth = r.headers.get("authorization").unwrap().to_str().unwrap();
        assert!(auth.starts_with("Basic "));
        assert_eq!(
            r.headers.get("content-type").unwrap(),
            "text/xml; charset=utf-8"
        );
        let body = String::from_utf8_lossy(&r.body);
        assert!(body.contains(r#"<t:RequestServerVersion Version="Exchange2016"/>"#));
        assert!(body.contains("<t:PrimarySmtpAddress>alice@contoso.com</t:PrimarySmtpAddress>"));
    }
    let ff = bodies(&reqs, "FindFolder");
    assert!(ff[0].contains(r#"<m:FindFolder Traversal="Shallow">"#));
    assert!(ff[0].contains(r#"<t:DistinguishedFolderId Id="inbox"/>"#));
    let cf = bodies(&reqs, "CreateFolder");
    assert_eq!(cf.len(), 1);
    assert!(
        cf[0].contains(
            r#"<m:ParentFolderId><t:DistinguishedFolderId Id="inbox"/></m:ParentFolderId>"#
        )
    );
    assert!(cf[0].contains("<t:DisplayName>Receipts &amp; &lt;Bills&gt;</t:DisplayName>"));
    let fi = bodies(&reqs, "FindItem");
    assert!(fi[0].contains(r#"<t:ExtendedFieldURI PropertyTag="0x1035" PropertyType="String"/><t:FieldURIOrConstant><t:Constant Value="&lt;m1@example.org&gt;"/>"#), "{}", fi[0]);
    assert!(fi[0].contains(r#"<t:FolderId Id="F1"/>"#));
    let ci = bodies(&reqs, "CreateItem");
    assert_eq!(ci.len(), 1);
    let c = &ci[0];
    assert!(c.contains(r#"<m:CreateItem MessageDisposition="SaveOnly"><m:SavedItemFolderId><t:FolderId Id="F1"/></m:SavedItemFolderId>"#));
    let mime = between(
        c,
        r#"<t:MimeContent CharacterSet="UTF-8">"#,
        "</t:MimeContent>",
    );
    assert_eq!(
        base64::engine::general_purpose::STANDARD
            .decode(mime)
            .unwrap(),
        RAW
    );
    for (tag, kind, value) in [
        ("0x0E07", "Integer", "1"),
        ("0x0E06", "SystemTime", "2003-07-01T08:52:37Z"),
        ("0x0039", "SystemTime", "2003-07-01T08:52:37Z"),
        ("0x1090", "Integer", "2"),
        ("0x1081", "Integer", "102"),
        ("0x1080", "Integer", "261"),
    ] {
        let want = format!(
            r#"<t:ExtendedProperty><t:ExtendedFieldURI PropertyTag="{tag}" PropertyType="{kind}"/><t:Value>{value}</t:Value></t:ExtendedProperty>"#
        );
        assert!(c.contains(&want), "{want} not in {c}");
    }
    assert!(c.contains("<t:Categories><t:String>Kunde &amp; Partner</t:String></t:Categories>"));
    assert!(c.contains(r#"PropertyName="o365migrate-fingerprint" PropertyType="String"/><t:Value>mid:&lt;m1@example.org&gt;</t:Value>"#));
    // Element order of t:Message (schema): MimeContent, Categories, ExtendedProperty.
    let (m, cat, ext) = (
        c.find("<t:MimeContent").unwrap(),
        c.find("<t:Categories>").unwrap(),
        c.find("<t:ExtendedProperty>").unwrap(),
    );
    assert!(m < cat && cat < ext);
}

#[tokio::test]
async fn drafts_stay_drafts_and_unread_items_get_zero() {
    let s = server().await;
    Mock::given(op("FindItem"))
        .respond_with(ok_xml("FindItem", NO_ITEMS))
        .mount(&s)
        .await;
    Mock::given(op("CreateItem"))
        .respond_with(ok_xml("CreateItem", &created_item("X")))
        .mount(&s)
        .await;
    let writer = EwsTarget::new(config(&s))
        .unwrap()
        .open_mailbox("alice@contoso.com")
        .await
        .unwrap();
    let h = writer
        .ensure_folders(&[FolderSpec::well_known("Drafts", WellKnownFolder::Drafts)])
        .await
        .unwrap()
        .remove(0);
    assert_eq!(h.target_id, "#drafts");
    let mut draft = item();
    draft.flags = Flags {
        draft: true,
        ..Default::default()
    };
    writer.write(&h, &draft).await.unwrap();
    let mut unread = item();
    unread.flags = Flags::default();
    unread.fingerprint = "other".into();
    writer.write(&h, &unread).await.unwrap();
    let ci = bodies(&s.received_requests().await.unwrap(), "CreateItem");
    assert!(ci[0].contains(r#"<t:DistinguishedFolderId Id="drafts"/>"#));
    assert!(ci[0].contains(r#"PropertyTag="0x0E07" PropertyType="Integer"/><t:Value>8</t:Value>"#));
    assert!(ci[1].contains(r#"PropertyTag="0x0E07" PropertyType="Integer"/><t:Value>0</t:Value>"#));
    assert!(!ci[1].contains("0x1090"));
}

#[tokio::test]
async fn server_busy_is_retried_after_back_off_milliseconds() {
    let s = server().await;
    Mock::given(op("FindItem"))
        .respond_with(ok_xml("FindItem", NO_ITEMS))
        .mount(&s)
        .await;
    Mock::given(op("CreateItem"))
        .respond_with(busy_fault(400))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&s)
        .await;
    Mock::given(op("CreateItem"))
        .respond_with(ok_xml("CreateItem", &created_item("AAMkI2")))
        .mount(&s)
        .await;
    let (writer, h) = inbox(config(&s)).await;
    let t = Instant::now();
    let out = writer.write(&h, &item()).await.unwrap();
    assert_eq!(out.target_id(), "AAMkI2");
    assert!(
        t.elapsed() >= Duration::from_millis(400),
        "{:?}",
        t.elapsed()
    );
    let ci = bodies(&s.received_requests().await.unwrap(), "CreateItem");
    assert_eq!(ci.len(), 2, "one busy reply, one retry");
    assert_eq!(ci[0], ci[1]);
}

#[tokio::test]
async fn server_busy_retries_are_bounded() {
    let s = server().await;
    Mock::given(op("FindItem"))
        .respond_with(ok_xml("FindItem", NO_ITEMS))
        .mount(&s)
        .await;
    Mock::given(op("CreateItem"))
        .respond_with(busy_fault(10))
        .mount(&s)
        .await;
    let mut c = config(&s);
    c.max_attempts = 3;
    let (writer, h) = inbox(c).await;
    let err = writer.write(&h, &item()).await.unwrap_err();
    assert!(
        matches!(err, Error::RetriesExhausted { attempts: 3, .. }),
        "{err}"
    );
    assert!(err.is_transient());
    assert_eq!(
        bodies(&s.received_requests().await.unwrap(), "CreateItem").len(),
        3
    );
}

#[tokio::test]
async fn item_save_error_is_an_item_error_with_the_server_text() {
    let s = server().await;
    Mock::given(op("FindItem"))
        .respond_with(ok_xml("FindItem", NO_ITEMS))
        .mount(&s)
        .await;
    Mock::given(op("CreateItem"))
        .respond_with(error_xml(
            "CreateItem",
            "ErrorItemSave",
            "The item couldn't be saved. Cannot save changes made to an item to store.",
        ))
        .mount(&s)
        .await;
    let (writer, h) = inbox(config(&s)).await;
    let err = writer.write(&h, &item()).await.unwrap_err();
    assert_eq!(err.scope(), ErrorScope::Item);
    assert!(!err.is_transient());
    let text = err.to_string();
    assert!(text.contains("ErrorItemSave"), "{text}");
    assert!(
        text.contains("Cannot save changes made to an item to store"),
        "{text}"
    );
}

#[tokio::test]
async fn existing_folder_is_found_again_after_error_folder_exists() {
    let s = server().await;
    // The first listing misses the folder (created meanwhile by someone else) ...
    Mock::given(op("FindFolder"))
        .respond_with(ok_xml("FindFolder", &folders(&[])))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&s)
        .await;
    // ... CreateFolder says it exists ...
    Mock::given(op("CreateFolder"))
        .respond_with(error_xml(
            "CreateFolder",
            "ErrorFolderExists",
            "A folder with the specified name already exists.",
        ))
        .mount(&s)
        .await;
    // ... and the second listing has it (other case: Exchange compares case-insensitively).
    Mock::given(op("FindFolder"))
        .respond_with(ok_xml("FindFolder", &folders(&[("F9", "PROJECTS")])))
        .mount(&s)
        .await;
    let writer = EwsTarget::new(config(&s))
        .unwrap()
        .open_mailbox("alice@contoso.com")
        .await
        .unwrap();
    let h = writer
        .ensure_folders(&[FolderSpec::at_root("Projects", ["Projects"])])
        .await
        .unwrap()
        .remove(0);
    assert_eq!(h.target_id, "F9");
    let reqs = s.received_requests().await.unwrap();
    assert_eq!(bodies(&reqs, "CreateFolder").len(), 1);
    let ff = bodies(&reqs, "FindFolder");
    assert_eq!(ff.len(), 2);
    assert!(ff[1].contains(r#"<t:DistinguishedFolderId Id="msgfolderroot"/>"#));
}

#[tokio::test]
async fn message_already_in_the_folder_is_not_created_again() {
    let s = server().await;
    Mock::given(op("FindItem"))
        .respond_with(ok_xml(
            "FindItem",
            r#"<m:RootFolder TotalItemsInView="1" IncludesLastItemInRange="true"><t:Items><t:Message><t:ItemId Id="AAMkOLD" ChangeKey="CQAA"/></t:Message></t:Items></m:RootFolder>"#,
        ))
        .mount(&s)
        .await;
    let (writer, h) = inbox(config(&s)).await;
    let out = writer.write(&h, &item()).await.unwrap();
    assert_eq!(
        out,
        WriteOutcome::AlreadyPresent {
            target_id: "AAMkOLD".into()
        }
    );
    let reqs = s.received_requests().await.unwrap();
    assert!(bodies(&reqs, "CreateItem").is_empty());
    let fi = bodies(&reqs, "FindItem");
    assert!(fi[0].contains("<t:Or>"));
    assert!(fi[0].contains(r#"<t:DistinguishedFolderId Id="inbox"/>"#));
}

#[tokio::test]
async fn count_list_bearer_and_size_limit() {
    let s = server().await;
    Mock::given(op("FindItem"))
        .respond_with(ok_xml(
            "FindItem",
            r#"<m:RootFolder TotalItemsInView="1" IncludesLastItemInRange="true"><t:Items><t:Message><t:ItemId Id="AAMk1" ChangeKey="CQ"/><t:Subject>R&amp;D</t:Subject><t:DateTimeReceived>2003-07-01T08:52:37Z</t:DateTimeReceived><t:Size>1234</t:Size><t:Categories><t:String>Blue</t:String></t:Categories><t:IsDraft>false</t:IsDraft><t:ExtendedProperty><t:ExtendedFieldURI PropertyTag="0x1090" PropertyType="Integer"/><t:Value>2</t:Value></t:ExtendedProperty><t:From><t:Mailbox><t:Name>A</t:Name><t:EmailAddress>a@example.org</t:EmailAddress></t:Mailbox></t:From><t:IsRead>true</t:IsRead><t:InternetMessageId>&lt;m1@example.org&gt;</t:InternetMessageId></t:Message></t:Items></m:RootFolder>"#,
        ))
        .mount(&s)
        .await;
    let mut c = config(&s);
    c.auth = EwsAuth::StaticBearer("tok-123".into());
    c.impersonate = false;
    c.max_message_bytes = 50;
    let target = EwsTarget::new(c).unwrap();
    assert_eq!(target.capabilities().max_message_bytes, Some(50));
    let writer = target.open_mailbox("alice@contoso.com").await.unwrap();
    let h = writer
        .ensure_folders(&[FolderSpec::well_known("INBOX", WellKnownFolder::Inbox)])
        .await
        .unwrap()
        .remove(0);
    assert_eq!(writer.count(&h).await.unwrap(), 7);
    let items = writer.list(&h).await.unwrap();
    assert_eq!(items.len(), 1);
    let it = &items[0];
    assert_eq!(it.subject.as_deref(), Some("R&D"));
    assert_eq!(it.internet_message_id.as_deref(), Some("<m1@example.org>"));
    assert_eq!(it.from.as_deref(), Some("a@example.org"));
    assert_eq!(
        it.received,
        Some(InternalDate::from_unix_utc(1_057_049_557).unwrap())
    );
    assert!(it.is_read && it.flagged && !it.is_draft);
    assert_eq!(it.keywords, ["Blue"]);
    assert_eq!(it.size, Some(1234));
    let err = writer.write(&h, &item()).await.unwrap_err();
    assert!(matches!(err, Error::TooLarge { limit: 50, .. }), "{err}");
    let reqs = s.received_requests().await.unwrap();
    assert!(bodies(&reqs, "CreateItem").is_empty());
    for r in &reqs {
        assert_eq!(r.headers.get("authorization").unwrap(), "Bearer tok-123");
        assert!(!String::from_utf8_lossy(&r.body).contains("ExchangeImpersonation"));
    }
}

#[test]
fn exchange_online_is_refused_unless_allowed_by_name() {
    let mut c = EwsTargetConfig::new(
        "https://outlook.office365.com/EWS/Exchange.asmx",
        EwsAuth::StaticBearer("t".into()),
    );
    let err = EwsTarget::new(c.clone()).unwrap_err();
    assert_eq!(err.scope(), ErrorScope::Target);
    assert!(err.to_string().contains("Graph target"), "{err}");
    c.allow_exchange_online = true;
    assert!(EwsTarget::new(c).is_ok());
    // The default limit is what fits in a 64 MB request after base64.
    let d = EwsTargetConfig::new(
        "https://mail.contoso.com/EWS/Exchange.asmx",
        EwsAuth::StaticBearer("t".into()),
    );
    assert!(d.max_message_bytes * 4 / 3 < 64 * 1024 * 1024);
    assert!(d.max_message_bytes > 47 * 1000 * 1000);
}
