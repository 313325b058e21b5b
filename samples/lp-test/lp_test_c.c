// SPDX-License-Identifier: GPL-2.0-only
#include "lp_test_body.h"
