//! Remote keys through the authentication layer, on a real axum server on loopback, with a
//! JWKS server of the test's own (also on loopback) fetched by the crate's `HttpFetcher`:
//! several issuers in one validator (RS256, ES256 and EdDSA from the remote set, HS256 of the
//! service's own), a new `kid` used at once (a burst of 1 000 requests makes one fetch),
//! 10 000 random unknown kids held to the cooldown, a removed key refused after the next
//! refresh (verified-token cache included), known keys fast while the endpoint hangs, a
//! service started while its issuer is down, and a discovery document naming another issuer.
#![cfg(all(feature = "remote-keys-http", feature = "axum"))]

mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::*;
use jsonwebtoken::{Algorithm, EncodingKey};
use serde_json::{Value, json};
use tower_jwt_guard::JwtAuthLayer;
use tower_jwt_guard::remote_keys::{HttpFetcher, RemoteKeySet};
use tower_jwt_guard::validate::Issuer;

const IDP: &str = "https://idp.test";
const OTHER: &str = "https://other.test";
const AUDIENCE: &str = "urn:api";

/// The JWKS endpoint: serves the fixture keys named in `kids`, and bad entries around them.
#[derive(Clone, Default)]
struct Endpoint {
    kids: Arc<Mutex<Vec<&'static str>>>,
    hits: Arc<AtomicU64>,
    hang: Arc<AtomicBool>,
    /// What `/.well-known/openid-configuration` says its issuer is.
    issuer: Arc<Mutex<String>>,
}

fn fixture_jwks() -> Vec<Value> {
    let all: Value = serde_json::from_str(&fixture_str("jwks_all.json")).unwrap();
    all["keys"].as_array().unwrap().clone()
}

async fn jwks(State(endpoint): State<Endpoint>) -> Response {
    endpoint.hits.fetch_add(1, Ordering::SeqCst);
    // A little latency, so that a burst overlaps one fetch.
    tokio::time::sleep(Duration::from_millis(30)).await;
    if endpoint.hang.load(Ordering::SeqCst) {
        tokio::time::sleep(Duration::from_secs(30)).await;
    }
    let wanted = endpoint.kids.lock().unwrap().clone();
    let mut keys: Vec<Value> = fixture_jwks()
        .into_iter()
        .filter(|k| wanted.contains(&k["kid"].as_str().unwrap()))
        .collect();
    // Among the good keys: an encryption key (rsa2's material), an RSA key whose `alg` says
    // HS256, and a key type nobody knows. Each is skipped; the others stay.
    let mut rsa2 = fixture_jwks()[1].clone();
    rsa2["kid"] = json!("enc-key");
    rsa2["use"] = json!("enc");
    let mut mismatched = fixture_jwks()[1].clone();
    mismatched["kid"] = json!("hs-claims");
    mismatched["alg"] = json!("HS256");
    keys.insert(0, rsa2);
    keys.push(mismatched);
    keys.push(json!({"kty": "XYZ", "kid": "alien", "x": "AAAA"}));
    axum::Json(json!({ "keys": keys })).into_response()
}

async fn discovery(State(endpoint): State<Endpoint>) -> Response {
    let issuer = endpoint.issuer.lock().unwrap().clone();
    axum::Json(json!({ "issuer": issuer, "jwks_uri": format!("{issuer}/jwks") })).into_response()
}

fn endpoint_router(endpoint: &Endpoint) -> Router {
    Router::new()
        .route("/jwks", get(jwks))
        .route("/.well-known/openid-configuration", get(discovery))
        .with_state(endpoint.clone())
}

fn remote_set(url: String) -> RemoteKeySet {
    let fetcher = HttpFetcher::new()
        .unwrap()
        .timeout(Duration::from_millis(500));
    RemoteKeySet::builder(url, fetcher)
        .cooldown(Duration::from_secs(1))
        .build()
        .unwrap()
}

/// A server whose validator takes the service's own HS256 tokens (no `iss`), `IDP`'s from
/// `set` (RS256, ES256, EdDSA, audience `AUDIENCE`), and `OTHER`'s with an EC key of its own.
async fn protected(set: &RemoteKeySet) -> TestServer {
    let validator = hmac_builder()
        .issuer(
            Issuer::new(IDP)
                .remote_keys(set.clone())
                .algorithms([Algorithm::RS256, Algorithm::ES256, Algorithm::EdDSA])
                .audiences([AUDIENCE]),
        )
        .issuer(
            Issuer::new(OTHER)
                .key(tower_jwt_guard::keys::Key::ec_pem(fixture("ec_public.pem")).unwrap())
                .algorithms([Algorithm::ES256]),
        )
        .build()
        .unwrap();
    serve_layer(JwtAuthLayer::new(validator)).await
}

fn idp_token(alg: Algorithm, key: &EncodingKey, kid: &str, sub: &str) -> String {
    let claims = json!({"sub": sub, "exp": NOW + 3600, "iss": IDP, "aud": AUDIENCE});
    sign_with(alg, key, Some(kid), &claims)
}

/// A remote set whose JWKS URL is a loopback port with nothing on it (yet), and the port.
fn set_of_a_silent_port() -> (RemoteKeySet, u16) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    (remote_set(format!("http://127.0.0.1:{port}/jwks")), port)
}

/// With the remote set on the validator's only route, the signature is checked before the
/// payload is decoded; while the set has no keys, a token is refused as the outage it is
/// (AUTH_FAILED, not a failed attempt) only if its payload can be read at all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_payload_is_malformed_even_while_the_keys_are_missing() {
    init_crypto();
    let (set, _) = set_of_a_silent_port();
    let validator = hmac_builder()
        .issuers([IDP])
        .audiences([AUDIENCE])
        .remote_keys(set.clone())
        .build()
        .unwrap();
    let server = serve_layer(JwtAuthLayer::new(validator)).await;
    let token = idp_token(Algorithm::RS256, &rsa_encoding_key(), "rsa-2025", "late");
    let reply = get_bearer(&server, &token).await;
    assert_rejected(&reply, "AUTH_FAILED");
    let mut segments: Vec<&str> = token.split('.').collect();
    segments[1] = "!!not-base64!!";
    let reply = get_bearer(&server, &segments.join(".")).await;
    assert_rejected(&reply, "INVALID_TOKEN");
    assert_eq!(reply.status, 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_issuers_in_one_layer() {
    init_crypto();
    let endpoint = Endpoint::default();
    *endpoint.kids.lock().unwrap() = vec!["rsa-2025", "ec-2026", "ed-2026"];
    let jwks_server = serve(endpoint_router(&endpoint)).await;
    let set = remote_set(jwks_server.url("/jwks"));
    set.refresh().await.unwrap();
    assert_eq!(
        set.stats().keys,
        3,
        "the bad entries are skipped, the good kept"
    );
    // Remote keys on the validator's own configuration need its issuer.
    let unbound = tower_jwt_guard::validate::Validator::<TestClaims>::builder()
        .remote_keys(set.clone())
        .build();
    assert!(unbound.unwrap_err().to_string().contains("issuers"));
    let server = protected(&set).await;

    // The identity provider's tokens, each algorithm with its key.
    for (alg, key, kid) in [
        (Algorithm::RS256, rsa_encoding_key(), "rsa-2025"),
        (Algorithm::ES256, ec_encoding_key(), "ec-2026"),
        (Algorithm::EdDSA, ed_encoding_key(), "ed-2026"),
    ] {
        let reply = get_bearer(&server, &idp_token(alg, &key, kid, "idp-user")).await;
        assert_accepted(&reply, "idp-user");
        assert_eq!(reply.json()["kid"], kid);
    }
    // The service's own HS256 tokens keep working.
    assert_accepted(
        &get_bearer(&server, &sign_hs256(&fresh_claims("own"))).await,
        "own",
    );
    // A token naming the issuer but signed with the service's secret: the issuer's keys are
    // the only ones tried, and none is HMAC.
    let forged = sign_hs256(&json!({"sub": "x", "exp": NOW + 3600, "iss": IDP, "aud": AUDIENCE}));
    assert_rejected(&get_bearer(&server, &forged).await, "INVALID_TOKEN");
    // The issuer's key and a token naming another issuer: never verified across issuers.
    let crossed = sign_with(
        Algorithm::RS256,
        &rsa_encoding_key(),
        Some("rsa-2025"),
        &json!({"sub": "x", "exp": NOW + 3600, "iss": OTHER}),
    );
    assert_rejected(&get_bearer(&server, &crossed).await, "INVALID_TOKEN");
    // OTHER's own key works for OTHER (it has no audience configured, and none is sent).
    let other = sign_with(
        Algorithm::ES256,
        &ec_encoding_key(),
        None,
        &json!({"sub": "partner", "exp": NOW + 3600, "iss": OTHER}),
    );
    assert_accepted(&get_bearer(&server, &other).await, "partner");
    // Without its audience, or with another.
    for aud in [json!(null), json!("urn:other")] {
        let mut claims = json!({"sub": "x", "exp": NOW + 3600, "iss": IDP});
        if !aud.is_null() {
            claims["aud"] = aud;
        }
        let token = sign_with(
            Algorithm::RS256,
            &rsa_encoding_key(),
            Some("rsa-2025"),
            &claims,
        );
        assert_rejected(&get_bearer(&server, &token).await, "INVALID_TOKEN");
    }
    // The skipped JWKs never verify: an encryption key, a key whose alg is HMAC, an unknown
    // type (the tokens are signed with the material the skipped entries carry).
    for kid in ["enc-key", "hs-claims"] {
        let token = idp_token(Algorithm::RS256, &rsa2_encoding_key(), kid, "x");
        assert_rejected(&get_bearer(&server, &token).await, "INVALID_TOKEN");
    }
    // A remote set's token without `kid`, when several keys could take its algorithm, is
    // refused rather than tried against each.
    let mut second_rsa = endpoint.kids.lock().unwrap().clone();
    second_rsa.push("rsa-2026");
    *endpoint.kids.lock().unwrap() = second_rsa;
    set.refresh().await.unwrap();
    let no_kid = sign_with(
        Algorithm::RS256,
        &rsa_encoding_key(),
        None,
        &json!({"sub": "x", "exp": NOW + 3600, "iss": IDP, "aud": AUDIENCE}),
    );
    assert_rejected(&get_bearer(&server, &no_kid).await, "INVALID_TOKEN");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_kids_unknown_kids_and_removed_keys() {
    init_crypto();
    let endpoint = Endpoint::default();
    *endpoint.kids.lock().unwrap() = vec!["rsa-2025"];
    let jwks_server = serve(endpoint_router(&endpoint)).await;
    let set = remote_set(jwks_server.url("/jwks"));
    set.refresh().await.unwrap();
    let server = protected(&set).await;
    let old = idp_token(Algorithm::RS256, &rsa_encoding_key(), "rsa-2025", "old");
    assert_accepted(&get_bearer(&server, &old).await, "old");

    // The provider publishes a new key and signs with it at once: a burst of 1 000 requests
    // naming it all pass, after one fetch.
    *endpoint.kids.lock().unwrap() = vec!["rsa-2025", "rsa-2026"];
    let new = idp_token(Algorithm::RS256, &rsa2_encoding_key(), "rsa-2026", "new");
    let hits = endpoint.hits.load(Ordering::SeqCst);
    let client = client();
    let url = server.url("/me");
    let burst: Vec<_> = (0..1_000)
        .map(|_| {
            let request = client.get(&url).bearer_auth(&new);
            tokio::spawn(async move { send(request).await.status })
        })
        .collect();
    for task in burst {
        assert_eq!(task.await.unwrap(), 200);
    }
    assert_eq!(endpoint.hits.load(Ordering::SeqCst) - hits, 1, "one fetch");

    // 10 000 tokens naming random unknown kids: refused, and fetches held to one per
    // cooldown (1 s here) over however long they take.
    let signed = idp_token(Algorithm::RS256, &rsa_encoding_key(), "rsa-2025", "x");
    let payload: Arc<str> = signed.split_once('.').unwrap().1.into();
    let hits = endpoint.hits.load(Ordering::SeqCst);
    let started = Instant::now();
    let senders: Vec<_> = (0..50)
        .map(|worker| {
            let client = client.clone();
            let url = url.clone();
            let payload = Arc::clone(&payload);
            tokio::spawn(async move {
                for i in 0..200 {
                    // The kid is looked up before any signature is checked: a header of its own
                    // on a signed token's payload and signature is enough (and signs nothing).
                    let kid = format!("random-{worker}-{i}-{}", rand::random::<u32>());
                    let header =
                        URL_SAFE_NO_PAD.encode(json!({"alg": "RS256", "kid": kid}).to_string());
                    let token = format!("{header}.{payload}");
                    let reply = send(client.get(&url).bearer_auth(token)).await;
                    assert_eq!(reply.code().as_deref(), Some("INVALID_TOKEN"));
                }
            })
        })
        .collect();
    for task in senders {
        task.await.unwrap();
    }
    let elapsed = started.elapsed().as_secs_f64();
    let fetches = endpoint.hits.load(Ordering::SeqCst) - hits;
    // One per started second of cooldown, and one already under way at the start.
    let allowed = elapsed.ceil() as u64 + 1;
    assert!(
        fetches <= allowed,
        "{fetches} fetches in {elapsed:.1} s (at most {allowed})"
    );
    assert!(fetches >= 1, "unknown kids do ask for a fetch");

    // The provider drops the old key: the next refresh refuses it, though the verified-token
    // cache had it.
    *endpoint.kids.lock().unwrap() = vec!["rsa-2026"];
    set.refresh().await.unwrap();
    assert_rejected(&get_bearer(&server, &old).await, "INVALID_TOKEN");
    assert_accepted(&get_bearer(&server, &new).await, "new");

    // The endpoint hangs: known keys keep answering at once while a fetch waits, and a token
    // naming an unknown kid waits for at most the fetch's bound.
    endpoint.hang.store(true, Ordering::SeqCst);
    let refresh = {
        let set = set.clone();
        tokio::spawn(async move { set.refresh().await })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    for _ in 0..20 {
        let started = Instant::now();
        assert_accepted(&get_bearer(&server, &new).await, "new");
        assert!(
            started.elapsed() < Duration::from_millis(300),
            "{:?}",
            started.elapsed()
        );
    }
    let started = Instant::now();
    let unknown = idp_token(Algorithm::RS256, &rsa_encoding_key(), "unknown", "x");
    // The fetch it waited for failed: the kid may be a new key the set could not bring, so
    // the refusal is AUTH_FAILED (not a failed attempt), not INVALID_TOKEN.
    let reply = get_bearer(&server, &unknown).await;
    assert_rejected(&reply, "AUTH_FAILED");
    assert_eq!(reply.status, 500);
    // The fetcher's 500 ms (twice, discovery and the set, for a bound) and a margin.
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
    assert!(refresh.await.unwrap().is_err());
    assert_accepted(&get_bearer(&server, &new).await, "new");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_started_while_its_issuer_is_down_recovers() {
    init_crypto();
    let (set, port) = set_of_a_silent_port();
    let _refresher = set.spawn_refresher();
    let server = protected(&set).await;
    let token = idp_token(Algorithm::RS256, &rsa_encoding_key(), "rsa-2025", "late");
    // The service serves its own tokens; the issuer's are refused with AUTH_FAILED.
    assert_accepted(
        &get_bearer(&server, &sign_hs256(&fresh_claims("own"))).await,
        "own",
    );
    let reply = get_bearer(&server, &token).await;
    assert_rejected(&reply, "AUTH_FAILED");
    assert_eq!(reply.status, 500);
    assert!(!reply.text.contains("127.0.0.1"), "{}", reply.text);

    // The issuer comes up: without a restart, its tokens pass once the keys arrive.
    let endpoint = Endpoint::default();
    *endpoint.kids.lock().unwrap() = vec!["rsa-2025"];
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .unwrap();
    let app = endpoint_router(&endpoint);
    tokio::spawn(async move { axum::serve(listener, app).await });
    let started = Instant::now();
    loop {
        let reply = get_bearer(&server, &token).await;
        if reply.status == 200 {
            assert_accepted(&reply, "late");
            break;
        }
        assert_rejected(&reply, "AUTH_FAILED");
        assert!(
            started.elapsed() < Duration::from_secs(8),
            "never recovered"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_discovery_document_naming_another_issuer_is_refused() {
    init_crypto();
    let endpoint = Endpoint::default();
    *endpoint.kids.lock().unwrap() = vec!["rsa-2025"];
    let server = serve(endpoint_router(&endpoint)).await;
    let issuer = server.url("");
    let discover = |issuer: &str| {
        RemoteKeySet::discover(issuer.to_owned(), HttpFetcher::new().unwrap())
            .build()
            .unwrap()
    };
    *endpoint.issuer.lock().unwrap() = issuer.clone();
    let set = discover(&issuer);
    set.refresh().await.expect("a matching document");
    assert_eq!(set.stats().keys, 1);

    *endpoint.issuer.lock().unwrap() = format!("{issuer}/elsewhere");
    let set = discover(&issuer);
    let error = set.refresh().await.unwrap_err();
    assert!(error.to_string().contains("another issuer"), "{error}");
    assert!(set.current().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_most_1024_requests_wait_for_a_fetch() {
    init_crypto();
    let endpoint = Endpoint::default();
    *endpoint.kids.lock().unwrap() = vec!["rsa-2025"];
    let jwks_server = serve(endpoint_router(&endpoint)).await;
    // A fetch that hangs for 3 s before it fails, so that many requests wait at once.
    let fetcher = HttpFetcher::new().unwrap().timeout(Duration::from_secs(3));
    let set = RemoteKeySet::builder(jwks_server.url("/jwks"), fetcher)
        .cooldown(Duration::from_secs(1))
        .build()
        .unwrap();
    set.refresh().await.unwrap();
    let server = protected(&set).await;
    endpoint.hang.store(true, Ordering::SeqCst);
    // Tokens naming a kid the set lacks (looked up before any signature: no signing needed).
    let signed = idp_token(Algorithm::RS256, &rsa_encoding_key(), "rsa-2025", "x");
    let rest = signed.split_once('.').unwrap().1.to_owned();
    let header = URL_SAFE_NO_PAD.encode(json!({"alg": "RS256", "kid": "not-yet"}).to_string());
    let token = format!("{header}.{rest}");
    let client = client();
    let url = server.url("/me");
    let requests: Vec<_> = (0..1_200)
        .map(|_| {
            let request = client.get(&url).bearer_auth(&token);
            tokio::spawn(async move { send(request).await })
        })
        .collect();
    let mut capped = 0;
    for request in requests {
        let reply = request.await.unwrap();
        // The fetch failed: every one of them is AUTH_FAILED, none a failed attempt; those
        // past the cap were refused without waiting.
        assert_rejected(&reply, "AUTH_FAILED");
        if reply.json()["error"]["message"] == "too many requests wait for the issuer's keys" {
            capped += 1;
        }
    }
    assert!(capped >= 1, "the cap of 1 024 waiters was never reached");
    assert!(capped <= 1_200 - 1_024, "{capped} refused past the cap");
}
