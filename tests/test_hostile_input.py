"""Hostile folders and paths: only regular files are read, no links, bounded reads.

Every case runs `bodycam verify` in a child process with a time limit and an
address-space limit, so a hang or unbounded read fails the test instead of
the machine."""

from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from device.sealing import pki
from device.sealing.safeio import read_bounded
from bodycam.errors import InputError

REPO = Path(__file__).resolve().parent.parent
MEMORY_LIMIT = 1536 * 1024 * 1024  # bytes of address space for the child


def _limit() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))


def bodycam(*args, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bodycam", *map(str, args)], capture_output=True,
                          text=True, timeout=timeout, preexec_fn=_limit, cwd=REPO,
                          env={**os.environ, "PYTHONPATH": str(REPO)})


def verify_json(root: Path, agency) -> dict:
    result = bodycam("verify", "--json", "--ca", agency.ca_cert_path, root)
    assert result.returncode in (0, 1), result.stderr
    assert "Traceback" not in result.stderr
    return json.loads(result.stdout)["recordings"][0]


def statuses(rec: dict) -> list[str]:
    return [s["status"] for s in rec["segments"]]


def test_fifo_manifest_does_not_hang(recording, agency):
    root, names = recording
    manifest = root / "segments" / f"{names[1]}.bcman"
    manifest.unlink()
    os.mkfifo(manifest)
    rec = verify_json(root, agency)
    assert statuses(rec) == ["verified", "failed", "verified", "verified"]
    assert any("FIFO" in r for r in rec["segments"][1]["reasons"])


@pytest.mark.parametrize("target", ["/dev/zero", "/dev/urandom"])
def test_seal_log_name_linked_to_a_device_is_not_read(recording, agency, target):
    root, _ = recording
    os.symlink(target, root / "seallog" / "000000000010-00000000000000aa.log")
    rec = verify_json(root, agency)
    assert rec["seal_log"]["status"] == "broken"
    assert rec["seal_log"]["entries"] == 10
    assert statuses(rec) == ["verified"] * 4


def test_seal_log_file_replaced_by_a_link_out_of_the_folder(recording, agency, tmp_path):
    root, _ = recording
    (log,) = (root / "seallog").iterdir()
    outside = tmp_path / "elsewhere.log"
    shutil.copyfile(log, outside)
    log.unlink()
    log.symlink_to(outside)
    rec = verify_json(root, agency)
    assert rec["seal_log"]["status"] == "failed"
    assert rec["status"] == "failed"


def test_segment_linked_from_outside_is_not_read(recording, agency, tmp_path):
    root, names = recording
    target = root / "segments" / f"{names[2]}.bcseg"
    outside = tmp_path / "outside.bcseg"
    shutil.copyfile(target, outside)
    target.unlink()
    target.symlink_to(outside)
    rec = verify_json(root, agency)
    assert rec["status"] == "failed"
    assert rec["segments"][2]["status"] in ("failed", "missing")
    assert any("not a regular file" in r for r in rec["reasons"])


def test_segments_folder_as_a_link_is_refused(recording, agency, tmp_path):
    root, _ = recording
    shutil.move(root / "segments", tmp_path / "segs")
    (root / "segments").symlink_to(tmp_path / "segs")
    rec = verify_json(root, agency)
    assert rec["status"] == "failed"
    assert any("symbolic link" in r for r in rec["reasons"])


def test_device_certificate_as_fifo_or_device(recording, agency):
    root, _ = recording
    cert = root / "identity" / "device.crt"
    cert.unlink()
    os.mkfifo(cert)
    rec = verify_json(root, agency)
    assert rec["status"] == "failed" and any("FIFO" in r for r in rec["reasons"])
    cert.unlink()
    cert.symlink_to("/dev/zero")
    rec = verify_json(root, agency)
    assert rec["status"] == "failed" and any("symbolic link" in r for r in rec["reasons"])


def test_folder_ca_crt_is_never_trusted(recording, agency, tmp_path):
    """A recording that brings its own CA verifies only against the --ca given."""
    from .conftest import make_agency

    root, _ = recording
    rogue = make_agency(tmp_path / "rogue")
    (root / "identity" / "ca.crt").unlink()
    shutil.copyfile(rogue.ca_cert_path, root / "identity" / "ca.crt")
    assert verify_json(root, agency)["status"] == "verified"
    result = bodycam("verify", "--ca", rogue.ca_cert_path, root)
    assert result.returncode == 1 and "not issued by the agency CA" in result.stdout


@pytest.mark.parametrize("option", ["--ca", "--identity", "--crl"])
@pytest.mark.parametrize("kind", ["fifo", "dev-zero", "folder", "huge"])
def test_command_line_paths_are_read_safely(recording, agency, tmp_path, option, kind):
    root, _ = recording
    bad = tmp_path / "bad"
    if kind == "fifo":
        os.mkfifo(bad)
    elif kind == "dev-zero":
        bad.symlink_to("/dev/zero")
    elif kind == "folder":
        bad.mkdir()
    else:
        with open(bad, "wb") as f:
            f.truncate(64 * 1024 * 1024)
    args = {"--ca": agency.ca_cert_path, "--identity": None, "--crl": None}
    args[option] = bad
    cmd = ["verify", root] + [x for k, v in args.items() if v is not None for x in (k, v)]
    result = bodycam(*cmd)
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert str(bad) in result.stderr and "Traceback" not in result.stderr


def test_read_bounded_is_the_shared_helper(tmp_path):
    path = tmp_path / "x.toml"
    path.write_bytes(b"a" * 100)
    assert read_bounded(path, 100, "config") == b"a" * 100
    with pytest.raises(InputError, match="limit"):
        read_bounded(path, 99, "config")
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(InputError, match="FIFO"):
        read_bounded(fifo, 100, "config")
    with pytest.raises(InputError, match="character device"):
        read_bounded("/dev/zero", 100, "CSV")
    link = tmp_path / "link"
    link.symlink_to(path)
    with pytest.raises(InputError, match="symbolic link"):
        read_bounded(link, 100, "config", follow_links=False)
    with pytest.raises(InputError, match="not found"):
        read_bounded(tmp_path / "nope", 100, "config")
    with pytest.raises(InputError, match="FIFO"):  # the certificate readers use it too
        pki.load_cert(fifo, "agency CA certificate")


def test_keys_and_certificates_of_other_algorithms_are_named(recording, agency, tmp_path):
    """An EC CA certificate or an EC identity: exit 2 naming the file, never a traceback."""
    import datetime as dt

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    root, _ = recording
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "agency-ca")])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(now).not_valid_after(now + dt.timedelta(days=1))
            .sign(key, hashes.SHA256()))
    (tmp_path / "ec.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "ec.key").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    for args, message in ((("--ca", tmp_path / "ec.crt"), "ec.crt"),
                          (("--ca", agency.ca_cert_path, "--identity", tmp_path / "ec.key"), "must be X25519")):
        result = bodycam("verify", *args, root)
        assert result.returncode == 2 and message in result.stderr, result.stderr
        assert "Traceback" not in result.stderr


# Every command that reads a recording or package folder named on its command line says what is
# wrong with that path (device/sealing/safeio.py check_folder), exit 2, no traceback, no hang.
FOLDER_COMMANDS = {
    "verify": (["verify", "--ca", "{ca}"], "recording folder"),
    "unseal": (["unseal", "--ca", "{ca}", "--identity", "{identity}", "--out", "{out}"], "recording folder"),
    "excerpt": (["excerpt", "--ca", "{ca}", "--segment", "A123456_x", "--out", "{out}"], "recording folder"),
    "log": (["log", "--ca", "{ca}"], "recorder state or evidence export"),
    "archive disc": (["archive", "disc", "--out", "{out}.iso"], "evidence package"),
}
FOLDER_FAULTS = {
    "missing": "does not exist",
    "under a file": "does not exist (a parent is not a folder)",
    "file": "is a regular file, not a folder",
    "fifo": "is a FIFO, not a folder",
    "dangling link": "is a symbolic link to ",
    "unreadable": "cannot read {what}: Permission denied",
}


def _bad_folder(kind: str, base: Path) -> Path:
    path = base / "recording"
    if kind == "under a file":
        (base / "file").write_text("x")
        return base / "file" / "recording"
    if kind == "file":
        path.write_text("not a folder")
    elif kind == "fifo":
        os.mkfifo(path)
    elif kind == "dangling link":
        path.symlink_to(base / "gone")
    elif kind == "unreadable":
        path.mkdir(mode=0o300)  # searchable by its owner, not listable
    return path


@pytest.mark.parametrize("kind", FOLDER_FAULTS)
@pytest.mark.parametrize("command", FOLDER_COMMANDS)
def test_folder_arguments_say_what_is_wrong_with_which_path(agency, tmp_path, command, kind):
    """Missing, under a file, a file, a FIFO, a dangling link, a folder it may not list (run as
    nobody: root lists any folder)."""
    import tempfile

    args, what = FOLDER_COMMANDS[command]
    base = Path(tempfile.mkdtemp(prefix="bodycam-folder-"))
    try:
        base.chmod(0o755)
        path = _bad_folder(kind, base)
        argv = [sys.executable, "-m", "bodycam"]
        argv += [a.format(ca=agency.ca_cert_path, identity=agency.identity_path, out=base / "out") for a in args]
        argv.append(str(path))
        if kind == "unreadable":
            os.chown(path, 65534, 65534)
            argv = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", *argv]
        result = subprocess.run(argv, capture_output=True, text=True, timeout=60, cwd=REPO,
                                env={**os.environ, "PYTHONPATH": str(REPO), "HOME": str(base)})
    finally:
        shutil.rmtree(base)
    assert result.returncode == 2, (result.stdout, result.stderr)
    fault = FOLDER_FAULTS[kind].format(what=what)
    expected = f"bodycam: error: {path}: {fault}" if kind == "unreadable" else \
        f"bodycam: error: {path}: {what} {fault}"
    assert expected in result.stderr, result.stderr
    assert "Traceback" not in result.stderr and not (base / "out").exists()
