#!/usr/bin/env bash
# arm64 smoke run: Debian bookworm arm64 (the base of Raspberry Pi OS, Python 3.11)
# under QEMU user emulation. Builds a minimal tree from `debootstrap --download-only`
# unpacked with `dpkg -x`, installs the project and its aarch64 wheels from the host
# with `pip --platform … --target`, then imports every module and runs a small
# record → seal → verify on the sim config inside the tree.
set -euo pipefail
REPO=$(cd "$(dirname "$0")/../.." && pwd)
WORK=${ARM64_WORK:-$REPO/build/arm64}
ROOT=$WORK/root
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
HOST_PYTHON=${HOST_PYTHON:-python3}
mkdir -p "$WORK"

# 1. QEMU user emulation through binfmt_misc.
if [ ! -e /proc/sys/fs/binfmt_misc/register ]; then
    mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
fi
if [ ! -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ]; then
    /lib/systemd/systemd-binfmt
fi

# 2. A minimal bookworm arm64 tree with Python 3.11.
if [ ! -x "$ROOT/usr/bin/python3.11" ]; then
    rm -rf "$WORK/dl" "$ROOT"
    debootstrap --download-only --arch=arm64 --variant=minbase --include=python3 \
        bookworm "$WORK/dl" "$MIRROR" >"$WORK/debootstrap.log" 2>&1 \
        || { tail -20 "$WORK/debootstrap.log"; exit 1; }
    mkdir -p "$ROOT"
    for deb in "$WORK"/dl/var/cache/apt/archives/*.deb; do
        dpkg -x "$deb" "$ROOT"
    done
    mkdir -p "$ROOT/dev" "$ROOT/tmp" "$ROOT/proc"
    chmod 1777 "$ROOT/tmp"
    mknod -m 666 "$ROOT/dev/null" c 1 3
    mknod -m 666 "$ROOT/dev/urandom" c 1 9
fi

# 3. The project and its aarch64 wheels (no compiler in the tree: binary wheels only).
rm -rf "$WORK/wheel" "$ROOT/opt/site"
"$HOST_PYTHON" -m pip wheel --quiet --disable-pip-version-check --no-deps --wheel-dir "$WORK/wheel" "$REPO"
"$HOST_PYTHON" -m pip install --quiet --disable-pip-version-check --target "$ROOT/opt/site" \
    --platform manylinux_2_28_aarch64 --platform manylinux2014_aarch64 --platform linux_aarch64 \
    --python-version 3.11 --implementation cp --abi cp311 --abi abi3 --abi none \
    --only-binary=:all: "$WORK"/wheel/bodycam-*.whl
cp "$REPO/tests/arm64/smoke.py" "$ROOT/opt/smoke.py"
mkdir -p "$ROOT/opt/hw-configs"
cp "$REPO/hw-configs/sim.toml" "$ROOT/opt/hw-configs/"

# 4. Run it on the arm64 Python.
chroot "$ROOT" /usr/bin/env -i PATH=/usr/bin:/bin HOME=/tmp PYTHONPATH=/opt/site \
    /usr/bin/python3.11 /opt/smoke.py
