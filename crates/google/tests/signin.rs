//! Google sign-in against the token endpoint stand-in (testkit's `GoogleTokenStandIn`).

use o365_migrate_google::{
    DEFAULT_SCOPE, Error, GoogleTokens, RefreshTokenCredentials, ServiceAccountKey, TokenOptions,
};
use o365_migrate_imap::TokenProvider;
use o365_migrate_testkit::google_token::{
    CLIENT_ID, GoogleTokenStandIn as StandIn, RefreshGrant, TokenConfig as Config, key_file,
    new_rsa_pem,
};
use std::collections::{HashMap, HashSet};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

const ALICE: &str = "alice@example.com";

/// Two RSA keys for the whole test binary: the service account's and a stranger's.
fn keys() -> &'static (String, String) {
    static KEYS: OnceLock<(String, String)> = OnceLock::new();
    KEYS.get_or_init(|| (new_rsa_pem().unwrap(), new_rsa_pem().unwrap()))
}

fn delegated(scopes: &[&str]) -> Config {
    Config {
        users: HashSet::from([ALICE.to_owned(), "bob@example.com".to_owned()]),
        delegation: HashMap::from([(
            CLIENT_ID.to_owned(),
            scopes.iter().map(|s| (*s).to_owned()).collect(),
        )]),
        refresh: HashMap::new(),
        desktop_clients: HashMap::new(),
    }
}

/// The stand-in (knowing the service account's real key) and tokens signed with `signing_pem`.
async fn setup(
    config: Config,
    signing_pem: &str,
    options: TokenOptions,
) -> (StandIn, GoogleTokens) {
    let server = StandIn::start(&keys().0, config).unwrap();
    let key = ServiceAccountKey::from_json(&key_file(signing_pem, server.url())).unwrap();
    let tokens = GoogleTokens::service_account(key, options).unwrap();
    (server, tokens)
}

/// Every secret string that must never appear in output.
fn secret_fragments() -> Vec<String> {
    let (real, other) = keys();
    let mut v: Vec<String> = real
        .lines()
        .chain(other.lines())
        .filter(|l| !l.starts_with("-----") && l.len() > 20)
        .map(str::to_owned)
        .collect();
    // token prefix, JWT header prefix (base64 of {"alg"), client secret, refresh token
    v.extend([
        "ya29.".into(),
        "eyJ".into(),
        "client-secret-xyz".into(),
        "1//refresh-abc".into(),
    ]);
    v
}

fn assert_no_secret(text: &str) {
    for s in secret_fragments() {
        assert!(
            !text.contains(&s),
            "secret fragment {s:?} in output: {text}"
        );
    }
}

/// The claims of the stand-in's last verified assertion.
fn last_claims(server: &StandIn) -> serde_json::Value {
    serde_json::from_str(&server.last_claims().unwrap()).unwrap()
}

fn show(e: &Error) -> String {
    let text = format!("{e} | {e:?}");
    assert_no_secret(&text);
    text
}

#[tokio::test]
async fn delegated_user_gets_a_token_end_to_end() {
    let (server, tokens) = setup(
        delegated(&[DEFAULT_SCOPE]),
        &keys().0,
        TokenOptions::default(),
    )
    .await;
    let token = tokens.access_token(ALICE).await.unwrap();
    assert_eq!(token.expose(), "ya29.standin-token-1");
    assert_eq!(server.requests(), 1);
    let claims = last_claims(&server);
    assert_eq!(claims["sub"], ALICE);
    assert_eq!(claims["scope"], DEFAULT_SCOPE);
    assert_eq!(claims["aud"], server.url());
    let (iat, exp) = (
        claims["iat"].as_u64().unwrap(),
        claims["exp"].as_u64().unwrap(),
    );
    assert!(exp - iat <= 3600);

    // Through the IMAP client's TokenProvider: the cached token, no second exchange.
    let provider = tokens.for_user(ALICE);
    assert_eq!(
        provider.token().await.unwrap().expose(),
        "ya29.standin-token-1"
    );
    assert_eq!(server.requests(), 1);
    // Another user: their own token.
    let bob = tokens.access_token("bob@example.com").await.unwrap();
    assert_eq!(bob.expose(), "ya29.standin-token-2");
    let auth = tokens.imap_auth(ALICE);
    assert_no_secret(&format!(
        "{auth:?} {tokens:?} {provider:?} {token:?} {token}"
    ));
}

#[tokio::test]
async fn token_is_cached_renewed_before_expiry_and_on_invalidate() {
    let options = TokenOptions::default().renew_before(Duration::from_secs(1));
    let (server, tokens) = setup(delegated(&[DEFAULT_SCOPE]), &keys().0, options).await;
    server.set_expires_in(3);
    let started = Instant::now();
    let first = tokens.access_token(ALICE).await.unwrap();
    let again = tokens.access_token(ALICE).await.unwrap();
    assert_eq!(first.expose(), again.expose());
    assert_eq!(server.requests(), 1, "a valid token comes from the cache");
    // Within a second of its expiry (renew_before) it is renewed: wait past 2 s, bounded.
    tokio::time::sleep(Duration::from_millis(2100).saturating_sub(started.elapsed())).await;
    let renewed = tokens.access_token(ALICE).await.unwrap();
    assert_ne!(renewed.expose(), first.expose());
    assert_eq!(server.requests(), 2);
    // On demand: after the server refused a token.
    server.set_expires_in(3599);
    tokens.for_user(ALICE).invalidate();
    let fresh = tokens.access_token(ALICE).await.unwrap();
    assert_ne!(fresh.expose(), renewed.expose());
    assert_eq!(server.requests(), 3);
}

#[tokio::test]
async fn short_lived_tokens_are_still_cached_and_huge_lifetimes_do_not_overflow() {
    // Default renew_before (5 minutes) is longer than the token: renewed at half its life.
    let (server, tokens) = setup(
        delegated(&[DEFAULT_SCOPE]),
        &keys().0,
        TokenOptions::default(),
    )
    .await;
    server.set_expires_in(4);
    tokens.access_token(ALICE).await.unwrap();
    tokens.access_token(ALICE).await.unwrap();
    assert_eq!(server.requests(), 1);
    server.set_expires_in(u64::MAX);
    tokens.access_token("bob@example.com").await.unwrap();
    tokens.access_token("bob@example.com").await.unwrap();
    assert_eq!(server.requests(), 2);
}

#[tokio::test]
async fn concurrent_callers_share_one_exchange() {
    let (server, tokens) = setup(
        delegated(&[DEFAULT_SCOPE]),
        &keys().0,
        TokenOptions::default(),
    )
    .await;
    server.set_delay(Duration::from_millis(300));
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let provider = tokens.for_user(ALICE);
        set.spawn(async move { provider.token().await.unwrap().expose().to_owned() });
    }
    let got: HashSet<String> = set.join_all().await.into_iter().collect();
    assert_eq!(got.len(), 1, "every caller got the same token");
    assert_eq!(server.requests(), 1, "one exchange for eight callers");
}

#[tokio::test]
async fn wrong_key_names_a_new_key() {
    let (server, tokens) = setup(
        delegated(&[DEFAULT_SCOPE]),
        &keys().1,
        TokenOptions::default(),
    )
    .await;
    let e = tokens.access_token(ALICE).await.unwrap_err();
    let text = show(&e);
    assert!(matches!(e, Error::WrongKey { .. }), "{text}");
    assert!(
        text.contains("create a new key in Google Cloud console → IAM → Service accounts → Keys"),
        "{text}"
    );
    assert_eq!(server.requests(), 1);
}

#[tokio::test]
async fn missing_delegation_names_domain_wide_delegation_and_the_client_id() {
    let fix = format!(
        "Admin console → Security → Access and data control → API controls → Domain-wide delegation → add client ID {CLIENT_ID} with scope {DEFAULT_SCOPE}"
    );
    // No delegation at all.
    let (_server, tokens) = setup(delegated(&[]), &keys().0, TokenOptions::default()).await;
    let e = tokens.access_token(ALICE).await.unwrap_err();
    let text = show(&e);
    assert!(matches!(e, Error::DelegationMissing { .. }), "{text}");
    assert!(text.contains(&fix), "{text}");
    // Delegation without the mail scope; the IMAP adapter carries the same fix.
    let (_server, tokens) = setup(
        delegated(&["https://www.googleapis.com/auth/gmail.readonly"]),
        &keys().0,
        TokenOptions::default(),
    )
    .await;
    let e = tokens.for_user(ALICE).token().await.unwrap_err();
    let text = format!("{e} {e:?}");
    assert_no_secret(&text);
    assert!(text.contains(&fix), "{text}");
}

#[tokio::test]
async fn unknown_user_is_named() {
    let (_server, tokens) = setup(
        delegated(&[DEFAULT_SCOPE]),
        &keys().0,
        TokenOptions::default(),
    )
    .await;
    let e = tokens.access_token("nobody@example.com").await.unwrap_err();
    let text = show(&e);
    assert!(
        matches!(e, Error::UnknownUser { ref user } if user == "nobody@example.com"),
        "{text}"
    );
}

#[tokio::test]
async fn refresh_token_grant_and_revocation() {
    let mut config = delegated(&[]);
    config.refresh.insert(
        "1//refresh-abc".into(),
        RefreshGrant {
            client_id: "12345-app.apps.googleusercontent.com".into(),
            client_secret: "client-secret-xyz".into(),
            user: "carol@gmail.com".into(),
            scopes: vec![DEFAULT_SCOPE.into()],
            revoked: false,
        },
    );
    let server = StandIn::start(&keys().0, config).unwrap();
    let creds = RefreshTokenCredentials {
        client_id: "12345-app.apps.googleusercontent.com".into(),
        client_secret: "client-secret-xyz".into(),
        refresh_token: "1//refresh-abc".into(),
    };
    assert_no_secret(&format!("{creds:?}"));
    let tokens =
        GoogleTokens::refresh_token(creds, TokenOptions::default().token_endpoint(server.url()))
            .unwrap();
    let t = tokens.access_token("carol@gmail.com").await.unwrap();
    assert_eq!(t.expose(), "ya29.standin-token-1");
    tokens.access_token("carol@gmail.com").await.unwrap();
    assert_eq!(server.requests(), 1, "cached");

    let issued = server.registry().issued();
    assert_eq!(issued.len(), 1);
    assert_eq!(
        issued[0].user, "carol@gmail.com",
        "the token is the refresh grant's user's"
    );
    server.update_config(|c| {
        if let Some(grant) = c.refresh.get_mut("1//refresh-abc") {
            grant.revoked = true;
        }
    });
    tokens.invalidate("carol@gmail.com");
    let e = tokens.access_token("carol@gmail.com").await.unwrap_err();
    let text = show(&e);
    assert!(matches!(e, Error::RefreshRevoked { .. }), "{text}");
    assert!(text.contains("sign the user in again"), "{text}");
}

#[test]
fn malformed_key_files_name_the_field_and_never_the_key() {
    let pem = &keys().0;
    let good: serde_json::Value =
        serde_json::from_slice(&key_file(pem, "https://oauth2.googleapis.com/token")).unwrap();
    let key = ServiceAccountKey::from_json(good.to_string().as_bytes()).unwrap();
    assert_eq!(key.client_id(), CLIENT_ID);
    assert_no_secret(&format!("{key:?}"));

    let broken = |edit: &dyn Fn(&mut serde_json::Value)| {
        let mut v = good.clone();
        edit(&mut v);
        let e = ServiceAccountKey::from_json(v.to_string().as_bytes()).unwrap_err();
        show(&e)
    };
    let text = broken(&|v| {
        v.as_object_mut().unwrap().remove("client_email");
    });
    assert!(text.contains("`client_email` is missing"), "{text}");
    let text = broken(&|v| v["private_key"] = pem.replace("MII", "M!I").into());
    assert!(text.contains("`private_key`"), "{text}");
    let text = broken(&|v| v["private_key"] = pem[..pem.len() / 2].into());
    assert!(text.contains("`private_key`"), "{text}");
    let text = broken(&|v| v["type"] = "authorized_user".into());
    assert!(text.contains("`type`"), "{text}");
    let text = broken(&|v| v["token_uri"] = "http://oauth2.example.com/token".into());
    assert!(
        text.contains("`token_uri`") && text.contains("not https"),
        "{text}"
    );
    let text = broken(&|v| v["client_id"] = 42.into());
    assert!(text.contains("`client_id` is not a string"), "{text}");

    // Not JSON: a line and column, not the text around it.
    let mut cut = good.to_string();
    cut.truncate(cut.len() - 40);
    let e = ServiceAccountKey::from_json(cut.as_bytes()).unwrap_err();
    assert!(show(&e).contains("is not JSON"));
}

#[test]
fn token_endpoint_must_be_https_or_loopback() {
    let creds = RefreshTokenCredentials {
        client_id: "c".into(),
        client_secret: "client-secret-xyz".into(),
        refresh_token: "1//refresh-abc".into(),
    };
    let e = GoogleTokens::refresh_token(
        creds,
        TokenOptions::default().token_endpoint("http://tokens.example.com/token"),
    )
    .unwrap_err();
    assert!(matches!(e, Error::TokenEndpoint { .. }), "{}", show(&e));
}

/// The engine's path: `imap_auth` → the IMAP client's `AUTHENTICATE XOAUTH2` carries Google's
/// initial client response with the token from the stand-in
/// (<https://developers.google.com/gmail/imap/xoauth2-protocol>).
#[tokio::test]
async fn imap_login_sends_the_xoauth2_response_with_the_token() {
    use base64::Engine as _;
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    let (server, tokens) = setup(
        delegated(&[DEFAULT_SCOPE]),
        &keys().0,
        TokenOptions::default(),
    )
    .await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let peer = tokio::spawn(async move {
        let (sock, _) = listener.accept().await.unwrap();
        let (r, mut w) = sock.into_split();
        let mut r = BufReader::new(r);
        w.write_all(b"* OK [CAPABILITY IMAP4rev1 SASL-IR AUTH=XOAUTH2] Gimap ready\r\n")
            .await
            .unwrap();
        let mut line = String::new();
        r.read_line(&mut line).await.unwrap();
        let tag = line.split(' ').next().unwrap().to_owned();
        w.write_all(format!("{tag} OK [CAPABILITY IMAP4rev1 IDLE] authenticated\r\n").as_bytes())
            .await
            .unwrap();
        line
    });
    let mut config = o365_migrate_imap::ClientConfig::new(
        "127.0.0.1",
        port,
        o365_migrate_imap::Security::Plaintext,
    );
    config.client_id = None;
    let reconnector = o365_migrate_imap::Reconnector::new(config, tokens.imap_auth(ALICE));
    let _session = reconnector.connect().await.unwrap();
    let line = peer.await.unwrap();
    assert!(line.contains("AUTHENTICATE XOAUTH2 "), "{line}");
    let b64 = line.trim_end().rsplit(' ').next().unwrap();
    let raw = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .unwrap();
    assert_eq!(
        raw,
        b"user=alice@example.com\x01auth=Bearer ya29.standin-token-1\x01\x01"
    );
    assert_eq!(server.requests(), 1);
    let claims = last_claims(&server);
    assert_eq!(claims["sub"], ALICE, "the token is the login user's");
}
