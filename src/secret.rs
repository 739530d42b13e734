//! Secrets: a wrapper that keeps them out of logs, random passwords, and argon2 hashing.
//!
//! What this module does not do: decide who may see a secret. `Secret` serializes to its plain
//! value (the store and the API need it); only `Debug` and `Display` are redacted.

use std::fmt;

use argon2::Argon2;
use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use rand::RngExt;
use serde::{Deserialize, Serialize};

/// A string that must never appear in logs: `Debug` and `Display` print `***`.
#[derive(Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret in clear. Call sites are the places that really need it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl utoipa::PartialSchema for Secret {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::schema::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .format(Some(utoipa::openapi::schema::SchemaFormat::Custom(
                "password".to_owned(),
            )))
            .into()
    }
}

impl utoipa::ToSchema for Secret {}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// Characters of generated passwords: letters and digits without the look-alikes
/// (0/O, 1/l/I), so a password read off a screen can be typed into a phone.
const PASSWORD_ALPHABET: &[u8] = b"23456789abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ";

/// Length of generated passwords: 16 characters of a 56-symbol alphabet, about 93 bits.
pub const GENERATED_PASSWORD_LEN: usize = 16;

/// A new random password from the operating system's CSPRNG.
pub fn random_password() -> Secret {
    let mut rng = rand::rng();
    let password = (0..GENERATED_PASSWORD_LEN)
        .map(|_| PASSWORD_ALPHABET[rng.random_range(0..PASSWORD_ALPHABET.len())] as char)
        .collect::<String>();
    Secret(password)
}

/// An argon2id hash of `password` in PHC string form.
///
/// # Errors
/// Only if argon2 itself fails, which with the default parameters means memory allocation failed.
pub fn hash_password(password: &str) -> Result<String, argon2::password_hash::Error> {
    Ok(Argon2::default()
        .hash_password(password.as_bytes())?
        .to_string())
}

/// Whether `password` matches the PHC `hash`. A malformed hash never matches.
pub fn verify_password(password: &str, hash: &str) -> bool {
    let Ok(parsed) = PasswordHash::new(hash) else {
        return false;
    };
    Argon2::default()
        .verify_password(password.as_bytes(), &parsed)
        .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_is_redacted_in_debug_and_display() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s:?}"), "***");
        assert_eq!(format!("{s}"), "***");
        assert_eq!(s.expose(), "hunter2");
    }

    #[test]
    fn random_passwords_are_long_distinct_and_from_the_alphabet() {
        let a = random_password();
        let b = random_password();
        assert_eq!(a.expose().len(), GENERATED_PASSWORD_LEN);
        assert_ne!(a, b);
        assert!(a.expose().bytes().all(|c| PASSWORD_ALPHABET.contains(&c)));
    }

    #[test]
    fn hash_verifies_only_the_right_password() {
        let hash = hash_password("correct horse").unwrap();
        assert!(hash.starts_with("$argon2id$"));
        assert!(verify_password("correct horse", &hash));
        assert!(!verify_password("wrong", &hash));
        assert!(!verify_password("correct horse", "not a hash"));
    }
}
