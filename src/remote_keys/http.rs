//! The crate's HTTP fetcher (feature `remote-keys-http`): hyper-util's client over rustls with
//! the webpki roots, bounded in time and in body size.

use std::net::IpAddr;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use super::{FetchError, FetchFuture, JwksFetcher};
use crate::error::ConfigError;

/// The default bound on one fetch, connection and body included.
pub const DEFAULT_FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// The default bound on a key set document.
pub const DEFAULT_MAX_BODY: usize = 1 << 20;

/// Fetches key sets over HTTPS (plain HTTP only to loopback addresses, unless allowed), with
/// a timeout over the whole exchange and a cap on the body; only a `200` is a document.
/// Redirects are not followed. Cheap to clone.
#[derive(Clone)]
pub struct HttpFetcher {
    client: Client<hyper_rustls::HttpsConnector<HttpConnector>, Empty<Bytes>>,
    timeout: Duration,
    max_body: usize,
    allow_plain_http: bool,
}

impl std::fmt::Debug for HttpFetcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpFetcher")
            .field("timeout", &self.timeout)
            .field("max_body", &self.max_body)
            .field("allow_plain_http", &self.allow_plain_http)
            .finish_non_exhaustive()
    }
}

impl HttpFetcher {
    /// A fetcher with [`DEFAULT_FETCH_TIMEOUT`] and [`DEFAULT_MAX_BODY`]. Its TLS uses this
    /// crate's backend's rustls provider (aws-lc-rs, or ring with `rust-crypto`).
    ///
    /// # Errors
    /// When the rustls provider cannot be set up (it offers no TLS version).
    pub fn new() -> Result<Self, ConfigError> {
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_provider_and_webpki_roots(crate::crypto::rustls_provider())
            .map_err(|_| ConfigError::new("the TLS client for key sets could not be set up"))?
            .https_or_http()
            .enable_http1()
            .build();
        Ok(Self {
            client: Client::builder(TokioExecutor::new()).build(connector),
            timeout: DEFAULT_FETCH_TIMEOUT,
            max_body: DEFAULT_MAX_BODY,
            allow_plain_http: false,
        })
    }

    /// The bound on one fetch, connection, headers and body together.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The largest document accepted; a longer body fails the fetch.
    pub fn max_body(mut self, bytes: usize) -> Self {
        self.max_body = bytes;
        self
    }

    /// Allows plain `http://` to hosts other than loopback addresses (a trusted network only:
    /// whoever can alter the response chooses the keys).
    pub fn allow_plain_http(mut self) -> Self {
        self.allow_plain_http = true;
        self
    }
}

/// Whether `uri` may be fetched: `https`, or `http` to a loopback address.
fn allowed(uri: &http::Uri, allow_plain_http: bool) -> Result<(), FetchError> {
    match uri.scheme_str() {
        Some("https") => Ok(()),
        Some("http") => {
            let host = uri.host().unwrap_or("");
            let host = host.trim_start_matches('[').trim_end_matches(']');
            // By address only: a name (even `localhost`) is resolved elsewhere.
            let loopback = host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback());
            if loopback || allow_plain_http {
                Ok(())
            } else {
                Err(FetchError("plain http to a host that is not loopback"))
            }
        }
        _ => Err(FetchError("not an http(s) URL")),
    }
}

impl JwksFetcher for HttpFetcher {
    fn fetch(&self, url: &str) -> FetchFuture {
        let this = self.clone();
        let uri = url.parse::<http::Uri>();
        Box::pin(async move {
            let uri = uri.map_err(|_| FetchError("not a valid URL"))?;
            allowed(&uri, this.allow_plain_http)?;
            let request = http::Request::get(uri)
                .header(http::header::ACCEPT, "application/json")
                .header(
                    http::header::USER_AGENT,
                    concat!("tower-jwt-guard/", env!("CARGO_PKG_VERSION")),
                )
                .body(Empty::<Bytes>::new())
                .map_err(|_| FetchError("not a valid URL"))?;
            let exchange = async {
                let response =
                    this.client.request(request).await.map_err(|_| {
                        FetchError("the request failed (connection, TLS or protocol)")
                    })?;
                if response.status() != http::StatusCode::OK {
                    return Err(FetchError("the server did not answer 200"));
                }
                let body = Limited::new(response.into_body(), this.max_body)
                    .collect()
                    .await
                    .map_err(|_| FetchError("the body failed or exceeded the size cap"))?;
                Ok(body.to_bytes().to_vec())
            };
            tokio::time::timeout(this.timeout, exchange)
                .await
                .map_err(|_| FetchError("timed out"))?
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_https_or_loopback_http() {
        let ok = |u: &str, plain| allowed(&u.parse().unwrap(), plain).is_ok();
        assert!(ok("https://idp.example/jwks", false));
        assert!(ok("http://127.0.0.1:8080/jwks", false));
        assert!(ok("http://127.9.9.9/jwks", false));
        assert!(ok("http://[::1]:80/jwks", false));
        assert!(
            !ok("http://localhost/jwks", false),
            "names are resolved elsewhere"
        );
        assert!(!ok("http://idp.example/jwks", false));
        assert!(!ok("http://10.0.0.1/jwks", false));
        assert!(ok("http://idp.example/jwks", true));
        assert!(!ok("ftp://idp.example/jwks", true));
        assert!(!ok("/jwks", true));
    }
}
