//! Attacks through a real server: algorithm confusion, `alg: none`, tampering, header
//! relabelling, malformed tokens. Every one must end as `401 INVALID_TOKEN`: never a 500, never
//! a panic, never a dropped connection.

mod common;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey};
use serde_json::{Value, json};
use tower_jwt_guard::JwtAuthLayer;
use tower_jwt_guard::clock::FakeClock;
use tower_jwt_guard::keys::Key;
use tower_jwt_guard::validate::Validator;

use common::*;

fn b64(data: impl AsRef<[u8]>) -> String {
    URL_SAFE_NO_PAD.encode(data)
}

fn segments(token: &str) -> (String, String, String) {
    let mut parts = token.split('.');
    let (Some(h), Some(p), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        panic!("not a three-part token");
    };
    (h.to_owned(), p.to_owned(), s.to_owned())
}

async fn rsa_server() -> TestServer {
    let validator = Validator::<TestClaims>::builder()
        .key(Key::rsa_pem(fixture("rsa_public.pem")).unwrap())
        .algorithms([Algorithm::RS256])
        .clock(FakeClock::at_unix_secs(NOW))
        .build()
        .unwrap();
    serve_layer(JwtAuthLayer::new(validator)).await
}

#[tokio::test]
async fn algorithm_confusion_hs256_with_the_rsa_public_key_is_refused() {
    let server = rsa_server().await;
    let legit = sign_with(
        Algorithm::RS256,
        &rsa_encoding_key(),
        None,
        &fresh_claims("alice"),
    );
    assert_accepted(&get_bearer(&server, &legit).await, "alice");

    let public_pem = fixture("rsa_public.pem");
    // The attacker's variants of the "secret": the PEM as served, trimmed, and the DER body.
    let trimmed = String::from_utf8(public_pem.clone())
        .unwrap()
        .trim()
        .to_owned();
    for secret in [public_pem.clone(), trimmed.into_bytes()] {
        for alg in [Algorithm::HS256, Algorithm::HS384, Algorithm::HS512] {
            let forged = sign_with(
                alg,
                &EncodingKey::from_secret(&secret).unwrap(),
                None,
                &fresh_claims("admin"),
            );
            let reply = get_bearer(&server, &forged).await;
            assert_rejected(&reply, "INVALID_TOKEN");
        }
    }

    // The same attack against a server without an allow-list: the key's family still decides.
    let no_allow_list = serve_layer(JwtAuthLayer::new(
        Validator::<TestClaims>::builder()
            .key(Key::rsa_pem(&public_pem).unwrap())
            .clock(FakeClock::at_unix_secs(NOW))
            .build()
            .unwrap(),
    ))
    .await;
    let forged = sign_with(
        Algorithm::HS256,
        &EncodingKey::from_secret(&public_pem).unwrap(),
        None,
        &fresh_claims("admin"),
    );
    assert_rejected(&get_bearer(&no_allow_list, &forged).await, "INVALID_TOKEN");
}

#[tokio::test]
async fn algorithm_confusion_against_a_jwks_with_kid() {
    let validator = Validator::<TestClaims>::builder()
        .keys(tower_jwt_guard::keys::keys_from_jwks(&fixture_str("jwks.json")).unwrap())
        .clock(FakeClock::at_unix_secs(NOW))
        .build()
        .unwrap();
    let server = serve_layer(JwtAuthLayer::new(validator)).await;
    let forged = sign_with(
        Algorithm::HS256,
        &EncodingKey::from_secret(&fixture("rsa_public.pem")).unwrap(),
        Some("rsa-2025"),
        &fresh_claims("admin"),
    );
    assert_rejected(&get_bearer(&server, &forged).await, "INVALID_TOKEN");
}

#[tokio::test]
async fn alg_none_is_refused() {
    let hmac = serve_layer(JwtAuthLayer::new(hmac_validator())).await;
    let rsa = rsa_server().await;
    let payload = b64(fresh_claims("admin").to_string());
    let tokens = [
        // The exact header from the brief: {"alg":"none"}.
        format!("eyJhbGciOiJub25lIn0.{payload}."),
        format!("{}.{payload}.", b64(r#"{"alg":"none","typ":"JWT"}"#)),
        format!("{}.{payload}.", b64(r#"{"alg":"None"}"#)),
        format!("{}.{payload}.", b64(r#"{"alg":"NONE"}"#)),
        format!("{}.{payload}.", b64(r#"{"alg":""}"#)),
        format!("{}.{payload}.", b64(r#"{"typ":"JWT"}"#)),
        // A none header with a signature copied from a real token.
        {
            let (_, _, sig) = segments(&token_for("alice"));
            format!("eyJhbGciOiJub25lIn0.{payload}.{sig}")
        },
    ];
    assert!(tokens[0].starts_with("eyJhbGciOiJub25lIn0."));
    for server in [&hmac, &rsa] {
        for token in &tokens {
            assert_rejected(&get_bearer(server, token).await, "INVALID_TOKEN");
        }
    }
}

#[tokio::test]
async fn tampered_payload_is_refused() {
    let server = serve_layer(JwtAuthLayer::new(hmac_validator())).await;
    let token = sign_hs256(&json!({"sub": "alice", "role": "user", "exp": NOW + 60}));
    assert_accepted(&get_bearer(&server, &token).await, "alice");
    let (header, payload, sig) = segments(&token);

    let mut claims: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(&payload).unwrap()).unwrap();
    claims["role"] = json!("admin");
    let escalated = format!("{header}.{}.{sig}", b64(claims.to_string()));
    assert_rejected(&get_bearer(&server, &escalated).await, "INVALID_TOKEN");

    claims["role"] = json!("user");
    claims["sub"] = json!("bob");
    let impersonated = format!("{header}.{}.{sig}", b64(claims.to_string()));
    assert_rejected(&get_bearer(&server, &impersonated).await, "INVALID_TOKEN");

    // Extending an expired token.
    let expired = sign_hs256(&claims_with_exp("alice", NOW - 3600));
    let (h, p, s) = segments(&expired);
    let mut c: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(&p).unwrap()).unwrap();
    c["exp"] = json!(NOW + 3600);
    let extended = format!("{h}.{}.{s}", b64(c.to_string()));
    assert_rejected(&get_bearer(&server, &extended).await, "INVALID_TOKEN");

    // Signature of another valid token.
    let (_, _, other_sig) = segments(&token_for("bob"));
    assert_rejected(
        &get_bearer(&server, &format!("{header}.{payload}.{other_sig}")).await,
        "INVALID_TOKEN",
    );
    // Signature truncated or emptied.
    assert_rejected(
        &get_bearer(
            &server,
            &format!("{header}.{payload}.{}", &sig[..sig.len() - 2]),
        )
        .await,
        "INVALID_TOKEN",
    );
    assert_rejected(
        &get_bearer(&server, &format!("{header}.{payload}.")).await,
        "INVALID_TOKEN",
    );
}

fn claims_with_exp(sub: &str, exp: u64) -> Value {
    claims(sub, exp)
}

#[tokio::test]
async fn relabelled_rsa_header_is_refused() {
    let validator = Validator::<TestClaims>::builder()
        .key(Key::rsa_pem(fixture("rsa_public.pem")).unwrap())
        .clock(FakeClock::at_unix_secs(NOW))
        .build()
        .unwrap();
    let server = serve_layer(JwtAuthLayer::new(validator)).await;
    let token = sign_with(
        Algorithm::RS256,
        &rsa_encoding_key(),
        None,
        &fresh_claims("alice"),
    );
    assert_accepted(&get_bearer(&server, &token).await, "alice");
    let (_, payload, sig) = segments(&token);
    for alg in ["PS256", "RS384", "RS512", "HS256", "ES256", "EdDSA"] {
        let header = b64(json!({"alg": alg, "typ": "JWT"}).to_string());
        let reply = get_bearer(&server, &format!("{header}.{payload}.{sig}")).await;
        assert_rejected(&reply, "INVALID_TOKEN");
    }
}

#[tokio::test]
async fn malformed_tokens_are_invalid_never_500() {
    let servers = [
        serve_layer(JwtAuthLayer::new(hmac_validator())).await,
        rsa_server().await,
        // Several keys: the kid / header path is taken before any signature check.
        serve_layer(JwtAuthLayer::new(
            Validator::<TestClaims>::builder()
                .key(Key::hmac(HMAC_SECRET).unwrap().with_kid("h"))
                .key(Key::ec_pem(fixture("ec_public.pem")).unwrap().with_kid("e"))
                .clock(FakeClock::at_unix_secs(NOW))
                .build()
                .unwrap(),
        ))
        .await,
    ];
    let good = token_for("alice");
    let (h, p, s) = segments(&good);
    let hs_header = b64(r#"{"alg":"HS256","typ":"JWT"}"#);
    // A correct HS256 signature over arbitrary segments.
    let sign_raw =
        |header: &str, payload: &str| hmac_sha256_b64(format!("{header}.{payload}").as_bytes());
    // Standard base64 alphabet where base64url has '-' / '_' ("???" encodes to "Pz8_").
    let url_safe = sign_hs256(&json!({"sub": "alice", "exp": NOW + 60, "x": "???"}));
    let std_b64 = url_safe.replace('_', "/").replace('-', "+");
    assert_ne!(std_b64, url_safe);
    let not_json_payload = b64("not json");
    let array_payload = b64("[1,2,3]");
    let cases: Vec<String> = vec![
        "abc".into(),
        "abc.def".into(),
        format!("{h}.{p}"),
        format!("{h}.{p}.{s}.extra"),
        format!("{h}.{p}.{s}.a.b"),
        "a.b.c.d".into(),
        "..".into(),
        "...".into(),
        ".".into(),
        format!(".{p}.{s}"),
        format!("{h}..{s}"),
        "!!!.@@@.###".into(),
        format!("{h}.{p}.!!!"),
        format!("{h}.%%%.{s}"),
        format!("{h}={p}.{s}"),
        format!("{}.{p}.{s}", b64("not json")),
        format!("{}.{p}.{s}", b64("[]")),
        format!("{}.{p}.{s}", b64(r#"{"alg":42}"#)),
        format!("{}.{p}.{s}", b64(r#"{"alg":"HS256","kid":{"x":1}}"#)),
        format!("{}.{p}.{s}", b64(r#"{"alg":"HS256","crit":["exp"]}"#)),
        format!("{}.{p}.{s}", b64([0xff, 0xfe, 0x00])),
        format!(
            "{hs_header}.{not_json_payload}.{}",
            sign_raw(&hs_header, &not_json_payload)
        ),
        format!(
            "{hs_header}.{array_payload}.{}",
            sign_raw(&hs_header, &array_payload)
        ),
        // Standard (padded, non-url-safe) base64 instead of base64url.
        format!("{h}=.{p}.{s}"),
        std_b64.clone(),
        // Whitespace and control characters inside the token.
        format!("{h}. {p}.{s}"),
        "x".repeat(4000),
        ".".repeat(500),
        format!(
            "{}.{}.{}",
            "A".repeat(3000),
            "B".repeat(3000),
            "C".repeat(1000)
        ),
    ];
    for server in &servers {
        for (i, token) in cases.iter().enumerate() {
            let reply = get_bearer(server, token).await;
            assert_eq!(reply.status, 401, "case {i}: {}", reply.text);
            assert_rejected(&reply, "INVALID_TOKEN");
        }
        // The server is still alive and accepting.
        let reply = get_bearer(server, &good).await;
        assert_ne!(reply.status, 500);
    }
    // And the HMAC server still accepts the good token.
    assert_accepted(&get_bearer(&servers[0], &good).await, "alice");
}

/// HS256 over `data` with [`HMAC_SECRET`], base64url, via jsonwebtoken's raw signing API, so
/// that arbitrary (even non-JSON) segments can carry a correct signature.
fn hmac_sha256_b64(data: &[u8]) -> String {
    init_crypto();
    jsonwebtoken::crypto::sign(
        data,
        &EncodingKey::from_secret(HMAC_SECRET).unwrap(),
        Algorithm::HS256,
    )
    .expect("HMAC signing")
}

#[tokio::test]
async fn correctly_signed_garbage_payloads_are_invalid() {
    let server = serve_layer(JwtAuthLayer::new(hmac_validator())).await;
    let header = b64(r#"{"alg":"HS256","typ":"JWT"}"#);
    for (i, payload) in [
        "not json".to_owned(),
        "[1,2,3]".to_owned(),
        "\"string\"".to_owned(),
        "null".to_owned(),
        "{\"sub\":\"a\",\"exp\":1,\"exp\":99999999999}".to_owned(),
        format!("{{\"sub\":\"a\",\"exp\":{}}} trailing", NOW + 60),
        "{".repeat(2000),
    ]
    .into_iter()
    .enumerate()
    {
        let payload = b64(&payload);
        let token = format!(
            "{header}.{payload}.{}",
            hmac_sha256_b64(format!("{header}.{payload}").as_bytes())
        );
        let reply = get_bearer(&server, &token).await;
        assert_eq!(reply.status, 401, "payload {i}: {}", reply.text);
        assert_rejected(&reply, "INVALID_TOKEN");
    }
    // A correctly signed, deeply nested claim (as deep as the 8 KiB cap allows): whatever the
    // decision, it must be an answer, not a crash or a 500.
    let deep = format!(
        "{{\"sub\":\"a\",\"exp\":{},\"deep\":{}1{}}}",
        NOW + 60,
        "[".repeat(2900),
        "]".repeat(2900)
    );
    let payload = b64(&deep);
    let token = format!(
        "{header}.{payload}.{}",
        hmac_sha256_b64(format!("{header}.{payload}").as_bytes())
    );
    assert!(token.len() <= tower_jwt_guard::extract::DEFAULT_MAX_TOKEN_LEN);
    let reply = get_bearer(&server, &token).await;
    assert!(matches!(reply.status, 200 | 401), "{}", reply.status);
    if reply.status == 401 {
        assert_rejected(&reply, "INVALID_TOKEN");
    }
    // Sanity: the same construction with a valid payload is accepted, so the above failures are
    // about the payloads and not about the signing helper.
    let payload = b64(fresh_claims("alice").to_string());
    let token = format!(
        "{header}.{payload}.{}",
        hmac_sha256_b64(format!("{header}.{payload}").as_bytes())
    );
    assert_accepted(&get_bearer(&server, &token).await, "alice");
}

#[tokio::test]
async fn duplicate_registered_claims_are_refused() {
    // {"exp": <past>, "exp": <future>}: whichever one a parser keeps, an ambiguous token must
    // not pass.
    let server = serve_layer(JwtAuthLayer::new(hmac_validator())).await;
    let header = b64(r#"{"alg":"HS256","typ":"JWT"}"#);
    let payload = b64(format!(
        r#"{{"sub":"a","exp":{},"exp":{}}}"#,
        NOW - 3600,
        NOW + 3600
    ));
    let token = format!(
        "{header}.{payload}.{}",
        hmac_sha256_b64(format!("{header}.{payload}").as_bytes())
    );
    assert_rejected(&get_bearer(&server, &token).await, "INVALID_TOKEN");
}

/// Signs arbitrary header and payload bytes with the test HMAC secret.
fn signed(header: &[u8], payload: &[u8]) -> String {
    let (header, payload) = (b64(header), b64(payload));
    let signature = hmac_sha256_b64(format!("{header}.{payload}").as_bytes());
    format!("{header}.{payload}.{signature}")
}

/// Hardening item 10: `crit` present in any form (`null` included), and invalid UTF-8 inside a
/// claim nobody reads, are refused, correctly signed or not.
#[tokio::test]
async fn crit_in_any_form_and_invalid_utf8_are_refused() {
    let server = serve_layer(JwtAuthLayer::new(hmac_validator())).await;
    let payload = fresh_claims("alice").to_string();
    for crit in ["null", "[]", r#"["exp"]"#, r#""b64""#] {
        let header = format!(r#"{{"alg":"HS256","crit":{crit}}}"#);
        let token = signed(header.as_bytes(), payload.as_bytes());
        assert_rejected(&get_bearer(&server, &token).await, "INVALID_TOKEN");
    }
    let header = br#"{"alg":"HS256","typ":"JWT"}"#;
    let mut bad = format!(r#"{{"sub":"alice","exp":{},"note":""#, NOW + 600).into_bytes();
    bad.extend_from_slice(b"\xff\xfe\"}");
    assert_rejected(
        &get_bearer(&server, &signed(header, &bad)).await,
        "INVALID_TOKEN",
    );
    // The same token with valid UTF-8 passes: only the bytes made the difference.
    let good = format!(r#"{{"sub":"alice","exp":{},"note":"é"}}"#, NOW + 600);
    assert_accepted(
        &get_bearer(&server, &signed(header, good.as_bytes())).await,
        "alice",
    );
}

/// Hardening item 10: with a maximum lifetime, a token whose `exp` is far away (`u64::MAX` is
/// accepted otherwise) or whose `exp - iat` is too long is refused.
#[tokio::test]
async fn a_maximum_lifetime_refuses_tokens_that_live_too_long() {
    let plain = serve_layer(JwtAuthLayer::new(hmac_validator())).await;
    let capped = serve_layer(JwtAuthLayer::new(
        hmac_builder()
            .max_lifetime(std::time::Duration::from_secs(3600))
            .build()
            .unwrap(),
    ))
    .await;
    let forever = sign_hs256(&json!({"sub": "alice", "exp": u64::MAX}));
    assert_accepted(&get_bearer(&plain, &forever).await, "alice");
    assert_rejected(&get_bearer(&capped, &forever).await, "INVALID_TOKEN");
    let long = sign_hs256(&json!({"sub": "alice", "iat": NOW - 7200, "exp": NOW + 60}));
    assert_rejected(&get_bearer(&capped, &long).await, "INVALID_TOKEN");
    let hour = sign_hs256(&json!({"sub": "alice", "iat": NOW, "exp": NOW + 3600}));
    assert_accepted(&get_bearer(&capped, &hour).await, "alice");
}
