//! How each row logs in to the source IMAP server: its own password, or one admin credential.

use std::fmt;

use crate::error::Error;
use crate::read::CredentialRecord;
use crate::report::Location;
use crate::secret::Secret;

/// What the IMAP layer needs to authenticate as one user.
///
/// - `authzid == None`: log in as `authcid` with `secret` (IMAP `LOGIN` or SASL `PLAIN` without
///   an authorization identity).
/// - `authzid == Some(user)`: authenticate as `authcid` (the admin) and act as `user`; only SASL
///   `PLAIN` (RFC 4616) carries this, so use `AUTHENTICATE PLAIN` — `LOGIN` cannot.
#[derive(Clone)]
#[non_exhaustive]
pub struct ImapLogin {
    /// Authentication identity: whose password `secret` is.
    pub authcid: String,
    /// Authorization identity: the mailbox owner to act as, when different from `authcid`.
    pub authzid: Option<String>,
    /// The password.
    pub secret: Secret,
}

impl ImapLogin {
    /// A login from its parts (the IMAP layer's own tests, or credentials from elsewhere).
    pub fn new(authcid: impl Into<String>, authzid: Option<String>, secret: Secret) -> Self {
        ImapLogin {
            authcid: authcid.into(),
            authzid,
            secret,
        }
    }

    /// The SASL PLAIN message `authzid NUL authcid NUL password` (RFC 4616), still secret;
    /// base64-encode it for `AUTHENTICATE PLAIN`.
    pub fn sasl_plain(&self) -> Secret {
        let mut s = String::with_capacity(
            self.authzid.as_ref().map_or(0, String::len)
                + self.authcid.len()
                + self.secret.expose().len()
                + 2,
        );
        if let Some(z) = &self.authzid {
            s.push_str(z);
        }
        s.push('\0');
        s.push_str(&self.authcid);
        s.push('\0');
        s.push_str(self.secret.expose());
        Secret::new(s)
    }

    /// Whether plain IMAP `LOGIN` can carry this login (no separate authorization identity).
    pub fn fits_login_command(&self) -> bool {
        self.authzid.is_none()
    }
}

impl fmt::Debug for ImapLogin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ImapLogin")
            .field("authcid", &self.authcid)
            .field("authzid", &self.authzid)
            .field("secret", &self.secret)
            .finish()
    }
}

/// How an admin (master) credential logs in on behalf of a user.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum AdminStyle {
    /// Dovecot master user: log in as `user<separator>admin` (e.g. `terry.adams*mailadmin`)
    /// with the admin's password. Dovecot's default separator is `*`
    /// (`auth_master_user_separator`).
    MasterUserSeparator(char),
    /// SASL PLAIN with an authorization identity: authcid = admin, authzid = user
    /// (Dovecot master users, Cyrus admins, Zimbra admins).
    PlainAuthzid,
}

/// One admin credential used for every user (so no per-user passwords are needed).
#[derive(Debug, Clone)]
pub struct AdminLogin {
    admin: String,
    secret: Secret,
    style: AdminStyle,
}

impl AdminLogin {
    /// An admin credential. Fails on an empty admin name or password, or a separator that is
    /// part of the admin name.
    pub fn new(admin: impl Into<String>, secret: Secret, style: AdminStyle) -> Result<Self, Error> {
        let admin = admin.into();
        if admin.trim().is_empty() {
            return Err(Error::options(
                "the admin login is empty",
                "give the master/admin user name",
            ));
        }
        if secret.is_empty() {
            return Err(Error::options(
                "the admin password is empty",
                "give the master/admin password (e.g. from an environment variable)",
            ));
        }
        if let AdminStyle::MasterUserSeparator(sep) = style
            && admin.contains(sep)
        {
            return Err(Error::options(
                format!("the admin login contains the master user separator `{sep}`"),
                "use the admin name alone; the separator is put between user and admin",
            ));
        }
        Ok(AdminLogin {
            admin,
            secret,
            style,
        })
    }

    /// The admin user name.
    pub fn admin(&self) -> &str {
        &self.admin
    }

    /// The style.
    pub fn style(&self) -> &AdminStyle {
        &self.style
    }
}

/// Whether each user logs in with their own password or through an admin credential.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum LoginMode {
    /// Each row's own login and password (resolving `env:` / `file:` references).
    PerUser,
    /// One admin credential for every row.
    Admin(AdminLogin),
}

impl LoginMode {
    /// The IMAP login for a row. Errors (an unresolvable password reference, a missing
    /// password, a login containing the master separator) name the row's location.
    pub fn login_for(&self, record: &CredentialRecord, file: &str) -> Result<ImapLogin, Error> {
        let location = || Location {
            file: file.to_owned(),
            line: record.line,
            column: 1,
            cell: None,
        };
        match self {
            LoginMode::PerUser => {
                let Some(src) = &record.password else {
                    return Err(Error::Secret {
                        location: location(),
                        message: format!("row {} ({}) has no password", record.row, record.login),
                        hint: "add the password to the file or use the admin login mode".into(),
                    });
                };
                Ok(ImapLogin {
                    authcid: record.login.clone(),
                    authzid: None,
                    secret: src.resolve()?,
                })
            }
            LoginMode::Admin(admin) => match admin.style {
                AdminStyle::MasterUserSeparator(sep) => {
                    if record.login.contains(sep) {
                        return Err(Error::Secret {
                            location: location(),
                            message: format!(
                                "the login `{}` contains the master user separator `{sep}`",
                                record.login
                            ),
                            hint: "choose another separator (Dovecot auth_master_user_separator) or use PLAIN with an authorization identity".into(),
                        });
                    }
                    Ok(ImapLogin {
                        authcid: format!("{}{sep}{}", record.login, admin.admin),
                        authzid: None,
                        secret: admin.secret.clone(),
                    })
                }
                AdminStyle::PlainAuthzid => Ok(ImapLogin {
                    authcid: admin.admin.clone(),
                    authzid: Some(record.login.clone()),
                    secret: admin.secret.clone(),
                }),
            },
        }
    }
}
