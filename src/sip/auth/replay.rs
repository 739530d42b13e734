//! The replay guard: the highest nonce-count seen per nonce and client, in bounded memory.
//!
//! An entry is keyed by a SHA-256 of (nonce, username, cnonce). The cnonce is part of the key
//! because stateless nonces issued in the same second are equal for every client; a replayed
//! request repeats the cnonce, since the response covers it, so it still lands on its entry.
//!
//! Entries go when their nonce expires, and when the guard is full the one with the oldest
//! nonce goes first. Forgetting must not open a replay window, so the guard remembers the
//! newest issue time it has dropped: a nonce issued then or earlier that has no entry is
//! answered with [`Admission::Forgotten`], which the server turns into a stale challenge.

use std::collections::{BTreeSet, HashMap};
use std::fmt;

use sha2::{Digest, Sha256};

use super::NonceCount;

/// See the module doc. Owned by [`DigestServer`](super::DigestServer).
pub(super) struct ReplayGuard {
    capacity: usize,
    /// The highest nonce-count seen per entry.
    entries: HashMap<EntryKey, NonceCount>,
    by_issue_time: BTreeSet<(u64, EntryKey)>,
    /// The newest issue time among the entries dropped so far.
    forgotten_up_to: Option<u64>,
}

/// What the guard says about one verified request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Admission {
    /// A nonce-count higher than any before for this nonce and client: recorded.
    Accepted,
    /// A nonce-count already used (or lower) for this nonce and client.
    Replay,
    /// The entry for this nonce may have been dropped; the nonce can no longer be used.
    Forgotten,
}

/// One request as the guard sees it.
#[derive(Debug, Clone, Copy)]
pub(super) struct Use<'a> {
    pub(super) nonce: &'a str,
    pub(super) issued_at: u64,
    pub(super) username: &'a str,
    pub(super) cnonce: &'a str,
    pub(super) nc: NonceCount,
}

type EntryKey = [u8; 32];

impl ReplayGuard {
    /// A guard holding at most `capacity` entries; `capacity` is at least one (the server
    /// checks).
    pub(super) fn new(capacity: usize) -> Self {
        Self {
            capacity,
            entries: HashMap::new(),
            by_issue_time: BTreeSet::new(),
            forgotten_up_to: None,
        }
    }

    /// Entries held now.
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.entries.len()
    }

    /// Records `request` if its nonce-count is new. Entries for nonces issued before
    /// `expired_before` are dropped first.
    pub(super) fn admit(&mut self, request: Use<'_>, expired_before: u64) -> Admission {
        self.drop_expired(expired_before);
        let key = entry_key(&request);
        if let Some(highest) = self.entries.get_mut(&key) {
            if request.nc <= *highest {
                return Admission::Replay;
            }
            *highest = request.nc;
            return Admission::Accepted;
        }
        if self
            .forgotten_up_to
            .is_some_and(|forgotten| request.issued_at <= forgotten)
        {
            return Admission::Forgotten;
        }
        if self.entries.len() >= self.capacity {
            self.drop_oldest();
        }
        self.entries.insert(key, request.nc);
        self.by_issue_time.insert((request.issued_at, key));
        Admission::Accepted
    }

    fn drop_expired(&mut self, expired_before: u64) {
        while self
            .by_issue_time
            .first()
            .is_some_and(|(issued_at, _)| *issued_at < expired_before)
        {
            self.drop_oldest();
        }
    }

    fn drop_oldest(&mut self) {
        let Some((issued_at, key)) = self.by_issue_time.pop_first() else {
            return;
        };
        self.entries.remove(&key);
        self.forgotten_up_to = Some(self.forgotten_up_to.map_or(issued_at, |f| f.max(issued_at)));
    }
}

impl fmt::Debug for ReplayGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReplayGuard")
            .field("capacity", &self.capacity)
            .field("len", &self.entries.len())
            .field("forgotten_up_to", &self.forgotten_up_to)
            .finish()
    }
}

/// SHA-256 over the length-prefixed nonce, username and cnonce: fixed-size keys whatever the
/// peer sends, and no two different triples share a key.
fn entry_key(request: &Use<'_>) -> EntryKey {
    let mut hasher = Sha256::new();
    for field in [request.nonce, request.username, request.cnonce] {
        hasher.update((field.len() as u64).to_be_bytes());
        hasher.update(field.as_bytes());
    }
    hasher.finalize().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request<'a>(nonce: &'a str, issued_at: u64, cnonce: &'a str, nc: u32) -> Use<'a> {
        Use {
            nonce,
            issued_at,
            username: "alice",
            cnonce,
            nc: NonceCount(nc),
        }
    }

    #[test]
    fn increasing_counts_pass_and_repeated_or_lower_ones_do_not() {
        let mut guard = ReplayGuard::new(10);
        assert_eq!(
            guard.admit(request("n", 100, "c", 1), 0),
            Admission::Accepted
        );
        assert_eq!(guard.admit(request("n", 100, "c", 1), 0), Admission::Replay);
        assert_eq!(
            guard.admit(request("n", 100, "c", 3), 0),
            Admission::Accepted
        );
        assert_eq!(guard.admit(request("n", 100, "c", 2), 0), Admission::Replay);
        assert_eq!(
            guard.admit(request("n", 100, "c", 4), 0),
            Admission::Accepted
        );
        assert_eq!(guard.len(), 1);
    }

    #[test]
    fn clients_sharing_a_nonce_are_told_apart_by_cnonce() {
        let mut guard = ReplayGuard::new(10);
        assert_eq!(
            guard.admit(request("n", 100, "a", 1), 0),
            Admission::Accepted
        );
        assert_eq!(
            guard.admit(request("n", 100, "b", 1), 0),
            Admission::Accepted
        );
        assert_eq!(guard.len(), 2);
    }

    #[test]
    fn nonce_count_zero_is_never_new() {
        let mut guard = ReplayGuard::new(10);
        assert_eq!(
            guard.admit(request("n", 100, "c", 0), 0),
            Admission::Accepted
        );
        assert_eq!(guard.admit(request("n", 100, "c", 0), 0), Admission::Replay);
    }

    #[test]
    fn entries_of_expired_nonces_are_dropped() {
        let mut guard = ReplayGuard::new(10);
        guard.admit(request("old", 100, "c", 1), 0);
        guard.admit(request("new", 200, "c", 1), 0);
        assert_eq!(
            guard.admit(request("new", 200, "c", 2), 150),
            Admission::Accepted
        );
        assert_eq!(guard.len(), 1);
    }

    #[test]
    fn full_guard_drops_the_oldest_nonce_and_then_refuses_it() {
        let mut guard = ReplayGuard::new(2);
        guard.admit(request("a", 100, "c", 1), 0);
        guard.admit(request("b", 101, "c", 1), 0);
        assert_eq!(
            guard.admit(request("c", 102, "c", 1), 0),
            Admission::Accepted
        );
        assert_eq!(guard.len(), 2);
        // "a" was dropped: replaying its count must not pass as new.
        assert_eq!(
            guard.admit(request("a", 100, "c", 1), 0),
            Admission::Forgotten
        );
        assert_eq!(guard.admit(request("b", 101, "c", 1), 0), Admission::Replay);
        assert_eq!(
            guard.admit(request("d", 103, "c", 1), 0),
            Admission::Accepted
        );
    }
}
