//! The consistency model: enabling or disabling a patch is a transition, during which each
//! task runs either all old or all new code of that patch. A task is switched (its state
//! set to the transition's goal) only where it is safe: when a walk finds none of the
//! patch's functions, old or new, on its reliably unwound stack, or as it leaves a system
//! call (only the exit path is on its stack then). Forks inherit their parent's state. The
//! transition ends when every task, idle tasks included, has the goal state; after it the
//! handler decides without per-task state again.
//!
//! The per-task state is the kernel's (`task_struct.patch_state` on a CONFIG_LIVEPATCH
//! kernel), with the in-kernel livepatch's values; the kernel side of the seam owns setting
//! and walking it ([`crate::seam::Kernel::tasks_begin`] and the methods after it). This file
//! holds what the logic decides: which code ranges block a task, and the record of the
//! transition running.

use crate::error::{Error, Result};
use crate::fallible::push_reserved;
use crate::redirect::PatchId;
use alloc::vec::Vec;

/// A task's state outside a transition.
pub const UNDEFINED: i32 = -1;
/// Runs the code below the transitioning patch (the old code, or an older patch's).
pub const UNPATCHED: i32 = 0;
/// Runs the transitioning patch's code.
pub const PATCHED: i32 = 1;

/// Where a transition goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Goal {
    /// Enabling: every task to the patch's code.
    Patched,
    /// Disabling: every task off it.
    Unpatched,
}

impl Goal {
    /// The task state that reaches this goal.
    pub fn state(self) -> i32 {
        match self {
            Goal::Patched => PATCHED,
            Goal::Unpatched => UNPATCHED,
        }
    }

    /// What the patch is once the goal is reached, for log lines.
    pub fn word(self) -> &'static str {
        match self {
            Goal::Patched => "enabled",
            Goal::Unpatched => "disabled",
        }
    }

    /// The value written to `enabled` that reverses a transition to this goal.
    pub fn reversing_value(self) -> u8 {
        match self {
            Goal::Patched => 0,
            Goal::Unpatched => 1,
        }
    }

    /// The state every task starts the transition in.
    pub fn initial(self) -> i32 {
        match self {
            Goal::Patched => UNPATCHED,
            Goal::Unpatched => PATCHED,
        }
    }
}

/// The code a task must not be inside to switch: [start, end) ranges, sorted, of every
/// function the transition changes, old and new.
#[derive(Default)]
pub struct Ranges {
    ranges: Vec<(usize, usize)>,
}

impl Ranges {
    /// Ranges with room for `n` (so filling them allocates nothing after).
    pub fn with_capacity(n: usize) -> Result<Ranges> {
        let mut ranges = Vec::new();
        ranges.try_reserve_exact(n).map_err(|_| Error::ENOMEM)?;
        Ok(Ranges { ranges })
    }

    /// Adds [start, start + size) (nothing for size 0); within the reserved capacity.
    pub fn add(&mut self, start: usize, size: usize) {
        if start != 0 && size != 0 {
            let _ = push_reserved(&mut self.ranges, (start, start.saturating_add(size)));
        }
    }

    /// Sorts them and merges those that overlap, for [`Ranges::hit`].
    pub fn seal(&mut self) {
        self.ranges.sort_unstable();
        let mut out = 0;
        for i in 0..self.ranges.len() {
            let (s, e) = self.ranges[i];
            if out > 0 && s <= self.ranges[out - 1].1 {
                self.ranges[out - 1].1 = self.ranges[out - 1].1.max(e);
            } else {
                self.ranges[out] = (s, e);
                out += 1;
            }
        }
        self.ranges.truncate(out);
    }

    /// The range `addr` (a return address on a stack) falls in, as its start, if any
    /// (after [`Ranges::seal`]: one binary search).
    pub fn hit(&self, addr: usize) -> Option<usize> {
        let i = self.ranges.partition_point(|&(s, _)| s <= addr);
        let (s, e) = *self.ranges.get(i.checked_sub(1)?)?;
        (addr < e).then_some(s)
    }

    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    pub fn len(&self) -> usize {
        self.ranges.len()
    }
}

/// The transition running.
pub struct Transition {
    pub patch: PatchId,
    /// Where it goes now (writing the opposite value to `enabled` reverses it).
    pub goal: Goal,
    /// Walks made so far (the first is made as the transition starts).
    pub attempts: u32,
    /// The longest a walk held the task list locked at once, in ns.
    pub longest_hold_ns: u64,
    /// When it began, and when it next names the tasks it waits for (the kernel's
    /// monotonic clock, ms).
    pub started_ms: u64,
    pub next_report_ms: u64,
    /// Whether tasks are switched at system call exit (from the second walk on).
    pub exit_switch: bool,
}

/// How often a transition that has not ended names the tasks it waits for, and nudges
/// them (a wake-up for kernel threads, a fake signal for user tasks), as the in-kernel
/// livepatch does.
pub const STALL_REPORT_MS: u64 = 15_000;

/// Why a walk could not switch a task.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Blocked {
    /// Running on another CPU.
    Running,
    /// Its stack cannot be unwound reliably.
    Unreliable,
    /// This return address on its stack is in a function the transition changes.
    InCode(usize),
}

/// A task a walk could not switch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Blocker {
    pub pid: i32,
    /// Its command name, NUL-padded (TASK_COMM_LEN).
    pub comm: [u8; 16],
    pub why: Blocked,
}

impl Blocker {
    /// The command name, up to its first NUL ("?" if not UTF-8).
    pub fn comm(&self) -> &str {
        let n = self.comm.iter().position(|&b| b == 0).unwrap_or(self.comm.len());
        core::str::from_utf8(&self.comm[..n]).unwrap_or("?")
    }
}

/// What nudging the tasks not yet switched did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Nudged {
    /// Kernel threads woken (if they sleep interruptibly).
    pub kthreads: usize,
    /// User tasks sent a fake signal (no signal is delivered: an interruptible sleep ends
    /// and the system call restarts, leaving through the switch at system call exit).
    pub user: usize,
}

/// What a walk of the tasks found.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WalkResult {
    /// Tasks (idle tasks included) not in the goal state after the walk.
    pub remaining: usize,
    /// Of those: running on another CPU, with a patched function on the stack, with a
    /// stack that cannot be unwound reliably.
    pub running: usize,
    pub in_patched_code: usize,
    pub unreliable: usize,
    /// The longest the walk held the task list locked at once (it lets go every few
    /// tasks), in ns.
    pub longest_hold_ns: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_hit() {
        let mut r = Ranges::with_capacity(3).unwrap();
        r.add(0x3000, 0x100);
        r.add(0x1000, 0x10);
        r.add(0x5000, 0);
        r.seal();
        assert_eq!(r.hit(0x1000), Some(0x1000));
        assert_eq!(r.hit(0x100f), Some(0x1000));
        assert_eq!(r.hit(0x1010), None);
        assert_eq!(r.hit(0x30ff), Some(0x3000));
        assert_eq!(r.hit(0xfff), None);
        assert_eq!(r.hit(0x5000), None);
        assert_eq!(r.len(), 2);
    }

    #[test]
    fn overlapping_ranges_merge() {
        let mut r = Ranges::with_capacity(3).unwrap();
        r.add(0x1000, 0x100);
        r.add(0x1080, 0x100);
        r.add(0x1180, 0x10);
        r.seal();
        assert_eq!(r.len(), 1);
        assert_eq!(r.hit(0x118f), Some(0x1000));
        assert_eq!(r.hit(0x1190), None);
    }
}
