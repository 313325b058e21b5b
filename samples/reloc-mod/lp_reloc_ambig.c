// SPDX-License-Identifier: GPL-2.0-only
#define LP_TWIN_SYMPOS 0
#include "lp_reloc_body.h"
