//! Google sign-in for a Gmail source (`[source.google]`): access tokens for IMAP `XOAUTH2`
//! from a service account with domain-wide delegation, or from each user's refresh token.
//!
//! Secrets are read when the first mailbox signs in (commands that never touch the source do
//! not need them) and never leave the `o365_migrate_google` cache: no token, key or refresh
//! token is logged, stored or shown in an error.

use std::collections::HashMap;
use std::sync::Mutex;

use o365_migrate_google as google;
use o365_migrate_imap as imap;

use crate::config::{GoogleSignIn, SecretRef};
use crate::error::{Error, Result};

/// The token caches of a job: one for a service account (every user), or one per user for
/// refresh tokens.
#[derive(Debug)]
pub(crate) struct GoogleAuth {
    config: GoogleSignIn,
    /// The service account's cache once its key was read.
    service: Mutex<Option<google::GoogleTokens>>,
    /// Per login, a refresh token's cache.
    per_user: Mutex<HashMap<String, google::GoogleTokens>>,
}

impl GoogleAuth {
    pub(crate) fn new(config: GoogleSignIn) -> GoogleAuth {
        GoogleAuth {
            config,
            service: Mutex::new(None),
            per_user: Mutex::new(HashMap::new()),
        }
    }

    fn options(&self) -> google::TokenOptions {
        let mut o = google::TokenOptions::default();
        if let Some(s) = &self.config.scope {
            o = o.scope(s.clone());
        }
        if let Some(e) = &self.config.token_endpoint {
            o = o.token_endpoint(e.clone());
        }
        o
    }

    /// The token cache that signs `login` in.
    fn tokens(&self, login: &str) -> Result<google::GoogleTokens> {
        let wrap = |e: google::Error| Error::Google {
            context: format!("Google sign-in of {login}"),
            source: Box::new(e),
        };
        if let Some(key_ref) = &self.config.service_account_key {
            let mut service = self.service.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(t) = service.as_ref() {
                return Ok(t.clone());
            }
            let key = key_ref.resolve()?;
            let key =
                google::ServiceAccountKey::from_json(key.expose().as_bytes()).map_err(|e| {
                    Error::Google {
                        context: format!("[source.google] service_account_key ({key_ref})"),
                        source: Box::new(e),
                    }
                })?;
            let t = google::GoogleTokens::service_account(key, self.options()).map_err(wrap)?;
            *service = Some(t.clone());
            return Ok(t);
        }
        let mut per_user = self.per_user.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(t) = per_user.get(login) {
            return Ok(t.clone());
        }
        let (Some(client_id), Some(secret), Some(template)) = (
            &self.config.client_id,
            &self.config.client_secret,
            &self.config.refresh_token,
        ) else {
            return Err(Error::Pipeline {
                context: "[source.google]".into(),
                message: "no way to sign in is given".into(),
                hint: Some("set `service_account_key`, or `client_id`, `client_secret` and `refresh_token`".into()),
            });
        };
        let mut reference =
            SecretRef::parse(&template.replace("{login}", login)).map_err(|m| Error::Pipeline {
                context: "[source.google] refresh_token".into(),
                message: m,
                hint: None,
            })?;
        reference.origin = format!("[source.google] refresh_token for {login}");
        let credentials = google::RefreshTokenCredentials {
            client_id: client_id.clone(),
            client_secret: imap::Secret::new(secret.resolve()?.expose()),
            refresh_token: imap::Secret::new(reference.resolve()?.expose()),
        };
        let t = google::GoogleTokens::refresh_token(credentials, self.options()).map_err(wrap)?;
        per_user.insert(login.to_owned(), t.clone());
        Ok(t)
    }

    /// The IMAP login of `login`: `AUTHENTICATE XOAUTH2` with a token from the cache.
    pub(crate) fn imap_auth(&self, login: &str) -> Result<imap::Auth> {
        Ok(self.tokens(login)?.imap_auth(login))
    }

    /// Forgets `login`'s token (the server refused it): the next login gets a new one.
    pub(crate) fn invalidate(&self, login: &str) {
        if let Ok(t) = self.tokens(login) {
            t.invalidate(login);
        }
    }

    /// Gets a token for `login` now (for `source test`): the error names what to fix.
    pub(crate) async fn check(&self, login: &str) -> Result<()> {
        self.tokens(login)?
            .access_token(login)
            .await
            .map(drop)
            .map_err(|e| Error::Google {
                context: format!("Google sign-in of {login}"),
                source: Box::new(e),
            })
    }
}
