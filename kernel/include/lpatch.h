/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * lpatch.h - the API patch modules use to register live patches with the lpatch core.
 */
#ifndef _LPATCH_H
#define _LPATCH_H

#endif /* _LPATCH_H */
