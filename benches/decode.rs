//! `jsonwebtoken::decode` alone (verify + deserialize + validate `exp`) for HS256, RS256 (2048-bit),
//! ES256 and EdDSA, under the crypto backend this build uses.
//!
//! The benchmark ids carry the backend name, so both runs can be compared side by side:
//!
//! ```text
//! cargo bench --bench decode --no-default-features --features aws-lc-rs -- --measurement-time 5
//! cargo bench --bench decode --no-default-features --features rust-crypto -- --measurement-time 5
//! ```
//!
//! The keys in `benches/fixtures/` are test-only keys generated with `openssl genpkey`.

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use tower_jwt_guard::crypto::{backend_name, install_crypto_provider};

mod common;
use common::{BenchClaims, SECRET, claims};

const RSA_PRIVATE: &[u8] = include_bytes!("fixtures/rsa_private.pem");
const RSA_PUBLIC: &[u8] = include_bytes!("fixtures/rsa_public.pem");
const EC_PRIVATE: &[u8] = include_bytes!("fixtures/ec_private.pem");
const EC_PUBLIC: &[u8] = include_bytes!("fixtures/ec_public.pem");
const ED_PRIVATE: &[u8] = include_bytes!("fixtures/ed_private.pem");
const ED_PUBLIC: &[u8] = include_bytes!("fixtures/ed_public.pem");

fn keys(alg: Algorithm) -> (EncodingKey, DecodingKey) {
    let pair = match alg {
        Algorithm::HS256 => Ok((
            EncodingKey::from_secret(SECRET).unwrap(),
            DecodingKey::from_secret(SECRET).unwrap(),
        )),
        Algorithm::RS256 => EncodingKey::from_rsa_pem(RSA_PRIVATE)
            .and_then(|e| Ok((e, DecodingKey::from_rsa_pem(RSA_PUBLIC)?))),
        Algorithm::ES256 => EncodingKey::from_ec_pem(EC_PRIVATE)
            .and_then(|e| Ok((e, DecodingKey::from_ec_pem(EC_PUBLIC)?))),
        Algorithm::EdDSA => EncodingKey::from_ed_pem(ED_PRIVATE)
            .and_then(|e| Ok((e, DecodingKey::from_ed_pem(ED_PUBLIC)?))),
        other => unreachable!("no fixture for {other:?}"),
    };
    pair.unwrap_or_else(|e| panic!("{alg:?} fixture keys: {e}"))
}

fn bench_decode(c: &mut Criterion) {
    // jsonwebtoken needs its process-wide provider before the first encode or decode.
    install_crypto_provider();
    let backend = backend_name();
    let claims = claims();

    let mut group = c.benchmark_group("decode");
    for alg in [
        Algorithm::HS256,
        Algorithm::RS256,
        Algorithm::ES256,
        Algorithm::EdDSA,
    ] {
        let (encoding, decoding) = keys(alg);
        let token = jsonwebtoken::encode(&Header::new(alg), &claims, &encoding)
            .unwrap_or_else(|e| panic!("signing {alg:?}: {e}"));
        let validation = Validation::new(alg);
        jsonwebtoken::decode::<BenchClaims>(&token, &decoding, &validation)
            .unwrap_or_else(|e| panic!("{alg:?} token does not verify: {e}"));

        group.bench_function(format!("{alg:?}/{backend}"), |b| {
            b.iter(|| {
                jsonwebtoken::decode::<BenchClaims>(black_box(&token), &decoding, &validation)
                    .expect("valid token")
            });
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(2))
        .measurement_time(Duration::from_secs(5));
    targets = bench_decode
}
criterion_main!(benches);
