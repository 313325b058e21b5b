#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
# Builds lpatch's debug kernel (lockdep, KASAN, atomic-sleep, list, object and kobject
# debugging) from Debian's linux-source-6.1, idempotently and cached:
#
#   $LPATCH_CACHE/src/linux-source-<srcver>/           the unpacked source (shared)
#   $LPATCH_CACHE/kernel/debug-<srcver>-<hash>/        make O= of that source: the build
#       tree, usable as KDIR for external modules (.config, Module.symvers, scripts/,
#       tools/objtool/objtool, include/generated/), and what the VM rig boots:
#       vmlinux (ELF with a PVH note), bzImage, System.map, config, version
#   $LPATCH_CACHE/kernel/debug -> debug-<srcver>-<hash>  (the latest one built)
#
# <srcver> is the linux-source-6.1 package's version, <hash> the first 12 hex digits of
# sha256 over kernel-debug/debug.config, the base config's name, the make variables below
# and gcc's version: edit the fragment and the next run builds a new tree (the old one
# stays until removed).
# The config is `make tinyconfig` with the fragment merged on (merge_config.sh) and
# olddefconfig run; every line of the fragment must survive, or the script stops.
#
# Prints KERNEL_CACHE=<dir> and KVER=<release> on its last two lines. The build runs at
# nice 19 with $LPATCH_JOBS jobs (default: the number of CPUs); its log is <dir>/build.log.
set -euo pipefail

CACHE_ROOT=${LPATCH_CACHE:-/var/cache/lpatch}
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
FRAGMENT=${LPATCH_DEBUG_CONFIG:-$REPO/kernel-debug/debug.config}
JOBS=${LPATCH_JOBS:-$(nproc)}
BASE=tinyconfig
# PVH boot (the rig's fast path: qemu -kernel vmlinux) runs xen_prepare_pvh() on the
# identity-mapped boot stack before KASAN's shadow exists (head64.c's kasan_early_init()
# comes later): instrumented, it faults at once and the guest triple-faults with no
# output. It calls memcmp() (lib/string.c) too. Upstream 6.1 already leaves lib/string.o
# uninstrumented when CONFIG_AMD_MEM_ENCRYPT=y (Debian's config), for the same reason.
KMAKE_VARS=(KASAN_SANITIZE_enlighten.o=n KASAN_SANITIZE_string.o=n)
SRC_PKG=linux-source-6.1
# Free disk needed, checked before unpacking or building (measured, README "Disk"): the
# unpacked source, and the build tree while it is built (objects included).
SRC_MIB=1500
BUILD_MIB=${LPATCH_DEBUG_BUILD_MIB:-700}
. "$REPO/scripts/disk.sh"
PKGS=("$SRC_PKG" make gcc libc6-dev bc bison flex libelf-dev xz-utils gzip)

say() { echo "debug-kernel: $*" >&2; }

need=()
for p in "${PKGS[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || need+=("$p")
done
if [ ${#need[@]} -gt 0 ]; then
    say "installing ${need[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >&2
fi

[ -f "$FRAGMENT" ] || { say "no config fragment at $FRAGMENT"; exit 1; }
SRCVER=$(dpkg-query -W -f='${Version}' "$SRC_PKG")
TARBALL=$(dpkg -L "$SRC_PKG" | grep -m1 '/usr/src/linux-source-.*\.tar\.xz$')
HASH=$( { cat "$FRAGMENT"; echo "base=$BASE ${KMAKE_VARS[*]}"; gcc --version | head -n1; } \
        | sha256sum | cut -c1-12)
SRC=$CACHE_ROOT/src/linux-source-$SRCVER
NAME=debug-$SRCVER-$HASH
OUT=$CACHE_ROOT/kernel/$NAME

mkdir -p "$CACHE_ROOT/src" "$CACHE_ROOT/kernel"
# One build at a time (a separate lock from setup.sh's: that one is taken by every test).
exec 9>"$CACHE_ROOT/.debug-kernel.lock"
flock 9

if [ -f "$OUT/.complete" ]; then
    ln -sfn "$NAME" "$CACHE_ROOT/kernel/debug"
    echo "KERNEL_CACHE=$OUT"
    echo "KVER=$(cat "$OUT/version")"
    exit 0
fi

start=$(date +%s)
if [ ! -f "$SRC.complete" ]; then
    need_space debug-kernel "$CACHE_ROOT/src" $((SRC_MIB + BUILD_MIB)) \
        "unpacking $SRC_PKG $SRCVER and building the debug kernel from it"
else
    need_space debug-kernel "$CACHE_ROOT/kernel" "$BUILD_MIB" "building the debug kernel $NAME"
fi
# The source: unpacked once per package version, never modified (all builds use O=).
if [ ! -f "$SRC.complete" ]; then
    say "unpacking $TARBALL"
    rm -rf "$SRC"
    work=$(mktemp -d "$CACHE_ROOT/src/.new.XXXXXX")
    trap 'rm -rf "$work"' EXIT
    nice -n 19 tar -xJf "$TARBALL" -C "$work"
    top=$(ls "$work")
    mv "$work/$top" "$SRC"
    rm -rf "$work"
    trap - EXIT
    touch "$SRC.complete"
fi

# The config. An interrupted build resumes in place (make is incremental); a fresh
# config is written only when there is none yet.
mkdir -p "$OUT"
kmake() { nice -n 19 make -C "$SRC" O="$OUT" "${KMAKE_VARS[@]}" "$@"; }
if [ ! -f "$OUT/.config-ok" ]; then
    say "configuring $OUT ($BASE + $(basename "$FRAGMENT"))"
    kmake -s "$BASE" >/dev/null
    (cd "$SRC" && scripts/kconfig/merge_config.sh -m -O "$OUT" "$OUT/.config" "$FRAGMENT") >/dev/null
    kmake -s olddefconfig >/dev/null
    bad=0
    while IFS= read -r line; do
        case "$line" in
        CONFIG_*=*)
            grep -qxF "$line" "$OUT/.config" || {
                say "fragment line lost: $line (now: $(grep -m1 "^${line%%=*}=\|^# ${line%%=*} is not set" "$OUT/.config" || echo unset))"
                bad=1
            } ;;
        "# CONFIG_"*" is not set")
            opt=${line#\# }; opt=${opt%% *}
            ! grep -q "^$opt=" "$OUT/.config" || { say "fragment line lost: $line"; bad=1; } ;;
        esac
    done < "$FRAGMENT"
    [ $bad = 0 ] || { say "the fragment does not apply to $SRC_PKG $SRCVER"; exit 1; }
    cp "$FRAGMENT" "$OUT/debug.config"
    touch "$OUT/.config-ok"
fi

say "building $NAME with $JOBS jobs at nice 19 (log: $OUT/build.log; about 10 min on 2 idle cores)"
if ! kmake -j"$JOBS" all > "$OUT/build.log" 2>&1; then
    tail -n 40 "$OUT/build.log" >&2
    say "build failed; full log in $OUT/build.log"
    exit 1
fi
for f in vmlinux System.map Module.symvers arch/x86/boot/bzImage tools/objtool/objtool \
         scripts/mod/modpost include/generated/autoconf.h; do
    [ -e "$OUT/$f" ] || { say "the build left no $f"; exit 1; }
done
cp "$OUT/arch/x86/boot/bzImage" "$OUT/bzImage"
cp "$OUT/.config" "$OUT/config"
kmake -s --no-print-directory kernelrelease | tail -n1 > "$OUT/version"
touch "$OUT/.complete"
ln -sfn "$NAME" "$CACHE_ROOT/kernel/debug"
say "built $(cat "$OUT/version") in $(( $(date +%s) - start )) s"
echo "KERNEL_CACHE=$OUT"
echo "KVER=$(cat "$OUT/version")"
