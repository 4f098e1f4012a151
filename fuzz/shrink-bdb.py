#!/usr/bin/env python3
"""Shrink a real rpm Berkeley DB `Packages` file into a small, valid one.

    fuzz/shrink-bdb.py IN OUT BUDGET [--swap]

Used by make-seeds.sh for the rpmdb_bdb seeds. `Packages` is a Berkeley DB
hash database (see src/rpmdb/bdb.rs); real ones are 5-35 MB, far too big
for a fuzzer. This keeps the metadata page and the first page of every
bucket as the writer laid them out, but only the pairs of the smallest
headers that fit in BUDGET bytes (and rpm's instance counter, key 0),
repacked on their page; the overflow pages of the kept headers are copied
unchanged except for their page numbers, which are made consecutive. The
result reads the same packages with the real rpm (`_db_backend bdb_ro`)
and with ostree-finalize. Page types, hash version and byte order are the
original's; with --swap, every number in the Berkeley DB structures
(not in the rpm headers, which are always big-endian) is written in the
other byte order, as a database written on s390x or ppc64 would be.
"""

import struct
import sys


def shrink(data, budget):
    order = '<' if struct.unpack_from('<I', data, 12)[0] == 0x061561 else '>'

    def u16(b, at):
        return struct.unpack_from(order + 'H', b, at)[0]

    def u32(b, at):
        return struct.unpack_from(order + 'I', b, at)[0]

    ps = u32(data, 20)
    max_bucket = u32(data, 72)
    spares = [u32(data, 96 + 4 * i) for i in range(32)]

    def page(n):
        return data[n * ps:(n + 1) * ps]

    def chain(n):
        pages = []
        while n:
            pages.append(n)
            n = u32(page(n), 16)
        return pages

    # The pairs on each bucket's first page: (key, value, header size).
    buckets = []
    for b in range(max_bucket + 1):
        p = page(b + spares[b.bit_length()])
        entries = u16(p, 20)
        offs = [u16(p, 26 + 2 * i) for i in range(entries)]
        pairs = []
        for i in range(0, entries - 1, 2):
            kend = ps if i == 0 else offs[i - 1]
            key, val = p[offs[i]:kend], p[offs[i + 1]:offs[i]]
            size = len(val) - 1 if val[0] == 1 else u32(val, 8)
            pairs.append((key, val, size))
        buckets.append((p, pairs))
    sizes = sorted(s for _, pairs in buckets for k, _, s in pairs if u32(k, 1) != 0)
    limit, total = 0, 0
    for s in sizes:
        if total + s > budget:
            break
        total += s
        limit = s
    out = {}
    next_free = len(buckets) + 1
    for b, (p, pairs) in enumerate(buckets):
        items = []
        for key, val, size in pairs:
            if u32(key, 1) != 0 and size > limit:
                continue
            if val[0] == 3:  # H_OFFPAGE: copy its overflow chain, renumbered
                old = chain(u32(val, 4))
                new = list(range(next_free, next_free + len(old)))
                next_free += len(old)
                for j, (o, n) in enumerate(zip(old, new)):
                    q = bytearray(page(o))
                    struct.pack_into(order + 'III', q, 8, n, new[j - 1] if j else 0,
                                     new[j + 1] if j + 1 < len(new) else 0)
                    out[n] = q
                val = bytearray(val)
                struct.pack_into(order + 'I', val, 4, new[0])
            items += [key, bytes(val)]
        q = bytearray(ps)
        q[:26] = p[:26]
        struct.pack_into(order + 'III', q, 8, b + 1, 0, 0)
        struct.pack_into(order + 'H', q, 20, len(items))
        end = ps
        for i, item in enumerate(items):
            end -= len(item)
            q[end:end + len(item)] = item
            struct.pack_into(order + 'H', q, 26 + 2 * i, end)
        struct.pack_into(order + 'H', q, 22, end)
        out[b + 1] = q
    meta = bytearray(page(0))
    struct.pack_into(order + 'I', meta, 28, 0)  # no free list
    struct.pack_into(order + 'I', meta, 32, next_free - 1)  # last page
    for i in range(32):  # bucket b starts at page b + 1
        struct.pack_into(order + 'I', meta, 96 + 4 * i, 1)
    return order, ps, [meta] + [out[n] for n in range(1, next_free)]


def swap(order, pages):
    """Rewrite every Berkeley DB number in the other byte order."""
    other = '>' if order == '<' else '<'

    def flip(p, fmt, at):
        v = struct.unpack_from(order + fmt, p, at)
        struct.pack_into(other + fmt, p, at, *v)

    meta = pages[0]
    for at in [0, 4, 8, 12, 16, 20, 28, 32, 36, 40, 44, 48] + list(range(72, 224, 4)):
        flip(meta, 'I', at)
    for p in pages[1:]:
        kind = p[25]
        entries = struct.unpack_from(order + 'H', p, 20)[0]
        for at in (0, 4, 8, 12, 16):
            flip(p, 'I', at)
        flip(p, 'H', 20)
        flip(p, 'H', 22)
        if kind not in (2, 13):
            continue
        offs = [struct.unpack_from(order + 'H', p, 26 + 2 * i)[0] for i in range(entries)]
        for i, off in enumerate(offs):
            flip(p, 'H', 26 + 2 * i)
            end = len(p) if i == 0 else offs[i - 1]
            if p[off] == 3:
                flip(p, 'I', off + 4)
                flip(p, 'I', off + 8)
            elif i % 2 == 0 and end - off == 5:  # a key: the instance number
                flip(p, 'I', off + 1)


def main():
    src, dst, budget = sys.argv[1], sys.argv[2], int(sys.argv[3])
    data = open(src, 'rb').read()
    order, _, pages = shrink(data, budget)
    if '--swap' in sys.argv[4:]:
        swap(order, pages)
    with open(dst, 'wb') as f:
        for p in pages:
            f.write(p)


main()
