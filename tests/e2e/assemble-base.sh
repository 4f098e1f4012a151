#!/bin/bash
# Assemble the root filesystem of the end-to-end test's base OS image.
#
#   tests/e2e/assemble-base.sh [--layout fcos|bootc] ROOT RPMDIR TOOL_RPM...
#
# On top of tests/fixtures/make-base-tree.sh (the skeleton and a real sqlite
# rpmdb at /usr/lib/sysimage/rpm with base-utils and base-lib; --layout is
# passed on to it, bootc by default), it adds what
# RUN steps of a real Containerfile need:
#
# - a static busybox at /usr/bin/busybox, with symlinks for sh and the few
#   applets the RUN steps use;
# - the real rpm binary and the shared libraries ldd lists for it, plus its
#   configuration (/usr/lib/rpm), and a macros file that puts the rpmdb
#   where Fedora has it (/usr/lib/sysimage/rpm);
# - the real ostree binary and its libraries, so that
#   `RUN ostree container finalize` goes through ostree's own
#   external-command dispatch;
# - ostree-finalize, installed from its own RPMs (TOOL_RPM..., made by
#   packaging/build-rpm: the tool and its `ostree container` name) with
#   rpm --root.
#
# Everything copied from the host is owned by no package in the tree's
# rpmdb, as on an image whose libraries came from elsewhere; the tests only
# touch the fixture packages. Must run as root.
set -euo pipefail

layout=bootc
if [ "${1:-}" = --layout ]; then
    layout="${2:-}"
    shift 2 || true
fi
if [ $# -lt 3 ]; then
    echo "usage: $0 [--layout fcos|bootc] ROOT RPMDIR TOOL_RPM..." >&2
    exit 2
fi
root="$1"
rpmdir="$2"
shift 2
tool_rpms=("$@")
dbpath=/usr/lib/sysimage/rpm
fixtures="$(cd "$(dirname "${BASH_SOURCE[0]}")/../fixtures" && pwd)"

die() { echo "$0: $*" >&2; exit 1; }
for tool in busybox rpm ostree ldd; do
    command -v "$tool" >/dev/null || die "$tool not found"
done

"$fixtures/make-base-tree.sh" --layout "$layout" "$root" "$rpmdir"
root="$(cd "$root" && pwd)"

# The path inside the tree for a host path: the tree has a merged /usr, so
# /lib, /lib64 and /bin map into /usr.
in_tree() {
    local p
    p="$(realpath -s -- "$1")"
    case "$p" in
        /lib/* | /lib64/* | /bin/* | /sbin/*) p="/usr$p" ;;
    esac
    case "$p" in
        /usr/sbin/*) p="/usr/bin/${p#/usr/sbin/}" ;;
    esac
    printf '%s%s' "$root" "$p"
}

# copy_elf HOSTPATH [TREEPATH]: a binary (symlinks resolved) and every
# shared library ldd lists for it, at the same paths in the tree.
copy_elf() {
    local bin="$1" dest="${2:-}" lib
    [ -n "$dest" ] || dest="$(in_tree "$bin")"
    install -D -m 0755 "$(realpath -- "$bin")" "$dest"
    # "libfoo.so.1 => /lib/x86_64-linux-gnu/libfoo.so.1 (0x…)" and
    # "/lib64/ld-linux-x86-64.so.2 (0x…)"; linux-vdso has no file.
    while read -r lib; do
        [ -e "$(in_tree "$lib")" ] && continue
        install -D -m 0755 "$(realpath -- "$lib")" "$(in_tree "$lib")"
    done < <(LC_ALL=C ldd -- "$bin" | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }')
}

# Busybox: the shell and the applets the RUN steps use.
busybox="$(command -v busybox)"
file -b -- "$(realpath -- "$busybox")" | grep -q 'statically linked' \
    || die "$busybox is not static (apt-get install busybox-static)"
install -m 0755 "$(realpath -- "$busybox")" "$root/usr/bin/busybox"
for applet in sh cat cp echo grep ln ls mkdir mv printf rm sed test true false; do
    ln -s busybox "$root/usr/bin/$applet"
done

# rpm, its libraries and configuration.
copy_elf "$(command -v rpm)" "$root/usr/bin/rpm"
cp -a /usr/lib/rpm/. "$root/usr/lib/rpm/"
printf '%%_dbpath %s\n' "$dbpath" >"$root/usr/lib/rpm/macros.d/macros.dbpath"

# ostree, for its external-command dispatch.
copy_elf "$(command -v ostree)" "$root/usr/bin/ostree"

# The tool, from its own RPM. Debian's rpm wants --force-debian for installs.
force_debian=()
if [[ "$(rpm --help 2>/dev/null)" == *--force-debian* ]]; then
    force_debian=(--force-debian)
fi
rpm --root "$root" --dbpath "$dbpath" "${force_debian[@]}" -i --noscripts "${tool_rpms[@]}"

# Check what we built: each name is owned by its package and both lead to
# the same file; rpm and ostree run inside the tree.
rpm_q() { rpm --root "$root" --dbpath "$dbpath" "$@"; }
[[ "$(rpm_q -qf /usr/bin/ostree-finalize)" == ostree-finalize-[0-9]* ]] \
    || die "/usr/bin/ostree-finalize is not owned by ostree-finalize"
ext=/usr/libexec/libostree/ext/ostree-container
[[ "$(rpm_q -qf "$ext")" == ostree-finalize-ostree-container-* ]] \
    || die "$ext is not owned by ostree-finalize-ostree-container"
[ "$root/usr/bin/ostree-finalize" -ef "$root$ext" ] \
    || die "the two names of the tool are not one file"
chroot "$root" /usr/bin/rpm -q ostree-finalize >/dev/null || die "rpm does not run in the tree"
chroot "$root" /usr/bin/ostree --version >/dev/null || die "ostree does not run in the tree"
