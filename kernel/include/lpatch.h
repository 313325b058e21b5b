/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * lpatch.h - the API patch modules use to register live patches with the lpatch core.
 *
 * A patch module describes, per object (vmlinux or one module), the functions it replaces,
 * then registers and enables the patch from its init:
 *
 *	static struct lp_func funcs[] = {
 *		{ .old_name = "cmdline_proc_show", .new_func = my_cmdline_proc_show },
 *		{ }
 *	};
 *	static struct lp_object objs[] = { { .name = NULL, .funcs = funcs }, { } };
 *	static struct lp_patch patch = { .mod = THIS_MODULE, .objs = objs };
 *
 *	ret = lp_register_patch(&patch);
 *	if (!ret && (ret = lp_enable_patch(&patch)))
 *		lp_unregister_patch(&patch);
 *
 * Every call returns 0 or a negative errno, and logs a line naming the cause of a failure.
 * The core keeps its own records; these structs are read at registration and must stay
 * valid (unchanged) until the patch is unregistered.
 *
 * What a patch module's init and exit may and may not do:
 *  - init: lp_enable_patch must be the last step that can fail. If it fails, unregister and
 *    return its error. Once it has succeeded, return 0: an init failing after it makes the
 *    loader free the module while its replacements are in place — the core then removes
 *    the patch and waits (an RCU and an RCU-tasks grace period) for calls already inside a
 *    replacement before the module is freed, but not for a replacement that sleeps.
 *  - While init runs, the patch is its init's: the patch's sysfs `enabled` refuses writes
 *    (EBUSY) until init has returned.
 *  - The core holds the patch module while its patch is enabled or in a transition: exit
 *    runs only once the patch is disabled and no task can be in its code any more (on a
 *    kernel without CONFIG_LIVEPATCH, where that cannot be told, only for a patch never
 *    enabled); it unregisters the patch.
 *  - Never `rmmod -f` a patch module: forced removal frees its code although calls may be
 *    inside it. The core removes the patch as the module goes (and drops the references it
 *    held for it) and waits as above, which does not cover a replacement that sleeps.
 *  - A module's __init functions cannot be patched (their text is freed once its init
 *    returns): naming one is refused with EINVAL, and so is the module's load while such a
 *    patch is enabled.
 *
 * Reaching what the kernel does not export (static functions and variables of the patched
 * file, a module's own symbols): declare the symbol extern as usual and name where it lives
 * with LPATCH_SYM(object, symbol, sympos) — object is vmlinux or a module's name; sympos 0
 * when the name is unique in that object, else its 1-based position among same-named
 * symbols (`lpatch syms NAME OBJECT` lists them):
 *
 *	extern int sysctl_random_min_urandom_seed;
 *	LPATCH_SYM(vmlinux, sysctl_random_min_urandom_seed, 0);
 *	extern unsigned int lpt_bump(unsigned int by);
 *	LPATCH_SYM(lpt_target, lpt_bump, 0);
 *	MODULE_INFO(livepatch, "Y");	(needed when a module's symbol is named)
 *
 * Build with `make ... KBUILD_MODPOST_WARN=1` (modpost then only warns about these
 * references) and run `lpatch klp-convert your.ko` on the result: it rewrites them into the
 * in-kernel livepatch's relocation format (.klp.rela.<object>.* sections). The module
 * loader applies vmlinux's when the patch loads; the core applies a module's when that
 * module is loaded (at register, or as it loads, before its init), refuses the patch or
 * that module's load when a symbol cannot be resolved, and clears them when it goes. An
 * unconverted module fails to load ("Unknown symbol"). docs/relocations.md has the detail.
 */
#ifndef _LPATCH_H
#define _LPATCH_H

struct module;

/*
 * The old function's code a patch was built against (lpatch build writes it): the core
 * refuses the patch when the running kernel's code differs. The hash is FNV-1a (64 bits)
 * of the function's first `size` bytes with each masked range read as zeros: the fields
 * the linker or the loader filled in, and the places the kernel rewrites after boot (the
 * ftrace call site, jump labels, alternatives, thunk sites, ...).
 */
struct lp_code {
	unsigned long size;         /* bytes hashed, from the function's start */
	unsigned long long hash;
	const unsigned int *masks;  /* nr_masks pairs: offset, length */
	unsigned long nr_masks;
};

struct lp_func {              /* one function to replace */
	const char *old_name;     /* its name in the object */
	void *new_func;           /* the replacement, in the patch module */
	unsigned long old_addr;   /* optional, vmlinux only: its link-time address (System.map) */
	unsigned long old_sympos; /* optional: which same-named symbol, 1-based; 0 = name must be unique */
	const struct lp_code *old_code; /* optional: the code it was built against, checked */
};

struct lp_object {            /* vmlinux or one module */
	const char *name;         /* NULL = vmlinux, else the module's name */
	struct lp_func *funcs;    /* ends with an entry whose old_name is NULL */
};

struct lp_patch {
	struct module *mod;       /* THIS_MODULE of the patch module; its name names the patch */
	struct lp_object *objs;   /* ends with an entry whose funcs is NULL */
};

/*
 * One record of the non-allocated section .comment.lpatch.syms, read by `lpatch klp-convert`. The
 * arguments are macro-expanded first (a sympos may be a macro).
 */
#define LPATCH_SYM(object, symbol, sympos) __LPATCH_SYM(object, symbol, sympos)
#define __LPATCH_SYM(object, symbol, sympos)					\
	asm(".pushsection .comment.lpatch.syms,\"\",@progbits\n\t"			\
	    ".asciz \"" #object " " #symbol " " #sympos "\"\n\t"		\
	    ".popsection")

int lp_register_patch(struct lp_patch *patch);
int lp_unregister_patch(struct lp_patch *patch);
int lp_enable_patch(struct lp_patch *patch);
int lp_disable_patch(struct lp_patch *patch);

#endif /* _LPATCH_H */
