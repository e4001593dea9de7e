//! Validation through a real server: leeway edges with a `FakeClock`, `exp` policy, the
//! RFC 7515 A.1 example, every asymmetric algorithm with PEM keys, JWKS rotation by `kid`,
//! algorithm allow-lists, issuer / audience / required claims.

mod common;

use std::time::Duration;

use jsonwebtoken::{Algorithm, EncodingKey};
use serde_json::{Value, json};
use tower_jwt_guard::clock::FakeClock;
use tower_jwt_guard::keys::{Key, keys_from_jwks};
use tower_jwt_guard::validate::Validator;
use tower_jwt_guard::{ConfigError, JwtAuthLayer};

use common::*;

/// A server whose validator uses the HMAC key, leeway 10 s and `clock`.
async fn server_at(clock: FakeClock) -> TestServer {
    let validator = hmac_builder()
        .leeway(Duration::from_secs(10))
        .clock(clock)
        .build()
        .unwrap();
    serve_layer(JwtAuthLayer::new(validator)).await
}

#[tokio::test]
async fn exp_leeway_edges() {
    let server = server_at(FakeClock::at_unix_secs(NOW)).await;
    let cases = [
        (NOW + 60, None),
        (NOW, None),
        (NOW - 5, None),
        (NOW - 9, None),
        // RFC 7519: not accepted on or after exp (+ leeway).
        (NOW - 10, Some("TOKEN_EXPIRED")),
        (NOW - 11, Some("TOKEN_EXPIRED")),
        (1, Some("TOKEN_EXPIRED")),
    ];
    for (exp, want) in cases {
        let reply = get_bearer(&server, &sign_hs256(&claims("alice", exp))).await;
        match want {
            None => assert_accepted(&reply, "alice"),
            Some(code) => assert_rejected(&reply, code),
        }
    }
}

#[tokio::test]
async fn nbf_leeway_edges() {
    let server = server_at(FakeClock::at_unix_secs(NOW)).await;
    let with_nbf = |nbf: u64| sign_hs256(&json!({"sub": "alice", "exp": NOW + 3600, "nbf": nbf}));
    for nbf in [NOW - 100, NOW, NOW + 5, NOW + 10] {
        assert_accepted(&get_bearer(&server, &with_nbf(nbf)).await, "alice");
    }
    for nbf in [NOW + 11, NOW + 30, NOW + 86_400] {
        let reply = get_bearer(&server, &with_nbf(nbf)).await;
        assert_rejected(&reply, "INVALID_TOKEN");
        assert!(reply.text.contains("not valid yet"), "{}", reply.text);
    }
}

#[tokio::test]
async fn clock_is_read_per_request() {
    let clock = FakeClock::at_unix_secs(NOW);
    let server = server_at(clock.clone()).await;
    let token = sign_hs256(&claims("alice", NOW + 60));
    assert_accepted(&get_bearer(&server, &token).await, "alice");
    clock.advance(Duration::from_secs(69));
    assert_accepted(&get_bearer(&server, &token).await, "alice");
    clock.advance(Duration::from_secs(1));
    assert_rejected(&get_bearer(&server, &token).await, "TOKEN_EXPIRED");
    // Moving the clock back makes it valid again: nothing is cached.
    clock.set_unix_secs(NOW);
    assert_accepted(&get_bearer(&server, &token).await, "alice");

    let later = sign_hs256(&json!({"sub": "bob", "exp": NOW + 3600, "nbf": NOW + 100}));
    assert_rejected(&get_bearer(&server, &later).await, "INVALID_TOKEN");
    clock.advance(Duration::from_secs(90));
    assert_accepted(&get_bearer(&server, &later).await, "bob");
}

#[tokio::test]
async fn zero_leeway() {
    let validator = hmac_builder().leeway(Duration::ZERO).build().unwrap();
    let server = serve_layer(JwtAuthLayer::new(validator)).await;
    assert_accepted(
        &get_bearer(&server, &sign_hs256(&claims("a", NOW + 1))).await,
        "a",
    );
    assert_rejected(
        &get_bearer(&server, &sign_hs256(&claims("a", NOW))).await,
        "TOKEN_EXPIRED",
    );
}

#[tokio::test]
async fn missing_exp_is_refused_unless_allowed() {
    let no_exp = sign_hs256(&json!({"sub": "alice"}));
    let strict = serve_layer(JwtAuthLayer::new(hmac_validator())).await;
    let reply = get_bearer(&strict, &no_exp).await;
    assert_rejected(&reply, "INVALID_TOKEN");
    assert!(reply.text.contains("exp"), "{}", reply.text);

    let relaxed = serve_layer(JwtAuthLayer::new(
        hmac_builder().allow_missing_exp().build().unwrap(),
    ))
    .await;
    assert_accepted(&get_bearer(&relaxed, &no_exp).await, "alice");
    // A token that does carry exp is still checked.
    assert_rejected(
        &get_bearer(&relaxed, &sign_hs256(&claims("alice", NOW - 3600))).await,
        "TOKEN_EXPIRED",
    );
}

#[tokio::test]
async fn malformed_time_claims_are_invalid() {
    let server = serve_layer(JwtAuthLayer::new(hmac_validator())).await;
    for payload in [
        json!({"sub": "a", "exp": "tomorrow"}),
        json!({"sub": "a", "exp": -1}),
        json!({"sub": "a", "exp": null}),
        json!({"sub": "a", "exp": NOW + 60, "nbf": "now"}),
        json!({"sub": "a", "exp": NOW + 60, "iat": [1]}),
    ] {
        let reply = get_bearer(&server, &sign_hs256(&payload)).await;
        assert_rejected(&reply, "INVALID_TOKEN");
    }
    // A fractional NumericDate is accepted (RFC 7519 allows it).
    let reply = get_bearer(
        &server,
        &sign_hs256(&json!({"sub": "a", "exp": (NOW + 60) as f64 + 0.5})),
    )
    .await;
    assert_accepted(&reply, "a");
}

// RFC 7515, Appendix A.1: the example HS256 JWS and its symmetric key.
const RFC7515_A1_JWS: &str = "eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9.eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ.dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
const RFC7515_A1_JWK: &str = r#"{"kty":"oct","k":"AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow"}"#;

async fn rfc7515_server(now: u64) -> TestServer {
    let validator = Validator::<Value>::builder()
        .key(Key::from_jwk_json(RFC7515_A1_JWK).unwrap())
        .issuers(["joe"])
        .clock(FakeClock::at_unix_secs(now))
        .build()
        .unwrap();
    let router = axum::Router::new()
        .route(
            "/me",
            axum::routing::get(|req: axum::extract::Request| async move {
                let claims = req
                    .extensions()
                    .get::<tower_jwt_guard::Claims<Value>>()
                    .map(|c| c.0.clone());
                axum::Json(claims)
            }),
        )
        .layer(JwtAuthLayer::new(validator));
    serve(router).await
}

#[tokio::test]
async fn rfc7515_appendix_a1_example() {
    let server = rfc7515_server(1_300_819_370).await;
    let reply = get_bearer(&server, RFC7515_A1_JWS).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let claims = reply.json();
    assert_eq!(claims["iss"], "joe");
    assert_eq!(claims["exp"], 1_300_819_380);
    assert_eq!(claims["http://example.com/is_root"], true);

    // Inside the 10 s leeway after exp: still accepted.
    let within_leeway = rfc7515_server(1_300_819_385).await;
    assert_eq!(get_bearer(&within_leeway, RFC7515_A1_JWS).await.status, 200);

    let late = rfc7515_server(1_300_819_400).await;
    assert_rejected(&get_bearer(&late, RFC7515_A1_JWS).await, "TOKEN_EXPIRED");

    // One flipped signature character breaks it.
    let mut tampered = RFC7515_A1_JWS.to_owned();
    tampered.pop();
    tampered.push('j');
    assert_rejected(&get_bearer(&server, &tampered).await, "INVALID_TOKEN");
}

#[tokio::test]
async fn rfc7515_example_with_another_issuer_required_is_refused() {
    let validator = Validator::<Value>::builder()
        .key(Key::from_jwk_json(RFC7515_A1_JWK).unwrap())
        .issuers(["not-joe"])
        .clock(FakeClock::at_unix_secs(1_300_819_370))
        .build()
        .unwrap();
    let server = serve(
        axum::Router::new()
            .route("/me", axum::routing::get(|| async { "ok" }))
            .layer(JwtAuthLayer::new(validator)),
    )
    .await;
    assert_rejected(&get_bearer(&server, RFC7515_A1_JWS).await, "INVALID_TOKEN");
}

struct AsymCase {
    alg: Algorithm,
    signer: fn() -> EncodingKey,
    key: fn() -> Result<Key, ConfigError>,
}

fn asym_cases() -> Vec<AsymCase> {
    vec![
        AsymCase {
            alg: Algorithm::RS256,
            signer: rsa_encoding_key,
            key: || Key::rsa_pem(fixture("rsa_public.pem")),
        },
        AsymCase {
            alg: Algorithm::RS384,
            signer: rsa_encoding_key,
            key: || Key::rsa_pem(fixture("rsa_public.pem")),
        },
        AsymCase {
            alg: Algorithm::PS256,
            signer: rsa_encoding_key,
            key: || Key::rsa_pem(fixture("rsa_public.pem")),
        },
        AsymCase {
            alg: Algorithm::PS512,
            signer: rsa_encoding_key,
            key: || Key::rsa_pem(fixture("rsa_public.pem")),
        },
        AsymCase {
            alg: Algorithm::ES256,
            signer: ec_encoding_key,
            key: || Key::ec_pem(fixture("ec_public.pem")),
        },
        AsymCase {
            alg: Algorithm::EdDSA,
            signer: ed_encoding_key,
            key: || Key::ed_pem(fixture("ed_public.pem")),
        },
    ]
}

async fn server_with_key(key: Key) -> TestServer {
    let validator = Validator::<TestClaims>::builder()
        .key(key)
        .clock(FakeClock::at_unix_secs(NOW))
        .build()
        .unwrap();
    serve_layer(JwtAuthLayer::new(validator)).await
}

#[tokio::test]
async fn asymmetric_algorithms_with_pem_keys() {
    for case in asym_cases() {
        let server = server_with_key((case.key)().unwrap()).await;
        let token = sign_with(case.alg, &(case.signer)(), None, &fresh_claims("alice"));
        let reply = get_bearer(&server, &token).await;
        assert_accepted(&reply, "alice");

        // Expiry is enforced the same way for every algorithm.
        let expired = sign_with(case.alg, &(case.signer)(), None, &claims("alice", NOW - 60));
        assert_rejected(&get_bearer(&server, &expired).await, "TOKEN_EXPIRED");

        // The HMAC test key never verifies against a public-key server.
        assert_rejected(
            &get_bearer(&server, &token_for("alice")).await,
            "INVALID_TOKEN",
        );
    }
}

#[tokio::test]
async fn tokens_signed_with_another_family_are_refused() {
    let ec = server_with_key(Key::ec_pem(fixture("ec_public.pem")).unwrap()).await;
    let ed = server_with_key(Key::ed_pem(fixture("ed_public.pem")).unwrap()).await;
    let rsa = server_with_key(Key::rsa_pem(fixture("rsa_public.pem")).unwrap()).await;
    let rs256 = sign_with(
        Algorithm::RS256,
        &rsa_encoding_key(),
        None,
        &fresh_claims("a"),
    );
    let es256 = sign_with(
        Algorithm::ES256,
        &ec_encoding_key(),
        None,
        &fresh_claims("a"),
    );
    let eddsa = sign_with(
        Algorithm::EdDSA,
        &ed_encoding_key(),
        None,
        &fresh_claims("a"),
    );
    for (server, token) in [
        (&ec, &rs256),
        (&ec, &eddsa),
        (&ed, &rs256),
        (&ed, &es256),
        (&rsa, &es256),
        (&rsa, &eddsa),
    ] {
        assert_rejected(&get_bearer(server, token).await, "INVALID_TOKEN");
    }
    // An RSA token signed by a different RSA key.
    let other = sign_with(
        Algorithm::RS256,
        &rsa2_encoding_key(),
        None,
        &fresh_claims("a"),
    );
    assert_rejected(&get_bearer(&rsa, &other).await, "INVALID_TOKEN");
}

#[tokio::test]
async fn ec_key_is_bound_to_its_curve_algorithm() {
    let key = Key::ec_pem(fixture("ec_public.pem")).unwrap();
    assert_eq!(key.algorithm(), Some(Algorithm::ES256));
    assert!(key.clone().with_algorithm(Algorithm::ES384).is_err());
    // A P-256 signature relabelled ES384 is refused.
    let server = server_with_key(key).await;
    let token = sign_with(
        Algorithm::ES256,
        &ec_encoding_key(),
        None,
        &fresh_claims("a"),
    );
    let relabelled = relabel(&token, json!({"alg": "ES384", "typ": "JWT"}));
    assert_rejected(&get_bearer(&server, &relabelled).await, "INVALID_TOKEN");
}

/// `token` with its header replaced by `header` (the signature is kept).
fn relabel(token: &str, header: Value) -> String {
    use base64::Engine;
    let (_, rest) = token.split_once('.').unwrap();
    let header = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(header.to_string());
    format!("{header}.{rest}")
}

#[tokio::test]
async fn rs256_refused_by_an_hs256_only_allow_list() {
    let validator = hmac_builder()
        .algorithms([Algorithm::HS256])
        .build()
        .unwrap();
    let server = serve_layer(JwtAuthLayer::new(validator)).await;
    let rs256 = sign_with(
        Algorithm::RS256,
        &rsa_encoding_key(),
        None,
        &fresh_claims("a"),
    );
    assert_rejected(&get_bearer(&server, &rs256).await, "INVALID_TOKEN");
    // HS384 with the right secret is also outside the allow-list.
    let hs384 = sign_with(
        Algorithm::HS384,
        &EncodingKey::from_secret(HMAC_SECRET).unwrap(),
        None,
        &fresh_claims("a"),
    );
    assert_rejected(&get_bearer(&server, &hs384).await, "INVALID_TOKEN");
    assert_accepted(&get_bearer(&server, &token_for("a")).await, "a");

    // An RSA key with an HS256-only allow-list is a configuration error, found at start-up.
    let err = Validator::<TestClaims>::builder()
        .key(Key::rsa_pem(fixture("rsa_public.pem")).unwrap())
        .algorithms([Algorithm::HS256])
        .build()
        .unwrap_err();
    assert!(err.to_string().contains("no algorithm"), "{err}");
}

#[tokio::test]
async fn allow_list_narrows_a_family() {
    let validator = Validator::<TestClaims>::builder()
        .key(Key::rsa_pem(fixture("rsa_public.pem")).unwrap())
        .algorithms([Algorithm::PS256])
        .clock(FakeClock::at_unix_secs(NOW))
        .build()
        .unwrap();
    let server = serve_layer(JwtAuthLayer::new(validator)).await;
    let ps = sign_with(
        Algorithm::PS256,
        &rsa_encoding_key(),
        None,
        &fresh_claims("a"),
    );
    let rs = sign_with(
        Algorithm::RS256,
        &rsa_encoding_key(),
        None,
        &fresh_claims("a"),
    );
    assert_accepted(&get_bearer(&server, &ps).await, "a");
    assert_rejected(&get_bearer(&server, &rs).await, "INVALID_TOKEN");
}

#[tokio::test]
async fn jwks_rotation_by_kid() {
    let keys = keys_from_jwks(&fixture_str("jwks.json")).unwrap();
    assert_eq!(keys.len(), 2);
    let validator = Validator::<TestClaims>::builder()
        .keys(keys)
        .clock(FakeClock::at_unix_secs(NOW))
        .build()
        .unwrap();
    let server = serve_layer(JwtAuthLayer::new(validator)).await;

    let old = sign_with(
        Algorithm::RS256,
        &rsa_encoding_key(),
        Some("rsa-2025"),
        &fresh_claims("old"),
    );
    let new = sign_with(
        Algorithm::RS256,
        &rsa2_encoding_key(),
        Some("rsa-2026"),
        &fresh_claims("new"),
    );
    let reply = get_bearer(&server, &old).await;
    assert_accepted(&reply, "old");
    assert_eq!(reply.json()["kid"], "rsa-2025");
    let reply = get_bearer(&server, &new).await;
    assert_accepted(&reply, "new");
    assert_eq!(reply.json()["kid"], "rsa-2026");

    // Unknown kid, even though the signature would verify with a configured key.
    let unknown = sign_with(
        Algorithm::RS256,
        &rsa_encoding_key(),
        Some("rsa-2024"),
        &fresh_claims("x"),
    );
    let reply = get_bearer(&server, &unknown).await;
    assert_rejected(&reply, "INVALID_TOKEN");
    assert!(reply.text.contains("key id"), "{}", reply.text);

    // A kid naming the other key than the one that signed.
    let swapped = sign_with(
        Algorithm::RS256,
        &rsa_encoding_key(),
        Some("rsa-2026"),
        &fresh_claims("x"),
    );
    assert_rejected(&get_bearer(&server, &swapped).await, "INVALID_TOKEN");

    // JWK alg is RS256: PS256 under a known kid is refused.
    let ps = sign_with(
        Algorithm::PS256,
        &rsa_encoding_key(),
        Some("rsa-2025"),
        &fresh_claims("x"),
    );
    assert_rejected(&get_bearer(&server, &ps).await, "INVALID_TOKEN");

    // Without a kid each key of the family is tried: both still verify.
    let no_kid_old = sign_with(
        Algorithm::RS256,
        &rsa_encoding_key(),
        None,
        &fresh_claims("old"),
    );
    let no_kid_new = sign_with(
        Algorithm::RS256,
        &rsa2_encoding_key(),
        None,
        &fresh_claims("new"),
    );
    assert_accepted(&get_bearer(&server, &no_kid_old).await, "old");
    assert_accepted(&get_bearer(&server, &no_kid_new).await, "new");
}

#[tokio::test]
async fn mixed_key_set_selects_by_kid() {
    let validator = Validator::<TestClaims>::builder()
        .key(Key::hmac(HMAC_SECRET).unwrap().with_kid("hmac"))
        .key(
            Key::ec_pem(fixture("ec_public.pem"))
                .unwrap()
                .with_kid("ec"),
        )
        .key(
            Key::ed_pem(fixture("ed_public.pem"))
                .unwrap()
                .with_kid("ed"),
        )
        .clock(FakeClock::at_unix_secs(NOW))
        .build()
        .unwrap();
    let server = serve_layer(JwtAuthLayer::new(validator)).await;
    let hs = sign_with(
        Algorithm::HS256,
        &EncodingKey::from_secret(HMAC_SECRET).unwrap(),
        Some("hmac"),
        &fresh_claims("h"),
    );
    let es = sign_with(
        Algorithm::ES256,
        &ec_encoding_key(),
        Some("ec"),
        &fresh_claims("e"),
    );
    let ed = sign_with(
        Algorithm::EdDSA,
        &ed_encoding_key(),
        Some("ed"),
        &fresh_claims("d"),
    );
    assert_accepted(&get_bearer(&server, &hs).await, "h");
    assert_accepted(&get_bearer(&server, &es).await, "e");
    assert_accepted(&get_bearer(&server, &ed).await, "d");
    // The EC token claiming the HMAC key id.
    let wrong = sign_with(
        Algorithm::ES256,
        &ec_encoding_key(),
        Some("hmac"),
        &fresh_claims("e"),
    );
    assert_rejected(&get_bearer(&server, &wrong).await, "INVALID_TOKEN");
}

#[tokio::test]
async fn issuer_and_audience() {
    let validator = hmac_builder()
        .issuers(["https://issuer.example"])
        .audiences(["api"])
        .build()
        .unwrap();
    let server = serve_layer(JwtAuthLayer::new(validator)).await;
    let tok = |v: Value| sign_hs256(&v);
    let good =
        tok(json!({"sub": "a", "exp": NOW + 60, "iss": "https://issuer.example", "aud": "api"}));
    assert_accepted(&get_bearer(&server, &good).await, "a");
    let aud_list = tok(
        json!({"sub": "a", "exp": NOW + 60, "iss": "https://issuer.example", "aud": ["other", "api"]}),
    );
    assert_accepted(&get_bearer(&server, &aud_list).await, "a");

    for bad in [
        json!({"sub": "a", "exp": NOW + 60, "iss": "https://evil.example", "aud": "api"}),
        json!({"sub": "a", "exp": NOW + 60, "iss": "https://issuer.example", "aud": "other"}),
        json!({"sub": "a", "exp": NOW + 60, "aud": "api"}),
        json!({"sub": "a", "exp": NOW + 60, "iss": "https://issuer.example"}),
    ] {
        assert_rejected(&get_bearer(&server, &tok(bad)).await, "INVALID_TOKEN");
    }
}

#[tokio::test]
async fn audience_present_but_not_configured_is_refused() {
    let server = serve_layer(JwtAuthLayer::new(hmac_validator())).await;
    let token = sign_hs256(&json!({"sub": "a", "exp": NOW + 60, "aud": "api"}));
    assert_rejected(&get_bearer(&server, &token).await, "INVALID_TOKEN");
}

#[tokio::test]
async fn required_claims_and_subject() {
    let validator = hmac_builder()
        .required_claims(["iat", "tenant"])
        .build()
        .unwrap();
    let server = serve_layer(JwtAuthLayer::new(validator)).await;
    let full = sign_hs256(&json!({"sub": "a", "exp": NOW + 60, "iat": NOW, "tenant": "t1"}));
    assert_accepted(&get_bearer(&server, &full).await, "a");
    let missing = sign_hs256(&json!({"sub": "a", "exp": NOW + 60, "iat": NOW}));
    let reply = get_bearer(&server, &missing).await;
    assert_rejected(&reply, "INVALID_TOKEN");
    assert!(reply.text.contains("required claim"), "{}", reply.text);

    let only_alice = serve_layer(JwtAuthLayer::new(
        hmac_builder().subject("alice").build().unwrap(),
    ))
    .await;
    assert_accepted(&get_bearer(&only_alice, &token_for("alice")).await, "alice");
    assert_rejected(
        &get_bearer(&only_alice, &token_for("bob")).await,
        "INVALID_TOKEN",
    );
}

#[tokio::test]
async fn claims_that_do_not_fit_the_type_are_invalid() {
    let server = serve_layer(JwtAuthLayer::new(hmac_validator())).await;
    for payload in [
        json!({"exp": NOW + 60}),
        json!({"sub": 42, "exp": NOW + 60}),
        json!({"sub": "a", "role": {"nested": true}, "exp": NOW + 60}),
    ] {
        assert_rejected(
            &get_bearer(&server, &sign_hs256(&payload)).await,
            "INVALID_TOKEN",
        );
    }
}

#[test]
fn configuration_errors() {
    assert!(Key::hmac(b"too short").is_err());
    assert!(Key::rsa_pem(fixture("ec_public.pem")).is_err());
    assert!(Key::ec_pem(fixture("rsa_public.pem")).is_err());
    assert!(Key::ed_pem(b"not a pem").is_err());
    assert!(Validator::<TestClaims>::builder().build().is_err());
    let dup = Validator::<TestClaims>::builder()
        .key(Key::hmac(HMAC_SECRET).unwrap().with_kid("k"))
        .key(
            Key::rsa_pem(fixture("rsa_public.pem"))
                .unwrap()
                .with_kid("k"),
        )
        .build();
    assert!(dup.is_err());
    // A layer with an extractor that has no source.
    let err = JwtAuthLayer::builder(hmac_validator())
        .extractor(tower_jwt_guard::extract::TokenExtractor::new())
        .build()
        .unwrap_err();
    assert!(err.to_string().contains("no source"), "{err}");
}
