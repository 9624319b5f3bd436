//! The cutover check against a real DNS server (dnsmasq on 127.0.0.1).

use std::time::{Duration, Instant};

use o365_migrate_cutover::{
    CheckOptions, DomainReport, Error, ExpectedRecords, LookupFailure, RecordCheck, RecordKind,
    Status, check, check_all,
};
use o365_migrate_testkit::{Dnsmasq, SilentServer, Zone};

const SPF_OK: &str = "v=spf1 include:spf.protection.outlook.com -all";

/// contoso.test as Microsoft documents it, plus the TXT records a domain usually has besides.
fn cut_over(zone: Zone, domain: &str) -> Zone {
    let token = domain.replace('.', "-");
    zone.mx(domain, &format!("{token}.mail.protection.outlook.com"), 0)
        .cname(
            &format!("autodiscover.{domain}"),
            "autodiscover.outlook.com",
        )
        .txt(domain, SPF_OK)
        .txt(domain, "MS=ms12345678")
}

fn opts(server: &Dnsmasq) -> CheckOptions {
    CheckOptions::default()
        .with_server(server.addr())
        .with_timeout(Duration::from_secs(2))
}

/// The one check of `kind`, or a panic showing the report.
fn only(report: &DomainReport, kind: RecordKind) -> RecordCheck {
    let checks: Vec<&RecordCheck> = report.checks_of(kind).collect();
    assert_eq!(checks.len(), 1, "one {kind} check expected in\n{report}");
    checks[0].clone()
}

fn fix(check: &RecordCheck) -> &str {
    check
        .fix
        .as_deref()
        .unwrap_or_else(|| panic!("no fix in {check:?}"))
}

#[tokio::test]
async fn correct_records_pass() {
    let server = Dnsmasq::start(&cut_over(Zone::new(), "contoso.test"));
    let report = check("contoso.test", &opts(&server)).await.unwrap();

    assert!(report.mail_flows_to_exchange_online(), "{report}");
    assert!(report.passed(), "{report}");
    assert_eq!(report.problems().count(), 0, "{report}");
    let mx = only(&report, RecordKind::Mx);
    assert_eq!(mx.status, Status::Ok);
    assert_eq!(mx.found, ["0 contoso-test.mail.protection.outlook.com"]);
    assert_eq!(mx.fix, None);
    let autodiscover = only(&report, RecordKind::Autodiscover);
    assert_eq!(autodiscover.status, Status::Ok);
    assert_eq!(autodiscover.name, "autodiscover.contoso.test");
    assert_eq!(autodiscover.found, ["autodiscover.outlook.com"]);
    let spf = only(&report, RecordKind::Spf);
    assert_eq!(spf.status, Status::Ok);
    assert_eq!(spf.found, [SPF_OK], "only the SPF record, not MS=…");

    let human = report.render_human();
    assert!(human.starts_with("contoso.test: cut over"), "{human}");
    let json = serde_json::to_value(&report).unwrap();
    assert_eq!(json["domain"], "contoso.test");
    assert_eq!(json["passed"], true);
    assert_eq!(json["mail_flows_to_exchange_online"], true);
    assert_eq!(json["checks"][0]["kind"], "mx");
    assert_eq!(json["checks"][0]["status"], "ok");
    assert!(
        server.log().contains("query[MX] contoso.test"),
        "asked the test server"
    );
}

#[tokio::test]
async fn the_domain_is_normalized_before_the_check() {
    let server = Dnsmasq::start(&cut_over(Zone::new(), "contoso.test"));
    let report = check(" Contoso.TEST. ", &opts(&server)).await.unwrap();
    assert_eq!(report.domain, "contoso.test");
    assert!(report.passed(), "{report}");
}

#[tokio::test]
async fn dnssec_mx_microsoft_host_passes() {
    let zone = Zone::new()
        .mx("contoso.test", "contoso-test.o-v1.mx.microsoft", 0)
        .cname("autodiscover.contoso.test", "autodiscover.outlook.com")
        .txt("contoso.test", SPF_OK);
    let server = Dnsmasq::start(&zone);
    let report = check("contoso.test", &opts(&server)).await.unwrap();
    assert!(report.passed(), "{report}");
}

#[tokio::test]
async fn mx_to_the_old_host_fails_naming_the_mx_and_the_expected_value() {
    let zone = Zone::new()
        .mx("fabrikam.test", "mx.oldhost.net", 10)
        .cname("autodiscover.fabrikam.test", "autodiscover.outlook.com")
        .txt("fabrikam.test", SPF_OK);
    let server = Dnsmasq::start(&zone);
    let report = check("fabrikam.test", &opts(&server)).await.unwrap();

    assert!(!report.mail_flows_to_exchange_online(), "{report}");
    assert!(!report.passed(), "{report}");
    let mx = only(&report, RecordKind::Mx);
    assert_eq!(mx.status, Status::Wrong);
    assert_eq!(mx.name, "fabrikam.test");
    assert_eq!(mx.found, ["10 mx.oldhost.net"]);
    assert!(
        mx.expected
            .starts_with("fabrikam-test.mail.protection.outlook.com (priority 0)"),
        "{}",
        mx.expected
    );
    assert_eq!(
        fix(&mx),
        "set the MX record of fabrikam.test to fabrikam-test.mail.protection.outlook.com (priority 0) \
         and remove mx.oldhost.net (priority 10): until then mail still flows to the old host"
    );
    // The other required records are still right, and the report says what failed.
    assert_eq!(only(&report, RecordKind::Autodiscover).status, Status::Ok);
    assert_eq!(only(&report, RecordKind::Spf).status, Status::Ok);
    let human = report.render_human();
    assert!(
        human.contains("mail does not flow to Exchange Online yet (MX wrong)"),
        "{human}"
    );
    assert!(
        human.contains("fix: set the MX record of fabrikam.test"),
        "{human}"
    );
}

#[tokio::test]
async fn an_old_mx_beside_exchange_online_with_the_same_priority_fails() {
    let zone = cut_over(Zone::new(), "fabrikam.test").mx("fabrikam.test", "mx.oldhost.net", 0);
    let server = Dnsmasq::start(&zone);
    let report = check("fabrikam.test", &opts(&server)).await.unwrap();

    let mx = only(&report, RecordKind::Mx);
    assert_eq!(mx.status, Status::Wrong, "{report}");
    assert_eq!(
        mx.found,
        [
            "0 fabrikam-test.mail.protection.outlook.com",
            "0 mx.oldhost.net"
        ]
    );
    assert!(
        fix(&mx).contains("remove mx.oldhost.net (priority 0)"),
        "{}",
        fix(&mx)
    );
    assert!(!report.mail_flows_to_exchange_online());
}

#[tokio::test]
async fn a_backup_mx_with_a_worse_priority_is_only_a_warning() {
    let zone = cut_over(Zone::new(), "fabrikam.test").mx("fabrikam.test", "mx.oldhost.net", 20);
    let server = Dnsmasq::start(&zone);
    let report = check("fabrikam.test", &opts(&server)).await.unwrap();

    assert!(report.passed(), "{report}");
    assert_eq!(only(&report, RecordKind::Mx).status, Status::Ok);
    let backup = only(&report, RecordKind::BackupMx);
    assert_eq!(backup.status, Status::Warning);
    assert_eq!(backup.found, ["20 mx.oldhost.net"]);
    assert!(fix(&backup).contains("remove the backup MX record mx.oldhost.net (priority 20)"));
}

#[tokio::test]
async fn a_missing_autodiscover_cname_fails_naming_it_with_the_fix() {
    let zone = Zone::new()
        .mx(
            "contoso.test",
            "contoso-test.mail.protection.outlook.com",
            0,
        )
        .txt("contoso.test", SPF_OK);
    let server = Dnsmasq::start(&zone);
    let report = check("contoso.test", &opts(&server)).await.unwrap();

    let autodiscover = only(&report, RecordKind::Autodiscover);
    assert_eq!(autodiscover.status, Status::Missing, "{report}");
    assert_eq!(autodiscover.name, "autodiscover.contoso.test");
    assert!(autodiscover.found.is_empty());
    assert_eq!(autodiscover.expected, "CNAME autodiscover.outlook.com");
    assert_eq!(
        fix(&autodiscover),
        "add a CNAME record autodiscover.contoso.test pointing to autodiscover.outlook.com"
    );
    // Mail flows, but the domain is not cut over: Outlook cannot find Exchange Online.
    assert!(report.mail_flows_to_exchange_online(), "{report}");
    assert!(!report.passed(), "{report}");
    let human = report.render_human();
    assert!(
        human.contains("NOT cut over: mail flows to Exchange Online, but Autodiscover missing"),
        "{human}"
    );
}

#[tokio::test]
async fn an_autodiscover_cname_to_the_old_server_or_an_address_record_is_wrong() {
    let zone = cut_over(Zone::new(), "contoso.test")
        .mx(
            "fabrikam.test",
            "fabrikam-test.mail.protection.outlook.com",
            0,
        )
        .txt("fabrikam.test", SPF_OK)
        .a("autodiscover.fabrikam.test", "203.0.113.5")
        .cname("autodiscover.northwind.test", "autodiscover.oldhost.net")
        .mx(
            "northwind.test",
            "northwind-test.mail.protection.outlook.com",
            0,
        )
        .txt("northwind.test", SPF_OK);
    let server = Dnsmasq::start(&zone);

    let report = check("fabrikam.test", &opts(&server)).await.unwrap();
    let autodiscover = only(&report, RecordKind::Autodiscover);
    assert_eq!(autodiscover.status, Status::Wrong, "{report}");
    assert_eq!(autodiscover.found, ["A 203.0.113.5"]);
    assert!(
        fix(&autodiscover).contains("with a CNAME record pointing to autodiscover.outlook.com")
    );

    let report = check("northwind.test", &opts(&server)).await.unwrap();
    let autodiscover = only(&report, RecordKind::Autodiscover);
    assert_eq!(autodiscover.status, Status::Wrong, "{report}");
    assert_eq!(autodiscover.found, ["autodiscover.oldhost.net"]);
    assert_eq!(
        fix(&autodiscover),
        "point the CNAME record autodiscover.northwind.test to autodiscover.outlook.com \
         (it points to autodiscover.oldhost.net)"
    );
}

#[tokio::test]
async fn an_spf_record_without_the_exchange_online_include_fails_with_the_fix() {
    let zone = Zone::new()
        .mx(
            "contoso.test",
            "contoso-test.mail.protection.outlook.com",
            0,
        )
        .cname("autodiscover.contoso.test", "autodiscover.outlook.com")
        .txt(
            "contoso.test",
            "v=spf1 ip4:192.0.2.25 include:spf.oldhost.net ~all",
        );
    let server = Dnsmasq::start(&zone);
    let report = check("contoso.test", &opts(&server)).await.unwrap();

    assert!(!report.mail_flows_to_exchange_online(), "{report}");
    assert!(!report.passed());
    let spf = only(&report, RecordKind::Spf);
    assert_eq!(spf.status, Status::Wrong);
    assert_eq!(spf.name, "contoso.test");
    assert_eq!(
        spf.found,
        ["v=spf1 ip4:192.0.2.25 include:spf.oldhost.net ~all"]
    );
    assert_eq!(
        spf.expected,
        "exactly one SPF record, containing include:spf.protection.outlook.com"
    );
    assert_eq!(
        fix(&spf),
        "add include:spf.protection.outlook.com to the SPF record of contoso.test: \
         v=spf1 ip4:192.0.2.25 include:spf.oldhost.net include:spf.protection.outlook.com ~all"
    );
}

#[tokio::test]
async fn two_spf_records_fail() {
    let zone = cut_over(Zone::new(), "contoso.test")
        .txt("contoso.test", "v=spf1 include:spf.oldhost.net -all");
    let server = Dnsmasq::start(&zone);
    let report = check("contoso.test", &opts(&server)).await.unwrap();

    assert!(!report.mail_flows_to_exchange_online(), "{report}");
    let spf = only(&report, RecordKind::Spf);
    assert_eq!(spf.status, Status::Wrong);
    let mut found = spf.found.clone();
    found.sort();
    assert_eq!(found, ["v=spf1 include:spf.oldhost.net -all", SPF_OK]);
    assert!(
        fix(&spf).starts_with(
            "merge the 2 SPF records of contoso.test into one TXT record that contains include:spf.protection.outlook.com"
        ),
        "{}",
        fix(&spf)
    );
}

#[tokio::test]
async fn a_domain_without_any_record_is_missing_everywhere() {
    // Another domain in the zone, so the server has records — just none for this one.
    let server = Dnsmasq::start(&cut_over(Zone::new(), "contoso.test"));
    let report = check("empty.test", &opts(&server).with_teams(true))
        .await
        .unwrap();

    for kind in [RecordKind::Mx, RecordKind::Autodiscover, RecordKind::Spf] {
        let check = only(&report, kind);
        assert_eq!(check.status, Status::Missing, "{kind} in\n{report}");
        assert!(check.found.is_empty());
        assert!(check.fix.is_some());
    }
    assert_eq!(
        fix(&only(&report, RecordKind::Mx)),
        "add an MX record to empty.test pointing to empty-test.mail.protection.outlook.com (priority 0)"
    );
    assert_eq!(
        fix(&only(&report, RecordKind::Spf)),
        "add a TXT record to empty.test: v=spf1 include:spf.protection.outlook.com -all"
    );
    // The optional records can only warn.
    for kind in [
        RecordKind::Sip,
        RecordKind::Lyncdiscover,
        RecordKind::SipTls,
        RecordKind::SipFederationTls,
    ] {
        assert_eq!(only(&report, kind).status, Status::Warning, "{kind}");
    }
    assert!(!report.mail_flows_to_exchange_online());
    assert!(!report.passed());
    assert_eq!(report.problems().count(), 7);
}

#[tokio::test]
async fn teams_records_are_checked_on_request_and_only_warn() {
    let zone = cut_over(Zone::new(), "contoso.test")
        .cname("sip.contoso.test", "sipdir.online.lync.com")
        .cname("lyncdiscover.contoso.test", "webdir.online.lync.com")
        .srv(
            "_sip._tls.contoso.test",
            "sipdir.online.lync.com",
            443,
            100,
            1,
        )
        .srv(
            "_sipfederationtls._tcp.contoso.test",
            "sipfed.online.lync.com",
            5061,
            100,
            1,
        );
    let zone = cut_over(zone, "fabrikam.test");
    let server = Dnsmasq::start(&zone);

    let without = check("contoso.test", &opts(&server)).await.unwrap();
    assert_eq!(
        without.checks.len(),
        3,
        "no Teams checks unless asked:\n{without}"
    );

    let report = check("contoso.test", &opts(&server).with_teams(true))
        .await
        .unwrap();
    assert_eq!(report.checks.len(), 7, "{report}");
    assert_eq!(report.problems().count(), 0, "{report}");
    assert_eq!(
        only(&report, RecordKind::SipTls).found,
        ["100 1 443 sipdir.online.lync.com"]
    );

    let report = check("fabrikam.test", &opts(&server).with_teams(true))
        .await
        .unwrap();
    assert!(report.passed(), "warnings do not fail:\n{report}");
    let sip = only(&report, RecordKind::Sip);
    assert_eq!(sip.status, Status::Warning);
    assert!(
        fix(&sip)
            .contains("add a CNAME record sip.fabrikam.test pointing to sipdir.online.lync.com")
    );
    let federation = only(&report, RecordKind::SipFederationTls);
    assert!(
        fix(&federation).contains("100 1 5061 sipfed.online.lync.com"),
        "{}",
        fix(&federation)
    );
}

#[tokio::test]
async fn expected_records_given_by_the_caller_replace_the_pattern() {
    // Microsoft handed this domain another MX token than the documented pattern.
    let zone = Zone::new()
        .mx(
            "contoso.test",
            "contoso-test01c.mail.protection.outlook.com",
            0,
        )
        .cname("autodiscover.contoso.test", "autodiscover.outlook.com")
        .txt("contoso.test", SPF_OK);
    let server = Dnsmasq::start(&zone);

    let by_pattern = check("contoso.test", &opts(&server)).await.unwrap();
    assert_eq!(only(&by_pattern, RecordKind::Mx).status, Status::Wrong);

    let expected = ExpectedRecords::new("contoso-test01c.mail.protection.outlook.com");
    let report = check("contoso.test", &opts(&server).with_expected(expected))
        .await
        .unwrap();
    assert!(report.passed(), "{report}");
}

#[tokio::test]
async fn nothing_is_cached_from_one_call_to_the_next() {
    let before = Zone::new()
        .mx("contoso.test", "mx.oldhost.net", 0)
        .cname("autodiscover.contoso.test", "autodiscover.outlook.com")
        .txt("contoso.test", SPF_OK);
    let first = Dnsmasq::start(&before);
    let port = first.port();
    let options = opts(&first);
    let report = check("contoso.test", &options).await.unwrap();
    assert_eq!(only(&report, RecordKind::Mx).status, Status::Wrong);
    drop(first);

    // The same server address now answers with the switched record.
    let after = cut_over(Zone::new(), "contoso.test");
    let _second = (0..20)
        .find_map(|_| {
            Dnsmasq::start_on(port, &after)
                .map_err(|_| std::thread::sleep(Duration::from_millis(100)))
                .ok()
        })
        .expect("dnsmasq restarts on the same port");
    let report = check("contoso.test", &options).await.unwrap();
    assert_eq!(only(&report, RecordKind::Mx).status, Status::Ok, "{report}");
}

#[tokio::test]
async fn check_all_reports_every_domain_in_order() {
    let zone = cut_over(Zone::new(), "contoso.test").mx("fabrikam.test", "mx.oldhost.net", 0);
    let server = Dnsmasq::start(&zone);
    let results = check_all(
        ["fabrikam.test", "contoso.test", "not a domain"],
        &opts(&server),
    )
    .await;

    assert_eq!(results.len(), 3);
    let fabrikam = results[0].as_ref().unwrap();
    assert_eq!(fabrikam.domain, "fabrikam.test");
    assert!(!fabrikam.passed());
    let contoso = results[1].as_ref().unwrap();
    assert_eq!(contoso.domain, "contoso.test");
    assert!(contoso.passed(), "{contoso}");
    assert!(matches!(results[2], Err(Error::InvalidDomain { .. })));
}

#[tokio::test]
async fn a_refused_query_is_an_error_naming_the_domain_and_the_record() {
    // dnsmasq has no upstream: it refuses names outside its `.test` zone.
    let server = Dnsmasq::start(&cut_over(Zone::new(), "contoso.test"));
    let err = check("contoso.example", &opts(&server)).await.unwrap_err();

    let Error::Lookup {
        domain,
        failure,
        record_type,
        name,
        ..
    } = &err
    else {
        panic!("expected a lookup error, got {err:?}");
    };
    assert_eq!(domain, "contoso.example");
    assert_eq!(*failure, LookupFailure::Refused);
    assert!(
        ["MX", "TXT", "CNAME"].contains(record_type),
        "{record_type}"
    );
    assert!(name.ends_with("contoso.example"), "{name}");
    let message = err.to_string();
    assert!(
        message.starts_with("contoso.example: cannot look up the "),
        "{message}"
    );
    assert!(
        message.contains(&format!("from DNS server {}", server.addr())),
        "{message}"
    );
    assert!(message.contains("REFUSED"), "{message}");
    assert!(message.contains("(hint: "), "{message}");
    assert!(
        std::error::Error::source(&err).is_some(),
        "the resolver's error is kept"
    );
}

#[tokio::test]
async fn a_server_that_never_answers_is_a_timeout_error() {
    let silent = SilentServer::start();
    let options = CheckOptions::default()
        .with_server(silent.addr())
        .with_timeout(Duration::from_millis(300));
    let started = Instant::now();
    let err = check("contoso.test", &options).await.unwrap_err();

    assert!(
        started.elapsed() < Duration::from_secs(5),
        "bounded by the timeout"
    );
    let Error::Lookup { failure, .. } = &err else {
        panic!("expected a lookup error, got {err:?}");
    };
    assert_eq!(*failure, LookupFailure::Timeout, "{err}");
    let message = err.to_string();
    assert!(message.contains("contoso.test"), "{message}");
    assert!(message.contains("no answer in time"), "{message}");
    assert!(message.contains("raise the timeout"), "{message}");
}
