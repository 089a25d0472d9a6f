//! Random identifiers and secrets, their hashes, constant-time comparison, and the two token
//! formats: API tokens (`pat<14 characters>.<64 hex digits>`) and refresh tokens.

use pyairtable_domain::ids::{Id, IdKind, TokenId};
use sha2::{Digest, Sha256};

/// Length in hex digits of an API token's secret part (32 random bytes).
pub const API_TOKEN_SECRET_HEX_LEN: usize = 64;

/// A fresh random id of any kind (14 random bytes mapped onto the id alphabet).
#[must_use]
pub fn new_id<K: IdKind>() -> Id<K> {
    Id::from_suffix(rand::random())
}

/// 32 random bytes as 64 lowercase hex digits.
#[must_use]
pub fn random_secret_hex() -> String {
    hex::encode(rand::random::<[u8; 32]>())
}

/// SHA-256 of `input`, as 64 lowercase hex digits.
#[must_use]
pub fn sha256_hex(input: &str) -> String {
    hex::encode(Sha256::digest(input.as_bytes()))
}

/// Compares two byte strings in time that depends only on their lengths.
#[must_use]
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    // black_box keeps the optimiser from turning the fold into an early-exit comparison.
    std::hint::black_box(diff) == 0
}

/// The two halves of an API token as a client presents it.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiTokenParts {
    /// The token's public id.
    pub id: TokenId,
    /// The secret, 64 lowercase hex digits.
    pub secret: String,
}

impl std::fmt::Debug for ApiTokenParts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiTokenParts")
            .field("id", &self.id)
            .field("secret", &"<redacted>")
            .finish()
    }
}

/// Formats the token string handed to the user once: `pat<14>.<64 hex>`.
#[must_use]
pub fn format_api_token(id: &TokenId, secret_hex: &str) -> String {
    format!("{id}.{secret_hex}")
}

/// Splits a presented API token; `None` when it does not have the expected shape.
#[must_use]
pub fn parse_api_token(token: &str) -> Option<ApiTokenParts> {
    let (id, secret) = token.split_once('.')?;
    let id = TokenId::parse(id).ok()?;
    let well_formed = secret.len() == API_TOKEN_SECRET_HEX_LEN
        && secret
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    well_formed.then(|| ApiTokenParts {
        id,
        secret: secret.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_token_round_trips_and_rejects_malformed_input() {
        let id: TokenId = new_id();
        let secret = random_secret_hex();
        let token = format_api_token(&id, &secret);
        let parts = parse_api_token(&token).unwrap();
        assert_eq!(parts.id, id);
        assert_eq!(parts.secret, secret);
        assert!(parse_api_token(&format!("{id}")).is_none());
        assert!(parse_api_token(&format!("{id}.{}", &secret[..63])).is_none());
        assert!(parse_api_token(&format!("{id}.{}", secret.to_uppercase())).is_none());
        assert!(parse_api_token(&format!("rec{}.{secret}", &id.as_str()[3..])).is_none());
        assert!(!format!("{parts:?}").contains(&secret));
    }

    #[test]
    fn constant_time_eq_compares_contents_and_lengths() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
    }

    #[test]
    fn sha256_hex_is_lowercase_64_digits() {
        let h = sha256_hex("x");
        assert_eq!(h.len(), 64);
        assert_eq!(
            h,
            "2d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717921a4881"
        );
    }
}
