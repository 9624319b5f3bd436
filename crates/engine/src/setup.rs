//! Building what the job names: the target writer and its credentials (Graph secret or
//! certificate, IMAP, EWS, EML), the source's IMAP client settings, and the credentials file.

use std::collections::HashMap;
use std::sync::Arc;

use o365_migrate_credentials as creds;
use o365_migrate_imap as imap;
use o365_migrate_target as target;

use crate::config::{Job, LoginMode, Security, TargetKind};
use crate::error::{Error, Result};

/// Builds the target writer named by the job's `[target]`. `credentials` supplies the per-user
/// passwords of an IMAP target in `per-user` login mode (the same password as the source,
/// logging in as the target address).
pub fn build_target(
    job: &Job,
    credentials: &creds::Credentials,
) -> Result<Arc<dyn target::Target>> {
    Ok(build_target_parts(job, credentials, None)?.0)
}

/// A target and, for Graph, its client.
type TargetParts = (
    Arc<dyn target::Target>,
    Option<Arc<target::graph::GraphClient>>,
);

/// [`build_target`] plus, for the Graph target, its client (directory and provisioning calls).
pub(crate) fn build_target_parts(
    job: &Job,
    credentials: &creds::Credentials,
    shared_budget: Option<Arc<dyn target::graph::SharedBudget>>,
) -> Result<TargetParts> {
    match job.target.kind {
        TargetKind::Graph => {
            let g = job.target.graph.as_ref().ok_or_else(|| Error::Pipeline {
                context: "target".into(),
                message: "[target.graph] is missing".into(),
                hint: Some("add a [target.graph] section (see `o365-migrate init`)".into()),
            })?;
            let credential = graph_credential(job, g)?;
            let mut endpoints = match g.authority_url.as_deref() {
                Some(a) => target::Endpoints::emulator(a),
                None => g.cloud.endpoints(),
            };
            if let Some(url) = &g.graph_url {
                endpoints.graph = url.trim_end_matches('/').to_owned();
            }
            let mut cfg = target::graph::GraphTargetConfig::new(
                g.tenant.clone(),
                g.client_id.clone(),
                credential,
                endpoints,
            );
            cfg.user_creation = job.matching.allow_create;
            cfg.shared_budget = shared_budget;
            if let Some(d) = &job.dav {
                let wanted = [
                    (d.contacts, "Contacts.ReadWrite"),
                    (d.calendars, "Calendars.ReadWrite"),
                    (d.tasks, "Tasks.ReadWrite.All"),
                ];
                cfg.extra_permissions = wanted
                    .iter()
                    .filter(|(on, _)| *on)
                    .map(|(_, p)| (*p).to_owned())
                    .collect();
            }
            let t = target::graph::GraphTarget::new(cfg).map_err(|e| Error::target("target", e))?;
            let client = t.client().clone();
            Ok((Arc::new(t), Some(client)))
        }
        TargetKind::Imap => {
            let t = job.target.imap.as_ref().ok_or_else(|| Error::Pipeline {
                context: "target".into(),
                message: "[target.imap] is missing".into(),
                hint: Some("add a [target.imap] section (see `o365-migrate init`)".into()),
            })?;
            let client = imap_client_config(
                &t.host,
                t.port(),
                t.security,
                t.accept_invalid_certs,
                t.ca_file.as_ref().map(|p| job.resolve_path(p)).as_deref(),
            )?;
            let login = match t.login {
                LoginMode::Admin => {
                    let a = t.admin.as_ref().ok_or_else(|| Error::Pipeline {
                        context: "target.imap".into(),
                        message: "login = \"admin\" needs [target.imap.admin]".into(),
                        hint: Some("add [target.imap.admin] with user and secret".into()),
                    })?;
                    target::imap::ImapLogin::MasterSeparator {
                        master: a.user.clone(),
                        password: target::SecretString::new(a.secret.resolve()?.expose()),
                        separator: '*',
                    }
                }
                LoginMode::PerUser => {
                    let file = job.source.credentials.display().to_string();
                    let mut passwords = HashMap::new();
                    for r in credentials.records() {
                        let context = || format!("target login for {}", r.login);
                        // The target password column when the file has one for this row,
                        // else the source password (same password on both servers).
                        let secret = match &r.target_password {
                            Some(p) => p.resolve(),
                            None => creds::LoginMode::PerUser
                                .login_for(r, &file)
                                .map(|l| l.secret),
                        }
                        .map_err(|e| Error::Credentials {
                            context: context(),
                            source: Box::new(e),
                            hint: None,
                        })?;
                        let addr = r.target.clone().unwrap_or_else(|| r.login.clone());
                        passwords.insert(addr, target::SecretString::new(secret.expose()));
                    }
                    target::imap::ImapLogin::PerUser {
                        passwords,
                        mechanism: target::imap::PasswordMechanism::Login,
                    }
                }
            };
            let mut cfg = target::imap::ImapTargetConfig::new(client, login);
            cfg.connections_per_mailbox = (t.connections_per_host.max(1) as usize).min(4);
            Ok((Arc::new(target::imap::ImapTarget::new(cfg)), None))
        }
        TargetKind::Ews => {
            let e = job.target.ews.as_ref().ok_or_else(|| Error::Pipeline {
                context: "target".into(),
                message: "[target.ews] is missing".into(),
                hint: Some("add a [target.ews] section (see `o365-migrate init`)".into()),
            })?;
            if e.accept_invalid_certs || e.ca_file.is_some() {
                return Err(Error::Pipeline {
                    context: "target.ews".into(),
                    message:
                        "accept_invalid_certs and ca_file are not supported by the EWS writer yet"
                            .into(),
                    hint: Some(
                        "install the Exchange CA in the system trust store and remove these keys"
                            .into(),
                    ),
                });
            }
            let secret = target::SecretString::new(e.secret.resolve()?.expose());
            let auth = match e.auth {
                crate::config::EwsAuth::Basic => target::ews::EwsAuth::Basic {
                    user: e.user.clone().ok_or_else(|| Error::Pipeline {
                        context: "target.ews".into(),
                        message: "auth = \"basic\" needs user".into(),
                        hint: Some("set user = \"svc-migrate@example.com\"".into()),
                    })?,
                    password: secret,
                },
                crate::config::EwsAuth::Bearer => target::ews::EwsAuth::StaticBearer(secret),
            };
            let cfg = target::ews::EwsTargetConfig::new(e.url.clone(), auth);
            let t = target::ews::EwsTarget::new(cfg).map_err(|e| Error::target("target.ews", e))?;
            Ok((Arc::new(t), None))
        }
        TargetKind::Eml => {
            let e = job.target.eml.as_ref().ok_or_else(|| Error::Pipeline {
                context: "target".into(),
                message: "[target.eml] is missing".into(),
                hint: Some("add [target.eml] directory = \"export\"".into()),
            })?;
            Ok((
                Arc::new(target::eml::EmlTarget::new(job.resolve_path(&e.directory))),
                None,
            ))
        }
    }
}

/// The Graph credential: a client secret, or a certificate (PEM with its key, or PKCS#12).
fn graph_credential(
    job: &Job,
    g: &crate::config::GraphTarget,
) -> Result<target::identity::Credential> {
    let bad = |message: String, hint: &str| Error::Pipeline {
        context: "target.graph".into(),
        message,
        hint: Some(hint.to_owned()),
    };
    match (&g.client_secret, &g.certificate) {
        (Some(r), None) => Ok(target::identity::Credential::ClientSecret(
            target::SecretString::new(r.resolve()?.expose()),
        )),
        (None, Some(path)) => {
            let path = job.resolve_path(path);
            let what = path.display().to_string();
            let bytes = std::fs::read(&path).map_err(|e| {
                bad(
                    format!("cannot read certificate {what}: {e}"),
                    "check [target.graph] certificate (a .pem with the key, or a .pfx)",
                )
            })?;
            let is_pfx = path
                .extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| e.eq_ignore_ascii_case("pfx") || e.eq_ignore_ascii_case("p12"));
            let cert = if is_pfx {
                let password = match &g.certificate_secret {
                    Some(r) => target::SecretString::new(r.resolve()?.expose()),
                    None => target::SecretString::new(""),
                };
                target::identity::CertificateCredential::from_pfx(&bytes, &password, &what)
            } else {
                target::identity::CertificateCredential::from_pem(&bytes, &what)
            }
            .map_err(|e| Error::target("target.graph certificate", e))?;
            Ok(target::identity::Credential::Certificate(Arc::new(cert)))
        }
        (Some(_), Some(_)) => Err(bad(
            "both client_secret and certificate are set".into(),
            "keep exactly one of them",
        )),
        (None, None) => Err(bad(
            "neither client_secret nor certificate is set".into(),
            "set client_secret = \"env:NAME\" or certificate = \"app.pem\"",
        )),
    }
}

/// An IMAP client configuration from job settings.
pub(crate) fn imap_client_config(
    host: &str,
    port: u16,
    security: Security,
    accept_invalid_certs: bool,
    ca_file: Option<&std::path::Path>,
) -> Result<imap::ClientConfig> {
    let security = match security {
        Security::Tls => imap::Security::Tls,
        Security::Starttls => imap::Security::StartTls,
        Security::None => imap::Security::Plaintext,
    };
    let mut c = imap::ClientConfig::new(host.to_owned(), port, security);
    c.tls.danger_accept_invalid_certificates = accept_invalid_certs;
    if let Some(p) = ca_file {
        c.tls.extra_ca_pem = Some(std::fs::read(p).map_err(|e| Error::Io {
            context: format!("ca_file {}", p.display()),
            source: e,
            hint: Some("check the path".into()),
        })?);
    }
    Ok(c)
}

/// What a target kind calls a mailbox: an address (Graph, EWS), a username (IMAP), a folder
/// name (EML); the credentials file's target column is checked by it.
pub fn target_identity(kind: crate::config::TargetKind) -> creds::TargetIdentity {
    use crate::config::TargetKind;
    match kind {
        TargetKind::Graph | TargetKind::Ews => creds::TargetIdentity::Address,
        TargetKind::Imap => creds::TargetIdentity::Username,
        TargetKind::Eml => creds::TargetIdentity::FolderName,
    }
}

/// Reads the credentials file named by the job and the login mode.
pub fn load_credentials(job: &Job) -> Result<(creds::Credentials, creds::LoginMode)> {
    let path = job.resolve_path(&job.source.credentials);
    let mut opts = creds::ReadOptions::default().target_identity(target_identity(job.target.kind));
    // An admin login, or Google sign-in, needs no password column.
    if job.source.login == LoginMode::Admin || job.source.google.is_some() {
        opts = opts.admin_mode();
    }
    let credentials = creds::load_file(&path, &opts).map_err(|e| Error::Credentials {
        context: format!("credentials file {}", path.display()),
        source: Box::new(e),
        hint: Some("run `o365-migrate credentials check FILE` for details".into()),
    })?;
    let mode = source_login_mode(job)?;
    Ok((credentials, mode))
}

/// How source logins are made: each row's own password, or `[source.admin]` as a Dovecot-style
/// master user (`user*admin`, separator `*`).
pub(crate) fn source_login_mode(job: &Job) -> Result<creds::LoginMode> {
    Ok(match job.source.login {
        LoginMode::PerUser => creds::LoginMode::PerUser,
        LoginMode::Admin => {
            let a = job.source.admin.as_ref().ok_or_else(|| Error::Pipeline {
                context: "source".into(),
                message: "login = \"admin\" needs [source.admin]".into(),
                hint: Some("add [source.admin] with user and secret".into()),
            })?;
            let secret = a.secret.resolve()?;
            let admin = creds::AdminLogin::new(
                a.user.clone(),
                creds::Secret::new(secret.expose()),
                creds::AdminStyle::MasterUserSeparator('*'),
            )
            .map_err(|e| Error::Credentials {
                context: "source.admin".into(),
                source: Box::new(e),
                hint: Some("the admin name must not contain the separator `*`".into()),
            })?;
            creds::LoginMode::Admin(admin)
        }
    })
}

/// The result of `credentials check`: the report as JSON and as text, and whether it has errors.
#[derive(Debug, Clone)]
pub struct CredentialsCheck {
    /// The report as JSON (passwords masked).
    pub json: String,
    /// The report for people (passwords masked).
    pub human: String,
    /// Whether the file has errors (it would be refused by `run`).
    pub has_errors: bool,
}

/// Reads and checks a credentials file (`o365-migrate credentials check`). Passwords are never
/// shown; `delimiter` overrides detection; the target column is checked as `target` names it
/// (an address when not given).
pub fn check_credentials_file(
    path: &std::path::Path,
    delimiter: Option<char>,
    target: Option<crate::config::TargetKind>,
) -> Result<CredentialsCheck> {
    let mut opts = creds::ReadOptions::default();
    if let Some(kind) = target {
        opts = opts.target_identity(target_identity(kind));
    }
    if let Some(d) = delimiter {
        opts = opts.delimiter(d);
    }
    let parsed = creds::read_file(path, &opts).map_err(|e| Error::Credentials {
        context: format!("credentials file {}", path.display()),
        source: Box::new(e),
        hint: None,
    })?;
    let report = parsed.report();
    Ok(CredentialsCheck {
        json: report.to_json(),
        human: report.render_human(50),
        has_errors: report.has_errors(),
    })
}

#[cfg(test)]
#[cfg(test)]
mod target_tests {
    use super::*;

    /// The template with its `[target]` block replaced by `target`.
    fn job_with_target(target: &str) -> Job {
        let t = crate::config::TEMPLATE;
        let start = t.find("[target]").unwrap_or(0);
        let end = t.find("[matching]").unwrap_or(t.len());
        let text = format!("{}{target}\n\n{}", &t[..start], &t[end..]);
        Job::parse(&text, "job.toml").expect("job parses")
    }

    #[test]
    fn builds_every_target_kind_from_the_job() {
        let creds = creds::parse_bytes(
            b"Login,Password\r\nalice@example.com,pw\r\n",
            "users.csv",
            &creds::ReadOptions::default(),
        )
        .and_then(|p| p.into_credentials())
        .expect("credentials");
        let eml = job_with_target("[target]\nkind = \"eml\"\n[target.eml]\ndirectory = \"out\"");
        assert_eq!(
            build_target(&eml, &creds).expect("eml").capabilities().name,
            "eml"
        );
        let imap = job_with_target(
            "[target]\nkind = \"imap\"\n[target.imap]\nhost = \"127.0.0.1\"\nport = 143\nsecurity = \"none\"",
        );
        assert!(build_target(&imap, &creds).is_ok());
        // A secret reference that does not resolve names the reference, not a value.
        let ews = job_with_target(
            "[target]\nkind = \"ews\"\n[target.ews]\nurl = \"https://mail.example.com/EWS/Exchange.asmx\"\nuser = \"svc@example.com\"\nsecret = \"env:O365_E2E_UNSET_EWS_SECRET\"",
        );
        let err = build_target(&ews, &creds)
            .err()
            .expect("unset secret")
            .to_string();
        assert!(err.contains("O365_E2E_UNSET_EWS_SECRET"), "{err}");
    }
}
