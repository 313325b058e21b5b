//! Redirection of old functions to their replacements.
//!
//! One record per patched old function (keyed by its ftrace call site), shared by every
//! patch that replaces it: a stack of (patch, replacement), newest on top. A hash table from
//! call site to current target is published (through RCU, by the kernel) for the ftrace
//! handler, which reads it without locks ([`Table::target`]); changing which replacement is
//! on top is one atomic store into the published table. All functions go through one
//! ftrace_ops whose filter changes in batches: enabling or disabling a patch of N functions
//! costs one ftrace update, not N. The ops is registered only while some function is
//! redirected, as the in-kernel livepatch holds its ops: with nothing patched, ftrace is the
//! kernel's alone again (`sysctl kernel.ftrace_enabled=0` works; a registered ops is
//! permanent and refuses it). The first function redirected registers it (one ftrace
//! update, as a filter change costs); the last one gone unregisters it, which waits for
//! ftrace's RCU-tasks grace periods (~0.1 s): only the last disable pays that.
//!
//! This is the narrow interface the rest of the core uses: add and remove a batch.

use crate::error::{Error, Result};
use crate::fallible::{push_reserved, try_insert, try_push};
use crate::log::Count;
use crate::seam::Kernel;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// A patch's identity inside the core.
pub type PatchId = u64;

struct FuncRecord {
    ip: usize,
    /// (patch, replacement), newest last.
    stack: Vec<(PatchId, usize)>,
    /// The newest entry is in a transition: each task's state picks it or the one below.
    transition: bool,
}

impl FuncRecord {
    /// Where calls go: the newest replacement, or 0 (the original) when none is left.
    fn target(&self) -> usize {
        self.stack.last().map_or(0, |&(_, new)| new)
    }

    /// Where calls of a task not (yet) switched to the newest entry go during a transition:
    /// the entry below it, or 0 (the original).
    fn prev(&self) -> usize {
        match self.stack.len() {
            0 | 1 => 0,
            n => self.stack[n - 2].1,
        }
    }
}

/// A slot's `target` while a transition decides per task (never a function's address).
const IN_TRANSITION: usize = usize::MAX;

struct Slot {
    ip: usize,
    /// Where calls go, or [`IN_TRANSITION`]: then `new` or `prev` by the task's state.
    target: AtomicUsize,
    /// During a transition: where calls of a task switched to the patch go.
    new: AtomicUsize,
    /// During a transition: where calls of a task in the UNPATCHED state go.
    prev: AtomicUsize,
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

/// [`Table::target`]'s path for a slot in transition: the call site first, as the handler
/// got it, so the common path moves no register for it.
#[cold]
#[inline(never)]
fn in_transition(ip: usize, table: &Table, task_state: impl FnOnce() -> i32) -> usize {
    let Some(s) = table.slot(ip) else { return 0 };
    if task_state() == crate::transition::UNPATCHED {
        s.prev.load(Ordering::Acquire)
    } else {
        s.new.load(Ordering::Acquire)
    }
}

fn hash(ip: usize, shift: u32) -> usize {
    ((ip as u64 >> 4).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> shift) as usize
}

impl Table {
    fn build(n: usize, records: impl Iterator<Item = (usize, usize, usize, bool)>) -> Result<Table> {
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
                    new: AtomicUsize::new(0),
                    prev: AtomicUsize::new(0),
                    bypass_noted: AtomicBool::new(false),
                },
            )?;
        }
        let mask = size - 1;
        for (ip, target, prev, transition) in records {
            let mut i = hash(ip, shift) & mask;
            while slots[i].ip != 0 {
                i = (i + 1) & mask;
            }
            slots[i] = Slot {
                ip,
                target: AtomicUsize::new(if transition { IN_TRANSITION } else { target }),
                new: AtomicUsize::new(target),
                prev: AtomicUsize::new(prev),
                bypass_noted: AtomicBool::new(false),
            };
        }
        Ok(Table { shift, slots })
    }

    /// The handler's question: where does a call of `ip` go now? 0 = run the original.
    /// During a transition of the function, the calling task's state decides
    /// (`task_state`, read only then: [`crate::transition::UNPATCHED`] takes the entry
    /// below the newest). Lockless, allocation-free, safe in any context.
    ///
    /// One load and one compare more than a plain lookup: a slot in transition has
    /// [`IN_TRANSITION`] as its target, stored after the two it chooses from (so a reader
    /// that sees it sees them), and a transition ends by storing the final target over it.
    #[inline]
    pub fn target(&self, ip: usize, task_state: impl FnOnce() -> i32) -> usize {
        let Some(s) = self.slot(ip) else { return 0 };
        match s.target.load(Ordering::Acquire) {
            // Out of line (it finds the slot again): the common path keeps no stack frame
            // and no more instructions than the compare.
            IN_TRANSITION => in_transition(ip, self, task_state),
            target => target,
        }
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
/// through the kernel ([`Kernel::publish`]), and the ftrace_ops is registered exactly while
/// there are records.
///
/// Adding allocates (and is refused whole when it cannot); removing never does: what a
/// removal needs — the list of call sites handed to ftrace — is reserved by the add before
/// it. A record whose last replacement is removed gets target 0 in the published table at
/// once (its calls run their own code) and leaves the filter with the next filter update
/// that succeeds: ftrace copies its filter to change it, which can fail for want of memory
/// (then it stays, logged, and the next state change tries again).
#[derive(Default)]
pub struct Redirector {
    /// Sorted by ip. Records with an empty stack are stale: routed through the filter
    /// still, with target 0.
    records: Vec<FuncRecord>,
    /// Empty between calls; capacity for every record's call site.
    sites: Vec<usize>,
    /// Whether the kernel's ftrace_ops is registered ([`Kernel::ops_register`]).
    registered: bool,
}

impl Redirector {
    pub fn new() -> Self {
        Redirector {
            records: Vec::new(),
            sites: Vec::new(),
            registered: false,
        }
    }

    /// Every call site in the ftrace filter now (redirected, or stale), in order.
    pub fn ips(&self) -> impl Iterator<Item = usize> + '_ {
        self.records.iter().map(|r| r.ip)
    }

    /// The patch whose replacement calls of `ip` run now, and that replacement.
    pub fn top_of(&self, ip: usize) -> Option<(PatchId, usize)> {
        self.find(ip).ok().and_then(|i| self.records[i].stack.last().copied())
    }

    fn find(&self, ip: usize) -> core::result::Result<usize, usize> {
        self.records.binary_search_by_key(&ip, |r| r.ip)
    }

    /// Publishes record `i`'s current target (or its transition) to the handler, in the
    /// order [`Table::target`] relies on.
    fn publish_target<K: Kernel>(&self, k: &K, i: usize) {
        let r = &self.records[i];
        k.with_published(&mut |t| {
            if let Some(s) = t.slot(r.ip) {
                if r.transition {
                    s.prev.store(r.prev(), Ordering::Release);
                    s.new.store(r.target(), Ordering::Release);
                    s.target.store(IN_TRANSITION, Ordering::Release);
                } else {
                    s.target.store(r.target(), Ordering::Release);
                }
            }
        });
    }

    /// Redirects every (call site, replacement) of `patch`, on top of what other patches
    /// put there; in a transition (`transition`), for the tasks switched to it only. All or
    /// nothing: on error nothing changed.
    pub fn add<K: Kernel>(&mut self, k: &K, patch: PatchId, entries: &[(usize, usize)], transition: bool) -> Result {
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
                    try_push(&mut fresh, FuncRecord { ip, stack, transition })?;
                    try_push(&mut fresh_ips, ip)?;
                }
            }
        }
        let total = self.records.len() + fresh.len();
        self.records.try_reserve(fresh.len()).map_err(|_| Error::ENOMEM)?;
        // What a later removal hands to ftrace: every call site.
        self.sites.try_reserve(total).map_err(|_| Error::ENOMEM)?;

        if !fresh.is_empty() {
            let all = self
                .records
                .iter()
                .chain(fresh.iter())
                .map(|r| (r.ip, r.target(), r.prev(), r.transition));
            let table = Table::build(total, all)?;
            let old = k.publish(Some(table))?;
            let routed = if self.registered {
                k.filter_add(&mut fresh_ips)
            } else {
                // No records, so no ops: these are all the sites there are.
                k.filter_set(&mut fresh_ips).and_then(|()| k.ops_register())
            };
            if let Err(e) = routed {
                // Back to the old table: the old sites keep their targets.
                drop(k.restore(old));
                return Err(e);
            }
            self.registered = true;
            drop(old);
            for rec in fresh {
                let at = self.find(rec.ip).unwrap_or_else(|at| at);
                // Capacity was reserved above: this cannot fail.
                let _ = try_insert(&mut self.records, at, rec);
            }
        }
        // Sites already recorded (other patches', or stale): this patch goes on top
        // (capacity reserved).
        for &(ip, new) in entries {
            if let Ok(i) = self.find(ip) {
                if self.records[i].stack.last().map(|&(p, _)| p) != Some(patch) {
                    let _ = push_reserved(&mut self.records[i].stack, (patch, new));
                    self.records[i].transition = transition;
                    self.publish_target(k, i);
                }
            }
        }
        // A stale record left by an earlier failed filter update: try again now.
        self.drop_stale(k);
        Ok(())
    }

    /// Starts or ends a transition of `patch`'s entries at these call sites (where they are
    /// the newest): on, each task's state picks them or what is below; off, every task
    /// takes the newest. Never allocates.
    pub fn set_transition<K: Kernel>(&mut self, k: &K, patch: PatchId, ips: impl IntoIterator<Item = usize>, on: bool) {
        for ip in ips {
            let Ok(i) = self.find(ip) else { continue };
            if self.records[i].stack.last().map(|&(p, _)| p) == Some(patch) && self.records[i].transition != on {
                self.records[i].transition = on;
                self.publish_target(k, i);
            }
        }
    }

    /// Removes `patch`'s redirection of each call site (wherever it sits in the stack).
    /// Call sites left with no replacement run their own code at once and leave the
    /// ftrace filter. Never allocates.
    pub fn remove<K: Kernel>(&mut self, k: &K, patch: PatchId, ips: impl IntoIterator<Item = usize>) {
        for ip in ips {
            let Ok(i) = self.find(ip) else { continue };
            let r = &mut self.records[i];
            let before = r.stack.len();
            let top = r.stack.last().map(|&(q, _)| q) == Some(patch);
            r.stack.retain(|&(q, _)| q != patch);
            if r.stack.len() != before {
                if top {
                    // Whatever transition its entry was in ends with it.
                    r.transition = false;
                }
                self.publish_target(k, i);
            }
        }
        self.drop_stale(k);
    }

    /// Takes the records with no replacement out of the ftrace filter (one update: the
    /// filter is set to the call sites still redirected; with none left, the ops is
    /// unregistered instead) and out of the records. Their targets are 0 already. If
    /// ftrace cannot update its filter, they stay — logged, routed through the core to
    /// their own code — until a later call succeeds. Never allocates: `sites` was
    /// reserved by [`Redirector::add`].
    fn drop_stale<K: Kernel>(&mut self, k: &K) {
        let stale = self.records.iter().filter(|r| r.stack.is_empty()).count();
        if stale == 0 {
            return;
        }
        if stale == self.records.len() {
            self.stop(k);
            return;
        }
        self.sites.clear();
        let mut live = self.records.iter().filter(|r| !r.stack.is_empty()).map(|r| r.ip);
        if live.any(|ip| push_reserved(&mut self.sites, ip).is_err()) {
            // Cannot happen: add reserved a slot per record, and one.
            log_err!(
                k,
                "no room reserved to take {} out of ftrace; they stay routed, unredirected",
                Count(stale, "function")
            );
            self.sites.clear();
            return;
        }
        let r = k.filter_set(&mut self.sites);
        self.sites.clear();
        match r {
            Ok(()) => self.records.retain(|r| !r.stack.is_empty()),
            Err(e) => log_warn!(
                k,
                "ftrace cannot take {} out of lpatch's filter ({}): their calls run their own code; retried at the next change",
                Count(stale, "unpatched function"),
                e
            ),
        }
    }

    /// Nothing is redirected any more: unregisters the ftrace_ops (after which no handler
    /// runs: ftrace waits for them) and frees the table. Never allocates. If ftrace
    /// refuses, the records stay, unredirected, and the next change tries again.
    fn stop<K: Kernel>(&mut self, k: &K) {
        if let Err(e) = k.ops_unregister() {
            log_warn!(
                k,
                "ftrace cannot unregister lpatch's ftrace_ops ({}): {} stay routed through it, to their own code; retried at the next change",
                e,
                Count(self.records.len(), "unpatched function")
            );
            return;
        }
        self.registered = false;
        self.records.clear();
        // Unpublishing allocates nothing; the old table is freed after a grace period.
        if let Ok(old) = k.publish(None) {
            drop(old);
        }
    }
}
