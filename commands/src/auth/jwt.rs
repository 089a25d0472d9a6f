//! Short-lived HS256 access tokens.
//!
//! Expiry is checked against the time the caller passes in (the request's `now`), not the
//! library's own clock read, so the whole application layer takes time from one place and tests
//! can move it.

use chrono::{DateTime, Duration, Utc};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use pyairtable_domain::ids::UserId;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::CommandError;

/// Fewest bytes an HS256 signing secret may have.
pub const JWT_SECRET_MIN_BYTES: usize = 32;

/// The claims of an access token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessClaims {
    /// The user id.
    pub sub: String,
    /// Expiry, seconds since the Unix epoch.
    pub exp: i64,
    /// Issue time, seconds since the Unix epoch.
    pub iat: i64,
    /// Unique token id, for logs and future deny lists.
    pub jti: String,
    /// Whether the user was an instance admin when the token was issued.
    pub adm: bool,
}

/// Signs and checks access tokens with one shared secret.
#[derive(Clone)]
pub(crate) struct JwtKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
}

impl JwtKeys {
    pub(crate) fn new(secret: &[u8]) -> Result<Self, CommandError> {
        if secret.len() < JWT_SECRET_MIN_BYTES {
            return Err(CommandError::infra(
                "configuring authentication",
                format!(
                    "the JWT secret has {} bytes; at least {JWT_SECRET_MIN_BYTES} are needed",
                    secret.len()
                ),
            ));
        }
        Ok(Self {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
        })
    }

    /// Issues a token for `user_id` valid for `ttl` from `now`.
    pub(crate) fn issue(
        &self,
        user_id: &UserId,
        is_admin: bool,
        now: DateTime<Utc>,
        ttl: Duration,
    ) -> Result<(String, DateTime<Utc>), CommandError> {
        let expires_at = now + ttl;
        let claims = AccessClaims {
            sub: user_id.to_string(),
            exp: expires_at.timestamp(),
            iat: now.timestamp(),
            jti: Uuid::new_v4().to_string(),
            adm: is_admin,
        };
        let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(|e| CommandError::infra("signing an access token", e))?;
        Ok((token, expires_at))
    }

    /// Checks signature, algorithm and expiry; returns the claims.
    pub(crate) fn verify(
        &self,
        token: &str,
        now: DateTime<Utc>,
    ) -> Result<AccessClaims, CommandError> {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.validate_exp = false;
        validation.validate_aud = false;
        validation.leeway = 0;
        let data = jsonwebtoken::decode::<AccessClaims>(token, &self.decoding, &validation)
            .map_err(|_| CommandError::unauthorized("invalid access token"))?;
        if data.claims.exp <= now.timestamp() {
            return Err(CommandError::unauthorized("access token expired"));
        }
        Ok(data.claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pyairtable_domain::ids::UserId;

    fn keys() -> JwtKeys {
        JwtKeys::new(&[7u8; 32]).unwrap()
    }

    #[test]
    fn issued_token_verifies_until_it_expires() {
        let user = UserId::parse("usr0123456789abcd").unwrap();
        let now = Utc::now();
        let (token, exp) = keys()
            .issue(&user, true, now, Duration::minutes(15))
            .unwrap();
        let claims = keys().verify(&token, now).unwrap();
        assert_eq!(claims.sub, user.as_str());
        assert!(claims.adm);
        assert_eq!(claims.exp, exp.timestamp());
        let late = keys().verify(&token, now + Duration::minutes(15));
        assert!(matches!(late, Err(CommandError::Unauthorized { .. })));
    }

    #[test]
    fn tampered_or_foreign_tokens_fail() {
        let user = UserId::parse("usr0123456789abcd").unwrap();
        let now = Utc::now();
        let (token, _) = keys()
            .issue(&user, false, now, Duration::minutes(5))
            .unwrap();
        let other = JwtKeys::new(&[8u8; 32]).unwrap();
        assert!(other.verify(&token, now).is_err());
        let mut tampered = token.clone();
        tampered.push('x');
        assert!(keys().verify(&tampered, now).is_err());
        assert!(keys().verify("not.a.jwt", now).is_err());
        assert!(JwtKeys::new(b"short").is_err());
    }
}
