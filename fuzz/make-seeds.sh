#!/bin/bash
# Make seed inputs for the fuzz targets from real artifacts: RPMs built with
# the real rpmbuild, a base tree installed with the real rpm, the manifest
# `ostree-finalize snapshot` writes for it, layers written by GNU tar,
# objects written by the real ostree, and the real CentOS Berkeley DB
# rpmdbs Debian ships.
#
#   fuzz/make-seeds.sh OUTDIR
#
# Writes OUTDIR/<target>/… for rpm_header, rpmdb_sqlite, manifest_json,
# oci_layer, ostree_objects and rpmdb_bdb. path_roundtrip,
# tmpfiles_escape, policy_yaml and butane need no real artifact: their
# seeds are written by hand, in fuzz/seeds/ (butane's are copies of
# tests/apply_fixtures/full.bu and full.ign).
# fuzz/seeds/ was made with this script, minus the two biggest database
# files (real-rpmdb.sqlite, 220 KiB; full-schema-p512, 39 KiB): run it with
# OUTDIR=fuzz/corpus to add those. Needs root (for make-base-tree.sh),
# rpmbuild, rpm, sqlite3, GNU tar, gzip, zstd, setfattr, ostree, python3
# and the databases of golang-github-knqyf263-go-rpmdb-dev. Installed
# headers carry install times, so a rerun gives different bytes.
set -euo pipefail

if [ $# -ne 1 ]; then
    echo "usage: $0 OUTDIR" >&2
    exit 2
fi
for tool in rpm rpmbuild sqlite3 tar gzip zstd setfattr ostree python3; do
    command -v "$tool" >/dev/null || { echo "$0: $tool not found" >&2; exit 2; }
done
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
fixtures="$here/../fixtures"
mkdir -p "$1"
out="$(cd "$1" && pwd)"
work="$(mktemp -d "${TMPDIR:-/tmp}/make-seeds.XXXXXX")"
trap 'rm -rf "$work"' EXIT

"$fixtures/build-rpms.sh" "$work/rpms"
"$fixtures/make-base-tree.sh" "$work/root" "$work/rpms"
db="$work/root/usr/lib/sysimage/rpm/rpmdb.sqlite"
mkdir -p "$out/rpm_header" "$out/rpmdb_sqlite" "$out/manifest_json"

# rpmdb_sqlite: the database exactly as rpm wrote it (WAL mode, rpm's full
# schema, 4 KiB pages) …
cp "$db" "$out/rpmdb_sqlite/real-rpmdb.sqlite"
# … and the same rows repacked small, so mutations hit the interesting
# bytes more often: rpm's schema in 512-byte pages, and the Packages table
# alone (in rollback and in WAL mode).
small() { # small OUT PAGE_SIZE JOURNAL_MODE [full]
    rm -f "$1"
    if [ "${4:-}" = full ]; then
        sqlite3 "$db" ".backup '$1'"
        sqlite3 "$1" "PRAGMA journal_mode=delete; PRAGMA page_size=$2; VACUUM;" >/dev/null
    else
        sqlite3 "$1" "PRAGMA page_size=$2;
            CREATE TABLE Packages (hnum INTEGER PRIMARY KEY AUTOINCREMENT, blob BLOB NOT NULL);
            ATTACH '$db' AS real;
            INSERT INTO Packages SELECT hnum, blob FROM real.Packages;
            DETACH real;
            PRAGMA journal_mode=$3;" >/dev/null
    fi
}
small "$out/rpmdb_sqlite/full-schema-p512" 512 delete full
small "$out/rpmdb_sqlite/packages-only-p512" 512 delete
small "$out/rpmdb_sqlite/packages-only-p1024-wal" 1024 wal

# rpm_header: the installed headers (Packages.blob) …
sqlite3 "$db" "SELECT writefile('$out/rpm_header/installed-' || hnum, blob) FROM Packages;" >/dev/null

# … and the main header of each package file, which has the same layout
# minus the tags rpm adds at install time. A package file is a 96-byte
# lead, the signature header (8-byte magic, il, dl, 16*il index, dl data,
# padded to 8), then the main header (magic, il, dl, index, data).
be32() { od -An -tu4 --endian=big -j "$2" -N 4 "$1" | tr -d ' '; }
for rpm in "$work"/rpms/*.rpm; do
    off=96
    il=$(be32 "$rpm" $((off + 8)))
    dl=$(be32 "$rpm" $((off + 12)))
    off=$(( (off + 16 + 16 * il + dl + 7) / 8 * 8 ))
    il=$(be32 "$rpm" $((off + 8)))
    dl=$(be32 "$rpm" $((off + 12)))
    name="$(basename "$rpm" .rpm)"
    tail -c +$((off + 9)) "$rpm" | head -c $((8 + 16 * il + dl)) >"$out/rpm_header/pkg-$name"
done

# manifest_json: the reference snapshot records for the base tree, and for
# a copy with the odd things manifests must carry (non-UTF-8 and backslash
# names, a fifo, a hardlink, a dangling symlink, setuid, binary content).
bin="$here/../target/debug/ostree-finalize"
(cd "$here/.." && cargo build --quiet)
"$bin" snapshot --root "$work/root" --output "$out/manifest_json/base.json" 2>/dev/null
cp -a "$work/root" "$work/variety"
(
    cd "$work/variety"
    touch "$(printf 'etc/bad\xffname')" 'etc/back\slash'
    mkfifo run/fifo
    ln etc/passwd etc/passwd.hl
    ln -s /nonexistent usr/lib/dangling
    chmod 4755 usr/bin/base-tool
    printf 'x\0y' >usr/share/binary
)
"$bin" snapshot --root "$work/variety" --output "$out/manifest_json/variety.json" 2>/dev/null

# oci_layer: layers written by GNU tar, each seed a selector byte and the
# layers separated by =NEXT-LAYER= (see src/oci_layer.rs). The harness
# adds its own base layer (etc/passwd, usr/bin/tool, usr/lib/libx.so, the
# bin and lib symlinks, usr/share/rpm and var/lib/rpm symlinked to
# usr/lib/sysimage/rpm) unless bit 3 of the selector is set.
mkdir -p "$out/oci_layer"
layer() { # layer DIR [TAR OPTIONS…]: DIR as a tar on stdout, reproducibly
    local dir="$1"
    shift
    tar -C "$dir" -b 1 --sort=name --owner=0 --group=0 --numeric-owner \
        --mtime=@1700000000 "$@" -cf - .
}
seed() { # seed NAME SELECTOR LAYER-FILE…
    local name="$1" sel="$2" first=1 tarfile
    shift 2
    printf "\\x$sel" >"$out/oci_layer/$name"
    for tarfile in "$@"; do
        [ $first = 1 ] || printf '=NEXT-LAYER=' >>"$out/oci_layer/$name"
        first=0
        cat "$tarfile" >>"$out/oci_layer/$name"
    done
}
l="$work/layers"
mkdir -p "$l/wh/usr/lib" "$l/wh/etc" "$l/wh/usr/bin" "$l/wh/var/lib"
touch "$l/wh/usr/lib/.wh.libx.so" "$l/wh/etc/.wh..wh..opq" "$l/wh/var/lib/.wh.rpm" \
    "$l/wh/usr/bin/.wh.tool-alias"
echo host >"$l/wh/etc/hostname"
printf '#!/bin/sh\n' >"$l/wh/usr/bin/newtool"
layer "$l/wh" --format=gnu >"$l/wh.tar"
mkdir -p "$l/links/usr/bin" "$l/links/etc" "$l/links/opt"
echo data >"$l/links/usr/bin/a"
ln "$l/links/usr/bin/a" "$l/links/usr/bin/b"
ln -s /usr/bin/a "$l/links/etc/abs-link"
ln -s ../../../../escape "$l/links/opt/up-link"
ln -s missing "$l/links/opt/dangling"
ln -s lib "$l/links/usr/lib64"
layer "$l/links" --format=gnu >"$l/links.tar"
mkdir -p "$l/pax/usr/share/app"
long="$l/pax/usr/share/app/$(printf 'a%.0s' $(seq 1 120))"
echo long >"$long"
setfattr -n user.fuzz -v value "$long"
setfattr -n security.capability -v 0sAQAAAgAgAAAAAAAAAAAAAAAAAAA= "$l/pax/usr/share/app"
echo bad >"$(printf '%s/pax/usr/share/app/bad\xffname' "$l")"
layer "$l/pax" --format=pax --xattrs --xattrs-include='*' >"$l/pax.tar"
mkdir -p "$l/gnu/opt/$(printf 'd%.0s' $(seq 1 150))"
echo x >"$l/gnu/opt/$(printf 'd%.0s' $(seq 1 150))/file"
layer "$l/gnu" --format=gnu >"$l/gnu.tar"
mkdir -p "$l/gnu2/opt"
touch "$l/gnu2/opt/.wh.$(printf 'd%.0s' $(seq 1 150))" "$l/gnu2/opt/.wh..wh..opq"
layer "$l/gnu2" --format=gnu >"$l/gnu2.tar"
mkdir -p "$l/names/x"
echo evil >"$l/names/x/evil"
# Member names a layer must never resolve outside the image.
tar -C "$l/names" -b 1 --no-recursion --owner=0 --group=0 --numeric-owner --mtime=@1700000000 -P \
    --transform='s,^x/evil$,../../etc/evil,;s,^x$,/abs/dir,' -cf "$l/names.tar" x x/evil
mkdir -p "$l/rpmdb/usr/lib/sysimage/rpm"
cp "$out/rpmdb_sqlite/packages-only-p512" "$l/rpmdb/usr/lib/sysimage/rpm/rpmdb.sqlite"
layer "$l/rpmdb" --format=gnu >"$l/rpmdb.tar"
gzip -9n <"$l/links.tar" >"$l/links.tar.gz"
zstd -q -19 <"$l/wh.tar" >"$l/wh.tar.zst"
seed whiteouts-and-opaque 00 "$l/wh.tar"
seed hardlinks-and-symlinks-gzip 01 "$l/links.tar"
seed pax-xattrs-long-names-zstd-pipelined 06 "$l/pax.tar"
seed gnu-long-names-then-whiteout 00 "$l/gnu.tar" "$l/gnu2.tar"
seed dotdot-and-absolute-names-no-base 08 "$l/names.tar"
seed rpmdb-in-a-layer 00 "$l/rpmdb.tar"
seed real-gzip-and-zstd-blobs 04 "$l/links.tar.gz" "$l/wh.tar.zst"

# ostree_objects: the commit, dirtree and dirmeta objects, and a file's
# user.ostreemeta xattr, of a small tree committed twice with the real
# ostree into a bare-user repository.
mkdir -p "$out/ostree_objects"
repo="$work/repo"
tree="$work/ostree-tree"
ostree init --repo="$repo" --mode=bare-user
mkdir -p "$tree/usr/bin" "$tree/usr/lib" "$tree/etc"
printf '#!/bin/sh\n' >"$tree/usr/bin/tool"
chmod 755 "$tree/usr/bin/tool"
echo conf >"$tree/etc/app.conf"
ln -s ../lib "$tree/usr/lib64"
setfattr -n user.fuzz -v value "$tree/etc/app.conf"
setfattr -n user.dir -v 1 "$tree/usr/lib"
chmod 700 "$tree/etc"
ostree commit --repo="$repo" -b main --tree=dir="$tree" -s 'first commit' \
    --add-metadata-string=version=1 >/dev/null
echo more >"$tree/usr/lib/libnew.so"
ostree commit --repo="$repo" -b main --tree=dir="$tree" -s 'second commit' \
    -m 'with a body' --add-metadata-string=version=2 >/dev/null
for obj in "$repo"/objects/*/*.commit "$repo"/objects/*/*.dirtree "$repo"/objects/*/*.dirmeta; do
    name="$(basename "$(dirname "$obj")")$(basename "$obj")"
    cp "$obj" "$out/ostree_objects/${name##*.}-${name:0:8}"
done
conf="$(ostree ls --repo="$repo" -C main /etc/app.conf | awk '{print $5}')"
getfattr --only-values -n user.ostreemeta \
    "$repo/objects/${conf:0:2}/${conf:2}.file" >"$out/ostree_objects/user.ostreemeta-app.conf"

# rpmdb_bdb: real CentOS 5 to 8 Packages files, 5 to 33 MB each, shrunk to
# their smallest few headers (see shrink-bdb.py): CentOS 5's hash version
# 8 with unsorted pages, CentOS 6 to 8's version 9, and CentOS 7's again
# with every Berkeley DB number byte-swapped, as on s390x.
mkdir -p "$out/rpmdb_bdb"
testdata=/usr/share/gocode/src/github.com/knqyf263/go-rpmdb/pkg/testdata
for db in centos5-plain centos6-plain centos7-plain centos8-modularitylabel; do
    "$here/shrink-bdb.py" "$testdata/$db/Packages" "$out/rpmdb_bdb/$db" 10000
done
"$here/shrink-bdb.py" "$testdata/centos7-plain/Packages" \
    "$out/rpmdb_bdb/centos7-plain-big-endian" 10000 --swap
echo "$0: seeds written to $out"
