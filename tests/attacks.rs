//! Attacks through a real server: algorithm confusion (with the PEM and the JWK of the public
//! key as the secret), `alg: none` in any case, tampering, header relabelling, embedded keys and
//! key URLs (never fetched), hostile `kid`s, reshaped and malformed tokens, registered claims of
//! the wrong shape, oversized tokens, non-UTF-8 bytes in every source. Every attack ends as
//! `401 INVALID_TOKEN`: never a 500, never a panic, never a dropped connection.

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
    let forever = sign_hs256(&json!({"sub": "alice", "exp": i64::MAX}));
    assert_accepted(&get_bearer(&plain, &forever).await, "alice");
    assert_rejected(&get_bearer(&capped, &forever).await, "INVALID_TOKEN");
    let long = sign_hs256(&json!({"sub": "alice", "iat": NOW - 7200, "exp": NOW + 60}));
    assert_rejected(&get_bearer(&capped, &long).await, "INVALID_TOKEN");
    let hour = sign_hs256(&json!({"sub": "alice", "iat": NOW, "exp": NOW + 3600}));
    assert_accepted(&get_bearer(&capped, &hour).await, "alice");
}

/// The observed answer to `token` from `server`: the status and the code.
async fn outcome(server: &TestServer, token: &str) -> (u16, Option<String>) {
    let reply = get_bearer(server, token).await;
    (reply.status, reply.code())
}

/// RS256 → HS256 confusion with the JWK of the public key (its JSON, and its `n`) as the HMAC
/// secret, against a server that holds that key as a JWK: refused.
#[tokio::test]
async fn algorithm_confusion_with_the_public_jwk_as_the_secret_is_refused() {
    let jwks = fixture_str("jwks.json");
    let validator = Validator::<TestClaims>::builder()
        .keys(tower_jwt_guard::keys::keys_from_jwks(&jwks).unwrap())
        .clock(FakeClock::at_unix_secs(NOW))
        .build()
        .unwrap();
    let server = serve_layer(JwtAuthLayer::new(validator)).await;
    let set: Value = serde_json::from_str(&jwks).unwrap();
    let jwk = &set["keys"][0];
    let secrets = [
        jwk.to_string().into_bytes(),
        jwks.clone().into_bytes(),
        jwk["n"].as_str().unwrap().as_bytes().to_vec(),
    ];
    for secret in &secrets {
        for kid in [Some("rsa-2025"), None] {
            let forged = sign_with(
                Algorithm::HS256,
                &EncodingKey::from_secret(secret).unwrap(),
                kid,
                &fresh_claims("admin"),
            );
            assert_rejected(&get_bearer(&server, &forged).await, "INVALID_TOKEN");
        }
    }
}

/// Keys or key locations carried by the token itself are never used: an embedded `jwk` with
/// the attacker's secret does not verify the attacker's token, and `jku` / `x5u` pointing at a
/// listener the test holds are never fetched (a token that verifies under the server's own key
/// passes, its URLs ignored).
#[tokio::test]
async fn embedded_keys_and_key_urls_are_never_used() {
    let server = serve_layer(JwtAuthLayer::new(hmac_validator())).await;
    let trap = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/jwks.json", trap.local_addr().unwrap());
    let attacker = b"attacker-secret-attacker-secret-0123456789";
    let payload = fresh_claims("admin").to_string();
    let sign_own = |header: &Value| {
        let (h, p) = (b64(header.to_string()), b64(&payload));
        let sig = jsonwebtoken::crypto::sign(
            format!("{h}.{p}").as_bytes(),
            &EncodingKey::from_secret(attacker).unwrap(),
            Algorithm::HS256,
        )
        .unwrap();
        format!("{h}.{p}.{sig}")
    };
    let embedded = json!({"alg": "HS256", "jwk": {"kty": "oct", "k": b64(attacker)}});
    let located = [
        json!({"alg": "HS256", "jku": url}),
        json!({"alg": "HS256", "x5u": url}),
        json!({"alg": "HS256", "x5c": ["MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA"]}),
    ];
    assert_rejected(
        &get_bearer(&server, &sign_own(&embedded)).await,
        "INVALID_TOKEN",
    );
    for header in &located {
        assert_rejected(
            &get_bearer(&server, &sign_own(header)).await,
            "INVALID_TOKEN",
        );
        // Signed with the server's own key: the URL is not a reason to refuse, nor to fetch.
        let own = signed(header.to_string().as_bytes(), payload.as_bytes());
        assert_accepted(&get_bearer(&server, &own).await, "admin");
    }
    let fetched = tokio::time::timeout(std::time::Duration::from_millis(300), trap.accept()).await;
    assert!(fetched.is_err(), "a key URL from a token was fetched");
}

/// `kid` values aimed at whatever looks keys up (paths, SQL, NUL bytes, 10 KiB), with several
/// keys configured (so that `kid` selects one): refused as unknown keys, never an error of the
/// server. (With a single key, `kid` is not consulted: the one key verifies or refuses, and
/// the context reports that key's own `kid`.)
#[tokio::test]
async fn hostile_kids_are_unknown_keys() {
    let validator = Validator::<TestClaims>::builder()
        .key(Key::hmac(HMAC_SECRET).unwrap().with_kid("h1"))
        .key(
            Key::ec_pem(fixture("ec_public.pem"))
                .unwrap()
                .with_kid("e1"),
        )
        .clock(FakeClock::at_unix_secs(NOW))
        .build()
        .unwrap();
    // A cap above the 10 KiB kid's token, so that the kid lookup, not the cap, refuses it.
    let extractor = tower_jwt_guard::extract::TokenExtractor::default().max_token_len(64 * 1024);
    let server = serve_layer(
        JwtAuthLayer::builder(validator)
            .extractor(extractor)
            .build()
            .unwrap(),
    )
    .await;
    let long = "k".repeat(10 * 1024);
    for kid in [
        "../../../../etc/passwd",
        "h1/../h1",
        "' OR '1'='1' --",
        "h1\u{0}",
        "\u{0}",
        "",
        long.as_str(),
    ] {
        let token = signed(
            json!({"alg": "HS256", "kid": kid}).to_string().as_bytes(),
            fresh_claims("alice").to_string().as_bytes(),
        );
        let reply = get_bearer(&server, &token).await;
        assert_rejected(&reply, "INVALID_TOKEN");
        assert_eq!(
            reply.json()["error"]["message"],
            "the token key id is unknown",
            "kid of {} bytes",
            kid.len()
        );
    }
    let good = signed(
        br#"{"alg":"HS256","kid":"h1"}"#,
        fresh_claims("alice").to_string().as_bytes(),
    );
    assert_accepted(&get_bearer(&server, &good).await, "alice");
}

/// Reshaped tokens: mixed-case `none`, segments swapped, the JSON serialization of JWS,
/// base64 with padding or non-zero trailing bits, a nested token (`cty: JWT`), `b64` in any
/// form and RFC 7797's unencoded payload.
#[tokio::test]
async fn reshaped_tokens_are_invalid() {
    let server = serve_layer(JwtAuthLayer::new(hmac_validator())).await;
    let good = token_for("alice");
    let (h, p, s) = segments(&good);
    // The last character of a 32-byte signature carries 4 bits and 2 unused ones: flipping an
    // unused bit keeps the decoded bytes, which a strict decoder refuses.
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let last = s.as_bytes()[s.len() - 1];
    let value = alphabet.iter().position(|&c| c == last).unwrap();
    let sloppy = alphabet[value ^ 1] as char;
    let trailing_bits = format!("{h}.{p}.{}{sloppy}", &s[..s.len() - 1]);
    let json_serialization = json!({"protected": h, "payload": p, "signature": s}).to_string();
    let nested = signed(br#"{"alg":"HS256","cty":"JWT"}"#, good.as_bytes());
    let claims = serde_json::to_vec(&json!({"sub": "alice", "exp": NOW + 600})).unwrap();
    let rfc7797 = b64(r#"{"alg":"HS256","b64":false,"crit":["b64"]}"#);
    let raw = String::from_utf8(claims.clone()).unwrap();
    let unencoded = format!(
        "{rfc7797}.{raw}.{}",
        hmac_sha256_b64(format!("{rfc7797}.{raw}").as_bytes())
    );
    let cases = [
        format!(
            "{}.{}.",
            b64(r#"{"alg":"nOnE"}"#),
            b64(fresh_claims("admin").to_string())
        ),
        format!("{p}.{h}.{s}"),
        json_serialization,
        format!("{h}.{p}.{s}="),
        format!("{h}==.{p}.{s}"),
        trailing_bits,
        nested,
        signed(br#"{"alg":"HS256","b64":false,"crit":["b64"]}"#, b"{}"),
        // `b64` without `crit` (non-conforming), with valid claims, either value: refused, so
        // that it is never read as an ordinary token.
        signed(br#"{"alg":"HS256","b64":false}"#, &claims),
        signed(br#"{"alg":"HS256","b64":true}"#, &claims),
        // RFC 7797's unencoded payload, correctly signed over the raw JSON.
        unencoded,
    ];
    for (i, token) in cases.iter().enumerate() {
        assert_eq!(
            outcome(&server, token).await,
            (401, Some("INVALID_TOKEN".to_owned())),
            "case {i}: {token:.60}"
        );
    }
    assert_accepted(&get_bearer(&server, &good).await, "alice");
}

/// Registered claims of the wrong type or out of range, correctly signed: refused.
#[tokio::test]
async fn registered_claims_of_the_wrong_shape_are_invalid() {
    let server = serve_layer(JwtAuthLayer::new(hmac_validator())).await;
    let future = NOW + 600;
    let payloads = [
        format!(r#"{{"sub":"a","exp":"{future}"}}"#),
        r#"{"sub":"a","exp":1e400}"#.to_owned(),
        r#"{"sub":"a","exp":-1}"#.to_owned(),
        // Past i64::MAX (NumericDate is read from 0 to i64::MAX), as integers and floats.
        r#"{"sub":"a","exp":9223372036854775808}"#.to_owned(),
        r#"{"sub":"a","exp":18446744073709551615}"#.to_owned(),
        r#"{"sub":"a","exp":18446744073709551616}"#.to_owned(),
        r#"{"sub":"a","exp":99999999999999999999999}"#.to_owned(),
        r#"{"sub":"a","exp":9.3e18}"#.to_owned(),
        format!(r#"{{"sub":"a","exp":{future},"nbf":"0"}}"#),
        format!(r#"{{"sub":"a","exp":{future},"nbf":-5}}"#),
        format!(r#"{{"sub":"a","exp":{future},"nbf":1e400}}"#),
        format!(r#"{{"sub":"a","exp":{future},"nbf":9223372036854775808}}"#),
        format!(r#"{{"sub":"a","exp":{future},"nbf":{future}.5}}"#),
        format!(r#"{{"sub":"a","exp":{future},"iat":"now"}}"#),
        format!(r#"{{"sub":"a","exp":{future},"iat":-1}}"#),
        format!(r#"{{"sub":"a","exp":{future},"iat":1e400}}"#),
        format!(r#"{{"sub":"a","exp":{future},"iat":18446744073709551616}}"#),
        format!(r#"{{"sub":"a","exp":{future},"iat":-0.5}}"#),
        format!(r#"{{"sub":"a","exp":{future},"aud":{{"x":1}}}}"#),
        format!(r#"{{"sub":"a","sub":"b","exp":{future}}}"#),
        format!(r#"{{"sub":7,"exp":{future}}}"#),
        format!(r#"{{"sub":"a","exp":{future},"exp":{future}}}"#),
    ];
    for payload in &payloads {
        let token = signed(br#"{"alg":"HS256"}"#, payload.as_bytes());
        assert_eq!(
            outcome(&server, &token).await,
            (401, Some("INVALID_TOKEN".to_owned())),
            "{payload}"
        );
    } // RFC 7519 NumericDate may be fractional: read floored, so these pass.
    for payload in [
        format!(r#"{{"sub":"alice","exp":{future}.5}}"#),
        format!(
            r#"{{"sub":"alice","exp":{future},"iat":{}.25,"nbf":{}.9}}"#,
            NOW - 5,
            NOW - 1
        ),
        format!(r#"{{"sub":"alice","exp":{}}}"#, i64::MAX),
    ] {
        let token = signed(br#"{"alg":"HS256"}"#, payload.as_bytes());
        assert_eq!(outcome(&server, &token).await, (200, None), "{payload}");
    }
}

/// A 1 MiB token in a header or the query never reaches the layer whole: the server refuses
/// it at the HTTP level (or the layer at its 8 KiB cap), never with a 500, and stays up.
#[tokio::test]
async fn a_one_mebibyte_token_is_refused_and_the_server_stays_up() {
    let server = serve_layer(JwtAuthLayer::new(hmac_validator())).await;
    let huge = "a".repeat(1024 * 1024);
    // hyper refuses a request head over its buffer (about 400 KiB) with a bare 431, before any
    // layer runs: no code in the body, but never a 500, and the server stays up.
    let request = client()
        .get(server.url("/me"))
        .header("authorization", format!("Bearer {huge}"));
    let reply = send(request).await;
    assert_eq!(reply.status, 431, "{:.200}", reply.text);
    // In the query (no HTTP client builds such a URI: written on a raw connection).
    let status_line = raw_status_line(&server, &format!("GET /me?token={huge} HTTP/1.1\r\n")).await;
    assert_eq!(
        status_line.get(..12),
        Some("HTTP/1.1 431"),
        "{status_line:.80}"
    );
    // Over the cap but under hyper's header limit: the layer's own refusal.
    let big = "a".repeat(20 * 1024);
    assert_rejected(&get_bearer(&server, &big).await, "INVALID_TOKEN");
    assert_accepted(&get_bearer(&server, &token_for("alice")).await, "alice");
}

/// The status line the server answers `request_line` (then a `Host` header) with, on a raw
/// loopback connection, within 10 s.
async fn raw_status_line(server: &TestServer, request_line: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(server.addr).await.unwrap();
        // The server may answer and close before the whole request is written.
        let _ = stream.write_all(request_line.as_bytes()).await;
        let _ = stream.write_all(b"host: 127.0.0.1\r\n\r\n").await;
        let mut reply = vec![0u8; 256];
        let n = stream.read(&mut reply).await.unwrap_or(0);
        String::from_utf8_lossy(&reply[..n])
            .lines()
            .next()
            .unwrap_or("")
            .to_owned()
    };
    tokio::time::timeout(std::time::Duration::from_secs(10), exchange)
        .await
        .expect("the server answers within 10 s")
}

/// Bytes that are not UTF-8 in every source a token can come from: a clear refusal.
#[tokio::test]
async fn non_utf8_bytes_in_every_source_are_refused() {
    let extractor = tower_jwt_guard::extract::TokenExtractor::new()
        .bearer()
        .query("token")
        .header(http::HeaderName::from_static("x-auth-token"))
        .cookie("session")
        .websocket_protocol();
    let server = serve_layer(
        JwtAuthLayer::builder(hmac_validator())
            .extractor(extractor)
            .build()
            .unwrap(),
    )
    .await;
    let bad = reqwest::header::HeaderValue::from_bytes(b"Bearer a\xffb.c\xfe.d").unwrap();
    let raw = reqwest::header::HeaderValue::from_bytes(b"a\xffb.c.d").unwrap();
    let cookie = reqwest::header::HeaderValue::from_bytes(b"session=a\xffb.c.d").unwrap();
    let requests = [
        client().get(server.url("/me")).header("authorization", bad),
        client().get(server.url("/me")).header("x-auth-token", raw),
        client().get(server.url("/me")).header("cookie", cookie),
        client().get(server.url("/me?token=a%FFb.c.d")),
    ];
    for (i, request) in requests.into_iter().enumerate() {
        let reply = send(request).await;
        assert_eq!(reply.status, 401, "source {i}: {}", reply.text);
        assert_rejected(&reply, "INVALID_TOKEN");
    }
    // The subprotocol on a WebSocket upgrade: a header that is not visible ASCII is the
    // request's shape, not a token (`400 INVALID_REQUEST`, never a failed attempt).
    let protocol = reqwest::header::HeaderValue::from_bytes(
        b"chat, base64url.bearer.authorization.jwt.\xffYQ",
    )
    .unwrap();
    let upgrade = client()
        .get(server.url("/me"))
        .header("connection", "upgrade")
        .header("upgrade", "websocket")
        .header("sec-websocket-version", "13")
        .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
        .header("sec-websocket-protocol", protocol);
    assert_rejected(&send(upgrade).await, "INVALID_REQUEST");
    // Non-ASCII bytes in another cookie change nothing: a missing token is still missing.
    let other = reqwest::header::HeaderValue::from_bytes(b"theme=\xffdark").unwrap();
    let reply = send(client().get(server.url("/me")).header("cookie", other)).await;
    assert_rejected(&reply, "MISSING_TOKEN");
}

/// Explicit typing (RFC 8725 §3.11, RFC 9068 `at+jwt`): with `token_types(["at+jwt"])`, a
/// token of another type signed by the same key (an ID token, `typ: JWT`), or one without
/// `typ`, is refused; without the option, `typ` is not consulted.
#[tokio::test]
async fn a_typed_validator_refuses_tokens_of_another_type() {
    let typed = serve_layer(JwtAuthLayer::new(
        hmac_builder().token_types(["at+jwt"]).build().unwrap(),
    ))
    .await;
    let untyped = serve_layer(JwtAuthLayer::new(hmac_validator())).await;
    let payload = fresh_claims("alice").to_string();
    let with_typ = |typ: Option<&str>| {
        let header = match typ {
            Some(t) => json!({"alg": "HS256", "typ": t}),
            None => json!({"alg": "HS256"}),
        };
        signed(header.to_string().as_bytes(), payload.as_bytes())
    };
    for typ in [Some("at+jwt"), Some("application/AT+JWT")] {
        assert_accepted(&get_bearer(&typed, &with_typ(typ)).await, "alice");
    }
    for typ in [Some("JWT"), Some("id+jwt"), Some("logout+jwt"), None] {
        assert_rejected(&get_bearer(&typed, &with_typ(typ)).await, "INVALID_TOKEN");
        assert_accepted(&get_bearer(&untyped, &with_typ(typ)).await, "alice");
    }
    assert!(
        hmac_builder()
            .token_types(Vec::<&str>::new())
            .build()
            .is_err()
    );
    assert!(hmac_builder().token_types([" "]).build().is_err());
}
