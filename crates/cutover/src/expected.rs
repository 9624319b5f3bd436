//! The records Exchange Online needs, from Microsoft's documented patterns or given by the
//! caller (for example from Microsoft Graph's `serviceConfigurationRecords`).

use serde::Serialize;

use crate::Error;

/// The suffix of a domain's Exchange Online MX host, `<MX token>.mail.protection.outlook.com`.
///
/// "Target email server: `<MX token>.mail.protection.outlook.com`"; "Once email is flowing to
/// Exchange Online, you should remove the MX records that are pointing to your old system":
/// <https://learn.microsoft.com/en-us/microsoft-365/enterprise/external-domain-name-system-records>
pub const MX_SUFFIX: &str = "mail.protection.outlook.com";

/// The suffix of the DNSSEC-capable MX host Exchange Online hands out after
/// `Enable-DnssecForVerifiedDomain`, for example `contosotest-com.o-v1.mx.microsoft`.
///
/// <https://learn.microsoft.com/en-us/microsoft-365/enterprise/configure-multi-geo-in-region-routing>
/// ("DnssecMxValue … contosotest-com.o-v1.mx.microsoft"; "Delete the legacy MX record ending with
/// mail.protection.outlook.com"), and
/// <https://learn.microsoft.com/en-us/purview/how-smtp-dane-works>.
pub const MX_DNSSEC_SUFFIX: &str = "mx.microsoft";

/// The MX priority Microsoft asks for: "Set the priority of the MX record to the highest value
/// available, which is typically 0", and "If you have any MX records for this domain that send
/// email to someplace other than Microsoft 365, delete them all."
///
/// <https://learn.microsoft.com/en-us/microsoft-365/admin/get-help-with-domains/create-dns-records-at-any-dns-hosting-provider>
pub const MX_PREFERENCE: u16 = 0;

/// Where `autodiscover.<domain>` must point: "Alias: Autodiscover, Target: autodiscover.outlook.com".
///
/// <https://learn.microsoft.com/en-us/microsoft-365/enterprise/external-domain-name-system-records>
pub const AUTODISCOVER_TARGET: &str = "autodiscover.outlook.com";

/// The domain the SPF record must include: "Exchange Online … include:spf.protection.outlook.com";
/// "you can only have a single SPF record for your domain".
///
/// <https://learn.microsoft.com/en-us/microsoft-365/enterprise/external-domain-name-system-records>
pub const SPF_INCLUDE: &str = "spf.protection.outlook.com";

/// The SPF record Microsoft suggests when Exchange Online is the only sender.
///
/// <https://learn.microsoft.com/en-us/microsoft-365/admin/get-help-with-domains/create-dns-records-at-any-dns-hosting-provider>
pub(crate) const SPF_RECORD: &str = "v=spf1 include:spf.protection.outlook.com -all";

// Teams / Skype for Business Online records (reported as warnings only):
// "CNAME lyncdiscover → webdir.online.lync.com", "CNAME sip → sipdir.online.lync.com",
// "SRV _sip._tls 100 1 443 sipdir.online.lync.com",
// "SRV _sipfederationtls._tcp 100 1 5061 sipfed.online.lync.com":
// https://learn.microsoft.com/en-us/microsoft-365/admin/get-help-with-domains/create-dns-records-at-any-dns-hosting-provider
pub(crate) const SIP_TARGET: &str = "sipdir.online.lync.com";
pub(crate) const LYNCDISCOVER_TARGET: &str = "webdir.online.lync.com";
pub(crate) const SIP_TLS_SRV: SrvTarget = SrvTarget {
    priority: 100,
    weight: 1,
    port: 443,
    target: "sipdir.online.lync.com",
};
pub(crate) const SIP_FEDERATION_SRV: SrvTarget = SrvTarget {
    priority: 100,
    weight: 1,
    port: 5061,
    target: "sipfed.online.lync.com",
};

/// An SRV record Microsoft documents.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SrvTarget {
    pub(crate) priority: u16,
    pub(crate) weight: u16,
    pub(crate) port: u16,
    pub(crate) target: &'static str,
}

/// What a domain's records must say for its mail to go to Exchange Online.
///
/// [`ExpectedRecords::for_domain`] follows Microsoft's documented patterns. When the tenant knows
/// better (Microsoft Graph's `GET /domains/{id}/serviceConfigurationRecords` lists each record:
/// `mailExchange` and `preference` of the MX record, `canonicalName` of the Autodiscover CNAME,
/// the `text` of the SPF TXT record), build one with [`ExpectedRecords::new`] and set the fields.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct ExpectedRecords {
    /// The MX host, such as `contoso-com.mail.protection.outlook.com`. The DNSSEC form of the same
    /// token (`contoso-com.<x>-v1.mx.microsoft`) and the legacy form
    /// (`contoso-com.mail.protection.outlook.com`) are accepted too: both deliver to Exchange
    /// Online.
    pub mx_host: String,
    /// The MX priority to put in fix sentences (the check itself only requires that no other
    /// host has the same or a better priority).
    pub mx_preference: u16,
    /// The target of the `autodiscover.<domain>` CNAME.
    pub autodiscover: String,
    /// The domain the one SPF record must `include:`.
    pub spf_include: String,
}

impl ExpectedRecords {
    /// Expected records with the given MX host and Microsoft's documented values for the rest
    /// (priority 0, `autodiscover.outlook.com`, `include:spf.protection.outlook.com`).
    pub fn new(mx_host: impl Into<String>) -> Self {
        ExpectedRecords {
            mx_host: normalize_host(&mx_host.into()),
            mx_preference: MX_PREFERENCE,
            autodiscover: AUTODISCOVER_TARGET.to_owned(),
            spf_include: SPF_INCLUDE.to_owned(),
        }
    }

    /// The records Microsoft's documented patterns give `domain`: the MX host is the domain with
    /// its dots replaced by dashes (the "MX token"), lower-cased, before
    /// `.mail.protection.outlook.com` — `Contoso.COM.` gives
    /// `contoso-com.mail.protection.outlook.com`.
    ///
    /// "For example, if your customized domain is "contoso.com" your domainGuid becomes
    /// "contoso-com", any periods are replaced with a dash", the same token as "the customized MX
    /// record for your custom domain that appears before mail.protection.outlook.com":
    /// <https://learn.microsoft.com/en-us/microsoft-365/security/office-365-security/use-dkim-to-validate-outbound-email>.
    /// Microsoft sometimes hands out another token (the admin center shows it); pass that with
    /// [`ExpectedRecords::new`].
    pub fn for_domain(domain: &str) -> Result<Self, Error> {
        let domain = normalize_domain(domain)?;
        Ok(Self::new(format!("{}.{MX_SUFFIX}", mx_token(&domain))))
    }

    /// Lower-cases the names and drops trailing dots, so comparisons are plain string equality.
    pub(crate) fn normalized(&self) -> Self {
        ExpectedRecords {
            mx_host: normalize_host(&self.mx_host),
            mx_preference: self.mx_preference,
            autodiscover: normalize_host(&self.autodiscover),
            spf_include: normalize_host(&self.spf_include),
        }
    }

    /// The first label of the MX host (`contoso-com` of `contoso-com.mail.protection.outlook.com`).
    pub(crate) fn mx_token(&self) -> &str {
        self.mx_host.split('.').next().unwrap_or_default()
    }

    /// Whether `host` (normalized) delivers to Exchange Online for this domain: the expected
    /// host itself, or the expected token under `mail.protection.outlook.com` or under
    /// `<letters>-v<digits>.mx.microsoft`.
    pub(crate) fn is_exchange_online_mx(&self, host: &str) -> bool {
        if host == self.mx_host {
            return true;
        }
        let Some((token, rest)) = host.split_once('.') else {
            return false;
        };
        if token != self.mx_token() {
            return false;
        }
        if rest == MX_SUFFIX {
            return true;
        }
        match rest
            .strip_suffix(MX_DNSSEC_SUFFIX)
            .and_then(|r| r.strip_suffix('.'))
        {
            Some(zone) => is_dnssec_zone_label(zone),
            None => false,
        }
    }
}

/// `o-v1` of `contosotest-com.o-v1.mx.microsoft`: letters, `-v`, digits.
fn is_dnssec_zone_label(label: &str) -> bool {
    let Some((letters, version)) = label.rsplit_once("-v") else {
        return false;
    };
    !letters.is_empty()
        && letters.bytes().all(|b| b.is_ascii_lowercase())
        && !version.is_empty()
        && version.bytes().all(|b| b.is_ascii_digit())
}

/// The MX token of a normalized domain: its dots replaced by dashes.
pub(crate) fn mx_token(domain: &str) -> String {
    domain.replace('.', "-")
}

/// Lower-case ASCII without the trailing dot.
pub(crate) fn normalize_host(host: &str) -> String {
    host.trim().trim_end_matches('.').to_ascii_lowercase()
}

/// The domain as lower-case ASCII (IDNA for internationalized names) without a trailing dot, or
/// [`Error::InvalidDomain`].
pub(crate) fn normalize_domain(input: &str) -> Result<String, Error> {
    let invalid = |reason: &str| Error::InvalidDomain {
        domain: input.to_owned(),
        reason: reason.to_owned(),
    };
    let trimmed = input.trim();
    let bare = trimmed.strip_suffix('.').unwrap_or(trimmed);
    if bare.is_empty() {
        return Err(invalid("it is empty"));
    }
    if let Some(c) = bare
        .chars()
        .find(|c| c.is_whitespace() || matches!(c, '@' | '/' | ':' | '\\' | '_'))
    {
        return Err(invalid(&format!("it contains {c:?}")));
    }
    let name = hickory_resolver::proto::rr::Name::from_utf8(bare)
        .map_err(|e| invalid(&format!("it is not a valid DNS name ({e})")))?;
    let ascii = normalize_host(&name.to_ascii());
    if ascii.split('.').any(str::is_empty) {
        return Err(invalid("it has an empty label"));
    }
    if !ascii.contains('.') {
        return Err(invalid("it has a single label; give the full domain"));
    }
    Ok(ascii)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mx_host_replaces_dots_with_dashes() {
        let expected = ExpectedRecords::for_domain("contoso.com").unwrap();
        assert_eq!(expected.mx_host, "contoso-com.mail.protection.outlook.com");
        let expected = ExpectedRecords::for_domain("mail.sales.fabrikam.co.uk").unwrap();
        assert_eq!(
            expected.mx_host,
            "mail-sales-fabrikam-co-uk.mail.protection.outlook.com"
        );
        // A dash already in the domain stays a dash.
        let expected = ExpectedRecords::for_domain("my-company.com").unwrap();
        assert_eq!(
            expected.mx_host,
            "my-company-com.mail.protection.outlook.com"
        );
    }

    #[test]
    fn mx_host_ignores_case_trailing_dot_and_spaces() {
        for input in ["Contoso.COM", "contoso.com.", " CONTOSO.com. "] {
            let expected = ExpectedRecords::for_domain(input).unwrap();
            assert_eq!(
                expected.mx_host, "contoso-com.mail.protection.outlook.com",
                "{input:?}"
            );
        }
    }

    #[test]
    fn internationalized_domains_use_their_ascii_form() {
        let expected = ExpectedRecords::for_domain("bücher.de").unwrap();
        assert_eq!(
            expected.mx_host,
            "xn--bcher-kva-de.mail.protection.outlook.com"
        );
    }

    #[test]
    fn the_other_records_are_microsofts_documented_values() {
        let expected = ExpectedRecords::for_domain("contoso.com").unwrap();
        assert_eq!(expected.mx_preference, 0);
        assert_eq!(expected.autodiscover, "autodiscover.outlook.com");
        assert_eq!(expected.spf_include, "spf.protection.outlook.com");
    }

    #[test]
    fn not_a_domain_is_an_error_with_a_hint() {
        for input in [
            "",
            ".",
            "user@contoso.com",
            "https://contoso.com",
            "contoso",
            "a..b",
            "contoso.com:25",
        ] {
            let err = ExpectedRecords::for_domain(input).unwrap_err();
            assert!(
                matches!(err, Error::InvalidDomain { .. }),
                "{input:?}: {err}"
            );
            assert!(err.to_string().contains("(hint: "), "{err}");
        }
    }

    #[test]
    fn exchange_online_mx_hosts() {
        let expected = ExpectedRecords::for_domain("contoso.com").unwrap();
        for host in [
            "contoso-com.mail.protection.outlook.com",
            "contoso-com.o-v1.mx.microsoft",
            "contoso-com.a-v1.mx.microsoft",
            "contoso-com.ab-v12.mx.microsoft",
        ] {
            assert!(expected.is_exchange_online_mx(host), "{host}");
        }
        for host in [
            "mx.oldhost.net",
            "fabrikam-com.mail.protection.outlook.com",
            "contoso-com.mail.protection.outlook.com.evil.example",
            "contoso-com.mx.microsoft",
            "contoso-com.o-vx.mx.microsoft",
            "contoso-com.-v1.mx.microsoft",
            "contoso-com.o-v1.mx.microsoft.example",
        ] {
            assert!(!expected.is_exchange_online_mx(host), "{host}");
        }
    }

    #[test]
    fn a_given_mx_host_accepts_its_own_token_in_both_forms() {
        let expected = ExpectedRecords::new("Contoso-com01c.mail.protection.outlook.com.");
        assert_eq!(
            expected.mx_host,
            "contoso-com01c.mail.protection.outlook.com"
        );
        assert!(expected.is_exchange_online_mx("contoso-com01c.mail.protection.outlook.com"));
        assert!(expected.is_exchange_online_mx("contoso-com01c.o-v1.mx.microsoft"));
        assert!(!expected.is_exchange_online_mx("contoso-com.mail.protection.outlook.com"));
    }
}
