#!/bin/bash
# Make seed inputs for the fuzz targets from real artifacts: RPMs built with
# the real rpmbuild, a base tree installed with the real rpm, and the
# manifest `ostree-finalize snapshot` writes for it.
#
#   fuzz/make-seeds.sh OUTDIR
#
# Writes OUTDIR/<target>/… for rpm_header, rpmdb_sqlite and manifest_json
# (path_roundtrip needs no real artifact; its seeds are in fuzz/seeds/).
# fuzz/seeds/ was made with this script, minus the two biggest database
# files (real-rpmdb.sqlite, 220 KiB; full-schema-p512, 39 KiB): run it with
# OUTDIR=fuzz/corpus to add those. Needs root (for make-base-tree.sh),
# rpmbuild, rpm and sqlite3. Installed headers carry install times, so a
# rerun gives different bytes.
set -euo pipefail

if [ $# -ne 1 ]; then
    echo "usage: $0 OUTDIR" >&2
    exit 2
fi
for tool in rpm rpmbuild sqlite3; do
    command -v "$tool" >/dev/null || { echo "$0: $tool not found" >&2; exit 2; }
done
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
fixtures="$here/../tests/fixtures"
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
echo "$0: seeds written to $out"
