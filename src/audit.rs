//! Audit events: every authentication decision as a `tracing` event on the target
//! [`AUDIT_TARGET`] (`tower_jwt_guard::audit`).
//!
//! | decision | level | fields |
//! |---|---|---|
//! | accepted | `DEBUG` | `outcome="accepted"`, `subject`, `source`, `client`, `method`, `path` |
//! | anonymous (optional mode, no token) | `DEBUG` | `outcome="anonymous"`, `client`, `method`, `path` |
//! | rejected | `INFO` (`WARN` for `AUTH_FAILED`) | `outcome="rejected"`, `code`, `reason`, `subject` when known, `client`, `method`, `path` |
//! | address locked out (lockout layer) | `WARN` | `outcome="locked"`, `client` (the grouped address), `failures`, `lock_secs`, `lockouts` |
//! | lockout store failed (request let through) | `ERROR` | `operation`, `error` |
//!
//! `path` is the URI path only: the query string, which may hold a token, is never recorded, and
//! neither is any header value. `reason` is the fixed message of the rejection.
//!
//! Enable them with a filter such as `RUST_LOG=tower_jwt_guard::audit=debug`.

use std::net::SocketAddr;

use http::{Method, Uri};

use crate::context::AuthContext;
use crate::error::{AuthError, ErrorCode};

/// The `tracing` target of audit events.
pub const AUDIT_TARGET: &str = "tower_jwt_guard::audit";

/// What the audit events say about the request itself.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RequestInfo<'a> {
    pub method: &'a Method,
    pub uri: &'a Uri,
    pub client: Option<SocketAddr>,
}

impl<'a> RequestInfo<'a> {
    pub(crate) fn of<B>(req: &'a http::Request<B>) -> Self {
        Self {
            method: req.method(),
            uri: req.uri(),
            client: crate::peer::peer_addr(req.extensions()),
        }
    }
}

pub(crate) fn accepted(ctx: &AuthContext, req: RequestInfo<'_>) {
    tracing::debug!(
        target: AUDIT_TARGET,
        outcome = "accepted",
        subject = ctx.subject(),
        source = ctx.source().map(|s| s.as_str()),
        client = req.client.map(tracing::field::display),
        method = %req.method,
        path = req.uri.path(),
        "request authenticated"
    );
}

pub(crate) fn anonymous(req: RequestInfo<'_>) {
    tracing::debug!(
        target: AUDIT_TARGET,
        outcome = "anonymous",
        client = req.client.map(tracing::field::display),
        method = %req.method,
        path = req.uri.path(),
        "request passed without a token"
    );
}

pub(crate) fn rejected(err: &AuthError, subject: Option<&str>, req: RequestInfo<'_>) {
    macro_rules! emit {
        ($level:expr) => {
            tracing::event!(
                target: AUDIT_TARGET,
                $level,
                outcome = "rejected",
                code = err.code().as_str(),
                reason = err.message(),
                subject,
                client = req.client.map(tracing::field::display),
                method = %req.method,
                path = req.uri.path(),
                "request rejected"
            )
        };
    }
    if err.code() == ErrorCode::AuthFailed {
        emit!(tracing::Level::WARN);
    } else {
        emit!(tracing::Level::INFO);
    }
}
