/* SPDX-License-Identifier: GPL-2.0-only */
/* The headers bindgen reads to give the Rust core the target kernel's own layouts. */
#include <linux/ftrace.h>
#include <linux/kallsyms.h>
#include <linux/kobject.h>
#include <linux/kprobes.h>
#include <linux/module.h>
#include <linux/notifier.h>
#include <linux/panic.h>
#include <linux/rcupdate.h>
#include <linux/slab.h>
#include <linux/sysfs.h>
#include "include/lpatch.h"
