//! Signed class tokens: who may enter which class, as what, until when.
//!
//! `base64url(payload) "." base64url(HMAC-SHA256(secret, base64url(payload)))`. HMAC rather than a
//! JWT library: one algorithm, no header to negotiate, nothing to misconfigure.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::hmac;
use serde::{Deserialize, Serialize};

use crate::protocol::ParticipantRole;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub v: u32,
    /// What the link makes its holder: the master classroom (the teacher's link), a remote
    /// classroom (the invite link) or a pupil (the voting link). No link is issued for a viewer:
    /// a viewer joins with an invite link.
    pub role: ParticipantRole,
    pub class_id: String,
    /// Expiry, Unix seconds.
    pub exp: u64,
    pub nonce: String,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TokenError {
    #[error("the token is malformed")]
    Malformed,
    #[error("the token's signature does not match")]
    BadSignature,
    #[error("the token has expired")]
    Expired,
    #[error("the token is for another class")]
    OtherClass,
    #[error("the token's version is not spoken here")]
    Version,
}

/// The claims format this server signs and reads (`v`). A token of another version is refused
/// even with a good signature: its fields may not mean what they mean here.
pub const TOKEN_VERSION: u32 = 1;

/// Longest token accepted, so a forged megabyte is refused before any work.
const MAX_TOKEN_LEN: usize = 1024;

pub struct TokenKey(hmac::Key);

impl TokenKey {
    pub fn new(secret: &[u8]) -> Self {
        Self(hmac::Key::new(hmac::HMAC_SHA256, secret))
    }

    pub fn sign(&self, claims: &Claims) -> String {
        let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).unwrap_or_default());
        let tag = hmac::sign(&self.0, payload.as_bytes());
        format!("{payload}.{}", URL_SAFE_NO_PAD.encode(tag.as_ref()))
    }

    /// Check a token for `class_id` at time `now` (Unix seconds).
    pub fn verify(&self, token: &str, class_id: &str, now: u64) -> Result<Claims, TokenError> {
        let claims = self.verify_any(token, now)?;
        if claims.class_id != class_id {
            return Err(TokenError::OtherClass);
        }
        Ok(claims)
    }

    /// Check a token's signature and expiry, whatever class it names.
    pub fn verify_any(&self, token: &str, now: u64) -> Result<Claims, TokenError> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(TokenError::Malformed);
        }
        let (payload, tag) = token.split_once('.').ok_or(TokenError::Malformed)?;
        let tag = URL_SAFE_NO_PAD
            .decode(tag)
            .map_err(|_| TokenError::Malformed)?;
        hmac::verify(&self.0, payload.as_bytes(), &tag).map_err(|_| TokenError::BadSignature)?;
        let json = URL_SAFE_NO_PAD
            .decode(payload)
            .map_err(|_| TokenError::Malformed)?;
        let claims: Claims = serde_json::from_slice(&json).map_err(|_| TokenError::Malformed)?;
        if claims.v != TOKEN_VERSION {
            return Err(TokenError::Version);
        }
        if claims.exp <= now {
            return Err(TokenError::Expired);
        }
        Ok(claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(exp: u64) -> Claims {
        Claims {
            v: 1,
            role: ParticipantRole::Remote,
            class_id: "c_1".into(),
            exp,
            nonce: "n".into(),
        }
    }

    #[test]
    fn a_signed_token_verifies() {
        let key = TokenKey::new(b"secret");
        let token = key.sign(&claims(100));
        assert_eq!(
            key.verify(&token, "c_1", 50).unwrap().role,
            ParticipantRole::Remote
        );
    }

    #[test]
    fn forged_expired_and_foreign_tokens_are_refused() {
        let key = TokenKey::new(b"secret");
        let token = key.sign(&claims(100));
        assert_eq!(key.verify(&token, "c_1", 100), Err(TokenError::Expired));
        assert_eq!(key.verify(&token, "c_2", 50), Err(TokenError::OtherClass));
        let other = TokenKey::new(b"another secret").sign(&claims(100));
        assert_eq!(key.verify(&other, "c_1", 50), Err(TokenError::BadSignature));
        // Promote oneself to teacher by editing the payload: the signature no longer matches.
        let (_, tag) = token.split_once('.').unwrap();
        let mut forged = claims(100);
        forged.role = ParticipantRole::Master;
        let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&forged).unwrap());
        assert_eq!(
            key.verify(&format!("{payload}.{tag}"), "c_1", 50),
            Err(TokenError::BadSignature)
        );
        assert_eq!(key.verify("garbage", "c_1", 50), Err(TokenError::Malformed));
        // A well-signed token of another claims version.
        let mut v2 = claims(100);
        v2.v = 2;
        assert_eq!(
            key.verify(&key.sign(&v2), "c_1", 50),
            Err(TokenError::Version)
        );
        assert_eq!(
            key.verify(&"a.".repeat(2000), "c_1", 50),
            Err(TokenError::Malformed)
        );
    }
}
