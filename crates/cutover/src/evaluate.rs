//! Pure verdicts: what the DNS answered → [`RecordCheck`]s. No I/O here.

use crate::expected::{ExpectedRecords, SPF_RECORD, SrvTarget, normalize_host};
use crate::report::{RecordCheck, RecordKind, Status};

/// One MX record, host normalized (lower case, no trailing dot).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Mx {
    pub(crate) preference: u16,
    pub(crate) host: String,
}

impl Mx {
    fn show(&self) -> String {
        format!("{} {}", self.preference, self.host)
    }
}

/// One SRV record, target normalized.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Srv {
    pub(crate) priority: u16,
    pub(crate) weight: u16,
    pub(crate) port: u16,
    pub(crate) target: String,
}

impl Srv {
    fn show(&self) -> String {
        format!(
            "{} {} {} {}",
            self.priority, self.weight, self.port, self.target
        )
    }
}

/// The MX check, plus a [`RecordKind::BackupMx`] warning when a host other than Exchange
/// Online's remains with a worse priority.
///
/// Ok when at least one MX host is Exchange Online's and no other host has the same or a better
/// (lower) priority than the best of them: otherwise senders may still deliver to the old host.
pub(crate) fn check_mx(domain: &str, expected: &ExpectedRecords, found: &[Mx]) -> Vec<RecordCheck> {
    let mut found = found.to_vec();
    found.sort_by(|a, b| (a.preference, &a.host).cmp(&(b.preference, &b.host)));
    let target = format!("{} (priority {})", expected.mx_host, expected.mx_preference);
    let shown: Vec<String> = found.iter().map(Mx::show).collect();
    let (ours, others): (Vec<&Mx>, Vec<&Mx>) = found
        .iter()
        .partition(|mx| expected.is_exchange_online_mx(&mx.host));
    let check = |status, fix| RecordCheck {
        kind: RecordKind::Mx,
        name: domain.to_owned(),
        found: shown.clone(),
        expected: format!("{target}, and no other MX host with the same or a better priority"),
        status,
        fix,
    };
    if found.is_empty() {
        let fix = format!("add an MX record to {domain} pointing to {target}");
        return vec![check(Status::Missing, Some(fix))];
    }
    let remove = |mxs: &[&Mx]| {
        mxs.iter()
            .map(|mx| format!("{} (priority {})", mx.host, mx.preference))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let Some(best) = ours.iter().map(|mx| mx.preference).min() else {
        let fix = format!(
            "set the MX record of {domain} to {target} and remove {}: until then mail still flows to the old host",
            remove(&others)
        );
        return vec![check(Status::Wrong, Some(fix))];
    };
    let competing: Vec<&Mx> = others
        .iter()
        .copied()
        .filter(|mx| mx.preference <= best)
        .collect();
    if !competing.is_empty() {
        let fix = format!(
            "set the MX record of {domain} to {target} and remove {}: senders still deliver to {} as often as, or before, Exchange Online",
            remove(&others),
            if competing.len() == 1 { "it" } else { "them" },
        );
        return vec![check(Status::Wrong, Some(fix))];
    }
    let mut checks = vec![check(Status::Ok, None)];
    if !others.is_empty() {
        checks.push(RecordCheck {
            kind: RecordKind::BackupMx,
            name: domain.to_owned(),
            found: others.iter().map(|mx| mx.show()).collect(),
            expected: format!("no MX host besides {}", expected.mx_host),
            status: Status::Warning,
            fix: Some(format!(
                "remove the backup MX record {} of {domain}: it gets the domain's mail whenever a sender cannot reach Exchange Online",
                remove(&others)
            )),
        });
    }
    checks
}

/// The Autodiscover check: `name` must be a CNAME to the expected target. `addresses` are A/AAAA
/// records found at `name` when it has no CNAME (`A 192.0.2.1`), shown as what is wrong.
pub(crate) fn check_autodiscover(
    name: &str,
    expected: &ExpectedRecords,
    cnames: &[String],
    addresses: &[String],
) -> RecordCheck {
    let target = &expected.autodiscover;
    let (status, found, fix) = if cnames.iter().any(|c| c == target) {
        (Status::Ok, cnames.to_vec(), None)
    } else if !cnames.is_empty() {
        let fix = format!(
            "point the CNAME record {name} to {target} (it points to {})",
            cnames.join(", ")
        );
        (Status::Wrong, cnames.to_vec(), Some(fix))
    } else if !addresses.is_empty() {
        let fix = format!(
            "replace the address record(s) of {name} ({}) with a CNAME record pointing to {target}: Outlook still finds the old server there",
            addresses.join(", ")
        );
        (Status::Wrong, addresses.to_vec(), Some(fix))
    } else {
        let fix = format!("add a CNAME record {name} pointing to {target}");
        (Status::Missing, Vec::new(), Some(fix))
    };
    RecordCheck {
        kind: RecordKind::Autodiscover,
        name: name.to_owned(),
        found,
        expected: format!("CNAME {target}"),
        status,
        fix,
    }
}

/// The SPF check over the TXT records at the domain (each record's strings already joined).
///
/// Exactly one of them must be an SPF record (RFC 7208 §3.2: several make SPF fail with
/// permerror, §4.5), and it must `include:` the expected domain before any `all` mechanism
/// (mechanisms after `all` are never evaluated, §5.1).
/// <https://www.rfc-editor.org/rfc/rfc7208>
pub(crate) fn check_spf(domain: &str, expected: &ExpectedRecords, txts: &[String]) -> RecordCheck {
    let include = &expected.spf_include;
    let spf: Vec<String> = txts.iter().filter(|t| is_spf(t)).cloned().collect();
    let wanted = format!("include:{include}");
    let check = |status, fix| RecordCheck {
        kind: RecordKind::Spf,
        name: domain.to_owned(),
        found: spf.clone(),
        expected: format!("exactly one SPF record, containing {wanted}"),
        status,
        fix,
    };
    match spf.as_slice() {
        [] => {
            let record = if *include == crate::SPF_INCLUDE {
                SPF_RECORD.to_owned()
            } else {
                format!("v=spf1 {wanted} -all")
            };
            check(
                Status::Missing,
                Some(format!("add a TXT record to {domain}: {record}")),
            )
        }
        [record] => match spf_include_position(record, include) {
            IncludeAt::Evaluated => check(Status::Ok, None),
            IncludeAt::AfterAll => check(
                Status::Wrong,
                Some(format!(
                    "move {wanted} before the \"all\" mechanism in the SPF record of {domain} (terms after \"all\" are never evaluated): {}",
                    suggest_spf(record, include)
                )),
            ),
            IncludeAt::Absent => check(
                Status::Wrong,
                Some(format!(
                    "add {wanted} to the SPF record of {domain}: {}",
                    suggest_spf(record, include)
                )),
            ),
        },
        several => check(
            Status::Wrong,
            Some(format!(
                "merge the {} SPF records of {domain} into one TXT record that contains {wanted}: with more than one, receivers fail SPF for the domain (RFC 7208 permerror)",
                several.len()
            )),
        ),
    }
}

/// Whether a TXT record is an SPF record: it begins with the version section `v=spf1`
/// (case-insensitive, as ABNF strings are), ended by a space or the end of the record.
fn is_spf(txt: &str) -> bool {
    let Some(version) = txt.get(..6) else {
        return false;
    };
    version.eq_ignore_ascii_case("v=spf1") && matches!(txt.as_bytes().get(6), None | Some(b' '))
}

enum IncludeAt {
    /// `include:<domain>` (or `+include:`) before any `all`.
    Evaluated,
    /// Only after an `all` mechanism.
    AfterAll,
    /// Not there (or only with a `-`, `~` or `?` qualifier).
    Absent,
}

fn spf_include_position(record: &str, include: &str) -> IncludeAt {
    let mut after_all = false;
    let mut seen_after_all = false;
    for term in record.split_ascii_whitespace().skip(1) {
        let lower = term.to_ascii_lowercase();
        if is_all(&lower) {
            after_all = true;
        } else if is_pass_include(&lower, include) {
            if !after_all {
                return IncludeAt::Evaluated;
            }
            seen_after_all = true;
        }
    }
    if seen_after_all {
        IncludeAt::AfterAll
    } else {
        IncludeAt::Absent
    }
}

fn is_all(term: &str) -> bool {
    term.trim_start_matches(['+', '-', '~', '?']) == "all"
}

fn is_pass_include(term: &str, include: &str) -> bool {
    let term = term.strip_prefix('+').unwrap_or(term);
    term.strip_prefix("include:")
        .is_some_and(|d| normalize_host(d) == include)
}

fn names_include(term: &str, include: &str) -> bool {
    let term = term.to_ascii_lowercase();
    term.trim_start_matches(['+', '-', '~', '?'])
        .strip_prefix("include:")
        .is_some_and(|d| normalize_host(d) == include)
}

/// The SPF record with `include:<include>` placed before its `all` mechanism (or `redirect=`
/// modifier, or at the end), any other mention of the include removed.
pub(crate) fn suggest_spf(record: &str, include: &str) -> String {
    let mut terms: Vec<&str> = record
        .split_ascii_whitespace()
        .filter(|t| !names_include(t, include))
        .collect();
    let wanted = format!("include:{include}");
    let at = terms
        .iter()
        .enumerate()
        .skip(1)
        .find(|(_, t)| {
            let lower = t.to_ascii_lowercase();
            is_all(&lower) || lower.starts_with("redirect=")
        })
        .map_or(terms.len(), |(i, _)| i);
    terms.insert(at, &wanted);
    terms.join(" ")
}

/// A Teams CNAME check: ok, or a warning.
pub(crate) fn check_teams_cname(
    kind: RecordKind,
    name: &str,
    target: &str,
    cnames: &[String],
) -> RecordCheck {
    let (status, fix) = if cnames.iter().any(|c| c == target) {
        (Status::Ok, None)
    } else if cnames.is_empty() {
        (
            Status::Warning,
            Some(format!(
                "for Teams / Skype for Business Online, add a CNAME record {name} pointing to {target}"
            )),
        )
    } else {
        (
            Status::Warning,
            Some(format!(
                "for Teams / Skype for Business Online, point the CNAME record {name} to {target}"
            )),
        )
    };
    RecordCheck {
        kind,
        name: name.to_owned(),
        found: cnames.to_vec(),
        expected: format!("CNAME {target}"),
        status,
        fix,
    }
}

/// A Teams SRV check: ok when one record has the documented target and port, else a warning.
pub(crate) fn check_teams_srv(
    kind: RecordKind,
    name: &str,
    want: &SrvTarget,
    found: &[Srv],
) -> RecordCheck {
    let wanted = format!(
        "{} {} {} {}",
        want.priority, want.weight, want.port, want.target
    );
    let ok = found
        .iter()
        .any(|s| s.target == want.target && s.port == want.port);
    let (status, fix) = if ok {
        (Status::Ok, None)
    } else {
        let verb = if found.is_empty() { "add" } else { "set" };
        (
            Status::Warning,
            Some(format!(
                "for Teams / Skype for Business Online, {verb} the SRV record {name}: {wanted} (priority weight port target)"
            )),
        )
    };
    RecordCheck {
        kind,
        name: name.to_owned(),
        found: found.iter().map(Srv::show).collect(),
        expected: format!("SRV {wanted}"),
        status,
        fix,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expected() -> ExpectedRecords {
        ExpectedRecords::for_domain("contoso.com").unwrap()
    }

    fn mx(preference: u16, host: &str) -> Mx {
        Mx {
            preference,
            host: host.to_owned(),
        }
    }

    #[test]
    fn mx_only_exchange_online_is_ok() {
        let checks = check_mx(
            "contoso.com",
            &expected(),
            &[mx(0, "contoso-com.mail.protection.outlook.com")],
        );
        assert_eq!(checks.len(), 1);
        assert_eq!(checks[0].status, Status::Ok);
        assert_eq!(
            checks[0].found,
            ["0 contoso-com.mail.protection.outlook.com"]
        );
        assert_eq!(checks[0].fix, None);
    }

    #[test]
    fn mx_old_host_with_better_or_equal_priority_is_wrong() {
        for old in [0, 5] {
            let checks = check_mx(
                "contoso.com",
                &expected(),
                &[
                    mx(5, "contoso-com.mail.protection.outlook.com"),
                    mx(old, "mx.oldhost.net"),
                ],
            );
            assert_eq!(checks.len(), 1);
            assert_eq!(checks[0].status, Status::Wrong, "old priority {old}");
            let fix = checks[0].fix.as_deref().unwrap();
            assert!(fix.contains("remove mx.oldhost.net"), "{fix}");
        }
    }

    #[test]
    fn mx_backup_with_worse_priority_is_ok_with_a_warning() {
        let checks = check_mx(
            "contoso.com",
            &expected(),
            &[
                mx(20, "mx.oldhost.net"),
                mx(0, "contoso-com.mail.protection.outlook.com"),
            ],
        );
        assert_eq!(checks[0].status, Status::Ok);
        assert_eq!(
            checks[0].found,
            [
                "0 contoso-com.mail.protection.outlook.com",
                "20 mx.oldhost.net"
            ]
        );
        assert_eq!(checks[1].kind, RecordKind::BackupMx);
        assert_eq!(checks[1].status, Status::Warning);
        assert_eq!(checks[1].found, ["20 mx.oldhost.net"]);
    }

    #[test]
    fn spf_recognition() {
        assert!(is_spf("v=spf1 -all"));
        assert!(is_spf("V=SPF1 include:x -all"));
        assert!(is_spf("v=spf1"));
        assert!(!is_spf("v=spf10 -all"));
        assert!(!is_spf("MS=ms12345"));
        assert!(!is_spf("v=DMARC1; p=none"));
        assert!(!is_spf(""));
    }

    fn spf_status(record: &str) -> Status {
        check_spf("contoso.com", &expected(), &[record.to_owned()]).status
    }

    #[test]
    fn spf_include_must_come_before_all() {
        assert_eq!(
            spf_status("v=spf1 include:spf.protection.outlook.com -all"),
            Status::Ok
        );
        assert_eq!(
            spf_status("v=spf1 +INCLUDE:SPF.protection.outlook.com. ~all"),
            Status::Ok
        );
        assert_eq!(
            spf_status("v=spf1 ip4:192.0.2.1 include:spf.protection.outlook.com"),
            Status::Ok
        );
        assert_eq!(
            spf_status("v=spf1 -all include:spf.protection.outlook.com"),
            Status::Wrong
        );
        assert_eq!(
            spf_status("v=spf1 ~include:spf.protection.outlook.com -all"),
            Status::Wrong
        );
        assert_eq!(
            spf_status("v=spf1 include:spf.protection.outlook.com.evil -all"),
            Status::Wrong
        );
        assert_eq!(
            spf_status("v=spf1 include:spf.oldhost.net -all"),
            Status::Wrong
        );
    }

    #[test]
    fn spf_suggestion_puts_the_include_before_all() {
        assert_eq!(
            suggest_spf(
                "v=spf1 ip4:192.0.2.1 include:spf.oldhost.net ~all",
                "spf.protection.outlook.com"
            ),
            "v=spf1 ip4:192.0.2.1 include:spf.oldhost.net include:spf.protection.outlook.com ~all"
        );
        assert_eq!(
            suggest_spf(
                "v=spf1 -all include:spf.protection.outlook.com",
                "spf.protection.outlook.com"
            ),
            "v=spf1 include:spf.protection.outlook.com -all"
        );
        assert_eq!(
            suggest_spf("v=spf1 mx", "spf.protection.outlook.com"),
            "v=spf1 mx include:spf.protection.outlook.com"
        );
        assert_eq!(
            suggest_spf(
                "v=spf1 redirect=_spf.example.net",
                "spf.protection.outlook.com"
            ),
            "v=spf1 include:spf.protection.outlook.com redirect=_spf.example.net"
        );
    }

    #[test]
    fn autodiscover_address_record_is_wrong() {
        let check = check_autodiscover(
            "autodiscover.contoso.com",
            &expected(),
            &[],
            &["A 203.0.113.5".to_owned()],
        );
        assert_eq!(check.status, Status::Wrong);
        assert!(check.fix.unwrap().contains("203.0.113.5"));
    }
}
