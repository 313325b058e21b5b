// SPDX-License-Identifier: GPL-2.0-only
//! The consistency model's state machine on the host over the fake kernel (issue 27): a
//! transition switches each task only where no function of the patch, old or new, is on
//! its stack, or as it leaves a system call; until it ends each task runs all old or all new
//! code of the patch; forks inherit; running tasks and unreliable stacks block; the end
//! resets every state and gives the per-task state back. State changes during a transition
//! are refused (EBUSY), as is a transition while the in-kernel livepatch holds the state.

use lpatch_fake_kernel::{patch_desc, Fake, ModId, FUNC_SIZE};
use lpatch_logic::core::{Core, ModuleEvent};
use lpatch_logic::error::Error;
use lpatch_logic::transition::{Goal, PATCHED, UNDEFINED, UNPATCHED};

const KEY_A: usize = 0xa000;
const KEY_B: usize = 0xb000;

struct Machine {
    k: Fake,
    c: Core<Fake>,
    /// Two vmlinux functions the patches replace.
    f: usize,
    g: usize,
    pm: ModId,
}

/// Patch "a" of f and g registered; a shell-like task and a kernel thread exist.
fn machine() -> Machine {
    let k = Fake::new();
    let f = k.vmlinux_fn("f_one");
    let g = k.vmlinux_fn("g_two");
    let (pm, _) = k.module_live("a", &[]);
    let mut c = k.core();
    c.register(patch_desc(
        KEY_A,
        pm,
        "a",
        &[(None, &[("f_one", 0, 0), ("g_two", 0, 0)])],
    ))
    .unwrap();
    Machine { k, c, f, g, pm }
}

fn attr(c: &Core<Fake>, k: &Fake, patch: &str, a: &str) -> String {
    let dir = k.dir_id(&format!("lpatch/{patch}")).unwrap();
    let mut s = String::new();
    lpatch_logic::sysfs::show(c, dir, a.as_bytes(), &mut s).unwrap();
    s
}

fn new_of(c: &Core<Fake>, p: usize, func: usize) -> usize {
    c.patches[p].objects[0].funcs[func].new_func
}

#[test]
fn an_idle_machine_switches_at_once() {
    let mut m = machine();
    let t = m.k.add_task(&[0x1234]);
    m.c.enable(KEY_A).unwrap();
    // The first walk found every stack clean: the transition ended inside enable.
    assert_eq!(m.c.transition(), None);
    assert_eq!(m.k.walks(), 1);
    // No switch at system call exit was needed.
    assert_eq!(m.k.syscall_switches(), 0);
    assert_eq!(m.k.task_state(t), UNDEFINED);
    assert_eq!(m.k.call_as(t, m.f), new_of(&m.c, 0, 0));
    assert!(m
        .k
        .logged(&["patch a: transition to enabled complete (1 walk;"]));
    assert_eq!(attr(&m.c, &m.k, "a", "transition"), "0\n");
    m.k.check_invariants(&m.c, &[(m.pm, 1)]);
    m.c.disable(KEY_A).unwrap();
    assert_eq!(m.c.transition(), None);
    assert_eq!(m.k.call_as(t, m.f), m.f);
    assert!(m.k.logged(&["disabled patch a"]));
    m.k.check_invariants(&m.c, &[]);
}

#[test]
fn a_task_sleeping_in_an_old_function_holds_the_transition_until_it_leaves() {
    let mut m = machine();
    let shell = m.k.add_task(&[0x5000]);
    // A kernel thread asleep inside g_two (a return address in its body).
    let kthread = m.k.add_task(&[0x7000, m.g + 0x20]);
    m.c.enable(KEY_A).unwrap();
    assert_eq!(m.c.transition(), Some((m.c.patches[0].id, Goal::Patched)));
    assert_eq!(attr(&m.c, &m.k, "a", "transition"), "1\n");
    assert_eq!(attr(&m.c, &m.k, "a", "enabled"), "1\n");
    assert_eq!(m.k.task_state(shell), PATCHED);
    assert_eq!(m.k.task_state(kthread), UNPATCHED);
    // Each task runs all old or all new code of the patch.
    let (nf, ng) = (new_of(&m.c, 0, 0), new_of(&m.c, 0, 1));
    assert_eq!((m.k.call_as(shell, m.f), m.k.call_as(shell, m.g)), (nf, ng));
    assert_eq!(
        (m.k.call_as(kthread, m.f), m.k.call_as(kthread, m.g)),
        (m.f, m.g)
    );
    // A fork inherits its parent's state, whichever it is.
    let child = m.k.fork(kthread);
    assert_eq!(m.k.call_as(child, m.f), m.f);
    let child2 = m.k.fork(shell);
    assert_eq!(m.k.call_as(child2, m.f), nf);
    // Walks again: still inside.
    assert!(!m.c.try_complete_transition());
    assert_eq!(m.k.task_state(kthread), UNPATCHED);
    m.k.check_invariants(&m.c, &[(m.pm, 1)]);
    // Other changes wait for it.
    assert_eq!(m.c.enable(KEY_A), Err(Error::EBUSY));
    assert!(m.k.logged(&[
        "cannot enable patch a: patch a is in a transition to enabled; wait for it to end, or reverse it (write 0 to its enabled)"
    ]));
    // It wakes and leaves g_two: the next walk switches it (and the child), and the
    // transition ends: no per-task state any more.
    m.k.set_stack(kthread, &[0x7000]);
    assert!(m.c.try_complete_transition());
    assert_eq!(m.c.transition(), None);
    for t in [shell, kthread, child, child2] {
        assert_eq!(m.k.task_state(t), UNDEFINED);
        assert_eq!(m.k.call_as(t, m.g), ng);
    }
    assert_eq!(m.k.syscall_switching(), None);
    assert!(m
        .k
        .logged(&["patch a: transition to enabled complete (3 walks;"]));
    assert_eq!(attr(&m.c, &m.k, "a", "transition"), "0\n");
    m.k.check_invariants(&m.c, &[(m.pm, 1)]);
}

#[test]
fn a_task_leaving_a_system_call_switches_there() {
    let mut m = machine();
    // Inside f_one (say, it called into a sleeping function from there).
    let t = m.k.add_task(&[m.f + 0x8]);
    m.c.enable(KEY_A).unwrap();
    // On from the second walk (the first could not finish).
    assert_eq!(m.k.syscall_switching(), Some(PATCHED));
    assert_eq!(m.k.call_as(t, m.f), m.f);
    m.k.syscall_exit(t);
    assert_eq!(m.k.call_as(t, m.f), new_of(&m.c, 0, 0));
    // Its stack still says f_one (the fake does not unwind it), but it is switched: the
    // walk only looks at tasks not in the goal state.
    assert!(m.c.try_complete_transition());
    m.k.check_invariants(&m.c, &[(m.pm, 1)]);
}

#[test]
fn running_tasks_and_unreliable_stacks_are_not_switched_by_a_walk() {
    let mut m = machine();
    let busy = m.k.add_task(&[]);
    m.k.set_running(busy, true);
    let odd = m.k.add_task(&[]);
    m.k.set_unreliable(odd, true);
    m.c.enable(KEY_A).unwrap();
    assert_eq!(m.k.task_state(busy), UNPATCHED);
    assert_eq!(m.k.task_state(odd), UNPATCHED);
    m.k.set_running(busy, false);
    assert!(!m.c.try_complete_transition());
    assert_eq!(m.k.task_state(busy), PATCHED);
    m.k.set_unreliable(odd, false);
    assert!(m.c.try_complete_transition());
    m.k.check_invariants(&m.c, &[(m.pm, 1)]);
}

#[test]
fn disabling_waits_for_tasks_in_the_new_code_and_then_unredirects() {
    let mut m = machine();
    let t = m.k.add_task(&[]);
    m.c.enable(KEY_A).unwrap();
    let nf = new_of(&m.c, 0, 0);
    // Asleep inside the replacement of f_one.
    m.k.set_stack(t, &[nf + 4]);
    let other = m.k.add_task(&[]);
    m.c.disable(KEY_A).unwrap();
    assert_eq!(m.c.transition(), Some((m.c.patches[0].id, Goal::Unpatched)));
    assert_eq!(attr(&m.c, &m.k, "a", "enabled"), "0\n");
    assert_eq!(attr(&m.c, &m.k, "a", "transition"), "1\n");
    assert!(!m.k.logged(&["disabled patch a"]));
    // The one inside keeps the patch's code; the switched one runs the old.
    assert_eq!(m.k.call_as(t, m.f), nf);
    assert_eq!(m.k.call_as(other, m.f), m.f);
    // Still redirected, still enabled underneath: unregistering is refused.
    assert_eq!(m.c.unregister(KEY_A), Err(Error::EBUSY));
    assert_eq!(m.c.disable(KEY_A), Err(Error::EBUSY));
    // The patch module stays pinned until no task can be in its code.
    assert_eq!(m.k.refs(m.pm), 1);
    m.k.set_stack(t, &[]);
    assert!(m.c.try_complete_transition());
    assert!(m.k.logged(&["disabled patch a"]));
    assert!(m
        .k
        .logged(&["patch a: transition to disabled complete (2 walks;"]));
    assert_eq!(m.k.call_as(t, m.f), m.f);
    assert!(m.k.filter().is_empty());
    m.c.unregister(KEY_A).unwrap();
    m.k.check_invariants(&m.c, &[]);
}

#[test]
fn a_patch_over_another_gives_unswitched_tasks_the_older_patch() {
    let mut m = machine();
    let (pm_b, _) = m.k.module_live("b", &[]);
    m.c.register(patch_desc(KEY_B, pm_b, "b", &[(None, &[("f_one", 0, 0)])]))
        .unwrap();
    m.c.enable(KEY_A).unwrap();
    let na = new_of(&m.c, 0, 0);
    // Inside a's replacement of f_one: b's transition must wait for it.
    let t = m.k.add_task(&[na + 2]);
    m.c.enable(KEY_B).unwrap();
    let nb = new_of(&m.c, 1, 0);
    assert!(m.c.transition().is_some());
    assert_eq!(
        m.k.call_as(t, m.f),
        na,
        "not switched: a's code, not the original"
    );
    let t2 = m.k.add_task(&[]);
    assert!(!m.c.try_complete_transition());
    assert_eq!(m.k.call_as(t2, m.f), nb);
    m.k.set_stack(t, &[]);
    assert!(m.c.try_complete_transition());
    assert_eq!(m.k.call_as(t, m.f), nb);
    // Disabling b: a task inside b's code holds it; the others get a's.
    m.k.set_stack(t, &[nb + 1]);
    m.c.disable(KEY_B).unwrap();
    assert_eq!(m.k.call_as(t, m.f), nb);
    assert_eq!(m.k.call_as(t2, m.f), na);
    m.k.set_stack(t, &[]);
    assert!(m.c.try_complete_transition());
    assert_eq!(m.k.call_as(t, m.f), na);
    m.k.check_invariants(&m.c, &[(m.pm, 1)]);
}

#[test]
fn the_in_kernel_livepatch_holding_the_task_state_refuses_the_transition() {
    let mut m = machine();
    m.k.set_klp_busy(true);
    assert_eq!(m.c.enable(KEY_A), Err(Error::EBUSY));
    assert!(m.k.logged(&[
        "patch a: the per-task patch state is in use",
        "the in-kernel livepatch is in a transition"
    ]));
    // Told for what it is, not as an ftrace conflict.
    assert!(!m.k.logged(&["another ftrace user"]), "{:#?}", m.k.log());
    // Nothing of it applied.
    assert!(m.k.filter().is_empty());
    assert_eq!(attr(&m.c, &m.k, "a", "enabled"), "0\n");
    m.k.check_invariants(&m.c, &[]);
    m.k.set_klp_busy(false);
    m.c.enable(KEY_A).unwrap();
    m.k.set_klp_busy(true);
    assert_eq!(m.c.disable(KEY_A), Err(Error::EBUSY));
    assert!(m
        .k
        .logged(&["cannot disable patch a: the per-task patch state is in use"]));
    assert_eq!(m.k.call(m.f), new_of(&m.c, 0, 0));
    m.k.set_klp_busy(false);
    m.c.disable(KEY_A).unwrap();
    m.k.check_invariants(&m.c, &[]);
}

#[test]
fn without_per_task_state_every_task_switches_at_once() {
    let mut m = machine();
    m.k.set_no_task_states();
    let t = m.k.add_task(&[0, m.f + 1]);
    m.c.enable(KEY_A).unwrap();
    assert_eq!(m.c.transition(), None);
    assert_eq!(m.k.walks(), 0);
    assert_eq!(m.k.call_as(t, m.f), new_of(&m.c, 0, 0));
    m.c.disable(KEY_A).unwrap();
    assert_eq!(m.k.call_as(t, m.f), m.f);
    // Nothing proves that no task is in its code: its module stays pinned for good.
    m.k.check_invariants(&m.c, &[(m.pm, 1)]);
    m.c.enable(KEY_A).unwrap();
    m.c.disable(KEY_A).unwrap();
    m.k.check_invariants(&m.c, &[(m.pm, 1)]);
}

#[test]
fn no_switch_at_system_call_exit_leaves_it_to_the_walks() {
    let mut m = machine();
    m.k.fail_next_syscall_switch(Error::ENOMEM);
    let t = m.k.add_task(&[m.g + 1]);
    m.c.enable(KEY_A).unwrap();
    assert!(m.k.logged(&[
        "transition of patch a: tasks cannot be switched at system call exit (",
        "walks switch them"
    ]));
    m.k.syscall_exit(t);
    assert_eq!(m.k.task_state(t), UNPATCHED);
    m.k.set_stack(t, &[]);
    assert!(m.c.try_complete_transition());
    m.k.check_invariants(&m.c, &[(m.pm, 1)]);
}

#[test]
fn the_patch_module_going_ends_its_transition() {
    let mut m = machine();
    let t = m.k.add_task(&[m.f + FUNC_SIZE - 1]);
    m.c.enable(KEY_A).unwrap();
    assert!(m.c.transition().is_some());
    m.k.set_state(m.pm, lpatch_fake_kernel::ModState::Going);
    m.c.module_event(ModuleEvent::Going, m.pm).unwrap();
    assert!(m.k.logged(&[
        "patch module a is going away in its transition: the transition ends at the next walk"
    ]));
    // Nothing of it is redirected any more; the claim is given back by the next walk.
    assert_eq!(m.k.call_as(t, m.f), m.f);
    assert!(m.c.transition().is_some());
    assert!(m.c.try_complete_transition());
    assert_eq!(m.c.transition(), None);
    while m.c.take_buried().is_some() {}
    m.k.check_invariants(&m.c, &[(m.pm, 1)]);
}

#[test]
fn one_transition_at_a_time() {
    let mut m = machine();
    let (pm_b, _) = m.k.module_live("b", &[]);
    m.c.register(patch_desc(KEY_B, pm_b, "b", &[(None, &[("f_one", 0, 0)])]))
        .unwrap();
    let t = m.k.add_task(&[m.f + 3]);
    m.c.enable(KEY_A).unwrap();
    assert_eq!(m.c.enable(KEY_B), Err(Error::EBUSY));
    assert!(m.k.logged(&[
        "cannot enable patch b: patch a is in a transition to enabled; wait for it to end"
    ]));
    assert_eq!(m.k.call_as(t, m.f), m.f);
    m.k.set_stack(t, &[]);
    assert!(m.c.try_complete_transition());
    m.c.enable(KEY_B).unwrap();
    m.k.check_invariants(&m.c, &[(m.pm, 1), (pm_b, 1)]);
}

#[test]
fn disabling_halfway_reverses_an_enable() {
    let mut m = machine();
    let shell = m.k.add_task(&[0x5000]);
    let kthread = m.k.add_task(&[0x7000, m.g + 0x20]);
    m.c.enable(KEY_A).unwrap();
    assert_eq!(m.k.syscall_switching(), Some(PATCHED));
    let (nf, ng) = (new_of(&m.c, 0, 0), new_of(&m.c, 0, 1));
    // The shell, switched, now sleeps inside the replacement of f_one; its fork too.
    m.k.set_stack(shell, &[nf + 4]);
    let child = m.k.fork(shell);
    m.c.disable(KEY_A).unwrap();
    assert!(m
        .k
        .logged(&["patch a: transition reversed, to disabled now"]));
    assert_eq!(m.c.transition(), Some((m.c.patches[0].id, Goal::Unpatched)));
    assert_eq!(attr(&m.c, &m.k, "a", "enabled"), "0\n");
    assert_eq!(attr(&m.c, &m.k, "a", "transition"), "1\n");
    // The switch at system call exit goes the new way too.
    assert_eq!(m.k.syscall_switching(), Some(UNPATCHED));
    // The kernel thread never left the old code: it is where the transition goes now. The
    // shell stays in the new code until it leaves; each runs all of one.
    assert_eq!(m.k.task_state(kthread), UNPATCHED);
    assert_eq!(m.k.task_state(shell), PATCHED);
    assert_eq!((m.k.call_as(shell, m.f), m.k.call_as(shell, m.g)), (nf, ng));
    assert_eq!(
        (m.k.call_as(kthread, m.f), m.k.call_as(kthread, m.g)),
        (m.f, m.g)
    );
    // Reversed again, and back: each write turns it.
    m.c.enable(KEY_A).unwrap();
    assert_eq!(m.c.transition(), Some((m.c.patches[0].id, Goal::Patched)));
    assert_eq!(m.k.syscall_switching(), Some(PATCHED));
    m.c.disable(KEY_A).unwrap();
    assert_eq!(m.k.syscall_switching(), Some(UNPATCHED));
    assert_eq!(m.k.refs(m.pm), 1);
    m.k.syscall_exit(shell);
    m.k.set_stack(child, &[]);
    assert!(m.c.try_complete_transition());
    assert!(m.k.logged(&["disabled patch a"]));
    assert!(m.k.logged(&["patch a: transition to disabled complete ("]));
    for t in [shell, kthread, child] {
        assert_eq!(m.k.call_as(t, m.f), m.f);
    }
    assert!(m.k.filter().is_empty());
    // Nothing of it runs: its module is free to go.
    assert_eq!(m.k.refs(m.pm), 0);
    m.k.check_invariants(&m.c, &[]);
}

#[test]
fn enabling_halfway_reverses_a_disable() {
    let mut m = machine();
    let t = m.k.add_task(&[]);
    m.c.enable(KEY_A).unwrap();
    let nf = new_of(&m.c, 0, 0);
    m.k.set_stack(t, &[nf + 4]);
    let other = m.k.add_task(&[]);
    m.c.disable(KEY_A).unwrap();
    assert_eq!(m.k.call_as(other, m.f), m.f);
    m.c.enable(KEY_A).unwrap();
    // The reversed walk switched the other task back at once; the one inside never left:
    // the transition ended where it began, the patch enabled, nothing unredirected.
    assert_eq!(m.c.transition(), None);
    assert!(m
        .k
        .logged(&["patch a: transition reversed, to enabled now"]));
    assert!(m.k.logged(&["patch a: transition to enabled complete ("]));
    assert!(!m.k.logged(&["disabled patch a"]));
    assert_eq!(attr(&m.c, &m.k, "a", "enabled"), "1\n");
    for task in [t, other] {
        assert_eq!(m.k.call_as(task, m.f), nf);
    }
    assert_eq!(m.k.refs(m.pm), 1);
    m.k.check_invariants(&m.c, &[(m.pm, 1)]);
}

#[test]
fn a_disabled_patch_module_is_not_pinned_and_may_be_enabled_again() {
    let mut m = machine();
    m.k.add_task(&[]);
    m.c.enable(KEY_A).unwrap();
    assert_eq!(m.k.refs(m.pm), 1);
    m.c.disable(KEY_A).unwrap();
    assert_eq!(m.k.refs(m.pm), 0);
    m.k.check_invariants(&m.c, &[]);
    // Enabled again before its module goes: pinned again, once.
    m.c.enable(KEY_A).unwrap();
    assert_eq!(m.k.refs(m.pm), 1);
    m.c.disable(KEY_A).unwrap();
    // rmmod: its exit unregisters, then the module goes.
    m.c.unregister(KEY_A).unwrap();
    while m.c.take_buried().is_some() {}
    m.c.module_event(ModuleEvent::Going, m.pm).unwrap();
    assert!(m.c.patches.is_empty());
    m.k.check_invariants(&m.c, &[]);
}

#[test]
fn a_stalled_transition_names_its_tasks_every_15_s_and_nudges_them() {
    let mut m = machine();
    let kthread = m.k.add_task(&[0x7000, m.g + 0x20]);
    m.k.set_kthread(kthread, "lpt_sleeper");
    let busy = m.k.add_task(&[]);
    m.k.set_running(busy, true);
    let odd = m.k.add_task(&[]);
    m.k.set_unreliable(odd, true);
    let clean = m.k.add_task(&[0x5000]);
    m.c.enable(KEY_A).unwrap();
    m.k.advance_ms(14_000);
    assert!(!m.c.try_complete_transition());
    assert!(!m.k.logged(&["not complete after"]), "{:#?}", m.k.log());
    assert_eq!(m.k.nudges(kthread), 0);
    m.k.advance_ms(1_000);
    assert!(!m.c.try_complete_transition());
    assert!(m.k.logged(&[
        "patch a: transition to enabled not complete after 15 s: 3 tasks not switched (1 in the patch's code, 1 running, 1 with an unreliable stack); the in-kernel livepatch and module loads wait meanwhile; write 0 to its enabled to reverse it"
    ]), "{:#?}", m.k.log());
    let (pk, pb, po) = (m.k.pid(kthread), m.k.pid(busy), m.k.pid(odd));
    assert!(m.k.logged(&[&format!(
        "patch a: pid {pk} (lpt_sleeper) is in g_two+0x20/0x100"
    )]));
    assert!(m
        .k
        .logged(&[&format!("patch a: pid {pb} (task{}) is running", busy.0)]));
    assert!(m.k.logged(&[&format!(
        "patch a: pid {po} (task{}) has an unreliable stack",
        odd.0
    )]));
    // Each task not switched is nudged once; a switched one is left alone.
    assert!(m
        .k
        .logged(&["patch a: woke 1 kernel thread and sent 2 user tasks a fake signal"]));
    for t in [kthread, busy, odd] {
        assert_eq!(m.k.nudges(t), 1);
    }
    assert_eq!(m.k.nudges(clean), 0);
    // Not again before another 15 s.
    m.k.clear_log();
    m.k.advance_ms(10_000);
    assert!(!m.c.try_complete_transition());
    assert!(!m.k.logged(&["not complete after"]));
    m.k.advance_ms(5_000);
    assert!(!m.c.try_complete_transition());
    assert!(m.k.logged(&["not complete after 30 s: 3 tasks"]));
    assert_eq!(m.k.nudges(kthread), 2);
    // Woken, it leaves; the others stop blocking: the transition ends.
    m.k.set_stack(kthread, &[0x7000]);
    m.k.set_running(busy, false);
    m.k.set_unreliable(odd, false);
    assert!(m.c.try_complete_transition());
    m.k.check_invariants(&m.c, &[(m.pm, 1)]);
}

#[test]
fn a_stall_report_names_the_first_tasks_and_counts_the_rest() {
    let mut m = machine();
    for _ in 0..11 {
        m.k.add_task(&[m.f + 4]);
    }
    m.c.enable(KEY_A).unwrap();
    m.k.advance_ms(15_000);
    assert!(!m.c.try_complete_transition());
    assert!(m
        .k
        .logged(&["not complete after 15 s: 11 tasks not switched (11 in the patch's code"]));
    assert_eq!(
        m.k.log()
            .iter()
            .filter(|l| l.contains("is in f_one+0x4/0x100"))
            .count(),
        8
    );
    assert!(m.k.logged(&["patch a: ... and 3 tasks not named here"]));
    assert!(m.k.logged(&["sent 11 user tasks a fake signal"]));
    m.c.disable(KEY_A).unwrap();
    assert!(m.c.try_complete_transition());
    m.k.check_invariants(&m.c, &[]);
}
