//! Password hashing with Argon2id.
//!
//! Hashing is deliberately slow, so it runs on the blocking pool and never stalls the async
//! runtime. Verification reads its cost parameters from the stored PHC string, so raising the
//! cost later keeps old hashes verifiable.

use argon2::password_hash::phc::PasswordHash as PhcHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use argon2::{Algorithm, Argon2, Params, Version};

use crate::error::CommandError;

/// Fewest characters a new password may have.
pub const PASSWORD_MIN_CHARS: usize = 8;
/// Most bytes a password may have; longer input is refused before hashing to bound the work
/// an anonymous caller can cause.
pub const PASSWORD_MAX_BYTES: usize = 1024;

/// Argon2id cost parameters for new hashes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PasswordCost {
    /// Memory in KiB.
    pub memory_kib: u32,
    /// Number of passes.
    pub iterations: u32,
    /// Lanes.
    pub parallelism: u32,
}

impl PasswordCost {
    /// OWASP's recommended Argon2id setting (19 MiB, 2 passes, 1 lane).
    pub const RECOMMENDED: Self = Self {
        memory_kib: 19 * 1024,
        iterations: 2,
        parallelism: 1,
    };

    /// The cheapest setting Argon2 accepts. Only for tests: it makes offline guessing cheap.
    pub const INSECURE_FAST: Self = Self {
        memory_kib: 8,
        iterations: 1,
        parallelism: 1,
    };

    fn hasher(self) -> Result<Argon2<'static>, CommandError> {
        let params = Params::new(self.memory_kib, self.iterations, self.parallelism, None)
            .map_err(|e| CommandError::infra("configuring argon2", e.to_string()))?;
        Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
    }
}

impl Default for PasswordCost {
    fn default() -> Self {
        Self::RECOMMENDED
    }
}

/// Checks a new password against the length policy.
///
/// # Errors
/// [`CommandError::Rejected`] with code `weak_password` or `password_too_long`.
pub fn check_password_policy(password: &str) -> Result<(), CommandError> {
    if password.len() > PASSWORD_MAX_BYTES {
        return Err(CommandError::rejected(
            "password_too_long",
            format!("password has more than {PASSWORD_MAX_BYTES} bytes"),
        ));
    }
    if password.chars().count() < PASSWORD_MIN_CHARS {
        return Err(CommandError::rejected(
            "weak_password",
            format!("password must have at least {PASSWORD_MIN_CHARS} characters"),
        ));
    }
    Ok(())
}

/// Hashes a new password (after checking the policy) into a PHC string with a fresh salt.
///
/// # Errors
/// A rejection from [`check_password_policy`], or an infrastructure error when hashing fails.
pub async fn hash_password(cost: PasswordCost, password: &str) -> Result<String, CommandError> {
    check_password_policy(password)?;
    let password = password.to_owned();
    tokio::task::spawn_blocking(move || {
        let hash = cost
            .hasher()?
            .hash_password(password.as_bytes())
            .map_err(|e| CommandError::infra("hashing a password", e.to_string()))?;
        Ok(hash.to_string())
    })
    .await
    .map_err(|e| CommandError::infra("hashing a password", e))?
}

/// Whether `password` matches the PHC string `hash`. A malformed hash never matches.
///
/// # Errors
/// An infrastructure error only when the blocking pool is gone.
pub async fn verify_password(hash: &str, password: &str) -> Result<bool, CommandError> {
    if password.len() > PASSWORD_MAX_BYTES {
        return Ok(false);
    }
    let hash = hash.to_owned();
    let password = password.to_owned();
    tokio::task::spawn_blocking(move || {
        let Ok(parsed) = PhcHash::new(&hash) else {
            return false;
        };
        // The stored string carries its own parameters; the default instance only supplies
        // the algorithm implementation.
        Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok()
    })
    .await
    .map_err(|e| CommandError::infra("verifying a password", e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hash_then_verify() {
        let hash = hash_password(PasswordCost::INSECURE_FAST, "correct horse")
            .await
            .unwrap();
        assert!(hash.starts_with("$argon2id$"));
        assert!(verify_password(&hash, "correct horse").await.unwrap());
        assert!(!verify_password(&hash, "wrong horse!").await.unwrap());
        assert!(
            !verify_password("not a phc string", "correct horse")
                .await
                .unwrap()
        );
    }

    #[tokio::test]
    async fn policy_rejects_short_and_huge_passwords() {
        let short = hash_password(PasswordCost::INSECURE_FAST, "short").await;
        assert!(matches!(
            short,
            Err(CommandError::Rejected {
                code: "weak_password",
                ..
            })
        ));
        let huge = "x".repeat(PASSWORD_MAX_BYTES + 1);
        let huge = hash_password(PasswordCost::INSECURE_FAST, &huge).await;
        assert!(matches!(
            huge,
            Err(CommandError::Rejected {
                code: "password_too_long",
                ..
            })
        ));
    }
}
