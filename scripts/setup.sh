#!/usr/bin/env bash
# Installs what lpatch needs on a Debian 12 machine, idempotently, and prepares the
# target kernel (headers installed, image unpacked into a cache, never installed).
# Prints the cache directory of the kernel on its last line: KERNEL_CACHE=<dir>.
set -euo pipefail

CACHE_ROOT=${LPATCH_CACHE:-/var/cache/lpatch}
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
. "$REPO/scripts/disk.sh"
# Free disk each step needs (measured, README "Disk"), checked before it starts: the
# kernel image's download and unpack (the .deb, 70 MB, and its /boot: vmlinuz, config,
# the 66 MB vmlinux extracted from it), and the first build in the repository (build/
# and crates/target/ after a make test).
IMAGE_MIB=250
BUILD_MIB=${LPATCH_BUILD_MIB:-900}
# The second line is what `lpatch build` needs to prepare a kernel tree and compile in it:
# Debian 12's kernels are built with gcc-12, and without pahole (dwarves) olddefconfig
# silently drops the BTF options.
PKGS=(qemu-system-x86 busybox-static cpio xz-utils make gcc libc6-dev
      rustc-web cargo-web rust-web-src rust-web-clippy rustfmt-web bindgen libclang-dev clang
      libelf-dev kmod
      gcc-12 bison flex bc dwarves libssl-dev patch)

installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }

need=()
for p in "${PKGS[@]}"; do
    installed "$p" || need+=("$p")
done

apt_updated=
apt_update() {
    [ -n "$apt_updated" ] && return
    apt-get update -qq
    apt_updated=1
}

# The target kernel version is whatever Debian's metapackage points at today.
resolve_version() {
    apt-cache depends linux-headers-amd64 2>/dev/null \
        | sed -n 's/.*Depends: linux-headers-\(.*-amd64\)$/\1/p' | head -n1
}

# Package lists older than the archive (every fresh image has them) can name an ABI Debian no
# longer serves. A version is trusted without an update only when it is already set up here
# (its headers installed, its image cached); otherwise the lists are refreshed first and the
# version resolved again from them.
KVER=${LPATCH_KVER:-$(resolve_version)}
if [ -z "${LPATCH_KVER:-}" ] && { [ -z "$KVER" ] || ! installed "linux-headers-$KVER" \
        || [ ! -f "$CACHE_ROOT/kernel/$KVER/.complete" ]; }; then
    apt_update
    KVER=$(resolve_version)
fi
[ -n "$KVER" ] || { echo "setup: cannot resolve the kernel version from linux-headers-amd64" >&2; exit 1; }

installed "linux-headers-$KVER" || need+=("linux-headers-$KVER")

if [ ${#need[@]} -gt 0 ]; then
    apt_update
    echo "setup: installing ${need[*]}" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >&2
fi

# The kernel image: downloaded and unpacked, never installed on the host.
# One set-up at a time: the rig, the tests and make may all call this script.
mkdir -p "$CACHE_ROOT/kernel"
exec 9>"$CACHE_ROOT/.lock"
flock 9
KDIR_CACHE="$CACHE_ROOT/kernel/$KVER"
if [ ! -d "$REPO/build" ]; then
    need_space setup "$REPO" "$BUILD_MIB" "the first build of lpatch in $REPO"
fi
if [ ! -f "$KDIR_CACHE/.complete" ]; then
    need_space setup "$CACHE_ROOT/kernel" "$IMAGE_MIB" "downloading and unpacking linux-image-$KVER"
    apt_update
    work=$(mktemp -d "$CACHE_ROOT/kernel/.new.XXXXXX")
    trap 'rm -rf "$work"' EXIT
    chmod 755 "$work"
    (cd "$work" && apt-get download -qq "linux-image-$KVER" 2>&1 | grep -v 'unsandboxed' >&2 || true)
    deb=$(ls "$work"/linux-image-*.deb 2>/dev/null | head -n1)
    [ -n "$deb" ] || { echo "setup: apt-get download linux-image-$KVER failed" >&2; exit 1; }
    # Only /boot: the image's 400 MB of modules are never needed.
    mkdir "$work/root"
    dpkg-deb --fsys-tarfile "$deb" | tar -x -C "$work/root" ./boot
    cp "$work/root/boot/vmlinuz-$KVER" "$work/bzImage"
    # Debian's image ships only a placeholder System.map (the real one is in the 850 MB -dbg
    # package); link-time addresses come from /proc/kallsyms of a PVH boot instead (no KASLR).
    cp "$work/root/boot/config-$KVER" "$work/config"
    # The bzImage carries the ELF vmlinux as one XZ stream: find it and decompress it.
    off=$(LC_ALL=C grep -aobP '\xfd7zXZ\x00' "$work/bzImage" | head -n1 | cut -d: -f1)
    [ -n "$off" ] || { echo "setup: no XZ stream in the kernel image" >&2; exit 1; }
    tail -c +"$((off + 1))" "$work/bzImage" | xz -dc 2>/dev/null > "$work/vmlinux" || true
    [ "$(head -c 4 "$work/vmlinux" | od -An -c | tr -d ' ')" = '177ELF' ] \
        || { echo "setup: vmlinux extraction failed" >&2; exit 1; }
    rm -rf "$work/root" "$deb"
    echo "$KVER" > "$work/version"
    touch "$work/.complete"
    rm -rf "$KDIR_CACHE"
    mv "$work" "$KDIR_CACHE"
fi
# Another kernel beside the current one (the corpus' older kernel): LPATCH_SETUP_ONLY=1.
[ -n "${LPATCH_SETUP_ONLY:-}" ] || ln -sfn "$KVER" "$CACHE_ROOT/kernel/current"
echo "KERNEL_CACHE=$KDIR_CACHE"
echo "KVER=$KVER"
