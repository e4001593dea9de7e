//! One authenticated connection before its upgrade ([`WsSession`]), opened by
//! [`WsSessions::open`].

use std::fmt;
use std::sync::Arc;

use http::{Extensions, HeaderMap};
use serde::de::DeserializeOwned;

use super::WsSessions;
use super::registry::Reservation;
use crate::context::{AuthContext, Claims};
use crate::error::AuthError;
use crate::lockout::FailureReport;

impl<C> WsSessions<C>
where
    C: DeserializeOwned + Clone + Send + Sync + 'static,
{
    /// Opens a session for an authenticated upgrade request, from its headers and extensions:
    /// the [`AuthContext`] and [`Claims<C>`] the authentication layer put there, and the
    /// lockout's [`FailureReport`] when a [`LockoutLayer`](crate::lockout::LockoutLayer) runs in
    /// front (refused re-authentications then count toward the socket's address). Reserves the
    /// connection slot.
    ///
    /// # Errors
    /// `AUTH_FAILED` when the request was not authenticated by the layer; `INVALID_TOKEN` when
    /// the token has no subject; `RATE_LIMITED` over a connection limit.
    pub fn open(
        &self,
        headers: &HeaderMap,
        extensions: &Extensions,
    ) -> Result<WsSession<C>, AuthError> {
        let not_authenticated =
            || AuthError::auth_failed("the WebSocket route is not behind the authentication layer");
        let context = extensions
            .get::<AuthContext>()
            .cloned()
            .ok_or_else(not_authenticated)?;
        let Claims(claims) = extensions
            .get::<Claims<C>>()
            .cloned()
            .ok_or_else(not_authenticated)?;
        let subject = context
            .subject_arc()
            .cloned()
            .ok_or(AuthError::invalid_token(
                "a WebSocket session needs a subject (sub)",
            ))?;
        let plan = self
            .inner
            .plan
            .and_then(|f| f(&claims))
            .map(Box::<str>::from);
        let reservation = self
            .inner
            .registry
            .reserve(Arc::clone(&subject), plan.as_deref())?;
        // Checked again once the slot is reserved: a revocation made between the validation and
        // the reservation would otherwise miss this session (one made later closes it when it
        // goes live).
        if self
            .inner
            .validator
            .revocations()
            .is_some_and(|list| list.is_revoked(&context))
        {
            return Err(AuthError::revoked());
        }
        Ok(WsSession {
            subject,
            plan,
            authenticated_at: self.inner.validator.clock().now().as_secs(),
            expires_at: context.expires_at(),
            protocols: crate::extract::application_protocols(headers)
                .map(Box::from)
                .collect(),
            context,
            claims,
            reservation,
            failures: extensions.get::<FailureReport>().cloned(),
            sessions: self.clone(),
        })
    }
}

/// One authenticated connection before the upgrade: who it is and until when. Its
/// [`attach`](Self::attach) turns the upgraded socket into an
/// [`AuthenticatedSocket`](super::AuthenticatedSocket).
pub struct WsSession<C> {
    pub(crate) subject: Arc<str>,
    pub(crate) plan: Option<Box<str>>,
    authenticated_at: u64,
    pub(crate) expires_at: Option<u64>,
    protocols: Vec<Box<str>>,
    pub(crate) context: AuthContext,
    pub(crate) claims: C,
    pub(crate) reservation: Reservation,
    pub(crate) failures: Option<FailureReport>,
    pub(crate) sessions: WsSessions<C>,
}

impl<C: fmt::Debug> fmt::Debug for WsSession<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WsSession")
            .field("id", &self.reservation.id())
            .field("subject", &self.subject)
            .field("plan", &self.plan)
            .field("authenticated_at", &self.authenticated_at)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

impl<C> WsSession<C>
where
    C: DeserializeOwned + Clone + Send + Sync + 'static,
{
    /// The unique session id (distinct for each device of one user).
    pub fn id(&self) -> u64 {
        self.reservation.id()
    }

    /// The subject.
    pub fn subject(&self) -> &str {
        &self.subject
    }

    /// The plan, if the sessions read one.
    pub fn plan(&self) -> Option<&str> {
        self.plan.as_deref()
    }

    /// The claims of the token that opened the session.
    pub fn claims(&self) -> &C {
        &self.claims
    }

    /// The authentication context of the token that opened the session.
    pub fn context(&self) -> &AuthContext {
        &self.context
    }

    /// When the session was authenticated (Unix seconds).
    pub fn authenticated_at(&self) -> u64 {
        self.authenticated_at
    }

    /// When the token expires (Unix seconds); the session closes at this time plus the leeway.
    pub fn expires_at(&self) -> Option<u64> {
        self.expires_at
    }

    /// The subprotocols the client offered that may be selected, never the token one (see
    /// [`application_protocols`](crate::extract::application_protocols)): pass them to the
    /// upgrade (`WebSocketUpgrade::protocols`) so that the response selects one of them.
    pub fn application_protocols(&self) -> impl Iterator<Item = &str> {
        self.protocols.iter().map(|p| &**p)
    }
}
