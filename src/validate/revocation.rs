use std::future::Future;
use std::pin::Pin;

use crate::context::AuthContext;
use crate::error::AuthError;

/// The future a [`Revocation`] hook returns: `Ok(true)` when the token is revoked.
///
/// It is boxed: the hook does I/O (a database, Redis) that costs far more than the allocation,
/// and a request that has no hook configured never builds one.
pub type RevocationFuture =
    Pin<Box<dyn Future<Output = Result<bool, Box<dyn std::error::Error + Send + Sync>>> + Send>>;

/// An async check that a verified token has not been revoked (for example by its `jti` or its
/// subject). A hook that fails is treated as a refusal (`AUTH_FAILED`): the check fails closed.
///
/// Closures `Fn(&AuthContext) -> impl Future<Output = Result<bool, E>>` implement it.
pub trait Revocation: Send + Sync + 'static {
    /// Whether the token described by `context` is revoked.
    fn is_revoked(&self, context: &AuthContext) -> RevocationFuture;
}

impl<F, Fut, E> Revocation for F
where
    F: Fn(&AuthContext) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<bool, E>> + Send + 'static,
    E: Into<Box<dyn std::error::Error + Send + Sync>> + 'static,
{
    fn is_revoked(&self, context: &AuthContext) -> RevocationFuture {
        let fut = self(context);
        Box::pin(async move { fut.await.map_err(Into::into) })
    }
}

/// What a revocation hook's answer means: revoked is `TOKEN_REVOKED`, a failing hook
/// `AUTH_FAILED` (the check fails closed).
pub(crate) fn revocation_outcome(
    result: Result<bool, Box<dyn std::error::Error + Send + Sync>>,
) -> Result<(), AuthError> {
    match result {
        Ok(false) => Ok(()),
        Ok(true) => Err(AuthError::revoked()),
        Err(_) => Err(AuthError::auth_failed(
            "the revocation check could not be completed",
        )),
    }
}
