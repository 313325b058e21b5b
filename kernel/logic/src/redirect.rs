//! Redirection of old functions to their replacements.
//!
//! One record per patched old function (keyed by its ftrace call site), shared by every
//! patch that replaces it: a stack of (patch, replacement), newest on top. A hash table from
//! call site to current target is published (through RCU, by the kernel) for the ftrace
//! handler, which reads it without locks ([`Table::target`]); changing which replacement is
//! on top is one atomic store into the published table. All functions go through one
//! ftrace_ops, registered for the core's lifetime, whose filter changes in batches: enabling
//! or disabling a patch of N functions costs one ftrace update, not N, and never an
//! unregister (RCU-tasks waits).
//!
//! This is the narrow interface the rest of the core uses: add and remove a batch.

use crate::error::{Error, Result};
use crate::fallible::{push_reserved, try_insert, try_push};
use crate::seam::Kernel;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// A patch's identity inside the core.
pub type PatchId = u64;

struct FuncRecord {
    ip: usize,
    /// (patch, replacement), newest last.
    stack: Vec<(PatchId, usize)>,
}

impl FuncRecord {
    /// Where calls go: the newest replacement, or 0 (the original) when none is left.
    fn target(&self) -> usize {
        self.stack.last().map_or(0, |&(_, new)| new)
    }
}

struct Slot {
    ip: usize,
    target: AtomicUsize,
    /// Whether a call the handler could not redirect (ftrace's recursion guard tripped)
    /// has been reported for this call site.
    bypass_noted: AtomicBool,
}

/// Call site -> target, as the ftrace handler reads it: open addressing, linear probing, at
/// most half full; an empty slot has ip 0.
pub struct Table {
    shift: u32,
    slots: Vec<Slot>,
}

fn hash(ip: usize, shift: u32) -> usize {
    ((ip as u64 >> 4).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> shift) as usize
}

impl Table {
    fn build(n: usize, records: impl Iterator<Item = (usize, usize)>) -> Result<Table> {
        let size = n
            .checked_mul(2)
            .and_then(|x| x.max(8).checked_next_power_of_two())
            .ok_or(Error::ENOMEM)?;
        let shift = 64 - size.trailing_zeros();
        let mut slots = Vec::new();
        slots.try_reserve_exact(size).map_err(|_| Error::ENOMEM)?;
        for _ in 0..size {
            try_push(
                &mut slots,
                Slot {
                    ip: 0,
                    target: AtomicUsize::new(0),
                    bypass_noted: AtomicBool::new(false),
                },
            )?;
        }
        let mask = size - 1;
        for (ip, target) in records {
            let mut i = hash(ip, shift) & mask;
            while slots[i].ip != 0 {
                i = (i + 1) & mask;
            }
            slots[i] = Slot {
                ip,
                target: AtomicUsize::new(target),
                bypass_noted: AtomicBool::new(false),
            };
        }
        Ok(Table { shift, slots })
    }

    /// The handler's question: where does a call of `ip` go now? 0 = run the original.
    /// Lockless, allocation-free, safe in any context.
    pub fn target(&self, ip: usize) -> usize {
        self.slot(ip).map_or(0, |s| s.target.load(Ordering::Acquire))
    }

    /// The handler could not redirect a call of `ip` (ftrace's recursion guard tripped):
    /// whether that is worth a log line — the first time for a redirected call site (per
    /// table: a patch change starts afresh). Lockless, allocation-free, safe in any context.
    pub fn note_bypass(&self, ip: usize) -> bool {
        self.slot(ip)
            .is_some_and(|s| s.target.load(Ordering::Acquire) != 0 && !s.bypass_noted.swap(true, Ordering::Relaxed))
    }

    fn slot(&self, ip: usize) -> Option<&Slot> {
        let mask = self.slots.len().wrapping_sub(1);
        let mut i = hash(ip, self.shift) & mask;
        loop {
            let s = self.slots.get(i)?;
            if s.ip == ip {
                return Some(s);
            }
            if s.ip == 0 {
                return None;
            }
            i = (i + 1) & mask;
        }
    }
}

/// The records. Lives in the core's locked state; the table it builds reaches the handler
/// through the kernel ([`Kernel::publish`]).
#[derive(Default)]
pub struct Redirector {
    /// Sorted by ip.
    records: Vec<FuncRecord>,
}

impl Redirector {
    pub fn new() -> Self {
        Redirector { records: Vec::new() }
    }

    /// Every call site redirected now, in order.
    pub fn ips(&self) -> impl Iterator<Item = usize> + '_ {
        self.records.iter().map(|r| r.ip)
    }

    fn find(&self, ip: usize) -> core::result::Result<usize, usize> {
        self.records.binary_search_by_key(&ip, |r| r.ip)
    }

    /// Publishes record `i`'s current target to the handler.
    fn publish_target<K: Kernel>(&self, k: &K, i: usize) {
        let r = &self.records[i];
        k.with_published(&mut |t| {
            if let Some(s) = t.slot(r.ip) {
                s.target.store(r.target(), Ordering::Release);
            }
        });
    }

    /// Redirects every (call site, replacement) of `patch`, on top of what other patches
    /// put there. All or nothing: on error nothing changed.
    pub fn add<K: Kernel>(&mut self, k: &K, patch: PatchId, entries: &[(usize, usize)]) -> Result {
        // Reserve everything first, so nothing after the ftrace update can fail.
        let mut fresh: Vec<FuncRecord> = Vec::new();
        fresh.try_reserve_exact(entries.len()).map_err(|_| Error::ENOMEM)?;
        let mut fresh_ips: Vec<usize> = Vec::new();
        fresh_ips.try_reserve_exact(entries.len()).map_err(|_| Error::ENOMEM)?;
        for &(ip, new) in entries {
            match self.find(ip) {
                Ok(i) => self.records[i].stack.try_reserve(1).map_err(|_| Error::ENOMEM)?,
                Err(_) => {
                    let mut stack = Vec::new();
                    try_push(&mut stack, (patch, new))?;
                    try_push(&mut fresh, FuncRecord { ip, stack })?;
                    try_push(&mut fresh_ips, ip)?;
                }
            }
        }
        self.records.try_reserve(fresh.len()).map_err(|_| Error::ENOMEM)?;

        if !fresh.is_empty() {
            let all = self.records.iter().chain(fresh.iter()).map(|r| (r.ip, r.target()));
            let table = Table::build(self.records.len() + fresh.len(), all)?;
            let old = k.publish(Some(table))?;
            if let Err(e) = k.filter_add(&mut fresh_ips) {
                // Back to the old table: the old sites keep their targets.
                drop(k.restore(old));
                return Err(e);
            }
            drop(old);
            for rec in fresh {
                let at = self.find(rec.ip).unwrap_or_else(|at| at);
                // Capacity was reserved above: this cannot fail.
                let _ = try_insert(&mut self.records, at, rec);
            }
        }
        // Sites other patches had already: this patch goes on top (capacity reserved).
        for &(ip, new) in entries {
            if let Ok(i) = self.find(ip) {
                if self.records[i].stack.last().map(|&(p, _)| p) != Some(patch) {
                    let _ = push_reserved(&mut self.records[i].stack, (patch, new));
                    self.publish_target(k, i);
                }
            }
        }
        Ok(())
    }

    /// Removes `patch`'s redirection of each call site (wherever it sits in the stack).
    /// Call sites left with no replacement leave the ftrace filter and the table.
    pub fn remove<K: Kernel>(&mut self, k: &K, patch: PatchId, ips: &[usize]) {
        let mut emptied = 0;
        for &ip in ips {
            let Ok(i) = self.find(ip) else { continue };
            let r = &mut self.records[i];
            let before = r.stack.len();
            r.stack.retain(|&(q, _)| q != patch);
            if r.stack.len() != before {
                if r.stack.is_empty() {
                    emptied += 1;
                }
                self.publish_target(k, i);
            }
        }
        if emptied > 0 {
            self.drop_empty(k, emptied);
        }
    }

    /// Takes records with no replacement out of ftrace and the table. Until that succeeds
    /// they stay routed to the core with target 0, so calls run the original.
    fn drop_empty<K: Kernel>(&mut self, k: &K, count: usize) {
        let remaining = self.records.len() - count;
        let mut ips: Vec<usize> = Vec::new();
        let mut kept: Vec<FuncRecord> = Vec::new();
        if ips.try_reserve_exact(count).is_err() || kept.try_reserve_exact(remaining).is_err() {
            still_routed(k, count);
            return;
        }
        for r in self.records.iter().filter(|r| r.stack.is_empty()) {
            let _ = push_reserved(&mut ips, r.ip);
        }
        let table = if remaining == 0 {
            None
        } else {
            let live = self
                .records
                .iter()
                .filter(|r| !r.stack.is_empty())
                .map(|r| (r.ip, r.target()));
            match Table::build(remaining, live) {
                Ok(t) => Some(t),
                Err(_) => {
                    still_routed(k, count);
                    return;
                }
            }
        };
        // The table without them first (their calls find no slot: the original runs), then
        // out of the filter; if that fails, the old table (targets 0) goes back.
        let old = match k.publish(table) {
            Ok(old) => old,
            Err(_) => {
                still_routed(k, count);
                return;
            }
        };
        if let Err(e) = k.filter_remove(&mut ips) {
            log_err!(
                k,
                "cannot remove {} functions from ftrace ({}); they stay routed, unredirected",
                count,
                e
            );
            drop(k.restore(old));
            return;
        }
        drop(old);
        for r in self.records.drain(..) {
            if !r.stack.is_empty() {
                let _ = push_reserved(&mut kept, r);
            }
        }
        self.records = kept;
    }
}

/// The log line of a removal that ran out of memory: the call sites stay in the filter with
/// no replacement, so their calls run the originals.
fn still_routed<K: Kernel>(k: &K, count: usize) {
    log_warn!(
        k,
        "out of memory: {} unpatched functions stay routed through ftrace",
        count
    );
}
