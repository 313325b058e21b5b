// SPDX-License-Identifier: GPL-2.0-only
#define LP_TWIN_SYMPOS 2
#define LP_MISSING
#include "lp_reloc_body.h"
