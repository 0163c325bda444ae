#!/bin/sh
# Build vexfs.ko inside a Debian rootfs made by mmdebstrap (see README.md).
# usage: scripts/build-in-root.sh ROOTDIR [extra make args, e.g. W=1]
# Copies this kernel/ directory into ROOTDIR/root/vexfs-build, builds there
# against the only linux-headers-*-amd64 in the root, prints the log and
# the warning count.  Exit status is make's.
set -eu
root=$1; shift
src=$(cd "$(dirname "$0")/.." && pwd)
kdir=$(cd "$root" && ls -d usr/src/linux-headers-*-amd64 | head -n 1)
rm -rf "$root/root/vexfs-build"
mkdir -p "$root/root/vexfs-build"
(cd "$src" && tar --exclude='*.o' --exclude='*.ko' --exclude='.*.cmd' -cf - .) |
	tar -xf - -C "$root/root/vexfs-build"
# objtool (7.x) reads /proc; mount it for the duration of the build.
mounted=
if [ ! -e "$root/proc/self" ]; then
	mount -t proc proc "$root/proc"
	mounted=1
fi
set +e
chroot "$root" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin \
	make -C "/$kdir" M=/root/vexfs-build "$@" modules > "$root/root/vexfs-build.log" 2>&1
rc=$?
set -e
[ -n "$mounted" ] && umount "$root/proc"
cat "$root/root/vexfs-build.log"
echo "kdir=/$kdir rc=$rc warnings=$(grep -c 'warning:' "$root/root/vexfs-build.log")"
exit $rc
