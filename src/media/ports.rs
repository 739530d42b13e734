//! The RTP port pool: even ports of the configured range (`rtp.ports`) handed to calls, the odd
//! one above each kept for its RTCP (RFC 3550 §11), released when the call ends.
//!
//! Allocation starts at a random place in the range and walks on from the last port given, so
//! a port just released is not reused at once (a late packet of the old call would land in
//! the new one) and ports are not predictable from outside. The media IO binds the sockets;
//! a port it finds taken by another program is marked and skipped.

use std::ops::RangeInclusive;

/// The pool. Sans-IO: it only keeps account.
#[derive(Debug, Clone)]
pub struct PortPool {
    /// The first even port of the range.
    first: u16,
    /// One flag per even port: in use.
    used: Vec<bool>,
    /// The index to try next.
    cursor: usize,
    in_use: usize,
}

impl PortPool {
    /// A pool over `range` (even ports whose odd neighbour is also in the range), starting at
    /// the index `seed` picks.
    pub fn new(range: RangeInclusive<u16>, seed: u64) -> PortPool {
        let first = u32::from(*range.start()) + u32::from(*range.start()) % 2;
        let end = u32::from(*range.end());
        // Even ports first, first + 2, … whose odd neighbour is still in the range.
        let count = if end > first {
            ((end - first - 1) / 2 + 1) as usize
        } else {
            0
        };
        let first = u16::try_from(first).unwrap_or(u16::MAX);
        PortPool {
            first,
            used: vec![false; count],
            cursor: if count == 0 {
                0
            } else {
                (seed % count as u64) as usize
            },
            in_use: 0,
        }
    }

    /// Pairs in the pool.
    pub fn capacity(&self) -> usize {
        self.used.len()
    }

    pub fn in_use(&self) -> usize {
        self.in_use
    }

    /// The next free even port (its RTCP port is the one above), or `None` when all are in use.
    pub fn allocate(&mut self) -> Option<u16> {
        let count = self.used.len();
        for step in 0..count {
            let index = (self.cursor + step) % count;
            if !self.used[index] {
                self.used[index] = true;
                self.in_use += 1;
                self.cursor = (index + 1) % count;
                return Some(self.first + 2 * index as u16);
            }
        }
        None
    }

    /// Gives `port` back; ports not from this pool, or already free, are ignored.
    pub fn release(&mut self, port: u16) {
        let Some(index) = self.index_of(port) else {
            return;
        };
        if self.used[index] {
            self.used[index] = false;
            self.in_use -= 1;
        }
    }

    fn index_of(&self, port: u16) -> Option<usize> {
        let offset = port.checked_sub(self.first)?;
        (offset % 2 == 0)
            .then_some(usize::from(offset / 2))
            .filter(|&i| i < self.used.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_even_with_room_for_rtcp_and_all_are_used_before_reuse() {
        let mut pool = PortPool::new(16_384..=16_399, 3);
        assert_eq!(pool.capacity(), 8);
        let mut seen = Vec::new();
        while let Some(port) = pool.allocate() {
            assert_eq!(port % 2, 0);
            assert!((16_384..=16_398).contains(&port) && port < 16_399);
            seen.push(port);
        }
        seen.sort_unstable();
        seen.dedup();
        assert_eq!(seen.len(), 8);
        assert_eq!(pool.in_use(), 8);
        assert_eq!(pool.allocate(), None, "exhausted");
        pool.release(16_390);
        pool.release(16_390);
        pool.release(17_000);
        pool.release(16_391);
        assert_eq!(pool.in_use(), 7);
        assert_eq!(pool.allocate(), Some(16_390));
    }

    #[test]
    fn a_released_port_is_not_given_again_at_once() {
        let mut pool = PortPool::new(20_000..=20_099, 0);
        let a = pool.allocate().expect("free");
        pool.release(a);
        let b = pool.allocate().expect("free");
        assert_ne!(a, b);
    }

    #[test]
    fn odd_and_tiny_ranges() {
        let pool = PortPool::new(10_001..=10_004, 0);
        assert_eq!(pool.capacity(), 1, "10002 with 10003");
        let mut pool = PortPool::new(10_000..=10_000, 0);
        assert_eq!(pool.capacity(), 0);
        assert_eq!(pool.allocate(), None);
        let pool = PortPool::new(65_534..=65_535, 9);
        assert_eq!(pool.capacity(), 1);
    }
}
