//! The crypto backend behind `jsonwebtoken`.
//!
//! `jsonwebtoken` needs exactly one process-wide crypto provider. This crate offers both as
//! features: `aws-lc-rs` (the default, measurably faster for RSA and ECDSA, see
//! `BENCHMARKS.md`) and `rust-crypto` (pure Rust, no C toolchain). When both are enabled,
//! **aws-lc-rs is chosen**. With neither, the crate does not compile.
//!
//! The provider is installed the first time a key or validator is built (or by calling
//! [`install_crypto_provider`] yourself), never lazily on a request. If the application has
//! already installed a provider of its own, that one stays.

#[cfg(not(any(feature = "aws-lc-rs", feature = "rust-crypto")))]
compile_error!(
    "tower-jwt-guard needs a crypto backend: enable the feature `aws-lc-rs` (the default) or `rust-crypto`"
);

use std::sync::OnceLock;

/// The rustls provider of this crate's backend, for its TLS clients (Redis, key sets):
/// aws-lc-rs's with the `aws-lc-rs` backend (also when both are on), ring's with RustCrypto
/// (rustls has no RustCrypto provider of its own).
#[cfg(any(feature = "redis-tls", feature = "remote-keys-http"))]
pub(crate) fn rustls_provider() -> rustls::crypto::CryptoProvider {
    #[cfg(feature = "aws-lc-rs")]
    let provider = rustls::crypto::aws_lc_rs::default_provider();
    #[cfg(all(feature = "rust-crypto", not(feature = "aws-lc-rs")))]
    let provider = rustls::crypto::ring::default_provider();
    provider
}

/// Installs [`rustls_provider`] as rustls's process-wide default, unless the application
/// installed one: for clients (the `redis` crate's) that read the default.
#[cfg(feature = "redis-tls")]
pub(crate) fn install_rustls_provider() {
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        // Another thread may have installed one meanwhile: either is fine.
        let _ = rustls_provider().install_default();
    }
}

/// The name of the backend this build uses: `"aws-lc-rs"` or `"rust-crypto"`.
pub const fn backend_name() -> &'static str {
    #[cfg(feature = "aws-lc-rs")]
    {
        "aws-lc-rs"
    }
    #[cfg(all(feature = "rust-crypto", not(feature = "aws-lc-rs")))]
    {
        "rust-crypto"
    }
    #[cfg(not(any(feature = "aws-lc-rs", feature = "rust-crypto")))]
    {
        "none"
    }
}

/// Installs this crate's crypto backend as `jsonwebtoken`'s process-wide provider, unless one is
/// installed already. Idempotent and cheap after the first call.
///
/// Keys and validators call it when they are built; call it yourself before using
/// `jsonwebtoken::encode` directly in a process that has not built one yet (for instance a test
/// that signs tokens first).
pub fn install_crypto_provider() {
    let _ = own_provider();
}

/// This crate's provider when it is the one `jsonwebtoken` uses, installing it on first call.
///
/// `None` when the application (or an earlier `jsonwebtoken` call) settled the process-wide
/// provider first: verification then goes through `jsonwebtoken::crypto::verify`, so that the
/// application's choice is the one that runs.
pub(crate) fn own_provider() -> Option<&'static jsonwebtoken::crypto::CryptoProvider> {
    static OWN: OnceLock<Option<&'static jsonwebtoken::crypto::CryptoProvider>> = OnceLock::new();
    *OWN.get_or_init(|| {
        #[cfg(feature = "aws-lc-rs")]
        let provider = &jsonwebtoken::crypto::aws_lc::DEFAULT_PROVIDER;
        #[cfg(all(feature = "rust-crypto", not(feature = "aws-lc-rs")))]
        let provider = &jsonwebtoken::crypto::rust_crypto::DEFAULT_PROVIDER;
        #[cfg(any(feature = "aws-lc-rs", feature = "rust-crypto"))]
        {
            // An `Err` means a provider was installed first: keep it, and do not bypass it.
            provider.install_default().ok().map(|()| provider)
        }
        #[cfg(not(any(feature = "aws-lc-rs", feature = "rust-crypto")))]
        None
    })
}
