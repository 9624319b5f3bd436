//! A thin typed Microsoft Graph client on reqwest with retries and per-mailbox pacing.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::estimate::AnswerTimes;
use super::throttle::{Budgets, MailboxLimiter};
use crate::Error;
use crate::identity::{TokenClaims, TokenProvider};

/// How requests are retried.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    /// Attempts per request before [`Error::RetriesExhausted`] (default 8).
    pub max_attempts: u32,
    /// First backoff when the server gives no `Retry-After` (default 1 s, doubling).
    pub base_delay: Duration,
    /// Longest own backoff (default 60 s).
    pub max_delay: Duration,
    /// Longest wait honoured from `Retry-After` (default 10 minutes). Lower it only for a
    /// time-scaled emulator.
    pub max_retry_after: Duration,
    /// Random extra wait as a share of the wait (default 0.2 → up to +20 %), never earlier.
    pub jitter: f64,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 8,
            base_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(60),
            max_retry_after: Duration::from_secs(600),
            jitter: 0.2,
        }
    }
}

/// A directory user.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", default)]
#[non_exhaustive]
pub struct User {
    /// Object id.
    pub id: String,
    /// User principal name.
    pub user_principal_name: String,
    /// Primary SMTP address.
    pub mail: Option<String>,
    /// `SMTP:` primary and `smtp:` secondary addresses.
    pub proxy_addresses: Vec<String>,
    /// Display name.
    pub display_name: Option<String>,
    /// Given name.
    pub given_name: Option<String>,
    /// Surname.
    pub surname: Option<String>,
    /// Two-letter usage location.
    pub usage_location: Option<String>,
    /// Whether sign-in is enabled.
    pub account_enabled: Option<bool>,
    /// Assigned licences.
    #[serde(deserialize_with = "sku_ids")]
    pub assigned_licenses: Vec<String>,
}

fn sku_ids<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    let v: Option<Vec<Value>> = Option::deserialize(d)?;
    Ok(v.unwrap_or_default()
        .iter()
        .filter_map(|l| l["skuId"].as_str().map(String::from))
        .collect())
}

/// A user to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewUser {
    /// User principal name in a verified domain.
    pub user_principal_name: String,
    /// Display name.
    pub display_name: String,
    /// Mail nickname (alias).
    pub mail_nickname: String,
    /// Initial password (never printed).
    pub password: crate::SecretString,
    /// Two-letter usage location (needed before a licence can be assigned).
    pub usage_location: Option<String>,
}

/// A random initial password for [`NewUser`]: 20 characters from the operating system's
/// random source, with upper- and lower-case letters, digits and symbols (Entra ID's
/// complexity rules). It is never printed; users reset it at first sign-in.
pub fn generate_password() -> crate::SecretString {
    use ring::rand::SecureRandom;
    const CLASSES: [&[u8]; 4] = [
        b"ABCDEFGHJKLMNPQRSTUVWXYZ",
        b"abcdefghijkmnopqrstuvwxyz",
        b"23456789",
        b"!#%+-=?@_",
    ];
    let rng = ring::rand::SystemRandom::new();
    let mut bytes = [0u8; 20];
    // The OS random source does not fail on supported platforms; fall back to the clock.
    if rng.fill(&mut bytes).is_err() {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        for (i, b) in bytes.iter_mut().enumerate() {
            *b = (t >> ((i % 16) * 8)) as u8 ^ (i as u8).wrapping_mul(151);
        }
    }
    let mut out = String::with_capacity(20);
    for (i, b) in bytes.iter().enumerate() {
        // The first four characters cover every class; the rest draw from all.
        let class = if i < 4 {
            CLASSES[i]
        } else {
            CLASSES[usize::from(*b) % 4]
        };
        out.push(char::from(class[usize::from(*b) % class.len()]));
    }
    crate::SecretString::new(&out)
}

/// A subscribed SKU.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Sku {
    /// SKU id.
    pub sku_id: String,
    /// Part number (`ENTERPRISEPACK`).
    pub sku_part_number: String,
    /// Enabled units.
    pub enabled_units: u64,
    /// Consumed units.
    pub consumed_units: u64,
}

/// What a mailbox probe found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MailboxProbe {
    /// The mailbox answers.
    Ready,
    /// The user exists but has no mailbox yet (`MailboxNotEnabledForRESTAPI`): no licence, or
    /// provisioning still running.
    NotEnabled,
    /// No such user.
    NoSuchUser,
}

/// Requests in one `$batch` (Graph's limit).
pub const MAX_BATCH: usize = 20;

/// One request of a `$batch`.
#[derive(Debug, Clone, PartialEq)]
pub struct BatchRequest {
    /// Method.
    pub method: String,
    /// URL relative to the version root (`/users/{id}/messages`).
    pub url: String,
    /// JSON body, if any.
    pub body: Option<Value>,
}

/// One request of a `$batch` as sent: its body already JSON.
pub(crate) struct RawRequest {
    /// Upper-case method.
    pub(crate) method: String,
    /// URL relative to the version root.
    pub(crate) url: String,
    /// JSON body, if any.
    pub(crate) body: Option<Bytes>,
}

/// One answer of a `$batch`.
#[derive(Debug, Clone, PartialEq)]
pub struct BatchResponse {
    /// HTTP status.
    pub status: u16,
    /// JSON body (or null).
    pub body: Value,
    /// The sub-request's own `Retry-After` (429/503).
    pub retry_after: Option<Duration>,
}

pub(crate) enum Body {
    None,
    Json(Bytes),
    Raw(Bytes, &'static str),
}

impl Body {
    fn len(&self) -> u64 {
        match self {
            Body::None => 0,
            Body::Json(b) | Body::Raw(b, _) => b.len() as u64,
        }
    }
}

/// One call to make.
pub(crate) struct Call<'a> {
    pub(crate) method: reqwest::Method,
    /// Path below the version root, or an absolute URL (paging links, upload URLs).
    pub(crate) url: String,
    pub(crate) mailbox: Option<&'a MailboxLimiter>,
    pub(crate) body: Body,
    pub(crate) auth: bool,
    pub(crate) content_range: Option<String>,
    /// Safe to send again after a broken connection (GET, PUT of a chunk is not: see writer).
    pub(crate) idempotent: bool,
    /// Requests this call counts as against the mailbox's budgets: 1, or the sub-requests of a
    /// `$batch` (which also holds up to four of the mailbox's slots: Graph runs four at a time).
    pub(crate) weight: u64,
}

impl<'a> Call<'a> {
    pub(crate) fn get(url: impl Into<String>, mailbox: Option<&'a MailboxLimiter>) -> Self {
        Self {
            method: reqwest::Method::GET,
            url: url.into(),
            mailbox,
            body: Body::None,
            auth: true,
            content_range: None,
            idempotent: true,
            weight: 1,
        }
    }

    pub(crate) fn post_json(
        url: impl Into<String>,
        mailbox: Option<&'a MailboxLimiter>,
        body: Bytes,
    ) -> Self {
        Self {
            method: reqwest::Method::POST,
            url: url.into(),
            mailbox,
            body: Body::Json(body),
            auth: true,
            content_range: None,
            idempotent: false,
            weight: 1,
        }
    }
}

/// An answer.
pub(crate) struct Reply {
    pub(crate) status: u16,
    pub(crate) body: Bytes,
}

impl Reply {
    /// The Graph error code of a non-2xx answer.
    pub(crate) fn error_code(&self) -> String {
        serde_json::from_slice::<Value>(&self.body)
            .ok()
            .and_then(|v| v["error"]["code"].as_str().map(String::from))
            .unwrap_or_default()
    }

    pub(crate) fn into_error(self, method: &str, path: &str) -> Error {
        let v: Value = serde_json::from_slice(&self.body).unwrap_or(Value::Null);
        Error::Rejected {
            method: method.into(),
            path: path.split('?').next().unwrap_or_default().to_string(),
            status: self.status,
            code: v["error"]["code"].as_str().unwrap_or_default().to_string(),
            message: v["error"]["message"]
                .as_str()
                .unwrap_or_default()
                .chars()
                .take(500)
                .collect(),
        }
    }

    pub(crate) fn json(&self, context: &str) -> Result<Value, Error> {
        serde_json::from_slice(&self.body).map_err(|e| Error::Protocol {
            context: context.into(),
            message: format!("invalid JSON: {e}"),
        })
    }

    pub(crate) fn ok(self, method: &str, path: &str) -> Result<Self, Error> {
        if (200..300).contains(&self.status) {
            Ok(self)
        } else {
            Err(self.into_error(method, path))
        }
    }
}

/// Counters of what the client did (for reports and the bench).
#[derive(Debug, Default)]
pub(crate) struct Stats {
    pub(crate) requests: AtomicU64,
    pub(crate) retries: AtomicU64,
    pub(crate) throttled: AtomicU64,
    pub(crate) upload_bytes: AtomicU64,
}

/// Parses `Retry-After`: delta seconds or an HTTP date.
pub(crate) fn parse_retry_after(value: &str) -> Option<Duration> {
    let v = value.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when =
        time::OffsetDateTime::parse(v, &time::format_description::well_known::Rfc2822).ok()?;
    let now = time::OffsetDateTime::now_utc();
    Some(Duration::try_from(when - now).unwrap_or(Duration::ZERO))
}

fn jitter(wait: Duration, share: f64) -> Duration {
    let mut b = [0u8; 8];
    let _ = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut b);
    let r = (u64::from_le_bytes(b) >> 11) as f64 / (1u64 << 53) as f64;
    wait + wait.mul_f64(share.max(0.0) * r)
}

/// Percent-encodes one path segment (a UPN or id).
pub(crate) fn seg(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~@!$&'()*+,;=:".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Percent-encodes a query value.
pub(crate) fn q(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~$".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The Graph client: tokens, retries, per-mailbox pacing, typed directory calls.
pub struct GraphClient {
    http: reqwest::Client,
    tokens: Arc<TokenProvider>,
    base: String,
    retry: RetryPolicy,
    budgets: Budgets,
    limiters: Mutex<HashMap<String, Arc<MailboxLimiter>>>,
    shared: Option<Arc<dyn super::throttle::SharedBudget>>,
    pub(crate) stats: Stats,
}

impl std::fmt::Debug for GraphClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GraphClient")
            .field("base", &self.base)
            .field("tokens", &self.tokens)
            .finish_non_exhaustive()
    }
}

impl GraphClient {
    /// A client using `tokens` (whose endpoints name the Graph host), `budgets` per mailbox and
    /// `retry`.
    pub fn new(
        tokens: Arc<TokenProvider>,
        budgets: Budgets,
        retry: RetryPolicy,
    ) -> Result<Self, Error> {
        let base = format!("{}/v1.0", tokens.endpoints().graph.trim_end_matches('/'));
        Ok(Self {
            http: crate::http::http_client(Duration::from_secs(300))?,
            tokens,
            base,
            retry,
            budgets,
            limiters: Mutex::new(HashMap::new()),
            shared: None,
            stats: Stats::default(),
        })
    }

    /// Every request also takes from `budget` (a fleet's shared budget), after the mailbox's
    /// own pacing.
    pub fn with_shared_budget(mut self, budget: Arc<dyn super::throttle::SharedBudget>) -> Self {
        self.shared = Some(budget);
        self
    }

    /// The token provider.
    pub fn tokens(&self) -> &Arc<TokenProvider> {
        &self.tokens
    }

    /// Requests sent so far (all attempts).
    pub fn requests_sent(&self) -> u64 {
        self.stats.requests.load(Ordering::Relaxed)
    }

    /// The retry rules.
    pub(crate) fn retry_policy(&self) -> &RetryPolicy {
        &self.retry
    }

    /// Counts a 429/503 answer to a sub-request of a `$batch`.
    pub(crate) fn note_throttled(&self) {
        self.stats.throttled.fetch_add(1, Ordering::Relaxed);
    }

    /// Answers 429/503 received so far (`$batch` sub-requests included).
    pub fn throttled_answers(&self) -> u64 {
        self.stats.throttled.load(Ordering::Relaxed)
    }

    /// Body bytes of POST/PATCH/PUT requests sent so far.
    pub fn upload_bytes_sent(&self) -> u64 {
        self.stats.upload_bytes.load(Ordering::Relaxed)
    }

    /// The pacing state of a mailbox, shared by every writer of it.
    pub(crate) fn limiter(&self, mailbox: &str) -> Arc<MailboxLimiter> {
        let mut map = self.limiters.lock().unwrap_or_else(|e| e.into_inner());
        map.entry(mailbox.to_lowercase())
            .or_insert_with(|| Arc::new(MailboxLimiter::new(self.budgets.clone())))
            .clone()
    }

    /// Makes a call with pacing and bounded retries. Returns any non-retryable answer; callers
    /// check the status.
    pub(crate) async fn call(&self, call: Call<'_>) -> Result<Reply, Error> {
        let url = if call.url.starts_with("http://") || call.url.starts_with("https://") {
            call.url.clone()
        } else {
            format!("{}{}", self.base, call.url)
        };
        let upload = if matches!(
            call.method,
            reqwest::Method::POST | reqwest::Method::PATCH | reqwest::Method::PUT
        ) {
            call.body.len()
        } else {
            0
        };
        let start = Instant::now();
        let mut refreshed = false;
        let mut last = String::new();
        let mut attempt = 0;
        while attempt < self.retry.max_attempts {
            attempt += 1;
            let token = if call.auth {
                Some(self.tokens.token().await?)
            } else {
                None
            };
            let slot = match call.mailbox {
                Some(l) => Some(l.acquire(call.weight, upload).await),
                None => None,
            };
            if let Some(b) = &self.shared {
                b.take(call.weight.max(1), upload).await;
            }
            let mut rb = self.http.request(call.method.clone(), &url);
            if let Some(t) = &token {
                rb = rb.bearer_auth(t.secret.expose());
            }
            if let Some(r) = &call.content_range {
                rb = rb.header("content-range", r);
            }
            rb = match &call.body {
                Body::None => rb,
                Body::Json(b) => rb
                    .header("content-type", "application/json")
                    .body(b.clone()),
                Body::Raw(b, ct) => rb.header("content-type", *ct).body(b.clone()),
            };
            self.stats.requests.fetch_add(1, Ordering::Relaxed);
            self.stats.upload_bytes.fetch_add(upload, Ordering::Relaxed);
            let outcome = match rb.send().await {
                Ok(resp) => {
                    let status = resp.status().as_u16();
                    let retry_after = resp
                        .headers()
                        .get("retry-after")
                        .and_then(|v| v.to_str().ok())
                        .and_then(parse_retry_after);
                    match resp.bytes().await {
                        Ok(body) => Ok((Reply { status, body }, retry_after)),
                        Err(e) => Err(e),
                    }
                }
                Err(e) => Err(e),
            };
            drop(slot);
            let backoff = (self.retry.base_delay * 2u32.saturating_pow(attempt - 1))
                .min(self.retry.max_delay);
            let wait = match outcome {
                Ok((reply, _)) if reply.status == 401 && call.auth && !refreshed => {
                    refreshed = true;
                    self.tokens.invalidate().await;
                    attempt -= 1;
                    last = "HTTP 401".into();
                    continue;
                }
                Ok((reply, _)) if matches!(reply.status, 502 | 504) && !call.idempotent => {
                    // A gateway gave up after the request reached the service: it may have
                    // been carried out. The caller looks before it sends it again.
                    return Err(Error::Transport(format!(
                        "HTTP {} {}: the answer was lost after the request reached the service, \
                         its outcome is unknown",
                        reply.status,
                        reply.error_code()
                    )));
                }
                Ok((reply, retry_after)) if matches!(reply.status, 429 | 503 | 502 | 504) => {
                    let throttled = matches!(reply.status, 429 | 503);
                    self.stats
                        .throttled
                        .fetch_add(u64::from(throttled), Ordering::Relaxed);
                    let retry_after = retry_after.map(|d| d.min(self.retry.max_retry_after));
                    if throttled && let Some(l) = call.mailbox {
                        // Exchange Online refuses every request of the mailbox until the
                        // Retry-After has passed: pause them all, not only this one.
                        l.throttled(retry_after);
                    }
                    last = format!("HTTP {} {}", reply.status, reply.error_code());
                    retry_after.unwrap_or(backoff)
                }
                Ok((reply, _)) => return Ok(reply),
                Err(e) => {
                    last = crate::http::describe_reqwest(&e);
                    // A request whose answer was lost may have been carried out: only resend
                    // when doing it twice is harmless or it never reached the server.
                    if !(call.idempotent || e.is_connect()) {
                        return Err(Error::Transport(last));
                    }
                    backoff
                }
            };
            if attempt >= self.retry.max_attempts {
                break;
            }
            self.stats.retries.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(jitter(wait, self.retry.jitter)).await;
        }
        Err(Error::RetriesExhausted {
            attempts: attempt,
            elapsed: start.elapsed(),
            last,
        })
    }

    /// GETs every page of a collection (following `@odata.nextLink`).
    pub(crate) async fn get_all(
        &self,
        url: String,
        mailbox: Option<&MailboxLimiter>,
    ) -> Result<Vec<Value>, Error> {
        let mut out = Vec::new();
        let mut next = Some(url);
        while let Some(u) = next.take() {
            let reply = self
                .call(Call::get(u.clone(), mailbox))
                .await?
                .ok("GET", &u)?;
            let v = reply.json(&u)?;
            if let Some(items) = v["value"].as_array() {
                out.extend(items.iter().cloned());
            }
            next = v["@odata.nextLink"].as_str().map(String::from);
        }
        Ok(out)
    }

    /// The permissions of the current token; fails naming the missing ones and the fix.
    /// Needs Mail.ReadWrite and User.Read.All; with `user_creation` also User.ReadWrite.All and
    /// LicenseAssignment.ReadWrite.All.
    pub async fn check_permissions(&self, user_creation: bool) -> Result<TokenClaims, Error> {
        self.check_permissions_with(user_creation, &[]).await
    }

    /// [`GraphClient::check_permissions`] with `extra` permissions needed too (e.g.
    /// `Contacts.ReadWrite` and `Calendars.ReadWrite` for contacts and calendars).
    pub async fn check_permissions_with(
        &self,
        user_creation: bool,
        extra: &[&str],
    ) -> Result<TokenClaims, Error> {
        let token = self.tokens.token().await?;
        let mut needed = vec!["Mail.ReadWrite", "User.Read.All"];
        needed.extend_from_slice(extra);
        if user_creation {
            needed.extend(["User.ReadWrite.All", "LicenseAssignment.ReadWrite.All"]);
        }
        // A broader permission satisfies a narrower one.
        let mut claims = token.claims.clone();
        if claims.has("User.ReadWrite.All") && !claims.has("User.Read.All") {
            claims.roles.push("User.Read.All".into());
        }
        claims.require(&needed)?;
        Ok(token.claims)
    }

    /// Users, optionally filtered by an OData `$filter`, all pages.
    pub async fn list_users(&self, filter: Option<&str>) -> Result<Vec<User>, Error> {
        let mut url = "/users?$select=id,userPrincipalName,mail,proxyAddresses,givenName,surname,displayName,assignedLicenses,usageLocation,accountEnabled&$top=999".to_string();
        if let Some(f) = filter {
            url.push_str(&format!("&$filter={}", q(f)));
        }
        let values = self.get_all(url, None).await?;
        values
            .into_iter()
            .map(|v| {
                serde_json::from_value(v).map_err(|e| Error::Protocol {
                    context: "GET /users".into(),
                    message: e.to_string(),
                })
            })
            .collect()
    }

    /// The tenant's subscribed SKUs.
    pub async fn subscribed_skus(&self) -> Result<Vec<Sku>, Error> {
        let values = self.get_all("/subscribedSkus".into(), None).await?;
        Ok(values
            .iter()
            .map(|v| Sku {
                sku_id: v["skuId"].as_str().unwrap_or_default().into(),
                sku_part_number: v["skuPartNumber"].as_str().unwrap_or_default().into(),
                enabled_units: v["prepaidUnits"]["enabled"].as_u64().unwrap_or(0),
                consumed_units: v["consumedUnits"].as_u64().unwrap_or(0),
            })
            .collect())
    }

    /// Creates a user (needs User.ReadWrite.All).
    pub async fn create_user(&self, user: &NewUser) -> Result<User, Error> {
        let body = json!({
            "accountEnabled": true,
            "displayName": user.display_name,
            "mailNickname": user.mail_nickname,
            "userPrincipalName": user.user_principal_name,
            "usageLocation": user.usage_location,
            "passwordProfile": {"forceChangePasswordNextSignIn": true, "password": user.password.expose()},
        });
        let reply = self
            .call(Call::post_json(
                "/users",
                None,
                Bytes::from(body.to_string()),
            ))
            .await?
            .ok("POST", "/users")?;
        serde_json::from_slice(&reply.body).map_err(|e| Error::Protocol {
            context: "POST /users".into(),
            message: e.to_string(),
        })
    }

    /// Sets a user's usage location (needed before assigning a licence).
    pub async fn set_usage_location(&self, user: &str, location: &str) -> Result<(), Error> {
        let path = format!("/users/{}", seg(user));
        let mut call = Call::post_json(
            path.clone(),
            None,
            Bytes::from(json!({"usageLocation": location}).to_string()),
        );
        call.method = reqwest::Method::PATCH;
        call.idempotent = true;
        self.call(call).await?.ok("PATCH", &path).map(|_| ())
    }

    /// Assigns a licence (the user's usage location must be set first).
    pub async fn assign_license(&self, user: &str, sku_id: &str) -> Result<(), Error> {
        let path = format!("/users/{}/assignLicense", seg(user));
        let body =
            json!({"addLicenses": [{"skuId": sku_id, "disabledPlans": []}], "removeLicenses": []});
        let mut call = Call::post_json(path.clone(), None, Bytes::from(body.to_string()));
        call.idempotent = true;
        self.call(call).await?.ok("POST", &path).map(|_| ())
    }

    /// Whether the user's mailbox answers (`GET /users/{id}/mailFolders/inbox`; a 404
    /// `MailboxNotEnabledForRESTAPI` means no licence or provisioning still running — poll).
    pub async fn probe_mailbox(&self, user: &str) -> Result<MailboxProbe, Error> {
        let path = format!("/users/{}/mailFolders/inbox?$select=id", seg(user));
        let limiter = self.limiter(user);
        let reply = self.call(Call::get(path.clone(), Some(&limiter))).await?;
        match (reply.status, reply.error_code().as_str()) {
            (200, _) => Ok(MailboxProbe::Ready),
            (404, "MailboxNotEnabledForRESTAPI") => Ok(MailboxProbe::NotEnabled),
            (404, _) => Ok(MailboxProbe::NoSuchUser),
            _ => Err(reply.into_error("GET", &path)),
        }
    }

    /// Measures the service's answer times for `mailbox` without writing anything: single
    /// reads of its inbox (a request's whole answer time) and `$batch`es of eight (the way
    /// there once, then two rounds of four inside the mailbox); the difference is the time an
    /// item spends in the mailbox, the rest the way there and back. Medians of three; 9
    /// requests and 48 sub-requests of the mailbox's budget. Reads are timed: a create spends
    /// longer inside the mailbox than a read, so an estimate from these errs on the fast side.
    pub async fn measure_answer_times(&self, mailbox: &str) -> Result<AnswerTimes, Error> {
        let limiter = self.limiter(mailbox);
        let url = format!("/users/{}/mailFolders/inbox?$select=id", seg(mailbox));
        let mut singles = Vec::new();
        let mut batches = Vec::new();
        let reads: Vec<RawRequest> = (0..8)
            .map(|_| RawRequest {
                method: "GET".into(),
                url: url.clone(),
                body: None,
            })
            .collect();
        // One read first, unmeasured: it opens the connection and fetches the token.
        self.call(Call::get(url.clone(), Some(&limiter)))
            .await?
            .ok("GET", &url)?;
        for _ in 0..3 {
            let t = Instant::now();
            self.call(Call::get(url.clone(), Some(&limiter)))
                .await?
                .ok("GET", &url)?;
            singles.push(t.elapsed());
            let t = Instant::now();
            let answers = self.send_batch(Some(&limiter), &reads).await?;
            if answers
                .iter()
                .any(|a| a.as_ref().is_none_or(|a| a.status != 200))
            {
                return Err(Error::Protocol {
                    context: "$batch of reads".into(),
                    message: "not every read was answered 200 (throttled or refused)".into(),
                });
            }
            batches.push(t.elapsed());
        }
        singles.sort();
        batches.sort();
        let (single, batch) = (singles[1], batches[1]);
        let mailbox_time = batch.saturating_sub(single);
        Ok(AnswerTimes {
            gateway: single.saturating_sub(mailbox_time),
            mailbox: mailbox_time.min(single),
        })
    }

    /// Probes many mailboxes with `$batch`es of 20 (one HTTP round trip per 20 users instead of
    /// 20; each sub-request still counts against its own mailbox's budget). Answers are in the
    /// order of `users`.
    pub async fn probe_mailboxes(&self, users: &[&str]) -> Result<Vec<MailboxProbe>, Error> {
        let mut out = Vec::with_capacity(users.len());
        for chunk in users.chunks(20) {
            let requests: Vec<BatchRequest> = chunk
                .iter()
                .map(|u| BatchRequest {
                    method: "GET".into(),
                    url: format!("/users/{}/mailFolders/inbox?$select=id", seg(u)),
                    body: None,
                })
                .collect();
            for (user, answer) in chunk.iter().zip(self.batch(None, &requests).await?) {
                out.push(
                    match (answer.status, answer.body["error"]["code"].as_str()) {
                        (200, _) => MailboxProbe::Ready,
                        (404, Some("MailboxNotEnabledForRESTAPI")) => MailboxProbe::NotEnabled,
                        (404, _) => MailboxProbe::NoSuchUser,
                        (status, code) => {
                            return Err(Error::Rejected {
                                method: "GET".into(),
                                path: format!("/users/{user}/mailFolders/inbox"),
                                status,
                                code: code.unwrap_or_default().into(),
                                message: answer.body["error"]["message"]
                                    .as_str()
                                    .unwrap_or_default()
                                    .into(),
                            });
                        }
                    },
                );
            }
        }
        Ok(out)
    }

    /// Sends up to 20 requests for one mailbox (or none) as one `$batch` and returns each
    /// sub-request's answer in request order; `None` where the service left one out. The batch
    /// books every sub-request against the mailbox's budgets and holds up to four of its slots.
    /// Throttled sub-requests are not retried here. A batch of writes is never sent twice: an
    /// answer lost on the way is an [`Error::Transport`] (every outcome unknown).
    pub(crate) async fn send_batch(
        &self,
        limiter: Option<&MailboxLimiter>,
        requests: &[RawRequest],
    ) -> Result<Vec<Option<BatchResponse>>, Error> {
        if requests.is_empty() || requests.len() > MAX_BATCH {
            return Err(Error::Config(format!(
                "a $batch holds 1 to {MAX_BATCH} requests, not {}",
                requests.len()
            )));
        }
        // Written out by hand so that each body, already JSON, is copied in as it is (no tree
        // of values built and cloned per sub-request).
        let size: usize = requests
            .iter()
            .map(|r| r.url.len() + r.body.as_ref().map_or(0, |b| b.len()) + 96)
            .sum();
        let mut body = Vec::with_capacity(size + 16);
        body.extend_from_slice(b"{\"requests\":[");
        for (i, r) in requests.iter().enumerate() {
            if i > 0 {
                body.push(b',');
            }
            body.extend_from_slice(format!("{{\"id\":\"{}\",\"method\":", i + 1).as_bytes());
            body.extend_from_slice(json!(r.method).to_string().as_bytes());
            body.extend_from_slice(b",\"url\":");
            body.extend_from_slice(json!(r.url).to_string().as_bytes());
            if let Some(b) = &r.body {
                body.extend_from_slice(
                    b",\"headers\":{\"content-type\":\"application/json\"},\"body\":",
                );
                body.extend_from_slice(b);
            }
            body.push(b'}');
        }
        body.extend_from_slice(b"]}");
        let mut call = Call::post_json("/$batch", limiter, Bytes::from(body));
        call.idempotent = requests.iter().all(|r| r.method == "GET");
        call.weight = requests.len() as u64;
        let reply = self.call(call).await?.ok("POST", "/$batch")?;
        let v = reply.json("$batch")?;
        let mut out: Vec<Option<BatchResponse>> = vec![None; requests.len()];
        for r in v["responses"].as_array().into_iter().flatten() {
            let idx = r["id"]
                .as_str()
                .and_then(|i| i.parse::<usize>().ok())
                .and_then(|i| i.checked_sub(1));
            if let Some(slot) = idx.and_then(|i| out.get_mut(i)) {
                let retry_after = r["headers"]
                    .as_object()
                    .and_then(|h| {
                        h.iter()
                            .find(|(k, _)| k.eq_ignore_ascii_case("retry-after"))
                            .and_then(|(_, v)| v.as_str())
                    })
                    .and_then(parse_retry_after);
                *slot = Some(BatchResponse {
                    status: r["status"].as_u64().unwrap_or(0) as u16,
                    body: r["body"].clone(),
                    retry_after,
                });
            }
        }
        Ok(out)
    }

    /// Sends up to 20 requests as one `$batch`. Sub-requests answered 429/503/424 (or left out)
    /// are sent again one by one with the normal retry rules; the answers come back in request
    /// order.
    pub async fn batch(
        &self,
        mailbox: Option<&str>,
        requests: &[BatchRequest],
    ) -> Result<Vec<BatchResponse>, Error> {
        let limiter = mailbox.map(|m| self.limiter(m));
        let raw: Vec<RawRequest> = requests
            .iter()
            .map(|r| RawRequest {
                method: r.method.to_ascii_uppercase(),
                url: r.url.clone(),
                body: r.body.as_ref().map(|b| Bytes::from(b.to_string())),
            })
            .collect();
        let out = self.send_batch(limiter.as_deref(), &raw).await?;
        let mut done = Vec::with_capacity(requests.len());
        for (i, (req, resp)) in requests.iter().zip(out).enumerate() {
            let resp = match resp {
                Some(r) if !matches!(r.status, 429 | 503 | 424) => r,
                _ => {
                    // Throttled or missing: send it alone.
                    let method =
                        reqwest::Method::from_bytes(req.method.to_ascii_uppercase().as_bytes())
                            .map_err(|_| {
                                Error::Config(format!(
                                    "batch request {i}: bad method {}",
                                    req.method
                                ))
                            })?;
                    let body = req
                        .body
                        .as_ref()
                        .map(|b| Body::Json(Bytes::from(b.to_string())))
                        .unwrap_or(Body::None);
                    let single = Call {
                        idempotent: method == reqwest::Method::GET,
                        method,
                        url: req.url.clone(),
                        mailbox: limiter.as_deref(),
                        body,
                        auth: true,
                        content_range: None,
                        weight: 1,
                    };
                    let reply = self.call(single).await?;
                    BatchResponse {
                        status: reply.status,
                        body: serde_json::from_slice(&reply.body).unwrap_or(Value::Null),
                        retry_after: None,
                    }
                }
            };
            done.push(resp);
        }
        Ok(done)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_seconds_and_dates() {
        assert_eq!(parse_retry_after("7"), Some(Duration::from_secs(7)));
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT"),
            Some(Duration::ZERO)
        );
        let soon = time::OffsetDateTime::now_utc() + time::Duration::seconds(30);
        let text = soon
            .format(&time::format_description::well_known::Rfc2822)
            .unwrap_or_default();
        let d = parse_retry_after(&text).unwrap_or_default();
        assert!(
            d > Duration::from_secs(25) && d <= Duration::from_secs(30),
            "{text} -> {d:?}"
        );
        assert_eq!(parse_retry_after("soon"), None);
    }

    #[test]
    fn jitter_never_shortens() {
        for _ in 0..100 {
            let j = jitter(Duration::from_secs(1), 0.2);
            assert!(j >= Duration::from_secs(1) && j <= Duration::from_millis(1200));
        }
    }
}
