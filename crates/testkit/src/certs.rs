//! Test certificates generated at run time (rcgen with ring).

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

use crate::error::{Error, Result};

/// A CA and a server certificate for `127.0.0.1` / `localhost`, all PEM.
pub(crate) struct TestPki {
    /// The CA a client should trust.
    pub(crate) ca_pem: String,
    /// The server certificate chain presented by Dovecot.
    pub(crate) server_cert_pem: String,
    /// The server's private key.
    pub(crate) server_key_pem: String,
}

fn cert_err(e: rcgen::Error) -> Error {
    Error::Certificate(e.to_string())
}

fn ca(common_name: &str) -> Result<(CertificateParams, KeyPair, String)> {
    let key = KeyPair::generate().map_err(cert_err)?;
    let mut params = CertificateParams::new(Vec::<String>::new()).map_err(cert_err)?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, common_name);
    dn.push(DnType::OrganizationName, "o365-migrate testkit");
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let cert = params.self_signed(&key).map_err(cert_err)?;
    Ok((params, key, cert.pem()))
}

/// Generates a fresh CA and a server certificate.
///
/// With `untrusted`, the server certificate is signed by a *second*, throw-away CA, so a
/// client trusting only `ca_pem` must refuse it.
pub(crate) fn generate(untrusted: bool) -> Result<TestPki> {
    let (ca_params, ca_key, ca_pem) = ca("o365-migrate testkit CA")?;
    let (sign_params, sign_key) = if untrusted {
        let (p, k, _) = ca("o365-migrate testkit UNTRUSTED CA")?;
        (p, k)
    } else {
        (ca_params, ca_key)
    };
    let issuer = Issuer::new(sign_params, sign_key);
    let key = KeyPair::generate().map_err(cert_err)?;
    let mut params = CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
        .map_err(cert_err)?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "127.0.0.1");
    params.distinguished_name = dn;
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    let cert = params.signed_by(&key, &issuer).map_err(cert_err)?;
    Ok(TestPki {
        ca_pem,
        server_cert_pem: cert.pem(),
        server_key_pem: key.serialize_pem(),
    })
}
