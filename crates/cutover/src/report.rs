//! The report of one domain's cutover check.

use std::fmt;

use serde::{Serialize, Serializer};

/// What a check looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum RecordKind {
    /// The domain's MX records (required).
    Mx,
    /// An MX host other than Exchange Online's with a worse priority: a backup that still gets
    /// mail whenever Exchange Online is not reachable from a sender (warning only).
    BackupMx,
    /// The `autodiscover.<domain>` CNAME (required).
    Autodiscover,
    /// The domain's one SPF TXT record (required).
    Spf,
    /// The Teams / Skype for Business `sip.<domain>` CNAME (warning only).
    Sip,
    /// The Teams / Skype for Business `lyncdiscover.<domain>` CNAME (warning only).
    Lyncdiscover,
    /// The Teams / Skype for Business `_sip._tls.<domain>` SRV record (warning only).
    SipTls,
    /// The Teams / Skype for Business `_sipfederationtls._tcp.<domain>` SRV record (warning only).
    SipFederationTls,
}

impl RecordKind {
    /// The DNS record type the check reads.
    pub fn record_type(self) -> &'static str {
        match self {
            RecordKind::Mx | RecordKind::BackupMx => "MX",
            RecordKind::Autodiscover | RecordKind::Sip | RecordKind::Lyncdiscover => "CNAME",
            RecordKind::Spf => "TXT",
            RecordKind::SipTls | RecordKind::SipFederationTls => "SRV",
        }
    }

    /// Whether the domain only counts as cut over when this check is [`Status::Ok`]: MX,
    /// Autodiscover and SPF. The others can only warn.
    pub fn is_required(self) -> bool {
        matches!(
            self,
            RecordKind::Mx | RecordKind::Autodiscover | RecordKind::Spf
        )
    }

    fn label(self) -> &'static str {
        match self {
            RecordKind::Mx => "MX",
            RecordKind::BackupMx => "backup MX",
            RecordKind::Autodiscover => "Autodiscover",
            RecordKind::Spf => "SPF",
            RecordKind::Sip => "Teams sip",
            RecordKind::Lyncdiscover => "Teams lyncdiscover",
            RecordKind::SipTls => "Teams SIP",
            RecordKind::SipFederationTls => "Teams federation",
        }
    }
}

impl fmt::Display for RecordKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

/// The verdict of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// The record is what Exchange Online needs.
    Ok,
    /// A required record exists but says something else.
    Wrong,
    /// A required record does not exist (NXDOMAIN, or no record of the type).
    Missing,
    /// An optional record is absent or different; it does not stop the cutover.
    Warning,
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Status::Ok => "ok",
            Status::Wrong => "wrong",
            Status::Missing => "missing",
            Status::Warning => "warning",
        })
    }
}

/// One checked record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RecordCheck {
    /// What was checked.
    pub kind: RecordKind,
    /// The DNS name that was queried.
    pub name: String,
    /// What the DNS server answered, one entry a record (`0 mx.example.net` for MX, the text of
    /// TXT records, the target of a CNAME, `A 192.0.2.1` for an address record found where a
    /// CNAME belongs, `priority weight port target` for SRV). Empty when nothing was found.
    pub found: Vec<String>,
    /// What Exchange Online needs there.
    pub expected: String,
    /// The verdict.
    pub status: Status,
    /// What to change, naming the value the record must have. `None` when the status is
    /// [`Status::Ok`].
    pub fix: Option<String>,
}

impl RecordCheck {
    /// Whether this check is [`Status::Ok`].
    pub fn is_ok(&self) -> bool {
        self.status == Status::Ok
    }
}

/// The result of checking one domain: every check, in a fixed order (MX, backup MX,
/// Autodiscover, SPF, then the Teams records when asked for).
///
/// Two verdicts: [`DomainReport::mail_flows_to_exchange_online`] (MX and SPF right) and
/// [`DomainReport::passed`] (MX, Autodiscover and SPF right). A command line tool exits 0 only
/// when `passed()` is true: with a wrong Autodiscover record mail arrives in Exchange Online, but
/// Outlook keeps finding the old server. Warnings never fail either verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DomainReport {
    /// The domain, lower-case ASCII without a trailing dot.
    pub domain: String,
    /// Every check made.
    pub checks: Vec<RecordCheck>,
}

impl DomainReport {
    /// True when the MX and the SPF checks are [`Status::Ok`]: mail for the domain is delivered
    /// to Exchange Online, and mail Exchange Online sends for it passes SPF.
    pub fn mail_flows_to_exchange_online(&self) -> bool {
        self.required_ok(RecordKind::Mx) && self.required_ok(RecordKind::Spf)
    }

    /// True when every required check (MX, Autodiscover, SPF) is [`Status::Ok`]: the domain is
    /// cut over. Use this for a command's exit status.
    pub fn passed(&self) -> bool {
        self.mail_flows_to_exchange_online() && self.required_ok(RecordKind::Autodiscover)
    }

    /// The checks that are not [`Status::Ok`] (failures and warnings), in report order.
    pub fn problems(&self) -> impl Iterator<Item = &RecordCheck> {
        self.checks.iter().filter(|c| !c.is_ok())
    }

    /// The checks of one kind.
    pub fn checks_of(&self, kind: RecordKind) -> impl Iterator<Item = &RecordCheck> {
        self.checks.iter().filter(move |c| c.kind == kind)
    }

    /// The report for people: a verdict line, then one line a check, with what was expected and
    /// the fix under each check that is not ok.
    pub fn render_human(&self) -> String {
        let mut out = String::new();
        let verdict = if self.passed() {
            "cut over: MX, Autodiscover and SPF point to Exchange Online".to_owned()
        } else {
            let failed: Vec<String> = self
                .checks
                .iter()
                .filter(|c| c.kind.is_required() && !c.is_ok())
                .map(|c| format!("{} {}", c.kind, c.status))
                .collect();
            if self.mail_flows_to_exchange_online() {
                format!(
                    "NOT cut over: mail flows to Exchange Online, but {}",
                    failed.join(", ")
                )
            } else {
                format!(
                    "NOT cut over: mail does not flow to Exchange Online yet ({})",
                    failed.join(", ")
                )
            }
        };
        out.push_str(&format!("{}: {verdict}\n", self.domain));
        let label_width = self
            .checks
            .iter()
            .map(|c| c.kind.label().len())
            .max()
            .unwrap_or(0);
        let name_width = self.checks.iter().map(|c| c.name.len()).max().unwrap_or(0);
        for check in &self.checks {
            let found = if check.found.is_empty() {
                "(nothing found)".to_owned()
            } else {
                check.found.join(" | ")
            };
            out.push_str(&format!(
                "  {:<9} {:<label_width$}  {:<name_width$}  {}\n",
                format!("[{}]", check.status),
                check.kind.label(),
                check.name,
                found,
            ));
            if !check.is_ok() {
                out.push_str(&format!("            expected: {}\n", check.expected));
                if let Some(fix) = &check.fix {
                    out.push_str(&format!("            fix: {fix}\n"));
                }
            }
        }
        out
    }

    /// Whether checks of `kind` exist and none is anything but ok.
    fn required_ok(&self, kind: RecordKind) -> bool {
        let mut checks = self.checks_of(kind).peekable();
        checks.peek().is_some() && checks.all(RecordCheck::is_ok)
    }
}

impl fmt::Display for DomainReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.render_human())
    }
}

/// Serialized with the two verdicts next to the checks:
/// `{"domain", "passed", "mail_flows_to_exchange_online", "checks": [...]}`.
impl Serialize for DomainReport {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct View<'a> {
            domain: &'a str,
            passed: bool,
            mail_flows_to_exchange_online: bool,
            checks: &'a [RecordCheck],
        }
        View {
            domain: &self.domain,
            passed: self.passed(),
            mail_flows_to_exchange_online: self.mail_flows_to_exchange_online(),
            checks: &self.checks,
        }
        .serialize(serializer)
    }
}
