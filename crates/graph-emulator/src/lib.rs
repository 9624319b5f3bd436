//! A local Microsoft Graph emulator for testing Exchange Online migrations.
//!
//! It follows Microsoft's documented behaviour for what a mailbox migration touches:
//!
//! * **Identity platform**: `POST /{tenant}/oauth2/v2.0/token` with `client_credentials` and a
//!   client secret or a client assertion JWT (RS256 + `x5t`, PS256 + `x5t#S256`, verified against
//!   the app's registered certificate), `POST /{tenant}/oauth2/v2.0/devicecode` and the device code
//!   grant (`authorization_pending`, `slow_down`, `authorization_declined`, `expired_token`).
//!   Access tokens are JWT-shaped and carry `roles` (app-only) or `scp` (delegated).
//! * **Directory**: `/users` (list with `$select`, `$filter` (`eq`, `startswith`), `$top`,
//!   `@odata.nextLink`), create user, `PATCH` (usageLocation), `assignLicense` (usage location
//!   required first; a licence with Exchange provisions a mailbox after a delay),
//!   `/subscribedSkus`, `/users/{id}/mailboxSettings` (404 `MailboxNotEnabledForRESTAPI` until
//!   the mailbox exists).
//! * **Mail**: `mailFolders` (well-known names, `childFolders`, create, 409 on a duplicate name
//!   compared case-insensitively), messages (JSON create honours `Integer 0x0E07` for `isDraft`
//!   and `isRead` and stores `SystemTime 0x0E06` / `0x0039` as `receivedDateTime` /
//!   `sentDateTime`; a base64 MIME create on `/users/{id}/messages` makes a draft in Drafts;
//!   list with `$filter` on `internetMessageId` or an extended property, `$select`, `$expand`,
//!   `$top`, `$skip` paging, `$count`, `/$count`), attachments (inline; `createUploadSession` with
//!   chunked `PUT`s checked for order, `Content-Range`, chunk size and the absence of an
//!   `Authorization` header), `$batch` (at most 20, each sub-request throttled on its own).
//! * **Contacts and calendars**: `contactFolders`, `contacts` (with `photo/$value`), `calendars`,
//!   `calendar`, `events` (create with `transactionId`, `instances` expanding a
//!   `patternedRecurrence` in its Windows or IANA time zone, an occurrence deleted or patched,
//!   `attachments`), 409 on a duplicate folder or calendar name, 400 on an unsupported time zone
//!   or an invalid recurrence; invitations an event with attendees would send are counted
//!   ([`Emulator::invitations_sent`]); Microsoft To Do lists and tasks with `linkedResources`.
//! * **Categories**: the master category list, `outlook/masterCategories` (list, create, get,
//!   delete; `MailboxSettings.ReadWrite` to change it), 400 on a colour other than `none` or
//!   `preset0`–`preset24`, 409 on a duplicate name compared case-insensitively
//!   ([`Emulator::master_categories`]).
//! * **Throttling** per app and mailbox at the real limits (10,000 requests / 10 minutes, 4
//!   concurrent, 150 MB uploaded / 5 minutes) with a time-scale knob; 429 / 503 with
//!   `Retry-After`; requests over about 4 MB answer 413.
//! * **Faults** on demand: 503 storms, random 503/429, dropped connections, slow replies.
//! * **Inspection** for tests: [`Emulator::messages`], [`Emulator::counters`],
//!   [`Emulator::assert_limits_respected`], device-code approval, and the same over HTTP under
//!   `/_emulator/...`.
//!
//! It listens on 127.0.0.1 only.
//!
//! ```
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! use o365_migrate_graph_emulator::{Emulator, EmulatorConfig, UserConfig};
//!
//! let mut config = EmulatorConfig::default();
//! config.tenants[0].users.push(UserConfig::with_mailbox("alice@contoso.example"));
//! let emulator = Emulator::start(config).await.unwrap();
//! assert!(emulator.url().starts_with("http://127.0.0.1:"));
//! assert_eq!(emulator.messages("alice@contoso.example").len(), 0);
//! emulator.assert_limits_respected().unwrap();
//! # });
//! ```

mod auth;
mod categories;
mod config;
mod inspect;
mod mail;
mod pim;
mod recurrence;
mod server;
mod throttle;
mod todo;
mod util;
mod world;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

pub use config::{AppConfig, EmulatorConfig, Faults, Limits, SkuConfig, TenantConfig, UserConfig};
pub use inspect::{
    StoredAttachment, StoredContact, StoredEvent, StoredFolder, StoredMessage, StoredTask,
};
pub use throttle::{MailboxCounters, RETRY_AFTER_GRACE};

/// Errors from this crate.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The listening socket could not be opened.
    #[error(
        "cannot listen on 127.0.0.1:{port}: {source}; hint: pick another port or 0 for any free one"
    )]
    Bind {
        /// The port asked for.
        port: u16,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The configuration is unusable.
    #[error("emulator configuration: {0}")]
    Config(String),
}

/// A running emulator. Dropping it stops the server.
pub struct Emulator {
    shared: Arc<server::Shared>,
    addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for Emulator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Emulator")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl Emulator {
    /// Starts the emulator on a free port of 127.0.0.1.
    pub async fn start(config: EmulatorConfig) -> Result<Self, Error> {
        Self::start_on(config, 0).await
    }

    /// Starts the emulator on `port` of 127.0.0.1 (0 = any free port).
    pub async fn start_on(config: EmulatorConfig, port: u16) -> Result<Self, Error> {
        if config.tenants.is_empty() {
            return Err(Error::Config("at least one tenant is needed".into()));
        }
        if config.time_scale.is_nan() || config.time_scale <= 0.0 {
            return Err(Error::Config("time_scale must be above 0".into()));
        }
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .map_err(|source| Error::Bind { port, source })?;
        let addr = listener
            .local_addr()
            .map_err(|source| Error::Bind { port, source })?;
        let rng = ring::rand::SystemRandom::new();
        let token_key = ring::hmac::Key::generate(ring::hmac::HMAC_SHA256, &rng)
            .map_err(|_| Error::Config("no system randomness for the token key".into()))?;
        let shared = Arc::new(server::Shared {
            world: Mutex::new(world::World::new(&config)),
            config,
            base_url: format!("http://{addr}"),
            token_key,
        });
        let app = axum::Router::new()
            .fallback(server::handle)
            .with_state(shared.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Self { shared, addr, task })
    }

    /// Base URL, `http://127.0.0.1:PORT`: the authority host (token URL
    /// `{url}/{tenant}/oauth2/v2.0/token`) and the Graph host (`{url}/v1.0`).
    pub fn url(&self) -> &str {
        &self.shared.base_url
    }

    /// The Graph base, `{url}/v1.0`.
    pub fn graph_url(&self) -> String {
        format!("{}/v1.0", self.shared.base_url)
    }

    /// The first tenant's id.
    pub fn tenant_id(&self) -> String {
        self.shared
            .config
            .tenants
            .first()
            .map(|t| t.id.clone())
            .unwrap_or_default()
    }

    /// The configuration the emulator runs with.
    pub fn config(&self) -> &EmulatorConfig {
        &self.shared.config
    }

    /// Every message of a mailbox (by UPN or id), with all properties and attachment bytes.
    pub fn messages(&self, mailbox: &str) -> Vec<StoredMessage> {
        inspect::messages(&self.shared.lock(), mailbox)
    }

    /// Every contact of a mailbox, in every contact folder.
    pub fn contacts(&self, mailbox: &str) -> Vec<StoredContact> {
        inspect::contacts(&self.shared.lock(), mailbox)
    }

    /// Every event of a mailbox (single events and series masters), in every calendar.
    pub fn events(&self, mailbox: &str) -> Vec<StoredEvent> {
        inspect::events(&self.shared.lock(), mailbox)
    }

    /// The instances of event `event_id` overlapping `[from, to)` (UTC, RFC 3339), as
    /// `GET /events/{id}/instances` renders them; `None` when there is no such event or a bound
    /// is not a date.
    pub fn event_instances(
        &self,
        mailbox: &str,
        event_id: &str,
        from: &str,
        to: &str,
    ) -> Option<Vec<serde_json::Value>> {
        inspect::event_instances(&self.shared.lock(), mailbox, event_id, from, to)
    }

    /// Every Microsoft To Do task of a mailbox, in every list.
    pub fn tasks(&self, mailbox: &str) -> Vec<StoredTask> {
        inspect::tasks(&self.shared.lock(), mailbox)
    }

    /// Meeting invitations the mailbox's event creations would have sent (one per attendee).
    pub fn invitations_sent(&self, mailbox: &str) -> u64 {
        inspect::invitations_sent(&self.shared.lock(), mailbox)
    }

    /// The mailbox's master category list as (display name, colour) pairs, in creation order
    /// (a new mailbox starts with Outlook's six defaults, `Red category` … `Purple category`).
    pub fn master_categories(&self, mailbox: &str) -> Vec<(String, String)> {
        inspect::master_categories(&self.shared.lock(), mailbox)
    }

    /// How many category creates of the mailbox were refused with 409 because the name (in
    /// any case) was taken: a client that makes each name once, and looks before it makes,
    /// causes none.
    pub fn master_category_conflicts(&self, mailbox: &str) -> u64 {
        match self.shared.lock().any_user(mailbox).map(|u| &u.mailbox) {
            Some(world::MailboxState::Ready(mb)) => mb.category_conflicts,
            _ => 0,
        }
    }

    /// Adds a category to the mailbox's master list, as a user would in Outlook (test setup);
    /// false when the mailbox does not exist or a category of that name (any case) does.
    pub fn add_master_category(&self, mailbox: &str, name: &str, color: &str) -> bool {
        inspect::add_master_category(&mut self.shared.lock(), mailbox, name, color)
    }

    /// Every folder of a mailbox.
    pub fn folders(&self, mailbox: &str) -> Vec<StoredFolder> {
        inspect::folders(&self.shared.lock(), mailbox)
    }

    /// How many messages a mailbox holds (cheap enough to poll while a client writes).
    pub fn message_count(&self, mailbox: &str) -> usize {
        inspect::message_count(&self.shared.lock(), mailbox)
    }

    /// Replaces the bytes of attachment `index` of the message whose `internetMessageId` is
    /// `message_id` (a test's deliberate corruption of the target); false when there is no
    /// such attachment.
    pub fn replace_attachment(
        &self,
        mailbox: &str,
        message_id: &str,
        index: usize,
        data: bytes::Bytes,
    ) -> bool {
        inspect::replace_attachment(&mut self.shared.lock(), mailbox, message_id, index, data)
    }

    /// Throttling counters of a mailbox, summed over apps.
    pub fn counters(&self, mailbox: &str) -> MailboxCounters {
        inspect::counters(&self.shared.lock(), mailbox)
    }

    /// Writes the emulator carried out and then answered 504 or dropped the connection of
    /// (`Faults::rate_504_after_write`, `Faults::rate_reset_after_write`).
    pub fn after_write_faults(&self) -> u64 {
        self.shared.lock().after_write_faults
    }

    /// The most mailbox requests `app` (its client id) had in one app-wide window, and how many
    /// it was refused for being over the app-wide limit.
    pub fn app_window_peak(&self, app: &str) -> (u64, u64) {
        let world = self.shared.lock();
        world.apps.get(app).map_or((0, 0), |a| (a.peak, a.refusals))
    }

    /// Starts [`Emulator::app_window_peak`] over for `app`: from now on the peak counts only
    /// requests that arrive after this call (a window reaching back before it holds just
    /// those), and the refusals start from 0. The app-wide limit itself is unchanged.
    pub fn reset_app_window_peak(&self, app: &str) {
        let mut world = self.shared.lock();
        let a = world.apps.entry(app.to_owned()).or_default();
        a.since = Some(std::time::Instant::now());
        a.peak = 0;
        a.refusals = 0;
    }

    /// Counters of every (app, mailbox) pair seen.
    pub fn all_counters(&self) -> Vec<(String, String, MailboxCounters)> {
        inspect::all_counters(&self.shared.lock())
    }

    /// Checks that no client ever had more requests in flight per mailbox than the limit, nor
    /// sent a request for a mailbox inside a `Retry-After` window it was given.
    pub fn assert_limits_respected(&self) -> Result<(), String> {
        let max = self.shared.config.limits.max_concurrent;
        let bad: Vec<String> = self
            .all_counters()
            .into_iter()
            .filter(|(_, _, c)| {
                c.max_concurrent_seen > max
                    || c.concurrency_violations > 0
                    || c.requests_in_retry_window > 0
            })
            .map(|(a, m, c)| {
                format!(
                    "app {a} mailbox {m}: {} in flight at once (limit {max}), {} requests \
                     sent inside a Retry-After window",
                    c.max_concurrent_seen, c.requests_in_retry_window
                )
            })
            .collect();
        let mut bad = bad;
        let limit = self.shared.config.limits.app_requests_per_window;
        for (app, a) in &self.shared.lock().apps {
            if a.refusals > 0 {
                bad.push(format!(
                    "app {app}: {} requests refused over the app-wide limit of {limit} per window",
                    a.refusals
                ));
            }
        }
        if bad.is_empty() {
            Ok(())
        } else {
            Err(bad.join("; "))
        }
    }

    /// Approves a pending device-code sign-in as user `upn`. False if no such pending code.
    pub fn approve_device_code(&self, user_code: &str, upn: &str) -> bool {
        inspect::set_device_state(
            &mut self.shared.lock(),
            user_code,
            auth::DeviceState::Approved(upn.into()),
        )
    }

    /// Declines a pending device-code sign-in.
    pub fn decline_device_code(&self, user_code: &str) -> bool {
        inspect::set_device_state(
            &mut self.shared.lock(),
            user_code,
            auth::DeviceState::Declined,
        )
    }

    /// User codes of pending device-code sign-ins.
    pub fn pending_user_codes(&self) -> Vec<String> {
        let world = self.shared.lock();
        world
            .device_codes
            .values()
            .filter(|d| d.state == auth::DeviceState::Pending)
            .map(|d| d.user_code.clone())
            .collect()
    }

    /// Replaces the injected faults (resets the fault dice to the new seed).
    pub fn set_faults(&self, faults: Faults) {
        let mut world = self.shared.lock();
        world.fault_dice = util::Dice::new(faults.seed);
        world.faults = faults;
    }

    /// Stops the server.
    pub fn shutdown(self) {
        self.task.abort();
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        self.task.abort();
    }
}
