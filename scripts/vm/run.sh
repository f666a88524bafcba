#!/usr/bin/env bash
# Boots Debian's kernel under qemu (TCG) with an initramfs that runs one test binary, and reports its result.
#
# Usage: scripts/vm/run.sh BINARY [ARGS...]
#
# Environment:
#   VMTEST_KERNEL   kernel release under /lib/modules (default: newest with a /boot/vmlinuz-*)
#   VMTEST_WORKDIR  where the initramfs and the console log go (default: ${CARGO_TARGET_DIR:-target}/vmtest)
#   VMTEST_TIMEOUT  seconds before qemu is killed (default: 240)
#   VMTEST_ACCEL    qemu accelerator (default: tcg; KVM guests hung on the development machine)
#   VMTEST_NO_INSTALL=1  never apt-get install missing packages
#   VMTEST_EXTRA_FILES  space-separated files to copy into the guest at their host paths (with libraries)
#   VMTEST_GUEST_ENV    space-separated NAME=VALUE pairs exported in the guest before the binary runs
#
# Prints the guest console, then a last line `vmtest: pass` or `vmtest: fail (...)`. Exit status: 0 when the
# guest printed `VMTEST-RESULT rc=0`, 1 when it printed another rc or none (hang, crash, timeout), 2 when the
# VM could not be prepared (missing packages and no way to install them).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
[ $# -ge 1 ] || { echo "usage: $0 BINARY [ARGS...]" >&2; exit 2; }
bin="$(readlink -f "$1")"; shift

need_pkgs=()
command -v qemu-system-x86_64 >/dev/null || need_pkgs+=(qemu-system-x86)
[ -x /bin/busybox ] || need_pkgs+=(busybox-static)
command -v modprobe >/dev/null || need_pkgs+=(kmod)
command -v cpio >/dev/null || need_pkgs+=(cpio)
command -v ipset >/dev/null || need_pkgs+=(ipset)
command -v iptables >/dev/null || need_pkgs+=(iptables)
command -v ipvsadm >/dev/null || need_pkgs+=(ipvsadm) # only to compare our listing with ipvsadm's in the guest
command -v strip >/dev/null || need_pkgs+=(binutils) # strips debug info from the binaries copied into the guest
ls /boot/vmlinuz-* >/dev/null 2>&1 || need_pkgs+=(linux-image-cloud-amd64)
if [ ${#need_pkgs[@]} -gt 0 ]; then
  if [ "${VMTEST_NO_INSTALL:-0}" != 1 ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "vmtest: installing ${need_pkgs[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2
    apt-get install -y -qq --no-install-recommends "${need_pkgs[@]}" >&2
  else
    echo "vmtest: fail (missing packages: ${need_pkgs[*]})"
    exit 2
  fi
fi

kver="${VMTEST_KERNEL:-}"
if [ -z "$kver" ]; then
  for k in $(ls /boot/vmlinuz-* | sort -V); do
    r="${k#/boot/vmlinuz-}"
    [ -d "/lib/modules/$r/kernel/net/netfilter/ipvs" ] && kver="$r"
  done
fi
[ -n "$kver" ] && [ -r "/boot/vmlinuz-$kver" ] || { echo "vmtest: fail (no kernel with IPVS modules in /boot)"; exit 2; }

workdir="${VMTEST_WORKDIR:-${CARGO_TARGET_DIR:-$here/../../target}/vmtest}"
mkdir -p "$workdir"
initrd="$workdir/initrd.cpio.gz"
log="$workdir/console.log"
"$here/build-initramfs.sh" "$kver" "$initrd" "$bin" "$@"

accel="${VMTEST_ACCEL:-tcg}"
echo "vmtest: booting $kver with $accel" >&2
set +e
timeout --kill-after=5 "${VMTEST_TIMEOUT:-240}" qemu-system-x86_64 -accel "$accel" -m 1024 -smp 1 -nographic -no-reboot \
  -nodefaults -serial stdio -display none \
  -kernel "/boot/vmlinuz-$kver" -initrd "$initrd" \
  -append "console=ttyS0 panic=-1 quiet loglevel=3" </dev/null > "$log" 2>&1
qrc=$?
set -e
tr -d '\r' < "$log"
rc_line="$(tr -d '\r' < "$log" | grep -a '^VMTEST-RESULT rc=' | tail -n1 || true)"
if [ "$rc_line" = "VMTEST-RESULT rc=0" ]; then
  echo "vmtest: pass"
  exit 0
elif [ -n "$rc_line" ]; then
  echo "vmtest: fail (guest ${rc_line#VMTEST-RESULT })"
else
  echo "vmtest: fail (no result line; qemu exit $qrc)"
fi
exit 1
