# Copy a host ELF binary into a root filesystem with the shared libraries
# it needs. A bash library, sourced (not run) by fixtures/assemble-base.sh
# (the e2e base images) and packaging/tool-image-context (the tool's own
# image), so that the one rule for "a binary and its libraries" lives here.
#
#   . packaging/copy-elf.sh
#   copy_elf ROOT HOSTPATH [TREEPATH]
#
# The tree has a merged /usr: host paths under /lib, /lib64, /bin and /sbin
# land under ROOT/usr, and /usr/sbin under ROOT/usr/bin. The tree needs the
# usual links (lib64 -> usr/lib64, ...) for the dynamic loader's path
# written into each binary.

# elf_in_tree ROOT HOSTPATH: the path inside ROOT for a host path.
elf_in_tree() {
    local root="$1" p
    p="$(realpath -s -- "$2")"
    case "$p" in
        /lib/* | /lib64/* | /bin/* | /sbin/*) p="/usr$p" ;;
    esac
    case "$p" in
        /usr/sbin/*) p="/usr/bin/${p#/usr/sbin/}" ;;
    esac
    printf '%s%s' "$root" "$p"
}

# copy_elf ROOT HOSTPATH [TREEPATH]: a binary (symlinks resolved) and every
# shared library ldd lists for it, at the same paths in the tree; the binary
# at TREEPATH (a full path, ROOT included) if given.
copy_elf() {
    local root="$1" bin="$2" dest="${3:-}" lib
    [ -n "$dest" ] || dest="$(elf_in_tree "$root" "$bin")"
    install -D -m 0755 "$(realpath -- "$bin")" "$dest"
    # "libfoo.so.1 => /lib/x86_64-linux-gnu/libfoo.so.1 (0x…)" and
    # "/lib64/ld-linux-x86-64.so.2 (0x…)"; linux-vdso has no file.
    while read -r lib; do
        [ -e "$(elf_in_tree "$root" "$lib")" ] && continue
        install -D -m 0755 "$(realpath -- "$lib")" "$(elf_in_tree "$root" "$lib")"
    done < <(LC_ALL=C ldd -- "$bin" | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }')
}
