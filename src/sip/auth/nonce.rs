//! Stateless nonces: the issue time and a MAC over it, so checking one needs only the key.
//!
//! ```text
//! nonce = hex(issued_at as u64, big-endian)                                 16 digits
//!         hex(HMAC-SHA256(key, LABEL || issued_at || realm)[..16])           32 digits
//! ```
//!
//! The realm is inside the MAC, so a nonce issued for one realm is refused in another even
//! under the same key. Nonces issued in the same second are equal; the replay guard tells
//! clients apart by their cnonce.

use std::fmt;

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use super::hash::hex;

/// Separates these MACs from any other use of the same key.
const LABEL: &[u8] = b"rswitch sip digest nonce v1\0";

/// Bytes of the MAC kept in the nonce: 128 bits.
const MAC_LEN: usize = 16;

/// Hex digits of the issue time.
const TIME_DIGITS: usize = 16;

/// Hex digits of the serial that makes every nonce of one server distinct.
const SERIAL_DIGITS: usize = 16;

/// Length of a nonce in characters.
const NONCE_LEN: usize = TIME_DIGITS + SERIAL_DIGITS + 2 * MAC_LEN;

/// The secret that signs nonces. Make it random when the server starts (or share one across
/// servers that must accept each other's nonces). `Debug` does not print it.
#[derive(Clone)]
pub struct NonceKey([u8; 32]);

impl NonceKey {
    pub fn new(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// A nonce for `realm` issued at `issued_at` (seconds since the Unix epoch).
    /// A nonce for `realm` issued at `issued_at`; `serial` makes it unique among the nonces
    /// issued in the same second.
    pub(super) fn issue(&self, realm: &str, issued_at: u64, serial: u64) -> String {
        let mut nonce = format!("{issued_at:016x}{serial:016x}");
        nonce.push_str(&self.mac_hex(realm, issued_at, serial));
        nonce
    }

    /// When `nonce` was issued, if this key issued it for `realm`.
    pub(super) fn issued_at(&self, realm: &str, nonce: &str) -> Option<u64> {
        if nonce.len() != NONCE_LEN || !nonce.bytes().all(is_lower_hex) {
            return None;
        }
        let (time, rest) = nonce.split_at(TIME_DIGITS);
        let (serial, mac) = rest.split_at(SERIAL_DIGITS);
        let issued_at = u64::from_str_radix(time, 16).ok()?;
        let serial = u64::from_str_radix(serial, 16).ok()?;
        let expected = self.mac_hex(realm, issued_at, serial);
        bool::from(expected.as_bytes().ct_eq(mac.as_bytes())).then_some(issued_at)
    }

    fn mac_hex(&self, realm: &str, issued_at: u64, serial: u64) -> String {
        let mut mac =
            Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC accepts keys of any length");
        mac.update(LABEL);
        mac.update(&issued_at.to_be_bytes());
        mac.update(&serial.to_be_bytes());
        mac.update(realm.as_bytes());
        hex(&mac.finalize().into_bytes()[..MAC_LEN])
    }
}

impl fmt::Debug for NonceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("NonceKey(***)")
    }
}

fn is_lower_hex(byte: u8) -> bool {
    byte.is_ascii_digit() || (b'a'..=b'f').contains(&byte)
}

#[cfg(test)]
mod tests {
    use super::*;

    const REALM: &str = "pbx.example.com";

    fn key(byte: u8) -> NonceKey {
        NonceKey::new([byte; 32])
    }

    #[test]
    fn issued_nonce_gives_back_its_time() {
        let nonce = key(7).issue(REALM, 1_700_000_000, 3);
        assert_eq!(nonce.len(), NONCE_LEN);
        assert_eq!(key(7).issued_at(REALM, &nonce), Some(1_700_000_000));
    }

    #[test]
    fn nonce_is_refused_under_another_key_or_realm() {
        let nonce = key(7).issue(REALM, 1_700_000_000, 3);
        assert_eq!(key(8).issued_at(REALM, &nonce), None);
        assert_eq!(key(7).issued_at("other.example.com", &nonce), None);
    }

    #[test]
    fn nonce_with_a_changed_time_or_mac_is_refused() {
        let nonce = key(7).issue(REALM, 1_700_000_000, 3);
        let later_time = format!("{:016x}{}", 1_800_000_000u64, &nonce[TIME_DIGITS..]);
        assert_eq!(key(7).issued_at(REALM, &later_time), None);
        let other_serial = format!(
            "{}{:016x}{}",
            &nonce[..TIME_DIGITS],
            4,
            &nonce[TIME_DIGITS + SERIAL_DIGITS..]
        );
        assert_eq!(key(7).issued_at(REALM, &other_serial), None);
        let mut flipped = nonce.clone().into_bytes();
        let last = flipped.last_mut().unwrap();
        *last = if *last == b'0' { b'1' } else { b'0' };
        let flipped = String::from_utf8(flipped).unwrap();
        assert_eq!(key(7).issued_at(REALM, &flipped), None);
    }

    #[test]
    fn nonce_of_wrong_shape_is_refused() {
        let nonce = key(7).issue(REALM, 1_700_000_000, 3);
        assert_eq!(key(7).issued_at(REALM, &nonce.to_uppercase()), None);
        assert_eq!(key(7).issued_at(REALM, &nonce[1..]), None);
        assert_eq!(key(7).issued_at(REALM, &format!("{nonce}0")), None);
        assert_eq!(key(7).issued_at(REALM, ""), None);
        assert_eq!(key(7).issued_at(REALM, &"é".repeat(24)), None);
    }

    #[test]
    fn nonces_of_one_second_differ_by_serial() {
        assert_ne!(
            key(7).issue(REALM, 1_700_000_000, 1),
            key(7).issue(REALM, 1_700_000_000, 2)
        );
    }

    #[test]
    fn key_is_redacted_in_debug() {
        assert_eq!(format!("{:?}", key(7)), "NonceKey(***)");
    }
}
