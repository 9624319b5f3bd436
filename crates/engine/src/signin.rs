//! Google sign-in for a Gmail source (`[source.google]`): access tokens for IMAP `XOAUTH2`
//! from a service account with domain-wide delegation, or from each user's refresh token.
//!
//! Secrets are read when the first mailbox signs in (commands that never touch the source do
//! not need them) and never leave the `o365_migrate_google` cache: no token, key or refresh
//! token is logged, stored or shown in an error.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use o365_migrate_google as google;
use o365_migrate_imap as imap;

use crate::config::{GoogleSignIn, Job, SecretRef, SecretSource};
use crate::error::{Error, Result};

/// The token caches of a job: one for a service account (every user), or one per user for
/// refresh tokens.
#[derive(Debug)]
pub(crate) struct GoogleAuth {
    config: GoogleSignIn,
    /// Relative `file:` references resolve against the job file's folder.
    base: PathBuf,
    /// The service account's cache once its key was read.
    service: Mutex<Option<google::GoogleTokens>>,
    /// Per login, a refresh token's cache.
    per_user: Mutex<HashMap<String, google::GoogleTokens>>,
}

impl GoogleAuth {
    pub(crate) fn new(config: GoogleSignIn, base: PathBuf) -> GoogleAuth {
        GoogleAuth {
            config,
            base,
            service: Mutex::new(None),
            per_user: Mutex::new(HashMap::new()),
        }
    }

    fn options(&self) -> google::TokenOptions {
        options(&self.config)
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
        let reference = refresh_reference(template, login, &self.base)?;
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

fn options(config: &GoogleSignIn) -> google::TokenOptions {
    let mut o = google::TokenOptions::default();
    if let Some(s) = &config.scope {
        o = o.scope(s.clone());
    }
    if let Some(e) = &config.token_endpoint {
        o = o.token_endpoint(e.clone());
    }
    o
}

/// `login`'s refresh-token reference: the `refresh_token` template with `{login}` filled in,
/// a relative `file:` path below the job file's folder.
fn refresh_reference(template: &str, login: &str, base: &Path) -> Result<SecretRef> {
    let mut reference =
        SecretRef::parse(&template.replace("{login}", login)).map_err(|m| Error::Pipeline {
            context: "[source.google] refresh_token".into(),
            message: m,
            hint: None,
        })?;
    if let SecretSource::File(p) = &mut reference.source
        && p.is_relative()
    {
        *p = base.join(&*p);
    }
    reference.origin = format!("[source.google] refresh_token for {login}");
    Ok(reference)
}

/// `google authorize`: signs `login` in with Google's installed-app flow (a browser, a
/// redirect to 127.0.0.1, PKCE) and writes the refresh token to the file the job's
/// `[source.google] refresh_token` names for that login (owner-only; folders made). `show`
/// gets the address the user opens. Returns the file.
pub async fn google_authorize(
    job: &Job,
    login: &str,
    timeout: Duration,
    show: impl FnOnce(&str),
) -> Result<PathBuf> {
    let missing = |what: &str| Error::Pipeline {
        context: "google authorize".into(),
        message: format!("[source.google] has no `{what}`"),
        hint: Some(
            "set client_id (a Desktop-app OAuth client), client_secret and \
             refresh_token = \"file:/path/{login}.token\""
                .into(),
        ),
    };
    let g = job.source.google.as_ref().ok_or_else(|| missing("table"))?;
    let client_id = g.client_id.as_ref().ok_or_else(|| missing("client_id"))?;
    let secret = g
        .client_secret
        .as_ref()
        .ok_or_else(|| missing("client_secret"))?
        .resolve()?;
    let template = g
        .refresh_token
        .as_ref()
        .ok_or_else(|| missing("refresh_token"))?;
    let reference = refresh_reference(template, login, &job.base_dir())?;
    let SecretSource::File(path) = &reference.source else {
        return Err(Error::Pipeline {
            context: "google authorize".into(),
            message: "`refresh_token` is an `env:` reference, which cannot be written".into(),
            hint: Some("use `file:/path/{login}.token`".into()),
        });
    };
    let wrap = |e: google::Error| Error::Google {
        context: format!("google authorize {login}"),
        source: Box::new(e),
    };
    let mut flow = google::InstalledAppFlow::new(
        client_id.clone(),
        imap::Secret::new(secret.expose()),
        &options(g),
    );
    if let Some(a) = &g.auth_endpoint {
        flow = flow.auth_endpoint(a.clone());
    }
    let pending = flow.start(login).await.map_err(wrap)?;
    show(pending.url());
    let token = flow.finish(pending, timeout).await.map_err(wrap)?;
    write_owner_only(path, token.expose()).map_err(|e| Error::Pipeline {
        context: format!("google authorize {login}"),
        message: format!("cannot write {}: {e}", path.display()),
        hint: Some("check that the folder is writable by this user".into()),
    })?;
    Ok(path.clone())
}

/// Writes `text` to a new file readable by its owner only (folders made owner-only too).
fn write_owner_only(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
    }
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(text.as_bytes())?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}
