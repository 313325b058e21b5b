# SPDX-License-Identifier: GPL-2.0-only
# lpatch: the two commands a user needs are `make demo` and `make test`; both install
# what they need first (scripts/setup.sh, idempotent).

SHELL := /bin/bash
CACHE ?= $(or $(LPATCH_CACHE),/var/cache/lpatch)
export LPATCH_CACHE := $(CACHE)
# Host tools: whichever cargo is on PATH (rustup's stable, or Debian's cargo-web).
HOST_CARGO ?= $(shell command -v cargo 2>/dev/null || echo /usr/bin/cargo)
# The host workspace's cargo target (CARGO_TARGET_DIR when set, as cargo itself does).
TARGET_DIR := $(or $(CARGO_TARGET_DIR),$(CURDIR)/crates/target)
KBUILD_TOOL := $(TARGET_DIR)/release/lpatch-kbuild
SAMPLES := $(patsubst samples/%/Kbuild,%,$(wildcard samples/*/Kbuild))
# The CLI as a static binary (cli-static), for the guests: the VM tests and the demo ship it.
export LPATCH_CLI := $(TARGET_DIR)/x86_64-unknown-linux-gnu/release/lpatch
# Test selection (README, "Tests"): a test whose name holds needs_debug_kernel runs only in
# make test-debug, one whose name holds needs_stock_kernel only in make test; either fails
# when run on the other kernel.
TEST_ARGS := --test-threads=2

.PHONY: all setup host kernel samples cli-static builder-tree corpus-kernel test test-debug demo bench lint clean
# These targets need the kernel's version, which only set-up knows (it resolves it and
# creates $(CACHE)/kernel/current). On a fresh machine that cache does not exist yet when
# make reads this file, so each of them runs set-up first, then make again: the second make
# reads the version set-up recorded. Given a kernel tree (KDIR=...), make goes straight on.
KERNEL_TARGETS := all kernel samples cli-static builder-tree corpus-kernel test demo bench lint
ifeq ($(or $(LPATCH_SET_UP),$(filter command line,$(origin KDIR))),)

$(KERNEL_TARGETS): setup
	@$(MAKE) --no-print-directory LPATCH_SET_UP=1 $@

else

KVER := $(shell cat $(CACHE)/kernel/current/version 2>/dev/null)
KDIR ?= /usr/src/linux-headers-$(KVER)
ifeq ($(realpath $(KDIR)),)
$(error no kernel tree at $(KDIR) (set-up recorded kernel '$(KVER)'; see scripts/setup.sh))
endif
BUILD := $(CURDIR)/build/$(notdir $(realpath $(KDIR)))
export LPATCH_BUILD := $(BUILD)
export LPATCH_KERNEL_DIR ?= $(CACHE)/kernel/current
LINK_CURRENT ?= 1

all: kernel samples cli-static

# What the module build needs of the host tools (the test, demo and bench targets build the
# rest through cargo test/run).
host: setup
	cd crates && $(HOST_CARGO) build --release --quiet -p lpatch-kbuild

kernel: host
	$(MAKE) -C kernel KDIR=$(KDIR) OUT=$(BUILD)/kernel KBUILD_TOOL=$(KBUILD_TOOL)
	$(if $(LINK_CURRENT),ln -sfn $(notdir $(BUILD)) $(CURDIR)/build/current)

# The guests have no glibc: the CLI is linked statically (glibc's libc.a, from libc6-dev).
# The explicit --target keeps crt-static away from build scripts and proc-macros.
cli-static: host
	cd crates && RUSTFLAGS="-C target-feature=+crt-static" $(HOST_CARGO) build --release --quiet \
		--target x86_64-unknown-linux-gnu -p lpatch

# Each samples/<name>/ is a kbuild directory; patch modules see lpatch.h and the core's
# exported symbols (with their CRCs) through KBUILD_EXTRA_SYMBOLS. A sample naming unexported
# symbols (LPATCH_SYM) is built as lpatch.h says: modpost only warns about them, then
# `lpatch klp-convert` turns them into livepatch relocations.
samples: kernel cli-static
	@for s in $(SAMPLES); do \
		mkdir -p $(BUILD)/samples/$$s && cp -u samples/$$s/Kbuild samples/$$s/*.[ch] $(BUILD)/samples/$$s/ && \
		conv=$$(grep -l 'LPATCH_SYM(' samples/$$s/*.[ch]) ; \
		$(MAKE) -s -C $(KDIR) M=$(BUILD)/samples/$$s $${conv:+KBUILD_MODPOST_WARN=1} \
			KBUILD_EXTRA_SYMBOLS=$(BUILD)/kernel/Module.symvers \
			KCFLAGS=-I$(CURDIR)/kernel/include modules || exit 1; \
		if [ -n "$$conv" ]; then \
			for ko in $(BUILD)/samples/$$s/*.ko; do $(LPATCH_CLI) klp-convert $$ko >/dev/null || exit 1; done; \
		fi; \
	done

# lpatch build's tests compile in the prepared tree of the target kernel: prepare it (or check
# the cached one, $(CACHE)/builder/<kver>/) before the suite starts, not while guests run. The
# corpus of real fixes (crates/lpatch-build/tests/corpus/) is the difference between an older
# Debian 6.1 and today's: it builds for that older kernel, whose tree is prepared too.
export CORPUS_KERNEL := 6.1.0-50-amd64
builder-tree: cli-static
	$(LPATCH_CLI) build --prepare-only
	$(LPATCH_CLI) build --prepare-only --kernel $(CORPUS_KERNEL)

# The corpus' fixes are also built into modules and loaded in guests of that older kernel
# (crates/lpatch/tests/corpus_vm.rs): its image is set up beside the current one (never
# made current) and the core is built for it, in build/linux-headers-$(CORPUS_KERNEL).
corpus-kernel: host
	LPATCH_KVER=$(CORPUS_KERNEL) LPATCH_SETUP_ONLY=1 scripts/setup.sh > /dev/null
	$(MAKE) --no-print-directory -C kernel KDIR=/usr/src/linux-headers-$(CORPUS_KERNEL) \
		OUT=$(CURDIR)/build/linux-headers-$(CORPUS_KERNEL)/kernel KBUILD_TOOL=$(KBUILD_TOOL)

test: all builder-tree corpus-kernel
	cd crates && $(HOST_CARGO) test --release --workspace -- $(TEST_ARGS) --skip needs_debug_kernel

# Boots the stock kernel and drives the CLI through a patch's life; checks every step.
demo: all
	cd crates && $(HOST_CARGO) run --release --quiet -p lpatch-demo

# lpatch against the in-kernel livepatch in guests under qemu -icount (crates/lpatch-bench):
# builds its modules, prints a table, writes build/bench.json.
bench: all
	cd crates && $(HOST_CARGO) run --release --quiet -p lpatch-bench -- --json $(CURDIR)/build/bench.json

# The style gates CI runs, with the toolchain set-up installs (Debian's cargo, rustfmt and
# clippy: not whatever is first on PATH): formatting and clippy over the host workspace,
# the core's logic (on the host, as its tests build it; a crate of its own, not a member
# of either workspace) and the kernel crate, every warning an error.
DEB_CARGO := PATH=/usr/bin:/bin:/usr/sbin:/sbin /usr/bin/cargo
lint: kernel
	cd crates && $(DEB_CARGO) fmt --all --check
	cd crates && $(DEB_CARGO) clippy --workspace --all-targets --quiet -- -D warnings
	cd kernel/rust && $(DEB_CARGO) fmt --check
	cd kernel/logic && $(DEB_CARGO) fmt --check
	cd kernel/logic && CARGO_TARGET_DIR=$(TARGET_DIR) $(DEB_CARGO) clippy --quiet -- -D warnings
	$(MAKE) --no-print-directory -C kernel clippy KDIR=$(KDIR) OUT=$(BUILD)/kernel KBUILD_TOOL=$(KBUILD_TOOL)

endif

setup:
	@bash scripts/setup.sh >/dev/null

# The same suite on the debug kernel (lockdep, KASAN, atomic-sleep, list, object and
# kobject debugging): scripts/debug-kernel.sh builds it from Debian's linux-source-6.1
# (cached in $(CACHE)/kernel/debug-<srcver>-<hash>/, which is also its KDIR; ~11 min
# on 2 cores the first time), our modules are built against it into
# build/debug-<srcver>-<hash>/, and the guests boot it. build/current stays the stock
# kernel's build. --no-fail-fast: a run lists every test the checkers fail.
test-debug: setup
	@dir=$$(bash scripts/debug-kernel.sh | sed -n 's/^KERNEL_CACHE=//p') && [ -n "$$dir" ] && \
	$(MAKE) --no-print-directory all KDIR=$$dir LPATCH_KERNEL_DIR=$$dir LINK_CURRENT= && \
	cd crates && LPATCH_BUILD=$(CURDIR)/build/$$(basename $$dir) LPATCH_KERNEL_DIR=$$dir \
		$(HOST_CARGO) test --release --workspace --no-fail-fast -- $(TEST_ARGS) --skip needs_stock_kernel

clean:
	rm -rf build crates/target
