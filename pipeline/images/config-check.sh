# kmatrix: check a prepared kernel .config against the .config Debian built that kernel
# with (rendered into kernel-prepare.j2's RUN; tests/integration/test_config_check.py runs it).
# usage: sh config-check.sh DEBIAN_CONFIG CONFIG
#   KMATRIX_PREPARE_EXPECT  lines CONFIG must hold (e.g. CONFIG_RUST=y)
#   KMATRIX_PREPARE_KEEP    options whose values must be Debian's (the toolchain)
set -eu
debian_config=$1
config=$2
for want in ${KMATRIX_PREPARE_EXPECT:-}; do
  grep -qxF "$want" "$config" || {
    echo "kernel config: olddefconfig did not give $want" >&2; exit 1; }
done
for opt in ${KMATRIX_PREPARE_KEEP:-}; do
  debian=$(grep "^$opt=" "$debian_config" || echo "$opt unset")
  here=$(grep "^$opt=" "$config" || echo "$opt unset")
  [ "$debian" = "$here" ] || {
    echo "kernel config: Debian built this kernel with $debian, this image has $here:" \
      "modules built here would not match it; use the suite that has that toolchain," \
      "or a kernel built from source (docs/RUST-MODULE.md)" >&2
    exit 1; }
done
