//! A shared byte budget: caps the message bytes in flight across connections.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

#[derive(Debug)]
struct Inner {
    sem: Arc<Semaphore>,
    capacity: usize,
    in_flight: AtomicUsize,
    peak: AtomicUsize,
}

/// A semaphore of bytes. Clone it to share one budget between connections.
///
/// A connection reserves a literal's size when the server announces it, *before* reading it,
/// and the reservation lives in the [`Reservation`] attached to the fetched message until that
/// message is dropped. A literal larger than the whole budget reserves the whole budget (it then
/// runs alone).
#[derive(Clone, Debug)]
pub struct ByteBudget(Arc<Inner>);

/// Bytes reserved from a [`ByteBudget`]; released on drop.
#[derive(Debug, Default)]
pub struct Reservation {
    parts: Vec<(OwnedSemaphorePermit, usize, Arc<Inner>)>,
}

impl ByteBudget {
    /// A budget of `bytes` (at least 1).
    pub fn new(bytes: usize) -> Self {
        let capacity = bytes.clamp(1, (u32::MAX as usize).min(Semaphore::MAX_PERMITS));
        ByteBudget(Arc::new(Inner {
            sem: Arc::new(Semaphore::new(capacity)),
            capacity,
            in_flight: AtomicUsize::new(0),
            peak: AtomicUsize::new(0),
        }))
    }

    /// Total size of the budget.
    pub fn capacity(&self) -> usize {
        self.0.capacity
    }

    /// Bytes reserved right now.
    pub fn in_flight(&self) -> usize {
        self.0.in_flight.load(Ordering::Acquire)
    }

    /// Highest number of bytes ever reserved at once.
    pub fn peak(&self) -> usize {
        self.0.peak.load(Ordering::Acquire)
    }

    /// Waits until `bytes` (capped at the capacity) are free and reserves them.
    pub async fn reserve(&self, bytes: u64) -> Reservation {
        let n = usize::try_from(bytes)
            .unwrap_or(usize::MAX)
            .min(self.0.capacity);
        let mut r = Reservation::default();
        if n == 0 {
            return r;
        }
        // The semaphore is never closed, so acquire cannot fail; treat failure as zero reservation.
        let Ok(permit) = self.0.sem.clone().acquire_many_owned(n as u32).await else {
            return r;
        };
        let now = self.0.in_flight.fetch_add(n, Ordering::AcqRel) + n;
        self.0.peak.fetch_max(now, Ordering::AcqRel);
        r.parts.push((permit, n, self.0.clone()));
        r
    }
}

impl Reservation {
    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.parts.iter().map(|p| p.1).sum()
    }

    /// Moves the bytes held by `other` into this reservation.
    pub fn merge(&mut self, mut other: Reservation) {
        self.parts.append(&mut other.parts);
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        for (_permit, n, inner) in self.parts.drain(..) {
            inner.in_flight.fetch_sub(n, Ordering::AcqRel);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn reserve_blocks_until_released() {
        let b = ByteBudget::new(100);
        let r1 = b.reserve(60).await;
        assert_eq!(b.in_flight(), 60);
        let b2 = b.clone();
        let waiter = tokio::spawn(async move { b2.reserve(60).await.bytes() });
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        assert!(!waiter.is_finished(), "second reservation must wait");
        drop(r1);
        assert_eq!(waiter.await.unwrap(), 60);
        assert_eq!(b.peak(), 60);
        assert_eq!(b.reserve(1_000).await.bytes(), 100, "capped at capacity");
    }
}
