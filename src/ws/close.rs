//! Every WebSocket close code the crate sends, in one place.

use crate::error::ErrorCode;

/// Close code: the application dropped its socket handle (1000, normal closure).
pub const CLOSE_NORMAL: u16 = 1000;
/// Close code: a policy violation (1008): a client that keeps flooding past its message quota,
/// stops reading, keeps failing re-authentication, or whose address became locked out.
pub const CLOSE_POLICY_VIOLATION: u16 = 1008;
/// Close code: a message over the size limit (1009, message too big).
pub const CLOSE_MESSAGE_TOO_BIG: u16 = 1009;
/// Close code: any other authentication failure (4000).
pub const CLOSE_AUTH_FAILED: u16 = 4000;
/// Close code: no token (4001).
pub const CLOSE_MISSING_TOKEN: u16 = 4001;
/// Close code: invalid token, or credentials revoked during the session (4002).
pub const CLOSE_INVALID_TOKEN: u16 = 4002;
/// Close code: the token expired (4003), at the upgrade or during the session.
pub const CLOSE_TOKEN_EXPIRED: u16 = 4003;
/// Close code: locked out or rate limited (4029).
pub const CLOSE_TOO_MANY: u16 = 4029;

/// The close code that refuses an upgrade with `code`
/// ([`CloseFrameResponder`](super::CloseFrameResponder)).
pub fn close_code(code: ErrorCode) -> u16 {
    match code {
        ErrorCode::MissingToken => CLOSE_MISSING_TOKEN,
        ErrorCode::InvalidToken | ErrorCode::TokenRevoked => CLOSE_INVALID_TOKEN,
        ErrorCode::TokenExpired => CLOSE_TOKEN_EXPIRED,
        ErrorCode::LockedOut | ErrorCode::RateLimited => CLOSE_TOO_MANY,
        _ => CLOSE_AUTH_FAILED,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn close_codes() {
        assert_eq!(close_code(ErrorCode::MissingToken), 4001);
        assert_eq!(close_code(ErrorCode::InvalidToken), 4002);
        assert_eq!(close_code(ErrorCode::TokenRevoked), 4002);
        assert_eq!(close_code(ErrorCode::TokenExpired), 4003);
        assert_eq!(close_code(ErrorCode::LockedOut), 4029);
        assert_eq!(close_code(ErrorCode::RateLimited), 4029);
        assert_eq!(close_code(ErrorCode::AuthFailed), 4000);
        assert_eq!(close_code(ErrorCode::Forbidden), 4000);
        assert_eq!(close_code(ErrorCode::InvalidRequest), 4000);
    }
}
