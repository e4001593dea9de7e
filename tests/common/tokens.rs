//! Keys, tokens and validators. Time is a [`FakeClock`] the caller keeps: the builders take it,
//! so a test that moves time builds its layers from these helpers instead of by hand.

use std::path::PathBuf;
use std::time::Duration;

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tower_jwt_guard::clock::FakeClock;
use tower_jwt_guard::keys::Key;
use tower_jwt_guard::validate::{Validator, ValidatorBuilder};

/// A test-only HMAC secret (45 bytes, above the 32-byte minimum).
pub const HMAC_SECRET: &[u8] = b"integration-test-only-hmac-secret-0123456789";

/// The fixed "now" of most tests, read through a [`FakeClock`].
pub const NOW: u64 = 1_700_000_000;

/// The claims type the test servers deserialize into.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TestClaims {
    pub sub: String,
    #[serde(default)]
    pub role: Option<String>,
}

/// Installs the crate's crypto provider; must run before `jsonwebtoken::encode` when no key or
/// validator has been built yet in this process.
pub fn init_crypto() {
    tower_jwt_guard::crypto::install_crypto_provider();
}

pub fn fixture_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("fixtures")
        .join(name)
}

/// The bytes of a file in `tests/fixtures/`.
pub fn fixture(name: &str) -> Vec<u8> {
    let path = fixture_path(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("cannot read fixture {}: {e}", path.display()))
}

pub fn fixture_str(name: &str) -> String {
    String::from_utf8(fixture(name)).expect("fixture is UTF-8")
}

/// Claims `{"sub": sub, "exp": exp}`.
pub fn claims(sub: &str, exp: u64) -> Value {
    json!({ "sub": sub, "exp": exp })
}

/// Claims for `sub` valid for an hour after [`NOW`].
pub fn fresh_claims(sub: &str) -> Value {
    claims(sub, NOW + 3600)
}

/// Signs `claims` with `alg`, `key` and an optional `kid`.
pub fn sign_with(alg: Algorithm, key: &EncodingKey, kid: Option<&str>, claims: &Value) -> String {
    init_crypto();
    let mut header = Header::new(alg);
    header.kid = kid.map(str::to_owned);
    jsonwebtoken::encode(&header, claims, key).expect("signing a test token")
}

/// Signs `claims` with HS256 and [`HMAC_SECRET`].
pub fn sign_hs256(claims: &Value) -> String {
    sign_with(
        Algorithm::HS256,
        &EncodingKey::from_secret(HMAC_SECRET).unwrap(),
        None,
        claims,
    )
}

/// An HS256 token for `sub`, valid at [`NOW`].
pub fn token_for(sub: &str) -> String {
    sign_hs256(&fresh_claims(sub))
}

pub fn rsa_encoding_key() -> EncodingKey {
    init_crypto();
    EncodingKey::from_rsa_pem(&fixture("rsa_private.pem")).expect("RSA fixture")
}

pub fn rsa2_encoding_key() -> EncodingKey {
    init_crypto();
    EncodingKey::from_rsa_pem(&fixture("rsa2_private.pem")).expect("RSA fixture 2")
}

pub fn ec_encoding_key() -> EncodingKey {
    init_crypto();
    EncodingKey::from_ec_pem(&fixture("ec_private.pem")).expect("EC fixture")
}

pub fn ed_encoding_key() -> EncodingKey {
    init_crypto();
    EncodingKey::from_ed_pem(&fixture("ed_private.pem")).expect("Ed25519 fixture")
}

/// A validator builder with the HMAC key and a [`FakeClock`] at [`NOW`].
pub fn hmac_builder() -> ValidatorBuilder<TestClaims> {
    hmac_builder_at(&FakeClock::at_unix_secs(NOW))
}

/// A validator builder with the HMAC key, reading time from `clock` (which the caller keeps
/// and moves).
pub fn hmac_builder_at(clock: &FakeClock) -> ValidatorBuilder<TestClaims> {
    Validator::<TestClaims>::builder()
        .key(Key::hmac(HMAC_SECRET).expect("HMAC key"))
        .clock(clock.clone())
}

pub fn hmac_validator() -> Validator<TestClaims> {
    hmac_builder().build().expect("validator")
}
