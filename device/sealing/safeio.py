"""Reading untrusted paths safely: regular files only, bounded, no hangs.

Everything the read side opens (a recording folder handed to ``bodycam
verify``, a staged docking, an export) and every path a command line names
(``--ca``, ``--identity``, ``--crl``, configs, CSVs) goes through here:

* only a **regular file** is read: a FIFO, socket or device (``/dev/zero``)
  is refused before a byte is read (the open is non-blocking, so a FIFO with
  no writer cannot hang the reader);
* inside a folder being verified, **symbolic links are refused** (a link can
  point anywhere, e.g. out of the folder);
* reads are **bounded**: a file larger than the limit its format allows is
  refused by its size, before it is read.

Errors are ``InputError`` (also an ``OSError``) naming the path and the fault.
"""

from __future__ import annotations

import mmap
import os
import stat
from pathlib import Path

from bodycam.errors import InputError

# Bounds of the files the formats define (docs/format.md §2, "Limits").
MAX_CERTIFICATE_FILE = 64 * 1024
MAX_KEY_FILE = 64 * 1024
MAX_CRL_FILE = 16 * 1024 * 1024
MAX_CONFIG_FILE = 1024 * 1024


def _kind(mode: int) -> str:
    for test, name in (
        (stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"),
        (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
        (stat.S_ISLNK, "a symbolic link"),
    ):
        if test(mode):
            return name
    return "not a regular file"


def open_regular(path: Path | str, what: str, *, follow_links: bool = True) -> int:
    """Open ``path`` read-only and return the descriptor of a regular file.

    Never blocks (``O_NONBLOCK``), refuses non-regular files and, with
    ``follow_links=False``, a symbolic link as the last component.
    Raises InputError naming ``what`` and the path.
    """
    flags = os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | getattr(os, "O_NOCTTY", 0)
    if not follow_links:
        flags |= os.O_NOFOLLOW
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        raise InputError(f"{path}: {what} not found") from None
    except OSError as exc:
        if not follow_links and os.path.islink(path):
            raise InputError(f"{path}: {what} is a symbolic link; refused") from None
        raise InputError(f"{path}: cannot open {what}: {exc.strerror}") from None
    try:
        st = os.fstat(fd)
    except OSError as exc:
        os.close(fd)
        raise InputError(f"{path}: cannot stat {what}: {exc.strerror}") from None
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        raise InputError(f"{path}: {what} is {_kind(st.st_mode)}, not a regular file; refused")
    return fd


def read_bounded(
    path: Path | str, limit: int, what: str, *, follow_links: bool = True
) -> bytes:
    """Read a whole regular file of at most ``limit`` bytes.

    The shared safe-read helper: use it for every path a user or a folder
    names.  Raises InputError (not found, not a regular file, a symbolic
    link where refused, larger than ``limit``, unreadable).
    """
    fd = open_regular(path, what, follow_links=follow_links)
    try:
        size = os.fstat(fd).st_size
        if size > limit:
            raise InputError(f"{path}: {what} is {size} bytes; the limit is {limit}")
        chunks = []
        total = 0
        while True:
            try:
                chunk = os.read(fd, min(1 << 20, limit + 1 - total))
            except BlockingIOError:
                raise InputError(f"{path}: {what} would block; refused") from None
            except OSError as exc:
                raise InputError(f"{path}: cannot read {what}: {exc.strerror}") from None
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
            if total > limit:  # grew while being read
                raise InputError(f"{path}: {what} is larger than the limit {limit}")
        return b"".join(chunks)
    finally:
        os.close(fd)


def read_text_bounded(path: Path | str, limit: int, what: str) -> str:
    """``read_bounded`` decoded as UTF-8 (a BOM is dropped); InputError otherwise."""
    data = read_bounded(path, limit, what)
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputError(f"{path}: {what} is not UTF-8 (byte {exc.start})") from None


def map_bounded(path: Path | str, limit: int, what: str) -> memoryview:
    """A regular file's bytes without a copy (mmap), refusing links and size > limit."""
    fd = open_regular(path, what, follow_links=False)
    try:
        size = os.fstat(fd).st_size
        if size > limit:
            raise InputError(f"{path}: {what} is {size} bytes; the limit is {limit}")
        if size == 0:
            return memoryview(b"")
        try:
            return memoryview(mmap.mmap(fd, 0, access=mmap.ACCESS_READ))
        except (OSError, ValueError) as exc:
            raise InputError(f"{path}: cannot map {what}: {exc}") from None
    finally:
        os.close(fd)


def check_folder(path: Path, what: str) -> Path:
    """``path`` when it is a folder this process can list; a link to one is followed (the
    caller named it).  Nothing in it is opened, and a FIFO is never opened.

    Raises InputError naming ``what``, the path and the fault: it does not
    exist (or a link's target does not), a parent is not a folder, it is a
    regular file, FIFO, socket or device, or it cannot be listed (permission).
    """
    try:
        st = os.stat(path)
    except FileNotFoundError:
        if os.path.islink(path):
            raise InputError(f"{path}: {what} is a symbolic link to {os.readlink(path)}, "
                             "which does not exist") from None
        raise InputError(f"{path}: {what} does not exist") from None
    except NotADirectoryError:
        raise InputError(f"{path}: {what} does not exist (a parent is not a folder)") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot reach {what}: {exc.strerror}") from None
    if not stat.S_ISDIR(st.st_mode):
        kind = "a regular file" if stat.S_ISREG(st.st_mode) else _kind(st.st_mode)
        raise InputError(f"{path}: {what} is {kind}, not a folder")
    try:
        with os.scandir(path) as it:
            next(it, None)
    except OSError as exc:
        raise InputError(f"{path}: cannot read {what}: {exc.strerror}") from None
    return path


def list_folder(folder: Path, what: str) -> tuple[list[str], list[str]]:
    """Names in ``folder`` split into (regular files, anything else).

    ``folder`` itself must be a real folder, not a link.  Nothing is opened;
    the caller reports the second list (links, FIFOs, sub-folders).  A
    missing folder gives two empty lists.  Raises InputError otherwise.
    """
    try:
        st = os.lstat(folder)
    except FileNotFoundError:
        return [], []
    except OSError as exc:
        raise InputError(f"{folder}: cannot read {what}: {exc.strerror}") from None
    if not stat.S_ISDIR(st.st_mode):
        raise InputError(f"{folder}: {what} is {_kind(st.st_mode)}, not a folder; refused")
    regular, other = [], []
    try:
        with os.scandir(folder) as it:
            for entry in it:
                try:
                    ok = entry.is_file(follow_symlinks=False)
                except OSError:
                    ok = False
                (regular if ok else other).append(entry.name)
    except OSError as exc:
        raise InputError(f"{folder}: cannot list {what}: {exc.strerror}") from None
    return sorted(regular), sorted(other)
