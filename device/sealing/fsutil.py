"""Durable file writes: fsync the data, rename atomically, fsync the folder."""

from __future__ import annotations

import os
from pathlib import Path

from bodycam.errors import SealingError


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_new_file(path: Path, data: bytes, mode: int = 0o444) -> None:
    """Write ``data`` to a new file ``path`` durably; an existing file is refused.

    The bytes go to a temporary name first and are renamed into place with
    ``link`` (which fails if the target exists), so a crash never leaves a
    half-written file under the real name and nothing is ever overwritten.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    except BaseException:
        os.unlink(tmp)
        raise
    finally:
        os.close(fd)
    try:
        os.link(tmp, path)
    except FileExistsError:
        raise SealingError(f"{path}: already exists; refusing to overwrite") from None
    finally:
        os.unlink(tmp)
    fsync_dir(path.parent)
