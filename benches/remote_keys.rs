//! Verification with a remote key set against the same keys given locally: the remote set is
//! one `arc-swap` snapshot load per token, so both should cost the same. Also the cost of
//! routing by `iss` (a validator with one more issuer reads `iss` before the signature).
//!
//! ```text
//! cargo bench --all-features --bench remote_keys -- --measurement-time 5
//! ```
//!
//! The set is filled once, before measuring, by a fetcher that returns the fixture JWKS from
//! memory (the fetch is not what is measured; `tests/remote_keys_layer.rs` fetches over HTTP).
//! The keys are the test fixtures (`tests/fixtures/`, test-only keys).

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use tower_jwt_guard::crypto::{backend_name, install_crypto_provider};
use tower_jwt_guard::keys::Key;
use tower_jwt_guard::remote_keys::{FetchFuture, JwksFetcher, RemoteKeySet};
use tower_jwt_guard::validate::{Issuer, Validator};

mod common;
use common::{BenchClaims, SECRET, claims};

const JWKS: &str = include_str!("../tests/fixtures/jwks_all.json");
const ISSUER: &str = "https://auth.example.com";

struct InMemory;

impl JwksFetcher for InMemory {
    fn fetch(&self, _url: &str) -> FetchFuture {
        Box::pin(async { Ok(JWKS.as_bytes().to_vec()) })
    }
}

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(format!(
        "{}/tests/fixtures/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn bench_remote(c: &mut Criterion) {
    install_crypto_provider();
    let backend = backend_name();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let set = RemoteKeySet::builder("https://auth.example.com/jwks", InMemory)
        .build()
        .unwrap();
    runtime.block_on(set.refresh()).expect("the fixture JWKS");
    let claims = claims();

    let mut group = c.benchmark_group("remote_keys");
    for (alg, private, public, kid) in [
        (
            Algorithm::RS256,
            "rsa_private.pem",
            "rsa_public.pem",
            "rsa-2025",
        ),
        (
            Algorithm::ES256,
            "ec_private.pem",
            "ec_public.pem",
            "ec-2026",
        ),
    ] {
        let encoding = match alg {
            Algorithm::RS256 => EncodingKey::from_rsa_pem(&fixture(private)),
            _ => EncodingKey::from_ec_pem(&fixture(private)),
        }
        .unwrap();
        let mut header = Header::new(alg);
        header.kid = Some(kid.to_owned());
        let token = jsonwebtoken::encode(&header, &claims, &encoding).unwrap();
        let local_key = match alg {
            Algorithm::RS256 => Key::rsa_pem(fixture(public)),
            _ => Key::ec_pem(fixture(public)),
        }
        .unwrap()
        .with_kid(kid);
        // The same four keys as the remote set, so that the kid lookup is the same too.
        let others = tower_jwt_guard::keys::keys_from_jwks(JWKS)
            .unwrap()
            .into_iter()
            .filter(|k| k.kid() != Some(kid));
        let local = Validator::<BenchClaims>::builder()
            .key(local_key)
            .keys(others)
            .issuers([ISSUER])
            .build()
            .unwrap();
        let remote = Validator::<BenchClaims>::builder()
            .remote_keys(set.clone())
            .issuers([ISSUER])
            .build()
            .unwrap();
        let routed = Validator::<BenchClaims>::builder()
            .key(Key::hmac(SECRET).unwrap())
            .issuer(Issuer::new(ISSUER).remote_keys(set.clone()))
            .build()
            .unwrap();
        for (name, validator) in [("local", &local), ("remote", &remote), ("issuer", &routed)] {
            validator
                .validate(&token)
                .unwrap_or_else(|e| panic!("{name} {alg:?}: {e}"));
            group.bench_function(format!("{alg:?}/{name}/{backend}"), |b| {
                b.iter(|| validator.validate(black_box(&token)).expect("valid"));
            });
        }
    }
    // HS256: the cheapest verification, where routing by `iss` shows most.
    let token = jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(SECRET).unwrap(),
    )
    .unwrap();
    let alone = Validator::<BenchClaims>::builder()
        .key(Key::hmac(SECRET).unwrap())
        .build()
        .unwrap();
    let with_issuer = Validator::<BenchClaims>::builder()
        .key(Key::hmac(SECRET).unwrap())
        .issuer(Issuer::new("https://idp.example").remote_keys(set.clone()))
        .build()
        .unwrap();
    for (name, validator) in [("alone", &alone), ("with_issuer", &with_issuer)] {
        validator.validate(&token).expect("valid");
        group.bench_function(format!("HS256/{name}/{backend}"), |b| {
            b.iter(|| validator.validate(black_box(&token)).expect("valid"));
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(2))
        .measurement_time(Duration::from_secs(5));
    targets = bench_remote
}
criterion_main!(benches);
