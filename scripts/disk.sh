# SPDX-License-Identifier: GPL-2.0-only
# Sourced by scripts/setup.sh and scripts/debug-kernel.sh: one check of free disk space,
# made before a download or an unpack, so a full disk stops a run at once with the
# shortfall named instead of failing half-way through with ENOSPC.

# need_space PROG DIR MIB WHAT: stops (exit 1) when DIR's filesystem has less than MIB MiB
# free, naming the shortfall and what under $CACHE_ROOT could be cleaned. DIR is created.
need_space() {
    local prog=$1 dir=$2 need=$3 what=$4 avail
    mkdir -p "$dir"
    avail=$(df -Pm "$dir" | awk 'NR == 2 { print $4 }')
    [ "$avail" -lt "$need" ] || return 0
    {
        echo "$prog: not enough free disk for $what: it needs $need MiB in $dir, which has $avail MiB (short by $((need - avail)) MiB)"
        echo "$prog: caches that can be removed to make room (each is rebuilt when next needed):"
        local d
        for d in "${CACHE_ROOT:?}"/kernel/*/ "$CACHE_ROOT"/src/*/; do
            [ -d "$d" ] && echo "  $(du -sm "$d" | cut -f1) MiB  $d"
        done
        echo "  (and build/ and crates/target/ in the repository: make clean)"
    } >&2
    exit 1
}
