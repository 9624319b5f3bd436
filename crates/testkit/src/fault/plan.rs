//! [`FaultPlan`]: which faults each connection gets, and bytes rewritten on the way.

use std::collections::BTreeMap;

use super::{Direction, Fault};
use crate::rng::{Rng, derive};

/// Which faults each connection gets, by accept order (0-based index).
///
/// A connection with explicit faults ([`FaultPlan::on_connection`]) gets exactly those;
/// any other gets [`FaultPlan::on_every_connection`]'s faults plus, if configured, a
/// seeded random cut ([`FaultPlan::with_random_cuts`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FaultPlan {
    scripts: BTreeMap<u64, Vec<Fault>>,
    every: Vec<Fault>,
    random: Option<RandomCuts>,
    rewrites: Vec<Rewrite>,
}

/// Bytes replaced in one direction of every connection (see [`FaultPlan::rewriting`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Rewrite {
    pub(super) direction: Direction,
    from: Vec<u8>,
    to: Vec<u8>,
}

impl Rewrite {
    /// Replaces every occurrence of `from` in `buf` by `to`; returns how many it replaced.
    /// Only occurrences that lie within one read are seen (IMAP commands are short lines).
    pub(super) fn apply(&self, buf: &mut [u8]) -> u64 {
        let mut n = 0;
        let mut at = 0;
        while let Some(off) = buf
            .get(at..)
            .and_then(|rest| rest.windows(self.from.len()).position(|w| w == self.from))
        {
            let start = at + off;
            buf[start..start + self.to.len()].copy_from_slice(&self.to);
            n += 1;
            at = start + self.from.len();
        }
        n
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct RandomCuts {
    seed: u64,
    one_in: u64,
    max_offset: u64,
}

impl FaultPlan {
    /// A plan without faults: a transparent proxy.
    pub fn new() -> Self {
        FaultPlan::default()
    }

    /// Adds `fault` to connection number `index` (0 = the first accepted).
    pub fn on_connection(mut self, index: u64, fault: Fault) -> Self {
        self.scripts.entry(index).or_default().push(fault);
        self
    }

    /// Adds `fault` to every connection that has no explicit faults.
    pub fn on_every_connection(mut self, fault: Fault) -> Self {
        self.every.push(fault);
        self
    }

    /// Cuts about 1 in `one_in` connections (those without explicit faults) after a random
    /// number of server → client bytes in `1..=max_offset`. Which connections and where is
    /// a pure function of `seed` and the connection index (see [`FaultPlan::faults_for`]).
    pub fn with_random_cuts(mut self, seed: u64, one_in: u64, max_offset: u64) -> Self {
        self.random = Some(RandomCuts {
            seed,
            one_in: one_in.max(1),
            max_offset: max_offset.max(1),
        });
        self
    }

    /// Replaces `from` by `to` (the same length; otherwise the rewrite is ignored) wherever it
    /// passes in `direction`, on every connection: e.g. an upstream rewrite of a command's UID
    /// set makes a real server leave a message out of its answer.
    pub fn rewriting(mut self, direction: Direction, from: &[u8], to: &[u8]) -> Self {
        if from.len() == to.len() && !from.is_empty() {
            self.rewrites.push(Rewrite {
                direction,
                from: from.to_vec(),
                to: to.to_vec(),
            });
        }
        self
    }

    /// The rewrites of this plan.
    pub(super) fn rewrites(&self) -> Vec<Rewrite> {
        self.rewrites.clone()
    }

    /// The faults connection `index` gets under this plan (deterministic).
    pub fn faults_for(&self, index: u64) -> Vec<Fault> {
        if let Some(s) = self.scripts.get(&index) {
            return s.clone();
        }
        let mut out = self.every.clone();
        if let Some(r) = self.random {
            let mut rng = Rng::new(derive(r.seed, index, 0x0066_6175_6c74));
            if rng.below(r.one_in) == 0 {
                out.push(Fault::cut().after_bytes(rng.range(1, r.max_offset)));
            }
        }
        out
    }
}
