// SPDX-License-Identifier: GPL-2.0-only
/* lp_reloc_vmlinux with a relocation to a vmlinux symbol that does not exist: see there. */
#define LP_MISSING
#include "lp_reloc_vmlinux.c"
