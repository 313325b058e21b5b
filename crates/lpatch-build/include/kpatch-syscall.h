/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * kpatch-syscall.h as lpatch build provides it: the macro names patches written for
 * kpatch-build use to change a system call, KPATCH_SYSCALL_DEFINE0 to
 * KPATCH_SYSCALL_DEFINE6, for x86-64 kernels (lpatch's own definitions).
 *
 * The kernel's SYSCALL_DEFINEn (n >= 1) puts the body in a `static inline`
 * __do_sys_<name>; inline functions are notrace, so when GCC keeps that body out of line
 * ftrace cannot redirect it. These macros make the same entry points (__x64_sys_<name>,
 * and __ia32_sys_<name> with IA32 emulation) around a body in a plain static function of
 * another name, __kpatch_do_sys_<name>: new to the patch, it comes with it, and the entry
 * points, which call it, are what the patch replaces. There is no syscall metadata (the
 * running kernel keeps its own).
 */
#ifndef LPATCH_KPATCH_SYSCALL_H
#define LPATCH_KPATCH_SYSCALL_H

#include <linux/syscalls.h>

#ifndef CONFIG_X86_64
#error "kpatch-syscall.h: lpatch build knows the system call entry points of x86-64 only"
#endif

/* No arguments: the entry points are aliases of the body, as the kernel's are. */
#define __LPATCH_SYS_ENTRY0(abi, sname)					\
	long __##abi##_sys_##sname(const struct pt_regs *regs);		\
	long __##abi##_sys_##sname(const struct pt_regs *regs)		\
		__alias(__kpatch_do_sys_##sname);

#ifdef CONFIG_IA32_EMULATION
#define __LPATCH_IA32_SYS_ENTRY0(sname) __LPATCH_SYS_ENTRY0(ia32, sname)
#else
#define __LPATCH_IA32_SYS_ENTRY0(sname)
#endif

#define KPATCH_SYSCALL_DEFINE0(sname)					\
	static long __kpatch_do_sys_##sname(const struct pt_regs *__unused);	\
	__LPATCH_SYS_ENTRY0(x64, sname)					\
	__LPATCH_IA32_SYS_ENTRY0(sname)					\
	static long __kpatch_do_sys_##sname(const struct pt_regs *__unused)

/*
 * With arguments: the kernel's own entry points, which take the registers apart and call
 * __se_sys<name>; that widens the arguments and calls the body under its new name.
 */
#define __LPATCH_SYSCALL_DEFINEx(x, name, ...)				\
	static long __se_sys##name(__MAP(x, __SC_LONG, __VA_ARGS__));	\
	static long __kpatch_do_sys##name(__MAP(x, __SC_DECL, __VA_ARGS__));	\
	__X64_SYS_STUBx(x, name, __VA_ARGS__)				\
	__IA32_SYS_STUBx(x, name, __VA_ARGS__)				\
	static long __se_sys##name(__MAP(x, __SC_LONG, __VA_ARGS__))	\
	{								\
		long ret = __kpatch_do_sys##name(__MAP(x, __SC_CAST, __VA_ARGS__));	\
		__MAP(x, __SC_TEST, __VA_ARGS__);			\
		__PROTECT(x, ret, __MAP(x, __SC_ARGS, __VA_ARGS__));	\
		return ret;						\
	}								\
	static long __kpatch_do_sys##name(__MAP(x, __SC_DECL, __VA_ARGS__))

#define KPATCH_SYSCALL_DEFINE1(name, ...) __LPATCH_SYSCALL_DEFINEx(1, _##name, __VA_ARGS__)
#define KPATCH_SYSCALL_DEFINE2(name, ...) __LPATCH_SYSCALL_DEFINEx(2, _##name, __VA_ARGS__)
#define KPATCH_SYSCALL_DEFINE3(name, ...) __LPATCH_SYSCALL_DEFINEx(3, _##name, __VA_ARGS__)
#define KPATCH_SYSCALL_DEFINE4(name, ...) __LPATCH_SYSCALL_DEFINEx(4, _##name, __VA_ARGS__)
#define KPATCH_SYSCALL_DEFINE5(name, ...) __LPATCH_SYSCALL_DEFINEx(5, _##name, __VA_ARGS__)
#define KPATCH_SYSCALL_DEFINE6(name, ...) __LPATCH_SYSCALL_DEFINEx(6, _##name, __VA_ARGS__)

#endif /* LPATCH_KPATCH_SYSCALL_H */
