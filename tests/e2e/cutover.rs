//! `o365-migrate cutover check` through the binary against a DNS server the test starts on
//! 127.0.0.1 (dnsmasq): the right records pass with exit 0; a wrong MX, a missing Autodiscover
//! CNAME and an SPF record without Exchange Online's include each fail, named with the fix.

use o365_migrate_testkit::{Dnsmasq, Zone};

use super::BIN;

const SPF_OK: &str = "v=spf1 include:spf.protection.outlook.com -all";

fn mx(domain: &str) -> String {
    format!("{}.mail.protection.outlook.com", domain.replace('.', "-"))
}

fn autodiscover(domain: &str) -> String {
    format!("autodiscover.{domain}")
}

async fn check(server: &Dnsmasq, domain: &str, json: bool) -> (i32, String, String) {
    let mut c = tokio::process::Command::new(BIN);
    c.args(["cutover", "check", domain, "--dns-server"])
        .arg(server.addr().to_string())
        .args(["--timeout-seconds", "2"]);
    if json {
        c.arg("--json");
    }
    let o = c
        .current_dir(std::env::temp_dir())
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .expect("run binary");
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[tokio::test]
async fn cutover_check_names_every_wrong_record_with_its_fix() {
    let (good, wrong_mx, no_autodiscover, bad_spf) = (
        "contoso.test",
        "fabrikam.test",
        "northwind.test",
        "tailspin.test",
    );
    let zone = Zone::new()
        // Cut over.
        .mx(good, &mx(good), 0)
        .cname(&autodiscover(good), "autodiscover.outlook.com")
        .txt(good, SPF_OK)
        // MX still at the old host.
        .mx(wrong_mx, "mx.oldhost.example", 10)
        .cname(&autodiscover(wrong_mx), "autodiscover.outlook.com")
        .txt(wrong_mx, SPF_OK)
        // No Autodiscover record.
        .mx(no_autodiscover, &mx(no_autodiscover), 0)
        .txt(no_autodiscover, SPF_OK)
        // SPF without Exchange Online.
        .mx(bad_spf, &mx(bad_spf), 0)
        .cname(&autodiscover(bad_spf), "autodiscover.outlook.com")
        .txt(bad_spf, "v=spf1 include:_spf.oldhost.example -all");
    let server = Dnsmasq::start(&zone);

    let (code, _, err) = check(&server, good, false).await;
    assert_eq!(code, 0, "{err}");

    let (code, _, err) = check(&server, wrong_mx, false).await;
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("mx.oldhost.example"), "{err}");
    assert!(err.contains(&mx(wrong_mx)), "the MX it must have: {err}");

    let (code, _, err) = check(&server, no_autodiscover, false).await;
    assert_eq!(code, 1, "{err}");
    assert!(err.contains(&autodiscover(no_autodiscover)), "{err}");
    assert!(
        err.contains("autodiscover.outlook.com"),
        "the CNAME it must have: {err}"
    );

    let (code, out, err) = check(&server, bad_spf, true).await;
    assert_eq!(code, 1, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).expect("JSON on stdout");
    let checks = v[0]["checks"].as_array().expect("checks");
    let wrong: Vec<&serde_json::Value> = checks
        .iter()
        .filter(|c| c["status"] != "ok" && c["status"] != "Ok")
        .collect();
    assert_eq!(wrong.len(), 1, "only SPF is wrong: {v}");
    let fix = wrong[0]["fix"].as_str().unwrap_or_default();
    assert!(fix.contains("include:spf.protection.outlook.com"), "{v}");
    assert!(err.contains("hint:"), "{err}");
}
