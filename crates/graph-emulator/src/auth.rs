//! The identity platform side: token endpoint (client secret, client assertion, device code) and
//! access-token checking for Graph requests.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::{Value, json};

use crate::server::Shared;
use crate::util::{Resp, parse_form, unix_now};

/// What a verified access token says.
#[derive(Debug, Clone)]
pub(crate) struct TokenInfo {
    pub(crate) tenant: String,
    pub(crate) app_id: String,
    /// Application roles (app-only) or delegated scopes.
    pub(crate) permissions: Vec<String>,
}

impl TokenInfo {
    pub(crate) fn has_any(&self, wanted: &[&str]) -> bool {
        self.permissions
            .iter()
            .any(|p| wanted.iter().any(|w| p.eq_ignore_ascii_case(w)))
    }
}

/// A pending device-code sign-in.
#[derive(Debug, Clone)]
pub(crate) struct DeviceCode {
    pub(crate) tenant: String,
    pub(crate) client_id: String,
    pub(crate) user_code: String,
    pub(crate) expires: Instant,
    pub(crate) interval: Duration,
    pub(crate) last_poll: Option<Instant>,
    pub(crate) state: DeviceState,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum DeviceState {
    Pending,
    Approved(String),
    Declined,
}

fn oauth_error(status: u16, error: &str, code: u32, description: &str) -> Resp {
    Resp::json(
        status,
        &json!({
            "error": error,
            "error_description": format!("AADSTS{code}: {description}"),
            "error_codes": [code],
            "timestamp": crate::util::now_iso(),
            "trace_id": "00000000-0000-0000-0000-000000000000",
            "correlation_id": "00000000-0000-0000-0000-000000000000",
        }),
    )
}

const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
const DEVICE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";

/// `POST /{tenant}/oauth2/v2.0/token`.
pub(crate) fn token_endpoint(shared: &Shared, tenant_ref: &str, body: &[u8]) -> Resp {
    let form = parse_form(&String::from_utf8_lossy(body));
    let get = |k: &str| form.get(k).map(String::as_str).unwrap_or("");
    let world = shared.world.lock().unwrap_or_else(|e| e.into_inner());
    let Some(tenant) = world.tenant(tenant_ref) else {
        return oauth_error(
            400,
            "invalid_request",
            90002,
            &format!("Tenant '{tenant_ref}' not found."),
        );
    };
    let tenant_id = tenant.id.clone();
    let client_id = get("client_id");
    let Some(app) = tenant
        .apps
        .iter()
        .find(|a| a.client_id == client_id)
        .cloned()
    else {
        return oauth_error(
            400,
            "unauthorized_client",
            700016,
            &format!(
                "Application with identifier '{client_id}' was not found in the directory '{tenant_ref}'."
            ),
        );
    };
    drop(world);
    match get("grant_type") {
        "client_credentials" => {
            let scope = get("scope");
            if !scope.ends_with("/.default") {
                return oauth_error(
                    400,
                    "invalid_scope",
                    1002012,
                    &format!(
                        "The provided value for scope {scope} is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI)."
                    ),
                );
            }
            if !form.contains_key("client_secret") && !form.contains_key("client_assertion") {
                return oauth_error(
                    401,
                    "invalid_client",
                    7000218,
                    "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
                );
            }
            if let Some(secret) = form.get("client_secret") {
                if app.client_secret.as_deref() != Some(secret.as_str()) {
                    return oauth_error(
                        401,
                        "invalid_client",
                        7000215,
                        &format!(
                            "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '{client_id}'."
                        ),
                    );
                }
            } else {
                if get("client_assertion_type") != JWT_BEARER {
                    return oauth_error(
                        400,
                        "invalid_request",
                        50027,
                        "client_assertion_type is missing or invalid.",
                    );
                }
                let token_url = format!("{}/{}/oauth2/v2.0/token", shared.base_url, tenant_ref);
                if let Err(why) = verify_assertion(get("client_assertion"), &app, &token_url) {
                    return oauth_error(
                        401,
                        "invalid_client",
                        700027,
                        &format!(
                            "Client assertion failed signature validation or claims check: {why}"
                        ),
                    );
                }
            }
            let token = shared.issue_token(
                &tenant_id,
                &app.client_id,
                TokenKind::App(app.roles.clone()),
            );
            token_reply(&token, shared.config.token_lifetime_secs)
        }
        DEVICE_GRANT => poll_device_code(shared, &tenant_id, &app, get("device_code")),
        other => oauth_error(
            400,
            "unsupported_grant_type",
            70003,
            &format!("The app requested an unsupported grant type '{other}'."),
        ),
    }
}

fn token_reply(token: &str, lifetime: u64) -> Resp {
    Resp::json(
        200,
        &json!({"token_type": "Bearer", "expires_in": lifetime, "ext_expires_in": lifetime, "access_token": token}),
    )
}

/// `POST /{tenant}/oauth2/v2.0/devicecode`.
pub(crate) fn devicecode_endpoint(shared: &Shared, tenant_ref: &str, body: &[u8]) -> Resp {
    let form = parse_form(&String::from_utf8_lossy(body));
    let client_id = form.get("client_id").cloned().unwrap_or_default();
    let mut world = shared.world.lock().unwrap_or_else(|e| e.into_inner());
    let Some(tenant) = world.tenant(tenant_ref) else {
        return oauth_error(
            400,
            "invalid_request",
            90002,
            &format!("Tenant '{tenant_ref}' not found."),
        );
    };
    let tenant_id = tenant.id.clone();
    if !tenant.apps.iter().any(|a| a.client_id == client_id) {
        return oauth_error(
            400,
            "unauthorized_client",
            700016,
            &format!("Application with identifier '{client_id}' was not found."),
        );
    }
    let n = world.dice.next_u64();
    let device_code = format!("DAQABAAEAAAD{:016x}{:016x}", n, world.dice.next_u64());
    let user_code = format!("{:08X}", n & 0xFFFF_FFFF);
    let expires_secs = (900.0 * shared.config.time_scale).ceil().max(1.0);
    let interval_secs = (5.0 * shared.config.time_scale).ceil().max(1.0);
    world.device_codes.insert(
        device_code.clone(),
        DeviceCode {
            tenant: tenant_id,
            client_id,
            user_code: user_code.clone(),
            expires: Instant::now() + Duration::from_secs_f64(expires_secs),
            interval: Duration::from_secs_f64(interval_secs),
            last_poll: None,
            state: DeviceState::Pending,
        },
    );
    Resp::json(
        200,
        &json!({
            "device_code": device_code,
            "user_code": user_code,
            "verification_uri": "https://microsoft.com/devicelogin",
            "expires_in": expires_secs as u64,
            "interval": interval_secs as u64,
            "message": format!("To sign in, use a web browser to open the page https://microsoft.com/devicelogin and enter the code {user_code} to authenticate."),
        }),
    )
}

fn poll_device_code(
    shared: &Shared,
    tenant_id: &str,
    app: &crate::AppConfig,
    device_code: &str,
) -> Resp {
    let mut world = shared.world.lock().unwrap_or_else(|e| e.into_inner());
    let Some(dc) = world.device_codes.get_mut(device_code) else {
        return oauth_error(
            400,
            "invalid_grant",
            70000,
            "The provided device code is invalid.",
        );
    };
    if dc.tenant != tenant_id || dc.client_id != app.client_id {
        return oauth_error(
            400,
            "invalid_grant",
            70000,
            "The device code was issued to another client.",
        );
    }
    let now = Instant::now();
    if now >= dc.expires {
        return oauth_error(
            400,
            "expired_token",
            70020,
            "The provided value for the input parameter 'device_code' is not valid. This device code has expired.",
        );
    }
    let too_fast = dc
        .last_poll
        .is_some_and(|last| now.duration_since(last) < dc.interval.mul_f64(0.8));
    dc.last_poll = Some(now);
    match dc.state.clone() {
        DeviceState::Declined => oauth_error(
            400,
            "authorization_declined",
            70004,
            "The user declined the sign-in.",
        ),
        DeviceState::Pending if too_fast => oauth_error(
            400,
            "slow_down",
            70016,
            "Polling too fast; wait the interval before polling again.",
        ),
        DeviceState::Pending => oauth_error(
            400,
            "authorization_pending",
            70016,
            "OAuth 2.0 device flow error. Authorization is pending. Continue polling.",
        ),
        DeviceState::Approved(upn) => {
            world.device_codes.remove(device_code);
            drop(world);
            let token = shared.issue_token(
                tenant_id,
                &app.client_id,
                TokenKind::Delegated(upn, app.delegated_scopes.clone()),
            );
            token_reply(&token, shared.config.token_lifetime_secs)
        }
    }
}

/// Whose token it is.
pub(crate) enum TokenKind {
    App(Vec<String>),
    Delegated(String, Vec<String>),
}

static NEXT_UTI: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

impl Shared {
    pub(crate) fn issue_token(&self, tenant: &str, app_id: &str, kind: TokenKind) -> String {
        let now = unix_now();
        let mut claims = json!({
            "aud": "https://graph.microsoft.com",
            "iss": format!("https://sts.windows.net/{tenant}/"),
            "iat": now, "nbf": now, "exp": now + self.config.token_lifetime_secs as i64,
            "tid": tenant, "appid": app_id, "azp": app_id,
            // Unique per token, as Microsoft's `uti`: two tokens issued in one second differ.
            "uti": format!("{:016x}", NEXT_UTI.fetch_add(1, std::sync::atomic::Ordering::Relaxed)),
        });
        match kind {
            TokenKind::App(roles) => {
                claims["roles"] = json!(roles);
                claims["idtyp"] = json!("app");
            }
            TokenKind::Delegated(upn, scopes) => {
                claims["scp"] = json!(scopes.join(" "));
                claims["upn"] = json!(upn);
                claims["idtyp"] = json!("user");
            }
        }
        let header = URL_SAFE_NO_PAD.encode(br#"{"typ":"JWT","alg":"HS256"}"#);
        let payload = URL_SAFE_NO_PAD.encode(claims.to_string());
        let signing_input = format!("{header}.{payload}");
        let tag = ring::hmac::sign(&self.token_key, signing_input.as_bytes());
        format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(tag.as_ref()))
    }

    /// Checks `Authorization: Bearer ...` of a Graph request.
    pub(crate) fn check_bearer(&self, authorization: Option<&str>) -> Result<TokenInfo, Resp> {
        let unauthorized = |msg: &str| Resp::graph_error(401, "InvalidAuthenticationToken", msg);
        let Some(token) = authorization.and_then(|h| h.strip_prefix("Bearer ")) else {
            return Err(unauthorized("Access token is empty."));
        };
        let mut parts = token.rsplitn(2, '.');
        let (Some(sig), Some(input)) = (parts.next(), parts.next()) else {
            return Err(unauthorized("IDX14100: JWT is not well formed."));
        };
        let sig = URL_SAFE_NO_PAD
            .decode(sig)
            .map_err(|_| unauthorized("Invalid signature."))?;
        ring::hmac::verify(&self.token_key, input.as_bytes(), &sig)
            .map_err(|_| unauthorized("Invalid signature."))?;
        let claims = input
            .split('.')
            .nth(1)
            .and_then(|p| URL_SAFE_NO_PAD.decode(p).ok())
            .and_then(|p| serde_json::from_slice::<Value>(&p).ok())
            .ok_or_else(|| unauthorized("IDX14100: JWT is not well formed."))?;
        if claims["exp"].as_i64().unwrap_or(0) <= unix_now() {
            return Err(unauthorized(
                "Lifetime validation failed, the token is expired.",
            ));
        }
        let mut permissions: Vec<String> = claims["roles"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|r| r.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default();
        if let Some(scp) = claims["scp"].as_str() {
            permissions.extend(scp.split(' ').map(String::from));
        }
        Ok(TokenInfo {
            tenant: claims["tid"].as_str().unwrap_or_default().to_string(),
            app_id: claims["appid"].as_str().unwrap_or_default().to_string(),
            permissions,
        })
    }
}

/// Verifies a client assertion JWT against the app's configured certificates.
fn verify_assertion(
    assertion: &str,
    app: &crate::AppConfig,
    token_url: &str,
) -> Result<(), String> {
    let mut parts = assertion.split('.');
    let (Some(h), Some(p), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err("not a compact JWS".into());
    };
    let decode_json = |x: &str| -> Result<Value, String> {
        let raw = URL_SAFE_NO_PAD
            .decode(x)
            .map_err(|_| "bad base64url".to_string())?;
        serde_json::from_slice(&raw).map_err(|_| "bad JSON".to_string())
    };
    let header = decode_json(h)?;
    let claims = decode_json(p)?;
    let signature = URL_SAFE_NO_PAD
        .decode(s)
        .map_err(|_| "bad signature encoding".to_string())?;
    let alg = header["alg"].as_str().unwrap_or_default();
    let certs: Vec<Vec<u8>> = app
        .certificates_der_base64
        .iter()
        .filter_map(|c| STANDARD.decode(c.trim()).ok())
        .collect();
    let (thumb_field, digest_alg): (&str, &'static ring::digest::Algorithm) = match alg {
        "RS256" => ("x5t", &ring::digest::SHA1_FOR_LEGACY_USE_ONLY),
        "PS256" => ("x5t#S256", &ring::digest::SHA256),
        other => {
            return Err(format!(
                "unsupported alg {other:?} (use RS256 with x5t or PS256 with x5t#S256)"
            ));
        }
    };
    let thumb = header[thumb_field]
        .as_str()
        .ok_or(format!("header lacks {thumb_field}"))?;
    let cert = certs
        .iter()
        .find(|der| URL_SAFE_NO_PAD.encode(ring::digest::digest(digest_alg, der)) == thumb)
        .ok_or("no registered certificate has this thumbprint")?;
    let der = rustls_pki_types::CertificateDer::from(cert.as_slice());
    let ee = webpki::EndEntityCert::try_from(&der).map_err(|e| format!("certificate: {e}"))?;
    let verify_alg: &dyn rustls_pki_types::SignatureVerificationAlgorithm = match alg {
        "RS256" => webpki::ring::RSA_PKCS1_2048_8192_SHA256,
        _ => webpki::ring::RSA_PSS_2048_8192_SHA256_LEGACY_KEY,
    };
    ee.verify_signature(verify_alg, format!("{h}.{p}").as_bytes(), &signature)
        .map_err(|e| format!("signature: {e}"))?;
    let now = unix_now();
    if claims["aud"].as_str() != Some(token_url) {
        return Err(format!("aud must be {token_url}"));
    }
    if claims["iss"].as_str() != Some(app.client_id.as_str())
        || claims["sub"].as_str() != Some(app.client_id.as_str())
    {
        return Err("iss and sub must be the client id".into());
    }
    if claims["jti"].as_str().is_none_or(str::is_empty) {
        return Err("jti missing".into());
    }
    let exp = claims["exp"].as_i64().ok_or("exp missing")?;
    let nbf = claims["nbf"].as_i64().unwrap_or(now);
    if exp <= now - 300 || nbf > now + 300 {
        return Err("assertion expired or not yet valid".into());
    }
    if exp - nbf > 600 + 60 {
        return Err("assertion lifetime over 10 minutes".into());
    }
    Ok(())
}

/// Unused-map helper to keep the device-code store tidy.
pub(crate) fn purge_device_codes(map: &mut HashMap<String, DeviceCode>) {
    let now = Instant::now();
    map.retain(|_, d| d.expires + Duration::from_secs(60) > now);
}
