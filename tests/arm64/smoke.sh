#!/usr/bin/env bash
# arm64 smoke run: Debian bookworm arm64 (the base of Raspberry Pi OS, Python 3.11)
# under QEMU user emulation. Builds a minimal tree from `debootstrap --download-only`
# unpacked with `dpkg -x`, installs the project and its aarch64 wheels from the host
# with `pip --platform … --target`, then imports every module and runs a small
# record → seal → verify on the sim config inside the tree.
# With RECORDER_DEB set (a bodycam-recorder_*_arm64.deb), it then installs that
# package with the tree's own dpkg (its maintainer scripts run under QEMU) and
# runs `bodycam selftest --config /etc/bodycam/sim.toml` as the user bodycam,
# keeping the report in $ROOT/tmp/selftest.json.
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

# 2. A minimal bookworm arm64 tree with Python 3.11, and what the recorder
#    package depends on (systemd for sysusers/tmpfiles, PortAudio).
if [ ! -x "$ROOT/usr/bin/python3.11" ] || [ ! -x "$ROOT/usr/bin/systemd-sysusers" ]; then
    rm -rf "$WORK/dl" "$ROOT"
    debootstrap --download-only --arch=arm64 --variant=minbase --include=python3,systemd,libportaudio2 \
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
    # What base-passwd's and dpkg's own set-up would have made; the tree's
    # dpkg database starts empty (nothing was installed with dpkg).
    cp "$ROOT/usr/share/base-passwd/passwd.master" "$ROOT/etc/passwd"
    cp "$ROOT/usr/share/base-passwd/group.master" "$ROOT/etc/group"
    mkdir -p "$ROOT/var/lib/dpkg/info" "$ROOT/var/lib/dpkg/updates"
    touch "$ROOT/var/lib/dpkg/status" "$ROOT/var/lib/dpkg/available"
fi

# 3. The project and its aarch64 wheels (no compiler in the tree: binary wheels only).
rm -rf "$WORK/wheel" "$ROOT/opt/site"
"$HOST_PYTHON" -m pip wheel --quiet --disable-pip-version-check --no-deps --wheel-dir "$WORK/wheel" "$REPO"
"$HOST_PYTHON" -m pip install --quiet --disable-pip-version-check --target "$ROOT/opt/site" \
    --platform manylinux_2_28_aarch64 --platform manylinux2014_aarch64 --platform linux_aarch64 \
    --python-version 3.11 --implementation cp --abi cp311 --abi abi3 --abi none \
    --only-binary=:all: "$(ls "$WORK"/wheel/bodycam-*.whl)[recorder,dock,archive]"   # every part: smoke.py imports all
cp "$REPO/tests/arm64/smoke.py" "$ROOT/opt/smoke.py"
mkdir -p "$ROOT/opt/hw-configs"
cp "$REPO/hw-configs/sim.toml" "$ROOT/opt/hw-configs/"

# 4. Run it on the arm64 Python.
chroot "$ROOT" /usr/bin/env -i PATH=/usr/bin:/bin HOME=/tmp PYTHONPATH=/opt/site \
    /usr/bin/python3.11 /opt/smoke.py >"$WORK/smoke.json" || { cat "$WORK/smoke.json"; exit 1; }

# 5. The recorder package, installed and self-tested in the tree.
if [ -n "${RECORDER_DEB:-}" ]; then
    mount -t proc proc "$ROOT/proc"   # systemd-tmpfiles needs it
    trap 'umount -l "$ROOT/proc"' EXIT
    if [ -e "$ROOT/var/lib/dpkg/info/bodycam-recorder.list" ]; then
        chroot "$ROOT" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin dpkg --purge bodycam-recorder >/dev/null
    fi
    cp "$RECORDER_DEB" "$ROOT/tmp/bodycam-recorder.deb"
    rm -f "$ROOT/tmp/selftest.json"
    # --force-depends: the tree was unpacked, not installed, so dpkg's database
    # does not know that python3.11, systemd and libportaudio2 are there.
    chroot "$ROOT" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 \
        dpkg -i --force-depends /tmp/bodycam-recorder.deb >"$WORK/dpkg-install.log" 2>&1 \
        || { cat "$WORK/dpkg-install.log"; exit 1; }
    uid=$(awk -F: '$1 == "bodycam" {print $3 ":" $4}' "$ROOT/etc/passwd")
    [ -n "$uid" ] || { echo "the package did not create the user bodycam"; exit 1; }
    chroot --userspec="$uid" "$ROOT" /usr/bin/env -i PATH=/usr/bin:/bin HOME=/tmp LANG=C.UTF-8 \
        /opt/bodycam/venv/bin/bodycam selftest --config /etc/bodycam/sim.toml --unattended \
        --out /tmp/selftest.json >"$WORK/selftest.txt" 2>&1 || { cat "$WORK/selftest.txt"; exit 1; }
    cat "$WORK/dpkg-install.log" "$WORK/selftest.txt" >&2
fi
cat "$WORK/smoke.json"
