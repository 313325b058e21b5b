# SPDX-License-Identifier: GPL-2.0-only
# lpatch: the two commands a user needs are `make demo` and `make test`; both install
# what they need first (scripts/setup.sh, idempotent).

SHELL := /bin/bash
CACHE ?= /var/cache/lpatch
# Host tools: whichever cargo is on PATH (rustup's stable, or Debian's cargo-web).
HOST_CARGO ?= $(shell command -v cargo 2>/dev/null || echo /usr/bin/cargo)
KVER = $(shell cat $(CACHE)/kernel/current/version 2>/dev/null)
KDIR ?= /usr/src/linux-headers-$(KVER)
BUILD := $(CURDIR)/build/$(notdir $(realpath $(KDIR)))
KBUILD_TOOL := $(CURDIR)/crates/target/release/lpatch-kbuild
SAMPLES := $(patsubst samples/%/Kbuild,%,$(wildcard samples/*/Kbuild))

export LPATCH_BUILD := $(BUILD)
export LPATCH_KERNEL_DIR := $(CACHE)/kernel/current
# The CLI as a static binary (cli-static), for the guests: the VM tests and the demo ship it.
export LPATCH_CLI := $(CURDIR)/crates/target/x86_64-unknown-linux-gnu/release/lpatch

.PHONY: all setup host kernel samples test test-debug demo clean
all: kernel samples cli-static

setup:
	@bash scripts/setup.sh >/dev/null

host: setup
	cd crates && $(HOST_CARGO) build --release --workspace --quiet

kernel: host
	$(MAKE) -C kernel KDIR=$(KDIR) OUT=$(BUILD)/kernel KBUILD_TOOL=$(KBUILD_TOOL)
	$(if $(LINK_CURRENT),ln -sfn $(notdir $(BUILD)) build/current)

# The guests have no glibc: the CLI is linked statically (glibc's libc.a, from libc6-dev).
# The explicit --target keeps crt-static away from build scripts and proc-macros.
.PHONY: cli-static
cli-static: host
	cd crates && RUSTFLAGS="-C target-feature=+crt-static" $(HOST_CARGO) build --release --quiet \
		--target x86_64-unknown-linux-gnu -p lpatch

# Each samples/<name>/ is a kbuild directory; patch modules see lpatch.h and the core's
# exported symbols (with their CRCs) through KBUILD_EXTRA_SYMBOLS.
samples: kernel
	@for s in $(SAMPLES); do \
		mkdir -p $(BUILD)/samples/$$s && cp -u samples/$$s/Kbuild samples/$$s/*.[ch] $(BUILD)/samples/$$s/ && \
		$(MAKE) -s -C $(KDIR) M=$(BUILD)/samples/$$s \
			KBUILD_EXTRA_SYMBOLS=$(BUILD)/kernel/Module.symvers \
			KCFLAGS=-I$(CURDIR)/kernel/include modules || exit 1; \
	done

test: all
	cd crates && $(HOST_CARGO) test --release --workspace -- --test-threads=2

# The same suite on the debug kernel (lockdep, KASAN, atomic-sleep, list, object and
# kobject debugging): scripts/debug-kernel.sh builds it from Debian's linux-source-6.1
# (cached in $(CACHE)/kernel/debug-<srcver>-<hash>/, which is also its KDIR; ~11 min
# on 2 cores the first time), our modules are built against it into
# build/debug-<srcver>-<hash>/, and the guests boot it. build/current stays the stock
# kernel's build. --no-fail-fast: a run lists every test the checkers fail.
LINK_CURRENT ?= 1
test-debug: setup
	@dir=$$(bash scripts/debug-kernel.sh | sed -n 's/^KERNEL_CACHE=//p') && [ -n "$$dir" ] && \
	$(MAKE) --no-print-directory all KDIR=$$dir LPATCH_KERNEL_DIR=$$dir LINK_CURRENT= && \
	cd crates && LPATCH_BUILD=$(CURDIR)/build/$$(basename $$dir) LPATCH_KERNEL_DIR=$$dir \
		$(HOST_CARGO) test --release --workspace --no-fail-fast -- --test-threads=2

# Boots the stock kernel and drives the CLI through a patch's life; checks every step.
demo: all
	cd crates && $(HOST_CARGO) run --release --quiet -p lpatch-demo

# lpatch against the in-kernel livepatch in guests under qemu -icount (crates/lpatch-bench):
# builds its modules, prints a table, writes build/bench.json.
.PHONY: bench
bench: all
	cd crates && $(HOST_CARGO) run --release --quiet -p lpatch-bench -- --json $(CURDIR)/build/bench.json

clean:
	rm -rf build crates/target
