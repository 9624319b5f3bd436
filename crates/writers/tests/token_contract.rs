//! Contract tests of the identity flows against wiremock, with the request and reply shapes of
//! the Microsoft identity platform documentation.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use o365_migrate_target::identity::{
    CertificateCredential, Credential, DeviceCodeOptions, TokenClaims, TokenProvider,
};
use o365_migrate_target::{Endpoints, SecretString};
use wiremock::matchers::{body_string_contains, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const TENANT: &str = "contoso.onmicrosoft.com";
const CLIENT: &str = "11111111-2222-3333-4444-555555555555";

fn fake_jwt(claims: serde_json::Value) -> String {
    format!(
        "{}.{}.sig",
        URL_SAFE_NO_PAD.encode(br#"{"alg":"none"}"#),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    )
}

fn token_body(expires_in: u64) -> serde_json::Value {
    serde_json::json!({
        "token_type": "Bearer", "expires_in": expires_in, "ext_expires_in": expires_in,
        "access_token": fake_jwt(serde_json::json!({"roles": ["Mail.ReadWrite", "User.Read.All"], "appid": CLIENT, "tid": "t"})),
    })
}

fn form(body: &[u8]) -> std::collections::HashMap<String, String> {
    String::from_utf8_lossy(body)
        .split('&')
        .filter_map(|p| p.split_once('='))
        .map(|(k, v)| {
            let v = v.replace('+', " ");
            let mut out = Vec::new();
            let b = v.as_bytes();
            let mut i = 0;
            while i < b.len() {
                if b[i] == b'%'
                    && i + 2 < b.len()
                    && let Ok(x) = u8::from_str_radix(&v[i + 1..i + 3], 16)
                {
                    out.push(x);
                    i += 3;
                    continue;
                }
                out.push(b[i]);
                i += 1;
            }
            (k.to_string(), String::from_utf8_lossy(&out).into_owned())
        })
        .collect()
}

fn endpoints(server: &MockServer) -> Endpoints {
    let mut e = Endpoints::emulator(&server.uri());
    e.graph_resource = "https://graph.microsoft.com".into();
    e
}

#[tokio::test]
async fn client_secret_request_shape_and_cache() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(format!("/{TENANT}/oauth2/v2.0/token")))
        .and(body_string_contains("grant_type=client_credentials"))
        .respond_with(ResponseTemplate::new(200).set_body_json(token_body(3599)))
        .expect(1)
        .mount(&server)
        .await;
    let p = TokenProvider::new(
        TENANT,
        CLIENT,
        Credential::ClientSecret(SecretString::new("s3cr3t~value")),
        endpoints(&server),
    )
    .unwrap();
    let t = p.token().await.unwrap();
    assert_eq!(t.claims.roles, ["Mail.ReadWrite", "User.Read.All"]);
    // Cached: the second call makes no request (expect(1) is checked on drop).
    let _ = p.token().await.unwrap();
    let reqs = server.received_requests().await.unwrap_or_default();
    let f = form(&reqs[0].body);
    assert_eq!(f["client_id"], CLIENT);
    assert_eq!(f["client_secret"], "s3cr3t~value");
    assert_eq!(f["scope"], "https://graph.microsoft.com/.default");
    assert!(!format!("{p:?} {t:?}").contains("s3cr3t"));
}

#[tokio::test]
async fn refreshes_before_expiry_and_explains_a_wrong_secret() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(body_string_contains("client_secret=good"))
        .respond_with(ResponseTemplate::new(200).set_body_json(token_body(1)))
        .expect(2)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(body_string_contains("client_secret=bad"))
        .respond_with(ResponseTemplate::new(401).set_body_json(serde_json::json!({
            "error": "invalid_client",
            "error_description": "AADSTS7000215: Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID.\r\nTrace ID: x",
            "error_codes": [7000215]
        })))
        .mount(&server)
        .await;
    let p = TokenProvider::new(
        TENANT,
        CLIENT,
        Credential::ClientSecret(SecretString::new("good")),
        endpoints(&server),
    )
    .unwrap();
    // 1 s tokens are renewed once half their life is gone: 3 calls, 2 fetches.
    p.token().await.unwrap();
    p.token().await.unwrap();
    tokio::time::sleep(Duration::from_millis(600)).await;
    p.token().await.unwrap();
    let bad = TokenProvider::new(
        TENANT,
        CLIENT,
        Credential::ClientSecret(SecretString::new("bad")),
        endpoints(&server),
    )
    .unwrap();
    let err = bad.token().await.unwrap_err().to_string();
    assert!(
        err.contains("invalid_client") && err.contains("Value (not its ID)"),
        "{err}"
    );
    assert!(!err.contains("client_secret=bad"));
}

#[tokio::test]
async fn certificate_assertion_shape_and_signature() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(format!("/{TENANT}/oauth2/v2.0/token")))
        .and(body_string_contains("client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer"))
        .respond_with(ResponseTemplate::new(200).set_body_json(token_body(3599)))
        .expect(2)
        .mount(&server)
        .await;
    let pem = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/test-app.pem"
    ))
    .unwrap();
    use rustls_pki_types::pem::PemObject;
    let der = rustls_pki_types::CertificateDer::from_pem_slice(&pem).unwrap();
    for alg in [
        o365_migrate_target::identity::AssertionAlgorithm::Ps256,
        o365_migrate_target::identity::AssertionAlgorithm::Rs256,
    ] {
        let cred = Arc::new(
            CertificateCredential::from_pem(&pem, "test-app.pem")
                .unwrap()
                .with_algorithm(alg),
        );
        let p = TokenProvider::new(
            TENANT,
            CLIENT,
            Credential::Certificate(cred),
            endpoints(&server),
        )
        .unwrap();
        p.token().await.unwrap();
    }
    let reqs = server.received_requests().await.unwrap_or_default();
    let token_url = format!("{}/{TENANT}/oauth2/v2.0/token", server.uri());
    for (r, (alg, thumb_field)) in reqs.iter().zip([("PS256", "x5t#S256"), ("RS256", "x5t")]) {
        let f = form(&r.body);
        assert!(!f.contains_key("client_secret"));
        let jwt = &f["client_assertion"];
        let parts: Vec<&str> = jwt.split('.').collect();
        assert_eq!(parts.len(), 3);
        let header: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[0]).unwrap()).unwrap();
        let claims: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
        assert_eq!(header["alg"], alg);
        let digest = if alg == "PS256" {
            &ring::digest::SHA256
        } else {
            &ring::digest::SHA1_FOR_LEGACY_USE_ONLY
        };
        assert_eq!(
            header[thumb_field],
            URL_SAFE_NO_PAD.encode(ring::digest::digest(digest, der.as_ref()))
        );
        assert_eq!(claims["aud"], token_url.as_str());
        assert_eq!(claims["iss"], CLIENT);
        assert_eq!(claims["sub"], CLIENT);
        assert!(claims["jti"].as_str().is_some_and(|j| j.len() >= 16));
        let lifetime = claims["exp"].as_i64().unwrap() - claims["nbf"].as_i64().unwrap();
        assert!(lifetime > 0 && lifetime <= 600);
        // The signature verifies with the certificate's public key.
        let ee = webpki::EndEntityCert::try_from(&der).unwrap();
        let verify: &dyn rustls_pki_types::SignatureVerificationAlgorithm = if alg == "PS256" {
            webpki::ring::RSA_PSS_2048_8192_SHA256_LEGACY_KEY
        } else {
            webpki::ring::RSA_PKCS1_2048_8192_SHA256
        };
        let sig = URL_SAFE_NO_PAD.decode(parts[2]).unwrap();
        ee.verify_signature(
            verify,
            format!("{}.{}", parts[0], parts[1]).as_bytes(),
            &sig,
        )
        .unwrap();
    }
}

#[tokio::test]
async fn device_code_polls_through_pending_and_slow_down() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(format!("/{TENANT}/oauth2/v2.0/devicecode")))
        .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({
            "device_code": "DAQABAAEAAAD--DLA3VO7QrddgJg7WevrAgAAAAAAAAA",
            "user_code": "FQK5HW3UF",
            "verification_uri": "https://microsoft.com/devicelogin",
            "expires_in": 900,
            "interval": 1,
            "message": "To sign in, use a web browser to open the page https://microsoft.com/devicelogin and enter the code FQK5HW3UF to authenticate."
        })))
        .expect(1)
        .mount(&server)
        .await;
    let pending = serde_json::json!({"error": "authorization_pending", "error_description": "AADSTS70016: OAuth 2.0 device flow error. Authorization is pending. Continue polling."});
    let slow =
        serde_json::json!({"error": "slow_down", "error_description": "AADSTS70016: slow down"});
    Mock::given(method("POST"))
        .and(body_string_contains(
            "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Adevice_code",
        ))
        .respond_with(ResponseTemplate::new(400).set_body_json(pending))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(body_string_contains(
            "device_code=DAQABAAEAAAD--DLA3VO7QrddgJg7WevrAgAAAAAAAAA",
        ))
        .respond_with(ResponseTemplate::new(400).set_body_json(slow))
        .up_to_n_times(1)
        .with_priority(2)
        .mount(&server)
        .await;
    let mut ok = token_body(3599);
    ok["refresh_token"] = serde_json::json!("0.ARwA-refresh");
    ok["access_token"] = serde_json::json!(fake_jwt(
        serde_json::json!({"scp": "Mail.ReadWrite User.Read.All", "appid": CLIENT})
    ));
    Mock::given(method("POST"))
        .and(body_string_contains("device_code="))
        .respond_with(ResponseTemplate::new(200).set_body_json(ok))
        .with_priority(3)
        .expect(1)
        .mount(&server)
        .await;
    let shown = Arc::new(Mutex::new(Vec::new()));
    let s2 = shown.clone();
    let mut opts = DeviceCodeOptions::new(move |p| s2.lock().unwrap().push(p.user_code.clone()));
    opts.slow_down_step = Duration::from_millis(200);
    let p = TokenProvider::new(
        TENANT,
        CLIENT,
        Credential::DeviceCode(opts),
        endpoints(&server),
    )
    .unwrap();
    let started = std::time::Instant::now();
    let t = p.token().await.unwrap();
    assert_eq!(*shown.lock().unwrap(), ["FQK5HW3UF"]);
    assert!(t.claims.has("mail.readwrite"));
    // pending → wait 1 s, slow_down → wait 1.2 s, then the token: at least 3 polls' worth of waiting.
    assert!(
        started.elapsed() >= Duration::from_millis(3000),
        "{:?}",
        started.elapsed()
    );
    let reqs = server.received_requests().await.unwrap_or_default();
    let devicecode = form(&reqs[0].body);
    assert_eq!(
        devicecode["scope"],
        "https://graph.microsoft.com/.default offline_access"
    );
}

#[tokio::test]
async fn device_code_expiry_and_decline_are_typed_errors() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(format!("/{TENANT}/oauth2/v2.0/devicecode")))
        .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({
            "device_code": "dc", "user_code": "U", "verification_uri": "https://microsoft.com/devicelogin", "expires_in": 5, "interval": 1, "message": "m"
        })))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(format!("/{TENANT}/oauth2/v2.0/token")))
        .respond_with(ResponseTemplate::new(400).set_body_json(serde_json::json!({"error": "expired_token", "error_description": "AADSTS70020: expired"})))
        .mount(&server)
        .await;
    let p = TokenProvider::new(
        TENANT,
        CLIENT,
        Credential::DeviceCode(DeviceCodeOptions::new(|_| {})),
        endpoints(&server),
    )
    .unwrap();
    let err = p.token().await.unwrap_err().to_string();
    assert!(err.contains("expired"), "{err}");
}

#[test]
fn permission_check_names_what_is_missing() {
    let claims = TokenClaims {
        roles: vec!["User.Read.All".into()],
        app_id: Some(CLIENT.into()),
        ..TokenClaims::default()
    };
    let err = claims
        .require(&["Mail.ReadWrite", "User.Read.All"])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("Mail.ReadWrite")
            && err.contains(CLIENT)
            && err.contains("Grant admin consent"),
        "{err}"
    );
    assert!(claims.require(&["user.read.all"]).is_ok());
}
