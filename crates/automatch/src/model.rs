//! Input model: source identities and directory users.

use serde::{Deserialize, Serialize};

/// One source mailbox as the credentials file describes it.
///
/// `login` identifies the source; it must be unique (case-insensitively)
/// within one run. The other fields are optional evidence for the rules.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceIdentity {
    /// Login name on the source server (often an address, e.g. `alice@old.example`).
    pub login: String,
    /// Primary e-mail address, when different from the login.
    #[serde(default)]
    pub address: Option<String>,
    /// Given name.
    #[serde(default)]
    pub first: Option<String>,
    /// Surname.
    #[serde(default)]
    pub last: Option<String>,
    /// Display name.
    #[serde(default)]
    pub display: Option<String>,
}

impl SourceIdentity {
    /// A source known only by its login.
    pub fn new(login: impl Into<String>) -> Self {
        Self {
            login: login.into(),
            ..Self::default()
        }
    }

    /// Sets the address.
    #[must_use]
    pub fn with_address(mut self, address: impl Into<String>) -> Self {
        self.address = Some(address.into());
        self
    }

    /// Sets first and last name.
    #[must_use]
    pub fn with_name(mut self, first: impl Into<String>, last: impl Into<String>) -> Self {
        self.first = Some(first.into());
        self.last = Some(last.into());
        self
    }

    /// Sets the display name.
    #[must_use]
    pub fn with_display(mut self, display: impl Into<String>) -> Self {
        self.display = Some(display.into());
        self
    }
}

/// One user of the target directory (shape of a Microsoft Graph `user`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DirectoryUser {
    /// Directory object id; must be unique.
    pub id: String,
    /// `userPrincipalName`.
    pub user_principal_name: String,
    /// `mail` (primary SMTP address), if any.
    #[serde(default)]
    pub mail: Option<String>,
    /// `proxyAddresses`: `SMTP:` primary, `smtp:` secondary; other types
    /// (`X500:`, `SIP:`) are ignored.
    #[serde(default)]
    pub proxy_addresses: Vec<String>,
    /// `givenName`.
    #[serde(default)]
    pub given_name: Option<String>,
    /// `surname`.
    #[serde(default)]
    pub surname: Option<String>,
    /// `displayName`.
    #[serde(default)]
    pub display_name: Option<String>,
    /// Whether an Exchange mailbox exists (serde default: true, so an
    /// export without the column does not flag every match).
    #[serde(default = "yes")]
    pub has_mailbox: bool,
    /// Whether a licence is assigned (serde default: true).
    #[serde(default = "yes")]
    pub licensed: bool,
}

fn yes() -> bool {
    true
}

impl DirectoryUser {
    /// A user with id and UPN; everything else empty.
    pub fn new(id: impl Into<String>, upn: impl Into<String>) -> Self {
        Self {
            id: id.into(),
            user_principal_name: upn.into(),
            has_mailbox: true,
            licensed: true,
            ..Self::default()
        }
    }

    /// Sets `mail`.
    #[must_use]
    pub fn with_mail(mut self, mail: impl Into<String>) -> Self {
        self.mail = Some(mail.into());
        self
    }

    /// Appends one proxy address (write the `SMTP:`/`smtp:` prefix yourself).
    #[must_use]
    pub fn with_proxy(mut self, proxy: impl Into<String>) -> Self {
        self.proxy_addresses.push(proxy.into());
        self
    }

    /// Sets given name and surname.
    #[must_use]
    pub fn with_name(mut self, given: impl Into<String>, surname: impl Into<String>) -> Self {
        self.given_name = Some(given.into());
        self.surname = Some(surname.into());
        self
    }

    /// Sets the display name.
    #[must_use]
    pub fn with_display(mut self, display: impl Into<String>) -> Self {
        self.display_name = Some(display.into());
        self
    }
}

/// A reference to a directory user in results.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct TargetRef {
    /// Directory object id.
    pub id: String,
    /// `userPrincipalName`.
    pub upn: String,
}

impl TargetRef {
    /// The UPN, or the id when the UPN is empty (as the mapping CSV shows it).
    pub fn label(&self) -> &str {
        if self.upn.is_empty() {
            &self.id
        } else {
            &self.upn
        }
    }
}

impl std::fmt::Display for TargetRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.upn, self.id)
    }
}
