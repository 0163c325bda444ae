#!/usr/bin/env bash
# Installs what kmatrix needs on a Debian machine; idempotent (a second call installs nothing).
#   apt packages (mmdebstrap for registry-free images, QEMU for VM tests, ...); with
#   --test also what only the tests need (Chromium, PostgreSQL, gpg)
#   a Python venv in .venv from pyproject.toml (re-created only when pyproject.toml changes)
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(
  mmdebstrap uidmap            # Debian rootfs for images without a registry
  gpgv debian-archive-keyring  # verify the signed InRelease of kernel suites (pipeline lock)
  qemu-system-x86 busybox-static cpio zstd xz-utils  # VM tests
  qemu-system-arm              # arm64 VM tests (qemu-system-aarch64; arm64 busybox: matrix.lock)
  kmod                         # depmod for virtme-ng in make bench (g)
  python3-venv git ca-certificates
)
TEST_PACKAGES=(                # only what `make test` needs (scripts/setup.sh --test)
  gpg gpg-agent                # a throwaway key signs a synthetic archive
  chromium chromium-driver     # browser tests of the HTML report and the Buildbot dashboard
  postgresql                   # the Buildbot master on PostgreSQL (a test starts its own cluster)
)
if [ "${1:-}" = "--test" ]; then APT_PACKAGES+=("${TEST_PACKAGES[@]}"); fi
missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})); then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  echo "setup: installing apt packages: ${missing[*]}"
  $SUDO apt-get update -qq || echo "setup: apt-get update reported errors (continuing)"
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

PYTHON="${PYTHON:-python3}"
if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  echo "setup: Python >= 3.11 is required ($PYTHON is $("$PYTHON" --version 2>&1))" >&2
  exit 2
fi
mkdir -p .stamps
stamp=".stamps/venv-$(cat pyproject.toml requirements.lock scripts/setup.sh | sha256sum | cut -c1-16)"
if [ ! -f "$stamp" ] || [ ! -x .venv/bin/pipeline ]; then
  if [ ! -x .venv/bin/python ] || ! .venv/bin/python -c '' 2>/dev/null; then
    echo "setup: creating .venv"
    rm -rf .venv
    "$PYTHON" -m venv .venv
    .venv/bin/pip install -q --upgrade pip
  fi
  echo "setup: installing Python dependencies from pyproject.toml into .venv"
  # requirements.lock pins the exact set the tests passed with (pyproject.toml holds ranges)
  if ! .venv/bin/pip install -q -c requirements.lock -e '.[test,buildbot,postgres]' \
      >.stamps/pip.log 2>&1; then
    cat .stamps/pip.log >&2; echo "setup: pip install failed (log above)" >&2; exit 2
  fi
  rm -f .stamps/venv-*
  touch "$stamp"
fi

if ! docker info >/dev/null 2>&1; then
  echo "setup: warning: the Docker Engine is not reachable (is it running?)" >&2
fi
