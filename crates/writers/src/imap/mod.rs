//! IMAP APPEND target: any IMAP server, and Exchange Online over IMAP with app-only XOAUTH2.
//!
//! * Messages are appended **byte for byte** with their flags and INTERNALDATE (a byte-identical
//!   copy), except on the Exchange Online profile, where lines over
//!   [`o365_migrate_mime::EXCHANGE_IMAP_MAX_LINE`] characters are wrapped (the service refuses
//!   them) and the change is reported as a note on the item.
//! * Folders: well-known folders are found by SPECIAL-USE attribute, then by name (`Sent`,
//!   `Sent Items`, ...), else created; planned paths are joined with the target's hierarchy
//!   delimiter below its personal namespace; a delimiter inside a name becomes `_` (reported).
//! * Dedupe: before the first write into a folder the writer fetches
//!   `UID FLAGS RFC822.SIZE BODY.PEEK[HEADER.FIELDS (MESSAGE-ID DATE FROM SUBJECT RECEIVED)]` of
//!   every message there and computes each one's fingerprint (see [`o365_migrate_mime::fingerprint`]:
//!   the Message-ID, else a hash of the Date, From, Subject and first Received fields — all
//!   inside the fetched header block, so the key is exact, not a guess). A message whose
//!   Message-ID or fingerprint is already there is [`crate::WriteOutcome::AlreadyPresent`].
//!   Nothing extra is stored in the target (the bytes stay identical). Limit: two different
//!   messages without a Message-ID and with the same Date, From, Subject and first Received
//!   count as one.
//! * Speed: each mailbox has a small pool of connections; concurrent writes into one folder are
//!   gathered into groups that one connection appends pipelined (LITERAL+) into the folder it
//!   has SELECTed first.
//! * Unknown outcomes: when a connection breaks while APPENDs are in flight, those items fail
//!   with a transient error and the folder's dedupe cache is dropped, so the retry looks at the
//!   server again and never appends a second copy.
//!
//! ```no_run
//! use o365_migrate_target::imap::{ClientConfig, ImapLogin, ImapTarget, ImapTargetConfig};
//! use o365_migrate_target::{FolderSpec, SecretString, Target, WellKnownFolder};
//!
//! # async fn demo(item: o365_migrate_target::WriteItem) -> Result<(), o365_migrate_target::Error> {
//! // A Dovecot target where an admin (master) user writes into every mailbox.
//! let login = ImapLogin::MasterPlain {
//!     master: "admin".into(),
//!     password: SecretString::new("admin-secret"),
//! };
//! let target = ImapTarget::new(ImapTargetConfig::new(ClientConfig::tls("imap.example.org"), login));
//! let mailbox = target.open_mailbox("alice").await?;
//! let folders = mailbox
//!     .ensure_folders(&[FolderSpec::under("INBOX/Receipts", WellKnownFolder::Inbox, ["Receipts"])])
//!     .await?;
//! let outcome = mailbox.write(&folders[0], &item).await?; // Written or AlreadyPresent
//! # let _ = outcome; Ok(()) }
//! ```

mod folders;
mod writer;

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

pub use o365_migrate_imap::{ClientConfig, Security, TlsOptions};
pub use writer::ImapMailboxWriter;

#[cfg(feature = "identity")]
use crate::cloud::Endpoints;
#[cfg(feature = "identity")]
use crate::identity::{Credential, TokenProvider};
use crate::writer::{BoxFuture, Capabilities, MailboxWriter, Target};
use crate::{Error, SecretString};

/// Which server family the target is; decides the defaults for its quirks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum ImapProfile {
    /// Any standards-following server (Dovecot, Cyrus, Gmail, ...): bytes unchanged.
    #[default]
    Generic,
    /// Exchange Online (`outlook.office365.com`): `\Flagged` re-applied by STORE, lines over
    /// ~10,000 characters wrapped, the reserved `Files` folder renamed, `Sent Items` style names
    /// for missing well-known folders.
    ExchangeOnline,
}

/// How to log in with a password.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum PasswordMechanism {
    /// `LOGIN user password`.
    #[default]
    Login,
    /// `AUTHENTICATE PLAIN`.
    Plain,
}

/// How the writer logs in to each mailbox. `Debug` never shows a secret.
#[derive(Clone)]
#[non_exhaustive]
pub enum ImapLogin {
    /// Each mailbox logs in as itself with its own password (the mailbox name given to
    /// [`Target::open_mailbox`] is the login).
    PerUser {
        /// Login → password.
        passwords: HashMap<String, SecretString>,
        /// LOGIN or AUTHENTICATE PLAIN.
        mechanism: PasswordMechanism,
    },
    /// An admin (master) user logs in on behalf of each mailbox with AUTHENTICATE PLAIN and the
    /// mailbox as authorization identity (Dovecot master users, Cyrus admins, Zimbra admins).
    MasterPlain {
        /// The admin user.
        master: String,
        /// Its password.
        password: SecretString,
    },
    /// An admin user logs in with `LOGIN "<mailbox><separator><master>"` (Dovecot's
    /// `auth_master_user_separator`, usually `*`).
    MasterSeparator {
        /// The admin user.
        master: String,
        /// Its password.
        password: SecretString,
        /// The separator the server is configured with.
        separator: char,
    },
    /// OAuth 2.0 (`AUTHENTICATE XOAUTH2`, or OAUTHBEARER): Exchange Online app-only tokens
    /// (permission `IMAP.AccessAsApp`, scope `https://outlook.office365.com/.default`).
    #[cfg(feature = "identity")]
    OAuth {
        /// The token source (built with [`TokenProvider::with_scope`]).
        tokens: Arc<TokenProvider>,
        /// Use OAUTHBEARER (RFC 7628) instead of XOAUTH2.
        oauthbearer: bool,
    },
}

impl fmt::Debug for ImapLogin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::PerUser {
                passwords,
                mechanism,
            } => f
                .debug_struct("PerUser")
                .field("users", &passwords.len())
                .field("mechanism", mechanism)
                .finish_non_exhaustive(),
            Self::MasterPlain { master, .. } => f
                .debug_struct("MasterPlain")
                .field("master", master)
                .finish_non_exhaustive(),
            Self::MasterSeparator {
                master, separator, ..
            } => f
                .debug_struct("MasterSeparator")
                .field("master", master)
                .field("separator", separator)
                .finish_non_exhaustive(),
            #[cfg(feature = "identity")]
            Self::OAuth { oauthbearer, .. } => f
                .debug_struct("OAuth")
                .field("oauthbearer", oauthbearer)
                .finish_non_exhaustive(),
        }
    }
}

/// Adapts the identity module's token cache to the IMAP crate's token trait.
#[cfg(feature = "identity")]
struct ImapTokens(Arc<TokenProvider>, String);

#[cfg(feature = "identity")]
impl o365_migrate_imap::TokenProvider for ImapTokens {
    fn token(&self) -> o365_migrate_imap::TokenFuture<'_> {
        Box::pin(async move {
            self.0
                .token()
                .await
                .map(|t| o365_migrate_imap::Secret::new(t.secret.expose()))
                .map_err(|e| o365_migrate_imap::Error::LoginFailed {
                    user: self.1.clone(),
                    text: format!("no token: {e}"),
                })
        })
    }
}

impl ImapLogin {
    /// The IMAP crate's login for `mailbox`.
    pub(crate) fn auth_for(&self, mailbox: &str) -> Result<o365_migrate_imap::Auth, Error> {
        use o365_migrate_imap::{Auth, Secret};
        Ok(match self {
            Self::PerUser {
                passwords,
                mechanism,
            } => {
                let password = passwords.get(mailbox).ok_or_else(|| Error::MailboxUnavailable {
                    mailbox: mailbox.into(),
                    reason: "no password for this login".into(),
                    hint: Some("add the mailbox to the credentials file, or use an admin (master) login".into()),
                })?;
                let password = Secret::new(password.expose());
                match mechanism {
                    PasswordMechanism::Login => Auth::Login {
                        user: mailbox.into(),
                        password,
                    },
                    PasswordMechanism::Plain => Auth::Plain {
                        authorize_as: None,
                        user: mailbox.into(),
                        password,
                    },
                }
            }
            Self::MasterPlain { master, password } => Auth::Plain {
                authorize_as: Some(mailbox.into()),
                user: master.clone(),
                password: Secret::new(password.expose()),
            },
            Self::MasterSeparator {
                master,
                password,
                separator,
            } => Auth::Login {
                user: format!("{mailbox}{separator}{master}"),
                password: Secret::new(password.expose()),
            },
            #[cfg(feature = "identity")]
            Self::OAuth {
                tokens,
                oauthbearer,
            } => {
                let tokens: Arc<dyn o365_migrate_imap::TokenProvider> =
                    Arc::new(ImapTokens(tokens.clone(), mailbox.to_string()));
                if *oauthbearer {
                    Auth::OAuthBearer {
                        user: mailbox.into(),
                        tokens,
                    }
                } else {
                    Auth::XOAuth2 {
                        user: mailbox.into(),
                        tokens,
                    }
                }
            }
        })
    }
}

/// Everything an [`ImapTarget`] needs. Start from [`ImapTargetConfig::new`] or
/// [`ImapTargetConfig::exchange_online`] and adjust fields.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ImapTargetConfig {
    /// Host, port, TLS (the IMAP crate's connection settings).
    pub client: ClientConfig,
    /// How to log in.
    pub login: ImapLogin,
    /// Server family.
    pub profile: ImapProfile,
    /// Connections per mailbox (default 2; Exchange Online allows a few per mailbox).
    pub connections_per_mailbox: usize,
    /// APPEND commands in flight per connection (default 16).
    pub append_window: usize,
    /// Most messages one connection appends in one group (default 64).
    pub batch: usize,
    /// Re-apply `\Flagged` by UID STORE when the server dropped it at APPEND (checked by
    /// FETCH FLAGS of the APPENDUID). On by default for Exchange Online.
    pub restore_flagged: bool,
    /// Wrap lines longer than this (the MIME crate's lossless repair); `None` sends the bytes
    /// unchanged. Exchange Online: [`o365_migrate_mime::EXCHANGE_IMAP_MAX_LINE`].
    pub max_line_length: Option<usize>,
    /// Largest message accepted (raw bytes), besides the server's APPENDLIMIT.
    pub max_message_bytes: Option<u64>,
    /// Top-level folder names the target reserves → the name used instead.
    pub reserved_folders: Vec<(String, String)>,
    /// How often a throttled APPEND is retried (after sleeping the suggested back-off and
    /// reconnecting) before the item fails with [`Error::RetriesExhausted`].
    pub throttle_retries: u32,
    /// Longest back-off honoured per throttling reply (Exchange suggests up to ~5 minutes).
    pub max_backoff: Duration,
    /// Back-off used when the server throttles without saying how long.
    pub default_backoff: Duration,
}

impl ImapTargetConfig {
    /// A generic server: bytes unchanged, two connections per mailbox.
    pub fn new(client: ClientConfig, login: ImapLogin) -> Self {
        Self {
            client,
            login,
            profile: ImapProfile::Generic,
            connections_per_mailbox: 2,
            append_window: 16,
            batch: 64,
            restore_flagged: false,
            max_line_length: None,
            max_message_bytes: None,
            reserved_folders: Vec::new(),
            throttle_retries: 5,
            max_backoff: Duration::from_secs(600),
            default_backoff: Duration::from_secs(30),
        }
    }

    /// Exchange Online over IMAP with an app-only XOAUTH2 token (scope
    /// `{exchange}/.default`; the app needs `IMAP.AccessAsApp`, a service principal in Exchange
    /// and FullAccess on each mailbox). Host from `endpoints.exchange`, port 993, TLS verified.
    #[cfg(feature = "identity")]
    pub fn exchange_online(
        tenant: impl Into<String>,
        client_id: impl Into<String>,
        credential: Credential,
        endpoints: Endpoints,
    ) -> Result<Self, Error> {
        let host = endpoints
            .exchange
            .trim_start_matches("https://")
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .to_string();
        let scope = endpoints.exchange_scope();
        let tokens =
            TokenProvider::new(tenant, client_id, credential, endpoints)?.with_scope(scope);
        let mut c = Self::new(
            ClientConfig::tls(host),
            ImapLogin::OAuth {
                tokens: Arc::new(tokens),
                oauthbearer: false,
            },
        );
        c.apply_exchange_online_profile();
        Ok(c)
    }

    /// Sets the Exchange Online quirks on this configuration (keeps host and login).
    pub fn apply_exchange_online_profile(&mut self) {
        self.profile = ImapProfile::ExchangeOnline;
        self.restore_flagged = true;
        self.max_line_length = Some(o365_migrate_mime::EXCHANGE_IMAP_MAX_LINE);
        self.reserved_folders = vec![("Files".into(), "Files (migrated)".into())];
        // Exchange Online's default MaxReceiveSize.
        self.max_message_bytes = Some(35 * 1024 * 1024);
    }
}

/// An IMAP server as migration target.
#[derive(Debug)]
pub struct ImapTarget {
    config: Arc<ImapTargetConfig>,
}

impl ImapTarget {
    /// Builds the target (no network traffic yet).
    pub fn new(config: ImapTargetConfig) -> Self {
        Self {
            config: Arc::new(config),
        }
    }

    /// Opens a typed writer for `mailbox` (logs in once to check the credentials).
    pub async fn open(&self, mailbox: &str) -> Result<Arc<ImapMailboxWriter>, Error> {
        ImapMailboxWriter::open(self.config.clone(), mailbox).await
    }

    fn caps(&self) -> Capabilities {
        let exo = self.config.profile == ImapProfile::ExchangeOnline;
        let mut c = Capabilities::keeps_state(if exo { "imap-exchange-online" } else { "imap" });
        c.max_message_bytes = self.config.max_message_bytes;
        c.keeps_raw_bytes = self.config.max_line_length.is_none();
        if exo {
            c.with_exchange_folder_names()
        } else {
            c
        }
    }
}

impl Target for ImapTarget {
    fn capabilities(&self) -> Capabilities {
        self.caps()
    }

    fn check(&self) -> BoxFuture<'_, Result<(), Error>> {
        Box::pin(async move {
            // Only a connection can be checked here; logins are checked per mailbox.
            o365_migrate_imap::Session::connect(&self.config.client)
                .await
                .map(|_| ())
                .map_err(|e| writer::map_err(e, "connect", &self.config.client.host))
        })
    }

    fn open_mailbox<'a>(
        &'a self,
        mailbox: &'a str,
    ) -> BoxFuture<'a, Result<Arc<dyn MailboxWriter>, Error>> {
        Box::pin(async move {
            let w: Arc<dyn MailboxWriter> = self.open(mailbox).await?;
            Ok(w)
        })
    }
}
