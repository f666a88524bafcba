#!/usr/bin/env bash
# Builds a gzip'd cpio initramfs that boots Debian's kernel straight into one test binary.
#
# Usage: build-initramfs.sh KERNEL_RELEASE OUT.cpio.gz BINARY [ARGS...]
# Environment: VMTEST_EXTRA_FILES (space-separated files copied at their host paths, with their libraries),
# VMTEST_GUEST_ENV (space-separated NAME=VALUE exported before the binary runs).
#
# The image holds: busybox (static), the .ko files IPVS tests need with their dependencies (resolved with
# `modprobe --show-depends` against /lib/modules/KERNEL_RELEASE), `ip`, `ipset`, `iptables`/`ip6tables`
# (nft and legacy) with their shared libraries and xtables plugins, the test binary with its libraries (ldd),
# and an /init that loads the modules, runs the binary and prints `VMTEST-RESULT rc=N`, then powers off.
set -euo pipefail

kver="$1"; out="$2"; bin="$3"; shift 3
moddir="/lib/modules/$kver"
[ -d "$moddir" ] || { echo "build-initramfs: $moddir missing (install linux-image-cloud-amd64)" >&2; exit 2; }

root="$(mktemp -d)"
trap 'rm -rf "$root"' EXIT

mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,proc,sys,dev,run,tmp,etc,guest,var/run,lib64,lib/x86_64-linux-gnu}
cp /bin/busybox "$root/bin/busybox"

# Copy a file and its shared libraries (ldd) into the image at the same paths.
copy_with_libs() {
  local f="$1" dest="${2:-$1}"
  mkdir -p "$root/$(dirname "$dest")"
  cp -L "$f" "$root/$dest"
  { ldd "$f" 2>/dev/null || true; } | awk '/=> \//{print $3} /^[ \t]*\/lib/{print $1}' | while read -r lib; do
    mkdir -p "$root/$(dirname "$lib")"
    [ -e "$root/$lib" ] || cp -L "$lib" "$root/$lib"
  done
}

# Debug builds carry hundreds of MB of debug info that the guest (whose RAM holds the whole image) does not
# need: strip it from the copies (VMTEST_STRIP=0 keeps it).
strip_copy() {
  if [ "${VMTEST_STRIP:-1}" != 0 ] && command -v strip >/dev/null && head -c4 "$1" | grep -q ELF; then
    strip --strip-debug "$1" 2>/dev/null || true
  fi
}
copy_with_libs "$bin" /guest/test-binary
strip_copy "$root/guest/test-binary"
# Extra executables or files the test needs, at their host paths (e.g. a binary a cargo test runs through
# CARGO_BIN_EXE_*, whose absolute path is compiled into the test).
for extra in ${VMTEST_EXTRA_FILES:-}; do
  copy_with_libs "$(readlink -f "$extra")" "$(readlink -f "$extra")"
  strip_copy "$root/$(readlink -f "$extra")"
done
for tool in /usr/bin/ip /usr/sbin/ipset /usr/sbin/xtables-nft-multi /usr/sbin/xtables-legacy-multi /usr/sbin/nft /usr/sbin/conntrack /usr/sbin/ipvsadm; do
  if [ -x "$tool" ]; then copy_with_libs "$tool"; fi
done
# The host's iptables names (iptables, iptables-legacy-restore, ip6tables-nft-save, ...) as symlinks.
for f in /usr/sbin/iptables* /usr/sbin/ip6tables*; do
  case "$(readlink -f "$f")" in
    */xtables-nft-multi) ln -sf xtables-nft-multi "$root/usr/sbin/$(basename "$f")" ;;
    */xtables-legacy-multi) ln -sf xtables-legacy-multi "$root/usr/sbin/$(basename "$f")" ;;
  esac
done
if [ -d /usr/lib/x86_64-linux-gnu/xtables ]; then
  mkdir -p "$root/usr/lib/x86_64-linux-gnu"
  cp -a /usr/lib/x86_64-linux-gnu/xtables "$root/usr/lib/x86_64-linux-gnu/"
  for so in "$root"/usr/lib/x86_64-linux-gnu/xtables/*.so; do
    { ldd "$so" 2>/dev/null || true; } | awk '/=> \//{print $3}' | while read -r lib; do
      [ -e "$root/$lib" ] || { mkdir -p "$root/$(dirname "$lib")"; cp -L "$lib" "$root/$lib"; }
    done
  done
fi
# iptables looks protocols up by name.
if [ -f /etc/protocols ]; then cp /etc/protocols "$root/etc/"; fi
# The proxy's API client loads the system's root certificates at start-up, even for a plain-HTTP --master.
if [ -f /etc/ssl/certs/ca-certificates.crt ]; then
  mkdir -p "$root/etc/ssl/certs"
  cp -L /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/"
fi

modules="ip_vs ip_vs_rr ip_vs_wrr ip_vs_lc ip_vs_wlc ip_vs_lblc ip_vs_lblcr ip_vs_sh ip_vs_dh ip_vs_sed ip_vs_nq
  nf_conntrack nf_conntrack_netlink dummy veth bridge
  ip_set ip_set_hash_ip ip_set_hash_ipport ip_set_hash_ipportip ip_set_hash_ipportnet ip_set_hash_net ip_set_bitmap_port
  x_tables ip_tables ip6_tables iptable_nat iptable_filter iptable_mangle ip6table_nat ip6table_filter ip6table_mangle
  xt_set xt_MASQUERADE xt_mark xt_comment xt_addrtype xt_conntrack xt_nat xt_tcpudp xt_physdev xt_ipvs xt_multiport xt_statistic xt_recent ipt_REJECT ip6t_REJECT
  nf_tables nft_compat nft_chain_nat nft_ct nft_nat nft_masq nft_reject_inet nft_reject_ipv4"
: > "$root/modules.list"
for m in $modules; do
  modprobe -S "$kver" --show-depends "$m" 2>/dev/null | awk '$1=="insmod"' || true
done | awk '!seen[$2]++ && $2 !~ /crc32c-intel/' | while read -r _ path params; do
  mkdir -p "$root/$(dirname "$path")"
  case "$path" in
    *.ko.xz) xz -dc "$path" > "$root/${path%.xz}"; path="${path%.xz}" ;;
    *.ko.zst) zstd -qdc "$path" > "$root/${path%.zst}"; path="${path%.zst}" ;;
    *) cp "$path" "$root/$path" ;;
  esac
  echo "$path $params" >> "$root/modules.list"
done

{
  printf '%s\n' '#!/bin/busybox sh'
  printf '%s\n' '/bin/busybox --install -s /bin'
  printf '%s\n' 'export PATH=/usr/sbin:/usr/bin:/sbin:/bin'
  printf '%s\n' 'mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev'
  # /tmp stays part of the (writable) initramfs root: extra files may live under /tmp at their host paths.
  printf '%s\n' 'mount -t tmpfs tmpfs /run; mkdir -p /run/netns'
  printf '%s\n' 'while read -r ko params; do insmod "$ko" $params || echo "VMTEST-WARN insmod $ko failed"; done < /modules.list'
  printf '%s\n' 'ip link set lo up'
  for kv in ${VMTEST_GUEST_ENV:-}; do printf 'export %q\n' "$kv"; done
  printf '%s\n' 'echo VMTEST-START'
  printf 'cd /guest && /guest/test-binary'
  for a in "$@"; do printf " '%s'" "${a//\'/\'\\\'\'}"; done
  printf '\n'
  printf '%s\n' 'echo "VMTEST-RESULT rc=$?"'
  printf '%s\n' 'poweroff -f'
} > "$root/init"
chmod +x "$root/init"

(cd "$root" && find . -print0 | cpio --null -o -H newc --quiet) | gzip -1 > "$out"
