"""Build the Debian packages once per test session (packaging/build-packages)
and make a clean Debian chroot, cached as a tarball in build/."""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
OUT = REPO / "build" / "packages"
MIRROR = os.environ.get("DEBIAN_MIRROR", "http://deb.debian.org/debian")


def need(*tools: str, root: bool = False) -> None:
    """Fail under CI=true, skip elsewhere, when a tool or root is missing."""
    missing = [t for t in tools if shutil.which(t) is None and not Path(t).exists()]
    if root and os.geteuid() != 0:
        missing.append("root")
    if not missing:
        return
    message = f"needs {', '.join(missing)}: `make test` installs them (run as root)"
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


@functools.lru_cache(maxsize=None)
def built_packages() -> dict[str, Path]:
    """{"station-amd64": deb, "station-arm64": deb, "recorder-arm64": deb}, built fresh."""
    shutil.rmtree(OUT, ignore_errors=True)
    env = {**os.environ, "BODYCAM_PYTHON": sys.executable}
    result = subprocess.run([str(REPO / "packaging/build-packages"), str(OUT), "amd64", "arm64"],
                            capture_output=True, text=True, env=env, timeout=1800)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    debs = {}
    for deb in OUT.glob("*.deb"):
        name, _, arch = deb.stem.split("_")
        debs[f"{name.removeprefix('bodycam-')}-{arch}"] = deb
    return debs


def debootstrap_tree(target: Path, arch: str = "amd64", include: str = "") -> None:
    """A clean minbase bookworm in ``target``, from a tarball cached in build/."""
    cache = REPO / "build" / f"debootstrap-bookworm-{arch}{'-' + include.replace(',', '-') if include else ''}.tar"
    if not cache.exists():
        fresh = cache.with_suffix(".d")
        shutil.rmtree(fresh, ignore_errors=True)
        args = ["debootstrap", "--variant=minbase", f"--arch={arch}"]
        if include:
            args.append(f"--include={include}")
        result = subprocess.run([*args, "bookworm", str(fresh), MIRROR], capture_output=True, text=True,
                                timeout=1800)
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
        subprocess.run(["tar", "-C", str(fresh), "-cf", str(cache.with_suffix(".tmp")), "."], check=True)
        os.replace(cache.with_suffix(".tmp"), cache)
        shutil.rmtree(fresh, ignore_errors=True)
    target.mkdir(parents=True)
    subprocess.run(["tar", "-C", str(target), "-xf", str(cache)], check=True)
