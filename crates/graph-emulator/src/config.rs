//! Emulator configuration: tenants, apps, users, SKUs, limits and faults.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The whole emulator configuration. Loadable from JSON (`--config FILE` of the binary).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EmulatorConfig {
    /// Tenants served.
    pub tenants: Vec<TenantConfig>,
    /// Throttling limits per app and mailbox (Microsoft's Outlook limits by default).
    pub limits: Limits,
    /// Multiplier for every time window and delay: `0.01` makes the 10-minute request window last
    /// 6 seconds. `1.0` is real time.
    pub time_scale: f64,
    /// How long a mailbox takes to appear after a licence with Exchange is assigned (real time,
    /// scaled by `time_scale`).
    pub provisioning_delay_secs: f64,
    /// Injected faults.
    pub faults: Faults,
    /// Lifetime of issued access tokens in seconds (not scaled).
    pub token_lifetime_secs: u64,
    /// Time every mailbox request takes inside the service before its answer is sent, in
    /// milliseconds (not scaled): 50 by default, 150 for benchmarks (Exchange Online's
    /// typical answer time for a message create). The request counts against the concurrency
    /// limit for all of it.
    pub latency_ms: u64,
    /// Time every Graph HTTP request (a `$batch` once, not per sub-request; an upload chunk)
    /// spends on the way — network and Graph's gateway — in milliseconds (not scaled; 0 by
    /// default). It does not hold a mailbox concurrency slot: a single request's answer time is
    /// `gateway_ms + latency_ms`, a batch of 20 for one mailbox takes `gateway_ms + 5 ×
    /// latency_ms` (four sub-requests at a time).
    pub gateway_ms: u64,
}

impl Default for EmulatorConfig {
    fn default() -> Self {
        Self {
            tenants: vec![TenantConfig::default()],
            limits: Limits::default(),
            time_scale: 1.0,
            provisioning_delay_secs: 60.0,
            faults: Faults::default(),
            token_lifetime_secs: 3600,
            latency_ms: 50,
            gateway_ms: 0,
        }
    }
}

impl EmulatorConfig {
    /// A scaled duration.
    pub(crate) fn scaled(&self, real_secs: f64) -> Duration {
        Duration::from_secs_f64((real_secs * self.time_scale).max(0.0))
    }
}

/// One Microsoft Entra tenant.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TenantConfig {
    /// Tenant id (a GUID in real life; any string here). Also accepted in token URLs as `domain`.
    pub id: String,
    /// Verified domains; the first is the default for new users.
    pub domains: Vec<String>,
    /// App registrations.
    pub apps: Vec<AppConfig>,
    /// Users that exist from the start.
    pub users: Vec<UserConfig>,
    /// Subscribed SKUs.
    pub skus: Vec<SkuConfig>,
}

impl Default for TenantConfig {
    fn default() -> Self {
        Self {
            id: "00000000-0000-0000-0000-00000000c0de".into(),
            domains: vec!["contoso.example".into()],
            apps: vec![AppConfig::default()],
            users: Vec::new(),
            skus: vec![SkuConfig::default()],
        }
    }
}

/// An app registration with its credentials and granted application permissions.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AppConfig {
    /// Application (client) id.
    pub client_id: String,
    /// Client secret, if the app has one.
    pub client_secret: Option<String>,
    /// DER certificates (base64) whose keys may sign client assertions.
    pub certificates_der_base64: Vec<String>,
    /// Application permissions granted with admin consent (the token's `roles`).
    pub roles: Vec<String>,
    /// Delegated scopes granted to device-code sign-ins (the token's `scp`).
    pub delegated_scopes: Vec<String>,
}

impl Default for AppConfig {
    fn default() -> Self {
        Self {
            client_id: "11111111-2222-3333-4444-555555555555".into(),
            client_secret: Some("emulator-secret".into()),
            certificates_der_base64: Vec::new(),
            roles: vec![
                "Mail.ReadWrite".into(),
                "User.Read.All".into(),
                "User.ReadWrite.All".into(),
                "LicenseAssignment.ReadWrite.All".into(),
                "MailboxSettings.ReadWrite".into(),
                "Contacts.ReadWrite".into(),
                "Calendars.ReadWrite".into(),
                "Tasks.ReadWrite.All".into(),
            ],
            delegated_scopes: vec!["User.ReadWrite.All".into(), "Mail.ReadWrite".into()],
        }
    }
}

/// A user that exists when the emulator starts.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct UserConfig {
    /// User principal name (`alice@contoso.example`).
    pub user_principal_name: String,
    /// Display name.
    pub display_name: String,
    /// Whether the user already has a mailbox (licensed and provisioned).
    pub mailbox: bool,
    /// Two-letter usage location, if set.
    pub usage_location: Option<String>,
    /// Extra addresses (`smtp:alias@...`).
    pub proxy_addresses: Vec<String>,
}

impl Default for UserConfig {
    fn default() -> Self {
        Self {
            user_principal_name: "user@contoso.example".into(),
            display_name: "User".into(),
            mailbox: true,
            usage_location: Some("US".into()),
            proxy_addresses: Vec::new(),
        }
    }
}

impl UserConfig {
    /// A licensed user with a mailbox.
    pub fn with_mailbox(upn: impl Into<String>) -> Self {
        let upn = upn.into();
        let display_name = upn.split('@').next().unwrap_or_default().to_string();
        Self {
            user_principal_name: upn,
            display_name,
            ..Self::default()
        }
    }
}

/// A subscribed SKU.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SkuConfig {
    /// SKU id (GUID).
    pub sku_id: String,
    /// Part number (`ENTERPRISEPACK`).
    pub sku_part_number: String,
    /// Purchased units.
    pub units: u32,
    /// Whether the SKU includes Exchange Online (assigning it provisions a mailbox).
    pub includes_exchange: bool,
}

impl Default for SkuConfig {
    fn default() -> Self {
        Self {
            sku_id: "6fd2c87f-b296-42f0-b197-1e91e994b900".into(),
            sku_part_number: "ENTERPRISEPACK".into(),
            units: 25,
            includes_exchange: true,
        }
    }
}

/// Per app-and-mailbox limits (Microsoft Graph "Outlook service limits").
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Requests per request window (10,000).
    pub requests_per_window: u64,
    /// The request window in real seconds (600), scaled by `time_scale`.
    pub request_window_secs: f64,
    /// Concurrent requests (4).
    pub max_concurrent: u32,
    /// Bytes uploaded (POST/PATCH/PUT bodies) per upload window (150 MB, which Microsoft
    /// means as 150,000,000 bytes).
    pub upload_bytes_per_window: u64,
    /// The upload window in real seconds (300), scaled by `time_scale`.
    pub upload_window_secs: f64,
    /// Largest request body (about 4 MB; 413 above).
    pub max_request_bytes: u64,
    /// Largest upload-session chunk (4 MiB).
    pub max_chunk_bytes: u64,
    /// Largest attachment through an upload session (150 MB = 150,000,000 bytes).
    pub max_attachment_bytes: u64,
    /// Smallest attachment an upload session is created for (3 MB = 3,145,728 bytes): smaller
    /// ones are refused with `ErrorAttachmentSizeShouldNotBeLessThanMinimumSize` and must be
    /// POSTed whole.
    pub min_upload_session_bytes: u64,
    /// Largest message including attachments (the mailbox's MaxReceiveSize, 35 MB by default).
    pub max_message_bytes: u64,
    /// Largest `$batch` (20).
    pub max_batch: usize,
    /// Answer concurrency overload with 503 MailboxConcurrency (`true`) or 429 (`false`).
    pub concurrency_as_503: bool,
    /// Mailbox requests per app across all its mailboxes per app window (Outlook service:
    /// 130,000 per 10 seconds per app across all tenants).
    pub app_requests_per_window: u64,
    /// The app window in real seconds (10), scaled by `time_scale`.
    pub app_window_secs: f64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            requests_per_window: 10_000,
            request_window_secs: 600.0,
            max_concurrent: 4,
            upload_bytes_per_window: 150_000_000,
            upload_window_secs: 300.0,
            max_request_bytes: 4 * 1024 * 1024,
            max_chunk_bytes: 4 * 1024 * 1024,
            max_attachment_bytes: 150_000_000,
            min_upload_session_bytes: 3 * 1024 * 1024,
            max_message_bytes: 35 * 1024 * 1024,
            max_batch: 20,
            concurrency_as_503: true,
            app_requests_per_window: 130_000,
            app_window_secs: 10.0,
        }
    }
}

/// Injected faults on mailbox requests (never on the token endpoint).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Faults {
    /// Seed of the fault dice (deterministic runs).
    pub seed: u64,
    /// Share of requests answered 503 ServiceUnavailable with `Retry-After`.
    pub rate_503: f64,
    /// Share of requests answered 429 (as if another app shared the budget) with `Retry-After`.
    pub rate_429: f64,
    /// Share of requests whose connection is dropped before a complete answer.
    pub rate_reset: f64,
    /// Share of requests answered slowly.
    pub rate_slow: f64,
    /// Delay of a slow reply in milliseconds (real time).
    pub slow_ms: u64,
    /// The next this-many mailbox requests are all answered 503 (a storm).
    pub storm_503: u64,
    /// `Retry-After` seconds on injected 429/503 answers.
    pub retry_after_secs: u64,
    /// Share of writes (POST, PATCH, PUT, DELETE on a mailbox) that are carried out and then
    /// answered 504 Gateway Timeout: the client cannot tell whether the write happened.
    pub rate_504_after_write: f64,
    /// Share of writes that are carried out and whose connection is then dropped before the
    /// answer.
    pub rate_reset_after_write: f64,
    /// Every `DELETE` of a message is answered 500 and deletes nothing (a store that cannot
    /// remove an item right now).
    pub refuse_deletes: bool,
}
