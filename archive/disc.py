"""Long-term media (Art. 13): an evidence package written to an ISO 9660
image with Joliet, Rock Ridge and UDF 2.60 (pycdlib), for optical discs or
archival removable media, and read back to check it.

The image holds the package layout unchanged (manifest, attestation,
originals, media, report, ``verify_package.py``), so the disc is verified
the same way as the folder: mount it (or extract it) and run
``python3 verify_package.py .`` in it.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pycdlib

from bodycam.errors import InputError, UsageError

from .standalone_verifier import Result, verify_package


@dataclass
class DiscImage:
    path: Path
    files: int
    bytes: int


def _iso_name(rel: str, is_dir: bool) -> str:
    """An ISO 9660 level-4 path (upper case, ;1 on files): readers without the
    Joliet/Rock Ridge/UDF names still see every file, in the same tree."""
    parts = [p.upper().replace("-", "_") for p in rel.split("/")]
    return "/" + "/".join(parts) + ("" if is_dir else ";1")


def write_image(package: Path, out: Path, *, label: str = "BODYCAM_EVIDENCE") -> DiscImage:
    """Write ``package`` (a folder) to the ISO image ``out`` (new file, fsync'd).

    Raises InputError if the folder is not a package, UsageError for a bad
    label or an existing ``out``.
    """
    package = Path(package)
    if not (package / "manifest.json").is_file() or not (package / "verify_package.py").is_file():
        raise InputError(f"{package}: not an evidence package (no manifest.json / verify_package.py)")
    if not label or len(label) > 32 or not all(c.isalnum() or c == "_" for c in label):
        raise UsageError(f"volume label {label!r}: up to 32 of A-Z, 0-9, _")
    if out.exists():
        raise UsageError(f"{out} exists")
    iso = pycdlib.PyCdlib()
    iso.new(interchange_level=4, joliet=3, rock_ridge="1.09", udf="2.60", vol_ident=label.upper())
    files = total = 0
    try:
        for path in sorted(package.rglob("*")):
            if path.is_symlink():
                raise InputError(f"{path}: a link in the package; refusing to write it")
            rel = str(path.relative_to(package))
            name = path.name
            if path.is_dir():
                iso.add_directory(_iso_name(rel, True), rr_name=name, joliet_path="/" + rel, udf_path="/" + rel)
            elif path.is_file():
                iso.add_file(str(path), _iso_name(rel, False), rr_name=name, joliet_path="/" + rel,
                             udf_path="/" + rel)
                files += 1
                total += path.stat().st_size
            else:
                raise InputError(f"{path}: not a regular file (FIFO or device?)")
        tmp = out.with_name(f".{out.name}.part")
        iso.write(str(tmp))
    finally:
        iso.close()
    with open(tmp, "rb+") as f:
        import os

        os.fsync(f.fileno())
    tmp.rename(out)
    return DiscImage(out, files, total)


def extract_image(image: Path, target: Path) -> int:
    """Copy every file out of the image by its UDF names (pycdlib); returns the count."""
    iso = pycdlib.PyCdlib()
    try:
        iso.open(str(image))
    except pycdlib.pycdlibexception.PyCdlibException as exc:
        raise InputError(f"{image}: not a readable ISO 9660/UDF image: {exc}") from None
    count = 0
    try:
        for root, dirs, names in iso.walk(udf_path="/"):
            base = target / root.lstrip("/")
            base.mkdir(parents=True, exist_ok=True)
            for name in names:
                with open(base / name, "wb") as f:
                    iso.get_file_from_iso_fp(f, udf_path=f"{root.rstrip('/')}/{name}")
                count += 1
    finally:
        iso.close()
    return count


def verify_image(image: Path, ca: Path | None = None) -> Result:
    """Read the written image back and run the package's verifier on it."""
    work = Path(tempfile.mkdtemp(prefix="disc-verify-"))
    try:
        extract_image(image, work / "package")
        return verify_package(work / "package", ca)
    finally:
        shutil.rmtree(work, ignore_errors=True)
