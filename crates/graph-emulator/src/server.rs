//! HTTP serving and request dispatch.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::response::Response;
use bytes::Bytes;
use futures_util::StreamExt;
use serde_json::{Value, json};

use crate::auth::TokenInfo;
use crate::config::EmulatorConfig;
use crate::mail::{filter_matches, mailbox_op, not_enabled, select, upload_chunk};
use crate::throttle::Refusal;
use crate::util::{Resp, parse_form, segments};
use crate::world::{MailboxState, World};

pub(crate) struct Shared {
    pub(crate) config: EmulatorConfig,
    pub(crate) world: Mutex<World>,
    pub(crate) base_url: String,
    pub(crate) token_key: ring::hmac::Key,
}

impl Shared {
    pub(crate) fn lock(&self) -> MutexGuard<'_, World> {
        self.world.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// One request, independent of the server library (also built from `$batch` sub-requests).
pub(crate) struct Req {
    pub(crate) method: String,
    /// Path below `/v1.0` (or the full path for non-Graph endpoints).
    pub(crate) path: String,
    pub(crate) query: HashMap<String, String>,
    pub(crate) content_type: String,
    pub(crate) authorization: Option<String>,
    pub(crate) content_range: Option<String>,
    pub(crate) body: Bytes,
    pub(crate) base_url: String,
    /// When the request began to arrive (before its body was read): a request whose sending
    /// began before a throttling answer was given is not counted as sent inside its window.
    pub(crate) arrived: Instant,
}

impl Req {
    /// Who sent it, as far as throttling windows go: a hash of its access token.
    fn client(&self) -> Option<u64> {
        use std::hash::{Hash, Hasher};
        let auth = self.authorization.as_ref()?;
        let mut h = std::collections::hash_map::DefaultHasher::new();
        auth.hash(&mut h);
        Some(h.finish())
    }
}

/// The axum fallback handler: everything goes through here.
pub(crate) async fn handle(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    let arrived = Instant::now();
    let (parts, body) = request.into_parts();
    let limit = shared
        .config
        .limits
        .max_request_bytes
        .max(shared.config.limits.max_chunk_bytes) as usize;
    let declared = parts
        .headers
        .get("content-length")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return to_response(Resp::graph_error(
            413,
            "RequestEntityTooLarge",
            &format!("The request body exceeds the maximum of {limit} bytes."),
        ));
    }
    let body = match axum::body::to_bytes(body, limit).await {
        Ok(b) => b,
        Err(_) => {
            return to_response(Resp::graph_error(
                413,
                "RequestEntityTooLarge",
                &format!("The request body exceeds the maximum of {limit} bytes."),
            ));
        }
    };
    let header = |n: &str| {
        parts
            .headers
            .get(n)
            .and_then(|v| v.to_str().ok())
            .map(String::from)
    };
    let req = Req {
        method: parts.method.as_str().to_string(),
        path: parts.uri.path().to_string(),
        query: parse_form(parts.uri.query().unwrap_or_default()),
        content_type: header("content-type")
            .unwrap_or_default()
            .to_ascii_lowercase(),
        authorization: header("authorization"),
        content_range: header("content-range"),
        body,
        base_url: shared.base_url.clone(),
        arrived,
    };
    to_response(route(&shared, req).await)
}

fn to_response(resp: Resp) -> Response {
    if resp.reset {
        // Announce a body and then fail it: the client sees the connection drop mid-answer.
        let stream = futures_util::stream::once(async {
            Err::<Bytes, std::io::Error>(std::io::Error::new(
                std::io::ErrorKind::ConnectionReset,
                "injected reset",
            ))
        });
        let mut r = Response::new(Body::from_stream(stream));
        r.headers_mut()
            .insert("content-length", HeaderValue::from_static("1000"));
        return r;
    }
    let mut r = Response::new(Body::from(resp.body));
    *r.status_mut() =
        StatusCode::from_u16(resp.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    for (k, v) in resp.headers {
        if let (Ok(name), Ok(value)) = (
            axum::http::HeaderName::try_from(k),
            HeaderValue::try_from(v),
        ) {
            r.headers_mut().insert(name, value);
        }
    }
    r
}

async fn route(shared: &Arc<Shared>, mut req: Req) -> Resp {
    let segs = segments(&req.path);
    let s: Vec<&str> = segs.iter().map(String::as_str).collect();
    match (req.method.as_str(), s.as_slice()) {
        ("POST", [tenant, "oauth2", "v2.0", "token"]) => {
            crate::auth::token_endpoint(shared, tenant, &req.body)
        }
        ("POST", [tenant, "oauth2", "v2.0", "devicecode"]) => {
            crate::auth::devicecode_endpoint(shared, tenant, &req.body)
        }
        ("PUT", ["_upload", sid]) => {
            gateway_time(shared).await;
            upload(shared, sid, &req).await
        }
        (_, ["_emulator", rest @ ..]) => crate::inspect::http(shared, &req.method, rest, &req.body),
        (_, ["v1.0", ..]) => {
            let token = match shared.check_bearer(req.authorization.as_deref()) {
                Ok(t) => t,
                Err(e) => return e,
            };
            req.path = req.path.trim_start_matches("/v1.0").to_string();
            gateway_time(shared).await;
            if req.method == "POST" && req.path == "/$batch" {
                return batch(shared, &token, &req).await;
            }
            graph(shared, &token, req).await
        }
        _ => Resp::graph_error(404, "NotFound", "Unknown endpoint."),
    }
}

fn forbidden() -> Resp {
    Resp::graph_error(
        403,
        "ErrorAccessDenied",
        "Access is denied. Check credentials and try again.",
    )
}

fn authorization_denied() -> Resp {
    Resp::graph_error(
        403,
        "Authorization_RequestDenied",
        "Insufficient privileges to complete the operation.",
    )
}

const READ_USERS: [&str; 4] = [
    "User.Read.All",
    "User.ReadWrite.All",
    "Directory.Read.All",
    "Directory.ReadWrite.All",
];

async fn graph(shared: &Arc<Shared>, token: &TokenInfo, req: Req) -> Resp {
    let segs = segments(&req.path);
    let s: Vec<&str> = segs.iter().map(String::as_str).collect();
    match s.as_slice() {
        ["users", user, kind, ..]
            if matches!(*kind, "mailFolders" | "messages" | "mailboxSettings") =>
        {
            let needed: &[&str] = match (*kind, req.method.as_str()) {
                ("mailboxSettings", _) => &["MailboxSettings.Read", "MailboxSettings.ReadWrite"],
                (_, "GET") => &[
                    "Mail.ReadWrite",
                    "Mail.Read",
                    "Mail.ReadBasic",
                    "Mail.ReadBasic.All",
                ],
                _ => &["Mail.ReadWrite"],
            };
            if !token.has_any(needed) {
                return forbidden();
            }
            let rest: Vec<String> = segs[2..].to_vec();
            mailbox_request(shared, token, user, &rest, &req).await
        }
        ["users", user, kind, ..] if *kind == crate::categories::KIND => {
            // "Create Outlook category" and "List Outlook categories": MailboxSettings.*.
            let needed: &[&str] = if req.method == "GET" {
                &["MailboxSettings.Read", "MailboxSettings.ReadWrite"]
            } else {
                &["MailboxSettings.ReadWrite"]
            };
            if !token.has_any(needed) {
                return forbidden();
            }
            let rest: Vec<String> = segs[2..].to_vec();
            mailbox_request(shared, token, user, &rest, &req).await
        }
        ["users", user, kind, ..] if crate::pim::KINDS.contains(kind) => {
            let needed: &[&str] = match (*kind, req.method.as_str()) {
                ("todo", "GET") => &["Tasks.ReadWrite.All", "Tasks.Read.All"],
                ("todo", _) => &["Tasks.ReadWrite.All"],
                (k, "GET") if crate::pim::is_contacts(k) => {
                    &["Contacts.ReadWrite", "Contacts.Read"]
                }
                (k, _) if crate::pim::is_contacts(k) => &["Contacts.ReadWrite"],
                (_, "GET") => &["Calendars.ReadWrite", "Calendars.Read"],
                _ => &["Calendars.ReadWrite"],
            };
            if !token.has_any(needed) {
                return forbidden();
            }
            let rest: Vec<String> = segs[2..].to_vec();
            mailbox_request(shared, token, user, &rest, &req).await
        }
        _ => directory(shared, token, &s, &req),
    }
}

/// Guard that releases a throttle slot when the request is done.
struct Slot {
    shared: Arc<Shared>,
    key: (String, String),
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Some(t) = self.shared.lock().throttle.get_mut(&self.key) {
            t.leave();
        }
    }
}

fn retry_after(wait: Duration) -> String {
    (wait.as_secs_f64().ceil() as u64).max(1).to_string()
}

/// Admits a mailbox request under the app-and-mailbox limits, then rolls the fault dice.
fn admit(
    shared: &Arc<Shared>,
    world: &mut World,
    key: (String, String),
    upload: u64,
    arrived: Instant,
    client: Option<u64>,
) -> Result<(Slot, Option<Fault>), Resp> {
    let cfg = &shared.config;
    let now = std::time::Instant::now();
    let t = world.throttle.entry(key.clone()).or_default();
    // Exchange Online answers 429 to every request of a mailbox whose Retry-After has not
    // elapsed. The window the emulator enforces is the announced wait in the emulator's time
    // scale (the header can only carry whole seconds).
    if let Some(left) = t.in_retry_window(now, arrived, client) {
        return Err(Resp::graph_error(
            429,
            "ApplicationThrottled",
            "Application is over its MailboxConcurrency limit.",
        )
        .with_header("retry-after", retry_after(left)));
    }
    // The app-wide limit, over all of the app's mailboxes.
    let app_window = cfg.scaled(cfg.limits.app_window_secs);
    let app = world.apps.entry(key.0.clone()).or_default();
    while app
        .arrivals
        .front()
        .is_some_and(|t| now.duration_since(*t) >= app_window)
    {
        app.arrivals.pop_front();
    }
    if app.arrivals.len() as u64 >= cfg.limits.app_requests_per_window {
        app.refusals += 1;
        let wait = app
            .arrivals
            .front()
            .map(|t| app_window.saturating_sub(now.duration_since(*t)))
            .unwrap_or(app_window);
        return Err(Resp::graph_error(
            429,
            "ApplicationThrottled",
            "Application is over its app-wide request limit.",
        )
        .with_header("retry-after", retry_after(wait)));
    }
    app.arrivals.push_back(now);
    let counted = match app.since {
        Some(since) => app.arrivals.len() - app.arrivals.partition_point(|t| *t < since),
        None => app.arrivals.len(),
    };
    app.peak = app.peak.max(counted as u64);
    let t = world.throttle.entry(key.clone()).or_default();
    match t.enter(
        &cfg.limits,
        cfg.scaled(cfg.limits.request_window_secs),
        cfg.scaled(cfg.limits.upload_window_secs),
        upload,
    ) {
        Ok(()) => {}
        Err(Refusal::Concurrency) => {
            // Only the request over the limit is refused; the others in flight go on.
            t.counters.throttled_answers += 1;
            let status = if cfg.limits.concurrency_as_503 {
                503
            } else {
                429
            };
            return Err(Resp::graph_error(
                status,
                "MailboxConcurrency",
                "Application is over its MailboxConcurrency limit.",
            )
            .with_header("retry-after", "1".into()));
        }
        Err(Refusal::Requests(wait)) | Err(Refusal::Upload(wait)) => {
            t.open_retry_window(now, wait, client);
            return Err(Resp::graph_error(
                429,
                "ApplicationThrottled",
                "Application is over its MailboxConcurrency limit.",
            )
            .with_header("retry-after", retry_after(wait)));
        }
    }
    let slot = Slot {
        shared: shared.clone(),
        key: key.clone(),
    };
    let f = &mut world.faults;
    let dice = &mut world.fault_dice;
    let fault = if f.storm_503 > 0 {
        f.storm_503 -= 1;
        Some(Fault::Status(503))
    } else if dice.chance(f.rate_503) {
        Some(Fault::Status(503))
    } else if dice.chance(f.rate_429) {
        Some(Fault::Status(429))
    } else if dice.chance(f.rate_reset) {
        Some(Fault::Reset)
    } else if dice.chance(f.rate_slow) {
        Some(Fault::Slow(Duration::from_millis(f.slow_ms)))
    } else {
        None
    };
    let retry = f.retry_after_secs.max(1);
    if let (Some(f), Some(t)) = (&fault, world.throttle.get_mut(&key)) {
        t.counters.faults_injected += 1;
        if matches!(f, Fault::Status(_)) {
            t.open_retry_window(now, cfg.scaled(retry as f64), client);
        }
    }
    Ok((
        slot,
        fault.map(|x| match x {
            Fault::Status(s) => Fault::Answer(
                Resp::graph_error(
                    s,
                    if s == 503 {
                        "ServiceUnavailable"
                    } else {
                        "ApplicationThrottled"
                    },
                    "Injected fault.",
                )
                .with_header("retry-after", retry.to_string()),
            ),
            other => other,
        }),
    ))
}

enum Fault {
    Status(u16),
    Answer(Resp),
    Reset,
    Slow(Duration),
}

async fn mailbox_request(
    shared: &Arc<Shared>,
    token: &TokenInfo,
    user: &str,
    rest: &[String],
    req: &Req,
) -> Resp {
    let upload = if matches!(req.method.as_str(), "POST" | "PATCH" | "PUT") {
        req.body.len() as u64
    } else {
        0
    };
    let (slot, fault, ti, ui) = {
        let mut world = shared.lock();
        world.provision_due();
        let Some(ti) = world.tenants.iter().position(|t| t.id == token.tenant) else {
            return forbidden();
        };
        let Some(ui) = world.tenants[ti].user_index(user) else {
            return Resp::graph_error(
                404,
                "ErrorInvalidUser",
                &format!("The requested user '{user}' is invalid."),
            );
        };
        if !matches!(world.tenants[ti].users[ui].mailbox, MailboxState::Ready(_)) {
            return not_enabled();
        }
        let key = (token.app_id.clone(), world.tenants[ti].users[ui].id.clone());
        match admit(shared, &mut world, key, upload, req.arrived, req.client()) {
            Ok((slot, fault)) => (slot, fault, ti, ui),
            Err(resp) => return resp,
        }
    };
    let answer = finish_fault(fault).await;
    if let Some(a) = answer {
        drop(slot);
        return a;
    }
    // The service's own time: the request stays in flight (holding its concurrency slot)
    // until the answer is on its way.
    service_time(shared).await;
    let resp = {
        let mut world = shared.lock();
        let resp = if crate::pim::KINDS.contains(&rest[0].as_str()) {
            crate::pim::pim_op(&mut world, ti, ui, rest, req)
        } else if rest[0] == crate::categories::KIND {
            let new_id = world.guid();
            let r: Vec<&str> = rest.iter().map(String::as_str).collect();
            match world.tenants[ti].users[ui].mailbox_mut() {
                Some(mb) => crate::categories::op(mb, new_id, &r, req),
                None => not_enabled(),
            }
        } else {
            mailbox_op(shared, &mut world, ti, ui, &token.app_id, rest, req)
        };
        after_write(&mut world, req, resp)
    };
    drop(slot);
    resp
}

/// Faults that fire after a write was carried out: the answer is lost (504 or a dropped
/// connection), so the client must look the item up before it writes again.
fn after_write(world: &mut World, req: &Req, resp: Resp) -> Resp {
    let write = matches!(req.method.as_str(), "POST" | "PATCH" | "PUT" | "DELETE");
    if !write || !(200..300).contains(&resp.status) {
        return resp;
    }
    let (p504, preset) = (
        world.faults.rate_504_after_write,
        world.faults.rate_reset_after_write,
    );
    if world.fault_dice.chance(p504) {
        world.after_write_faults += 1;
        return Resp::graph_error(504, "GatewayTimeout", "Injected fault after the write.");
    }
    if world.fault_dice.chance(preset) {
        world.after_write_faults += 1;
        return Resp {
            reset: true,
            ..Resp::empty(500)
        };
    }
    resp
}

/// Waits the configured latency ([`EmulatorConfig::latency_ms`]).
async fn service_time(shared: &Shared) {
    let ms = shared.config.latency_ms;
    if ms > 0 {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
}

/// Waits the configured time on the way ([`EmulatorConfig::gateway_ms`]).
async fn gateway_time(shared: &Shared) {
    let ms = shared.config.gateway_ms;
    if ms > 0 {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
}

/// Applies a rolled fault: `Some(answer)` ends the request, `None` continues (after a delay).
async fn finish_fault(fault: Option<Fault>) -> Option<Resp> {
    match fault {
        None | Some(Fault::Status(_)) => None,
        Some(Fault::Answer(r)) => Some(r),
        Some(Fault::Reset) => Some(Resp {
            reset: true,
            ..Resp::empty(500)
        }),
        Some(Fault::Slow(d)) => {
            tokio::time::sleep(d).await;
            None
        }
    }
}

async fn upload(shared: &Arc<Shared>, sid: &str, req: &Req) -> Resp {
    if req.authorization.is_some() {
        return Resp::graph_error(
            401,
            "InvalidAuthenticationToken",
            "Do not send an Authorization header to an upload URL; it is pre-authenticated.",
        );
    }
    let token = req.query.get("authtoken").cloned().unwrap_or_default();
    let (slot, fault) = {
        let mut world = shared.lock();
        let Some(key) = shared.session_owner(&world, sid, &token) else {
            return Resp::graph_error(
                404,
                "ErrorItemNotFound",
                "The upload session was not found or has expired.",
            );
        };
        // Pre-authenticated: the client is not known, so every request counts.
        match admit(
            shared,
            &mut world,
            key,
            req.body.len() as u64,
            req.arrived,
            None,
        ) {
            Ok(x) => x,
            Err(r) => return r,
        }
    };
    if let Some(a) = finish_fault(fault).await {
        return a;
    }
    service_time(shared).await;
    let resp = upload_chunk(&mut shared.lock(), &shared.config.limits, sid, req);
    drop(slot);
    resp
}

/// Directory (tenant-wide) requests: users, subscribedSkus, licences.
fn directory(shared: &Arc<Shared>, token: &TokenInfo, s: &[&str], req: &Req) -> Resp {
    let mut world = shared.lock();
    world.provision_due();
    let delay = shared.config.scaled(shared.config.provisioning_delay_secs);
    let Some(ti) = world.tenants.iter().position(|t| t.id == token.tenant) else {
        return forbidden();
    };
    match (req.method.as_str(), s) {
        ("GET", ["users"]) => {
            if !token.has_any(&READ_USERS) {
                return authorization_denied();
            }
            let top = match req.query.get("$top").map(|t| t.parse::<usize>()) {
                None => 100,
                Some(Ok(t)) if (1..=999).contains(&t) => t,
                _ => {
                    return Resp::graph_error(
                        400,
                        "Request_UnsupportedQuery",
                        "Invalid page size specified: $top must be between 1 and 999.",
                    );
                }
            };
            let skip: usize = req
                .query
                .get("$skiptoken")
                .and_then(|t| t.strip_prefix("X").and_then(|n| n.parse().ok()))
                .unwrap_or(0);
            let filter = req.query.get("$filter").cloned();
            let mut matching = Vec::new();
            for u in &world.tenants[ti].users {
                let obj = u.to_json().as_object().cloned().unwrap_or_default();
                match filter_matches(&filter, &obj, &[]) {
                    Ok(true) => matching.push(obj),
                    Ok(false) => {}
                    Err(e) => return e,
                }
            }
            let total = matching.len();
            let values: Vec<Value> = matching
                .into_iter()
                .skip(skip)
                .take(top)
                .map(|o| Value::Object(select(o, &req.query)))
                .collect();
            let mut out = json!({"@odata.context": format!("{}/v1.0/$metadata#users", req.base_url), "value": values});
            if skip + top < total {
                let mut q: Vec<String> = req
                    .query
                    .iter()
                    .filter(|(k, _)| k.as_str() != "$skiptoken")
                    .map(|(k, v)| {
                        format!(
                            "{}={}",
                            crate::util::pct_encode(k),
                            crate::util::pct_encode(v)
                        )
                    })
                    .collect();
                q.sort();
                q.push(format!("%24skiptoken=X{}", skip + top));
                out["@odata.nextLink"] =
                    json!(format!("{}/v1.0/users?{}", req.base_url, q.join("&")));
            }
            Resp::json(200, &out)
        }
        ("GET", ["users", u]) => {
            if !token.has_any(&READ_USERS) {
                return authorization_denied();
            }
            match world.tenants[ti].user_index(u) {
                Some(ui) => Resp::json(
                    200,
                    &Value::Object(select(
                        world.tenants[ti].users[ui]
                            .to_json()
                            .as_object()
                            .cloned()
                            .unwrap_or_default(),
                        &req.query,
                    )),
                ),
                None => Resp::graph_error(
                    404,
                    "Request_ResourceNotFound",
                    &format!(
                        "Resource '{u}' does not exist or one of its queried reference-property objects are not present."
                    ),
                ),
            }
        }
        ("POST", ["users"]) => {
            if !token.has_any(&["User.ReadWrite.All", "Directory.ReadWrite.All"]) {
                return authorization_denied();
            }
            let Ok(body) = serde_json::from_slice::<Value>(&req.body) else {
                return Resp::graph_error(
                    400,
                    "BadRequest",
                    "Unable to read JSON request payload.",
                );
            };
            for f in [
                "accountEnabled",
                "displayName",
                "mailNickname",
                "passwordProfile",
                "userPrincipalName",
            ] {
                if body.get(f).is_none_or(Value::is_null) {
                    return Resp::graph_error(
                        400,
                        "Request_BadRequest",
                        &format!("Invalid value specified for property '{f}' of resource 'User'."),
                    );
                }
            }
            let upn = body["userPrincipalName"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            let domain = upn
                .rsplit_once('@')
                .map(|(_, d)| d.to_lowercase())
                .unwrap_or_default();
            if !world.tenants[ti]
                .domains
                .iter()
                .any(|d| d.to_lowercase() == domain)
            {
                return Resp::graph_error(
                    400,
                    "Request_BadRequest",
                    "Property userPrincipalName is invalid: the domain is not a verified domain of this tenant.",
                );
            }
            if world.tenants[ti].user_index(&upn).is_some() {
                return Resp::graph_error(
                    400,
                    "Request_BadRequest",
                    "Another object with the same value for property userPrincipalName already exists.",
                );
            }
            let id = world.guid();
            let mut props = serde_json::Map::new();
            for k in [
                "userPrincipalName",
                "displayName",
                "mailNickname",
                "accountEnabled",
                "givenName",
                "surname",
                "usageLocation",
            ] {
                props.insert(k.into(), body.get(k).cloned().unwrap_or(Value::Null));
            }
            props.insert("mail".into(), json!(upn));
            props.insert("proxyAddresses".into(), json!([format!("SMTP:{upn}")]));
            let user = crate::world::User {
                id,
                props,
                licenses: Vec::new(),
                mailbox: MailboxState::None,
            };
            let out = user.to_json();
            world.tenants[ti].users.push(user);
            Resp::json(201, &out)
        }
        ("PATCH", ["users", u]) => {
            if !token.has_any(&["User.ReadWrite.All", "Directory.ReadWrite.All"]) {
                return authorization_denied();
            }
            let Some(ui) = world.tenants[ti].user_index(u) else {
                return Resp::graph_error(404, "Request_ResourceNotFound", "User not found.");
            };
            let Ok(Value::Object(body)) = serde_json::from_slice::<Value>(&req.body) else {
                return Resp::graph_error(
                    400,
                    "BadRequest",
                    "Unable to read JSON request payload.",
                );
            };
            for (k, v) in body {
                world.tenants[ti].users[ui].props.insert(k, v);
            }
            Resp::empty(204)
        }
        ("POST", ["users", u, "assignLicense"]) => {
            if !token.has_any(&[
                "LicenseAssignment.ReadWrite.All",
                "User.ReadWrite.All",
                "Directory.ReadWrite.All",
            ]) {
                return authorization_denied();
            }
            let Some(ui) = world.tenants[ti].user_index(u) else {
                return Resp::graph_error(404, "Request_ResourceNotFound", "User not found.");
            };
            let Ok(body) = serde_json::from_slice::<Value>(&req.body) else {
                return Resp::graph_error(
                    400,
                    "BadRequest",
                    "Unable to read JSON request payload.",
                );
            };
            if world.tenants[ti].users[ui]
                .props
                .get("usageLocation")
                .and_then(Value::as_str)
                .is_none_or(str::is_empty)
            {
                return Resp::graph_error(
                    400,
                    "Request_BadRequest",
                    "License assignment cannot be done for user with invalid usage location.",
                );
            }
            let mut adds = Vec::new();
            for a in body["addLicenses"].as_array().into_iter().flatten() {
                let sku = a["skuId"].as_str().unwrap_or_default().to_string();
                let Some(cfg) = world.tenants[ti]
                    .skus
                    .iter()
                    .find(|s| s.sku_id.eq_ignore_ascii_case(&sku))
                    .cloned()
                else {
                    return Resp::graph_error(
                        400,
                        "Request_BadRequest",
                        &format!("License {sku} does not correspond to a valid company License."),
                    );
                };
                let used = world.tenants[ti]
                    .users
                    .iter()
                    .filter(|x| x.licenses.contains(&cfg.sku_id))
                    .count() as u32;
                if used >= cfg.units && !world.tenants[ti].users[ui].licenses.contains(&cfg.sku_id)
                {
                    return Resp::graph_error(
                        400,
                        "Request_BadRequest",
                        &format!(
                            "Subscription {} does not have any available licenses.",
                            cfg.sku_part_number
                        ),
                    );
                }
                adds.push(cfg);
            }
            let user = &mut world.tenants[ti].users[ui];
            for cfg in adds {
                if !user.licenses.contains(&cfg.sku_id) {
                    user.licenses.push(cfg.sku_id.clone());
                }
                if cfg.includes_exchange && matches!(user.mailbox, MailboxState::None) {
                    user.mailbox = MailboxState::ProvisionAt(Instant::now() + delay);
                }
            }
            for r in body["removeLicenses"].as_array().into_iter().flatten() {
                if let Some(r) = r.as_str() {
                    user.licenses.retain(|l| !l.eq_ignore_ascii_case(r));
                }
            }
            Resp::json(200, &user.to_json())
        }
        ("GET", ["subscribedSkus"]) => {
            if !token.has_any(&[
                "Organization.Read.All",
                "Directory.Read.All",
                "LicenseAssignment.ReadWrite.All",
                "User.Read.All",
                "User.ReadWrite.All",
            ]) {
                return authorization_denied();
            }
            let t = &world.tenants[ti];
            let values: Vec<Value> = t.skus.iter().map(|s| {
                let used = t.users.iter().filter(|u| u.licenses.contains(&s.sku_id)).count();
                json!({"skuId": s.sku_id, "skuPartNumber": s.sku_part_number, "capabilityStatus": "Enabled",
                    "consumedUnits": used, "prepaidUnits": {"enabled": s.units, "suspended": 0, "warning": 0},
                    "servicePlans": if s.includes_exchange { json!([{"servicePlanName": "EXCHANGE_S_ENTERPRISE", "provisioningStatus": "Success"}]) } else { json!([]) }})
            }).collect();
            Resp::json(200, &json!({"value": values}))
        }
        _ => Resp::graph_error(
            400,
            "BadRequest",
            &format!("Unsupported request: {} {}", req.method, req.path),
        ),
    }
}

/// Sub-requests of one `$batch` Graph runs at the same time ("Microsoft Graph dispatches up to
/// four individual requests from a batch to the Outlook service simultaneously").
const BATCH_PARALLELISM: usize = 4;

/// `POST /v1.0/$batch`: up to 20 sub-requests, each throttled on its own, four at a time.
async fn batch(shared: &Arc<Shared>, token: &TokenInfo, req: &Req) -> Resp {
    let Ok(body) = serde_json::from_slice::<Value>(&req.body) else {
        return Resp::graph_error(400, "BadRequest", "Invalid batch payload.");
    };
    let requests = body["requests"].as_array().cloned().unwrap_or_default();
    if requests.is_empty() || requests.len() > shared.config.limits.max_batch {
        return Resp::graph_error(
            400,
            "BadRequest",
            &format!(
                "Invalid batch payload format: a batch holds 1 to {} requests.",
                shared.config.limits.max_batch
            ),
        );
    }
    let mut subs = Vec::with_capacity(requests.len());
    for r in requests {
        let id = r["id"].clone();
        let url = r["url"].as_str().unwrap_or_default();
        let url = url
            .trim_start_matches("https://graph.microsoft.com")
            .trim_start_matches("/v1.0");
        let url = if url.starts_with('/') {
            url.to_string()
        } else {
            format!("/{url}")
        };
        let (path, query) = url
            .split_once('?')
            .map(|(p, q)| (p.to_string(), q.to_string()))
            .unwrap_or((url.clone(), String::new()));
        let headers = r["headers"].as_object().cloned().unwrap_or_default();
        let content_type = headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("content-type"))
            .and_then(|(_, v)| v.as_str())
            .unwrap_or("application/json")
            .to_ascii_lowercase();
        let sub_body = match &r["body"] {
            Value::Null => Bytes::new(),
            Value::String(s) if !content_type.starts_with("application/json") => {
                Bytes::from(s.clone())
            }
            v => Bytes::from(serde_json::to_vec(v).unwrap_or_default()),
        };
        let sub = Req {
            method: r["method"].as_str().unwrap_or("GET").to_ascii_uppercase(),
            path,
            query: parse_form(&query),
            content_type,
            // The batch's token: the same client, for throttling windows.
            authorization: req.authorization.clone(),
            content_range: None,
            body: sub_body,
            base_url: req.base_url.clone(),
            // Sent with the batch: its sub-requests were all on their way when it arrived.
            arrived: req.arrived,
        };
        subs.push((id, sub));
    }
    // Graph dispatches up to four sub-requests of a batch to the service at once (each then
    // counts against its mailbox's concurrency like a request of its own); answers keep the
    // batch's order.
    let responses: Vec<Value> = futures_util::stream::iter(subs)
        .map(|(id, sub)| async move {
            let resp = Box::pin(graph(shared, token, sub)).await;
            let mut headers = serde_json::Map::new();
            for (k, v) in &resp.headers {
                headers.insert(k.clone(), json!(v));
            }
            let body: Value = serde_json::from_slice(&resp.body).unwrap_or_else(|_| {
                if resp.body.is_empty() {
                    Value::Null
                } else {
                    json!(String::from_utf8_lossy(&resp.body))
                }
            });
            // A connection that broke inside the service (before or after the write): Graph
            // cannot tell whether it was carried out and answers the sub-request 502.
            let status = if resp.reset { 502 } else { resp.status };
            json!({"id": id, "status": status, "headers": headers, "body": body})
        })
        .buffered(BATCH_PARALLELISM)
        .collect()
        .await;
    Resp::json(200, &json!({"responses": responses}))
}
