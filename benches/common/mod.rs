//! What the layer and decode benches share: the secret and the claims of the benchmark token.

use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// The HS256 secret of the benchmark token.
pub const SECRET: &[u8] = b"bench-secret-bench-secret-bench-secret-0123";

/// Typical access-token claims: a ~200-byte JSON payload.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BenchClaims {
    pub sub: String,
    pub exp: u64,
    pub iat: u64,
    pub iss: String,
    pub name: String,
    pub email: String,
    pub role: String,
    pub tenant: String,
}

pub fn claims() -> BenchClaims {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs();
    BenchClaims {
        sub: "user-7f3c2a91-4b5e-4d1a-9c0e-2b8f6a1d3e57".into(),
        // Far enough in the future for any bench run.
        exp: now + 24 * 3600,
        iat: now,
        iss: "https://auth.example.com".into(),
        name: "Alice Example".into(),
        email: "alice.example@example.com".into(),
        role: "admin".into(),
        tenant: "acme-production".into(),
    }
}
