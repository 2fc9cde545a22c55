#!/usr/bin/env bash
# Assembles the container's root filesystem: the agent binary, drbdsetup, and
# the shared libraries both load (their ldd closure, dynamic loader included),
# plus an /etc/passwd naming root. Nothing else: no shell, no coreutils.
#
#   deploy/rootfs.sh ROOT AGENT_BINARY DRBDSETUP
#
# ROOT is created (it must not exist yet or be empty). The agent lands in
# /ha-controller, drbdsetup in /usr/sbin/drbdsetup (found through PATH, which
# the agent's --allow-run=drbdsetup resolves at start). The Dockerfile runs
# this in its build stage and copies ROOT into a scratch image;
# tests/deploy/rootfs_test.ts runs it with the deno runtime standing in for
# the compiled agent and then chroots into ROOT.
set -euo pipefail

if [ "$#" -ne 3 ]; then
  echo "usage: rootfs.sh ROOT AGENT_BINARY DRBDSETUP" >&2
  exit 2
fi
root=$1
agent=$2
drbdsetup=$3

for program in "$agent" "$drbdsetup"; do
  if [ ! -x "$program" ]; then
    echo "rootfs.sh: expected an executable file, got $program" >&2
    exit 1
  fi
done
if [ -e "$root" ] && [ -n "$(ls -A "$root")" ]; then
  echo "rootfs.sh: expected an empty or missing root directory, got $root with files in it" >&2
  exit 1
fi

# Copy a file to the same absolute path under ROOT, following symlinks (the
# loader's /lib64/ld-linux-x86-64.so.2 is a link on Debian), so every library
# sits where ldd found it and the loader finds it there again.
copy_to_same_path() {
  local source=$1
  mkdir -p "$root$(dirname "$source")"
  cp -L "$source" "$root$source"
}

# The absolute paths ldd names for a program: "libx.so => /path (0x...)" and
# the loader's "/lib64/ld-linux-x86-64.so.2 (0x...)". linux-vdso has no file.
library_closure() {
  local out
  if ! out=$(ldd "$1" 2>&1); then
    echo "rootfs.sh: ldd failed on $1: $out" >&2
    return 1
  fi
  if grep -q "not found" <<<"$out"; then
    echo "rootfs.sh: expected every library of $1 to resolve, ldd says: $out" >&2
    return 1
  fi
  awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }' <<<"$out"
}

mkdir -p "$root/usr/sbin" "$root/etc"
install -m 0755 "$agent" "$root/ha-controller"
install -m 0755 "$drbdsetup" "$root/usr/sbin/drbdsetup"
{
  library_closure "$agent"
  library_closure "$drbdsetup"
} | sort -u | while read -r library; do
  copy_to_same_path "$library"
done

# uid 0: drbdsetup talks to the kernel over generic netlink, which needs
# CAP_NET_ADMIN/CAP_SYS_ADMIN as root; the entry gives the uid a name (there
# is no /sbin/nologin, nor any other shell, to log in with).
echo "root:x:0:0:root:/:/sbin/nologin" >"$root/etc/passwd"
echo "root:x:0:" >"$root/etc/group"
