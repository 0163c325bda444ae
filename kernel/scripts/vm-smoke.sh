#!/bin/sh
# Boot a Debian kernel under QEMU (TCG) with a busybox initramfs containing
# vexfs.ko, tests/run-ktap.sh and tests/ioctl_smoke, and run the KTAP suite.
# usage: scripts/vm-smoke.sh VMLINUZ VEXFS_KO [WORKDIR]
# (vexfs.ko must be built for exactly that kernel; `make tests` first.)
set -eu
vmlinuz=$1 ko=$2 work=${3:-/var/tmp/vexfs-vm/work}
src=$(cd "$(dirname "$0")/.." && pwd)
bb=$(command -v busybox)
rm -rf "$work"; mkdir -p "$work/root/bin" "$work/root/t" "$work/root/proc" \
	"$work/root/sys" "$work/root/dev" "$work/root/tmp" "$work/root/mnt"
cp "$bb" "$work/root/bin/busybox"
for a in $("$bb" --list); do
	[ "$a" = busybox ] || ln -sf busybox "$work/root/bin/$a"
done
cp "$ko" "$work/root/t/vexfs.ko"
cp "$src/tests/run-ktap.sh" "$src/tests/ioctl_smoke" "$work/root/t/"
cat > "$work/root/init" <<'EOI'
#!/bin/sh
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev
echo "=== VEXFS KTAP BEGIN"
sh /t/run-ktap.sh /t/vexfs.ko
echo "=== VEXFS KTAP END rc=$?"
dmesg | grep -iE 'vexfs|BUG|WARNING|Oops' | head -n 40
poweroff -f
EOI
chmod +x "$work/root/init"
(cd "$work/root" && find . | cpio -o -H newc 2>/dev/null | gzip -1) > "$work/initrd.cpio.gz"
timeout 300 qemu-system-x86_64 -machine q35 -accel tcg -m 512 -nographic \
	-no-reboot -kernel "$vmlinuz" -initrd "$work/initrd.cpio.gz" \
	-append "console=ttyS0 panic=-1 quiet" > "$work/console.log" 2>&1 || true
sed -n '/=== VEXFS KTAP BEGIN/,$p' "$work/console.log"
grep -q '=== VEXFS KTAP END rc=0' "$work/console.log"
