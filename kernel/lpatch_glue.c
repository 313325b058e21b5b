// SPDX-License-Identifier: GPL-2.0-only
/*
 * lpatch.ko's C glue: module boilerplate, and one-line helpers for what Rust cannot call
 * (macros, static inlines). The logic lives in the Rust core (rust/src).
 */
#include <linux/bug.h>
#include <linux/module.h>
#include <linux/slab.h>

int lpr_init(void);
void lpr_exit(void);

void *lpatch_kmalloc(size_t size) { return kmalloc(size, GFP_KERNEL); }
void *lpatch_krealloc(void *p, size_t size) { return krealloc(p, size, GFP_KERNEL); }
void __noreturn lpatch_bug(void) { BUG(); }

static int __init lpatch_init(void) { return lpr_init(); }
static void __exit lpatch_exit(void) { lpr_exit(); }

module_init(lpatch_init);
module_exit(lpatch_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("lpatch: live patching core written in Rust");
MODULE_VERSION(LPATCH_VERSION);
