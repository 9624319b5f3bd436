//! The service account's JSON key file and the RS256-signed JWT assertion.
//!
//! Format of the key file and of the assertion:
//! <https://developers.google.com/identity/protocols/oauth2/service-account> ("Preparing to make
//! an authorized API call", "Creating a JWT").

use crate::{Error, Secret};
use base64::Engine as _;
use ring::rand::SystemRandom;
use ring::signature::{RSA_PKCS1_SHA256, RsaKeyPair};
use serde_json::Value;
use std::fmt;
use std::sync::Arc;

/// A service account key as Google's JSON key file gives it. `Debug` never shows the key.
#[derive(Clone)]
pub struct ServiceAccountKey {
    project_id: Option<String>,
    private_key_id: String,
    client_email: String,
    client_id: String,
    token_uri: String,
    key: Arc<RsaKeyPair>,
}

impl fmt::Debug for ServiceAccountKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServiceAccountKey")
            .field("project_id", &self.project_id)
            .field("private_key_id", &self.private_key_id)
            .field("client_email", &self.client_email)
            .field("client_id", &self.client_id)
            .field("token_uri", &self.token_uri)
            .finish_non_exhaustive()
    }
}

fn bad(field: &str, problem: impl Into<String>) -> Error {
    Error::KeyFile {
        field: field.to_owned(),
        problem: problem.into(),
    }
}

fn text_field(obj: &serde_json::Map<String, Value>, field: &str) -> Result<String, Error> {
    match obj.get(field) {
        None => Err(bad(field, "is missing")),
        Some(Value::String(s)) if s.trim().is_empty() => Err(bad(field, "is empty")),
        Some(Value::String(s)) => Ok(s.trim().to_owned()),
        Some(_) => Err(bad(field, "is not a string")),
    }
}

impl ServiceAccountKey {
    /// Parses the JSON key file (`type` `service_account`). Errors name the missing or invalid
    /// field and never contain the private key.
    pub fn from_json(bytes: &[u8]) -> Result<Self, Error> {
        // Parse to a Value first: syntax errors then carry a line and column only, never text.
        let value: Value = serde_json::from_slice(bytes).map_err(|e| {
            bad(
                "(file)",
                format!("is not JSON (line {}, column {})", e.line(), e.column()),
            )
        })?;
        let Value::Object(obj) = value else {
            return Err(bad("(file)", "is not a JSON object"));
        };
        let kind = text_field(&obj, "type")?;
        if kind != "service_account" {
            return Err(bad(
                "type",
                format!(
                    "is {kind:?}, not \"service_account\" (an OAuth client file is not a service account key)"
                ),
            ));
        }
        let project_id = text_field(&obj, "project_id").ok();
        let private_key_id = text_field(&obj, "private_key_id")?;
        let client_email = text_field(&obj, "client_email")?;
        let client_id = text_field(&obj, "client_id")?;
        if !client_id.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad("client_id", "is not the numeric client ID"));
        }
        let token_uri = text_field(&obj, "token_uri")?;
        crate::tokens::check_endpoint(&token_uri).map_err(|e| match e {
            Error::TokenEndpoint { problem, .. } => bad("token_uri", problem),
            other => other,
        })?;
        let pem = text_field(&obj, "private_key")?;
        let der = pkcs8_der(&pem)?;
        let key = RsaKeyPair::from_pkcs8(&der).map_err(|e| {
            bad(
                "private_key",
                format!("is not an RSA key Google issues ({e})"),
            )
        })?;
        Ok(ServiceAccountKey {
            project_id,
            private_key_id,
            client_email,
            client_id,
            token_uri,
            key: Arc::new(key),
        })
    }

    /// The service account's address (the assertion's `iss`).
    pub fn client_email(&self) -> &str {
        &self.client_email
    }

    /// The numeric client ID to authorize for domain-wide delegation.
    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    /// The key's id (the assertion header's `kid`; not secret).
    pub fn private_key_id(&self) -> &str {
        &self.private_key_id
    }

    /// The project the service account belongs to, if the file names it.
    pub fn project_id(&self) -> Option<&str> {
        self.project_id.as_deref()
    }

    /// The token endpoint the key file names.
    pub fn token_uri(&self) -> &str {
        &self.token_uri
    }

    /// A signed JWT (RS256) for `sub`, `scope` and audience `aud`, valid one hour from `now`
    /// (seconds since the Unix epoch): Google allows at most an hour.
    pub(crate) fn assertion(
        &self,
        sub: &str,
        scope: &str,
        aud: &str,
        now: u64,
    ) -> Result<Secret, Error> {
        let b64 = &base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let header = serde_json::json!({"alg": "RS256", "typ": "JWT", "kid": self.private_key_id});
        let claims = serde_json::json!({
            "iss": self.client_email,
            "sub": sub,
            "scope": scope,
            "aud": aud,
            "iat": now,
            "exp": now + 3600,
        });
        let mut jwt = format!(
            "{}.{}",
            b64.encode(header.to_string()),
            b64.encode(claims.to_string())
        );
        let mut sig = vec![0; self.key.public().modulus_len()];
        self.key
            .sign(
                &RSA_PKCS1_SHA256,
                &SystemRandom::new(),
                jwt.as_bytes(),
                &mut sig,
            )
            .map_err(|_| Error::Signing)?;
        jwt.push('.');
        jwt.push_str(&b64.encode(&sig));
        Ok(Secret::new(jwt))
    }
}

/// The DER bytes of a `-----BEGIN PRIVATE KEY-----` (PKCS#8) PEM block.
fn pkcs8_der(pem: &str) -> Result<Vec<u8>, Error> {
    const BEGIN: &str = "-----BEGIN PRIVATE KEY-----";
    const END: &str = "-----END PRIVATE KEY-----";
    if pem.contains("-----BEGIN RSA PRIVATE KEY-----") {
        return Err(bad(
            "private_key",
            "is a PKCS#1 key, not the PKCS#8 key Google issues",
        ));
    }
    let body = pem
        .split_once(BEGIN)
        .and_then(|(_, rest)| rest.split_once(END))
        .map(|(body, _)| body)
        .ok_or_else(|| bad("private_key", "is not a PEM block \"BEGIN PRIVATE KEY\""))?;
    let compact: String = body.chars().filter(|c| !c.is_whitespace()).collect();
    base64::engine::general_purpose::STANDARD
        .decode(compact)
        .map_err(|_| bad("private_key", "is not valid base64 inside the PEM block"))
}
