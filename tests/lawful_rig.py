"""An archive holding real footage for the lawful-use tests: fragmented MP4
from PyAV's lavfi test source and libx264 (split at its boxes exactly as the
recorder's segmenter does: init = ftyp+moov, then one moof+mdat per
fragment) and a JPEG still, sealed by the real sealer with a ManualClock set
to now, committed to an Archive on the local store and SQLite.

Also a local RFC 3161 time-stamp authority: ``openssl ts -reply`` behind a
small HTTP server, its key and certificate made with ``openssl``.
"""

from __future__ import annotations

import datetime as dt
import io
import os
import shutil
import subprocess
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import av
import numpy as np
from PIL import Image

from device.sealing import pki
from device.sealing.clock import ManualClock
from device.sealing.state import SealingState

OFFICER = "010203"
DEVICE = "A123456"


def fmp4_fragments(seconds: float = 2.0, fps: int = 10, size=(160, 120), gop: int = 5) -> list[bytes]:
    """A fragmented MP4 of a moving test pattern, as [init, moof+mdat, …]."""
    buf = io.BytesIO()
    with av.open(buf, "w", format="mp4",
                 options={"movflags": "frag_keyframe+empty_moov+default_base_moof"}) as out:
        stream = out.add_stream("libx264", rate=fps)
        stream.width, stream.height = size
        stream.pix_fmt = "yuv420p"
        stream.options = {"g": str(gop), "keyint_min": str(gop), "sc_threshold": "0", "preset": "ultrafast"}
        for i in range(int(seconds * fps)):
            img = np.zeros((size[1], size[0], 3), np.uint8)
            img[:, :, 0] = (np.arange(size[0]) * 2 + i * 8) % 256
            img[:, :, 1] = 128
            img[(i * 3) % size[1]:, :, 2] = 200
            frame = av.VideoFrame.from_ndarray(img, format="rgb24")
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    data = buf.getvalue()
    boxes, pos = [], 0
    while pos < len(data):
        size_ = int.from_bytes(data[pos:pos + 4], "big")
        boxes.append((data[pos + 4:pos + 8], data[pos:pos + size_]))
        pos += size_
    init = b"".join(b for kind, b in boxes if kind in (b"ftyp", b"moov"))
    frags, current = [], b""
    for kind, b in boxes:
        if kind == b"moof":
            current = b
        elif kind == b"mdat":
            frags.append(current + b)
            current = b""
    return [init] + frags


def jpeg_still(size=(160, 120)) -> bytes:
    img = Image.new("RGB", size, (30, 120, 200))
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=80)
    return buf.getvalue()


def record_footage(agency, state: Path, clock: ManualClock, *, videos: int = 2, officer: str = OFFICER,
                   device: str = DEVICE) -> list[str]:
    """Seal ``videos`` video segments (the second with notify, mark and refusal events) and one still."""
    agency.enrol(state, device)
    sealing = SealingState.open(state, clock)
    names = []
    try:
        for v in range(videos):
            writer = sealing.open_segment("video/mp4", officer, {"hw_config": "sim", "mode": "video"})
            events = []
            for i, frag in enumerate(fmp4_fragments()):
                clock.advance(0.5)
                writer.append(frag)
                if v == 1 and i in (1, 2, 3):
                    kind = ("notify", "mark", "mark")[i - 1]
                    data = {"announcement": "demo"} if kind == "notify" else {
                        "kind": "mark" if i == 2 else "refusal", "recording": True}
                    entry = sealing.log_event(kind, data)
                    events.append({"event": kind, "utc": entry.obj["utc"] if hasattr(entry, "obj") else None,
                                   "seal_log_seq": getattr(entry, "seq", None), "media_us": i * 500_000,
                                   **({"kind": data["kind"]} if kind == "mark" else {})})
            writer.close({"events": events, "video": {"codec": "h264", "width": 160, "height": 120, "fps": 10}})
            names.append(writer.name)
        writer = sealing.open_segment("image/jpeg", officer, {"mode": "photo"})
        clock.advance(0.2)
        writer.append(jpeg_still())
        writer.close({"events": []})
        names.append(writer.name)
    finally:
        sealing.close()
    return names


@dataclass
class LawRig:
    root: Path
    agency: object
    archive: object
    clock: ManualClock
    names: list[str]
    state: Path
    receipt_key: Path
    config_path: Path

    def close(self) -> None:
        self.archive.close()


def make_c2pa_credential(root: Path) -> tuple[Path, Path]:
    """An ES256 C2PA signing chain made with openssl: (chain.pem, key.pem)."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "ext.cnf").write_text(
        "[leaf_ext]\nbasicConstraints = critical, CA:FALSE\nkeyUsage = critical, digitalSignature\n"
        "extendedKeyUsage = emailProtection\nsubjectKeyIdentifier = hash\nauthorityKeyIdentifier = keyid\n")
    run = lambda *a: subprocess.run(list(a), check=True, capture_output=True, cwd=root)  # noqa: E731
    run("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout",
        "ca.key", "-out", "ca.crt", "-days", "30", "-subj", "/O=Test Agency/OU=c2pa-ca/CN=Test C2PA CA",
        "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    run("openssl", "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", "c2pa.key",
        "-out", "c2pa.csr", "-subj", "/O=Test Agency/OU=archive/CN=archive-1 content credentials")
    run("openssl", "x509", "-req", "-in", "c2pa.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
        "-out", "c2pa.crt", "-days", "20", "-extfile", "ext.cnf", "-extensions", "leaf_ext")
    (root / "chain.pem").write_bytes((root / "c2pa.crt").read_bytes() + (root / "ca.crt").read_bytes())
    return root / "chain.pem", root / "c2pa.key"


def make_archive(agency, root: Path, *, tsa_url: str | None = None, tsa_cert: Path | None = None,
                 videos: int = 2, c2pa: bool = False, index: str = "") -> LawRig:
    """An archive holding real footage (two videos and a still); ``index`` is
    its config's ``[index]`` body (tests/archive_rig.py postgres_index), SQLite if empty."""
    from archive.config import load_archive_config
    from archive.service import Archive

    from .archive_rig import archive_config_toml

    keys = root / "keys"
    receipt = keys / "arch" / "archive-receipt.key"
    if not receipt.exists():
        receipt = pki.issue_keypair(agency.ca, pki.ROLE_ARCHIVE_RECEIPT, "archive-1", keys / "arch")
    extra = f'[lawful_use]\ngrant_max_hours = 72\n\n[lawful_use.recipient_keys]\n"test-agency" = "{agency.identity_path}"\n'
    if tsa_url:
        extra += f'\n[lawful_use.tsa]\nurl = "{tsa_url}"\ncertificates = ["{tsa_cert}"]\nevery_minutes = 60\n'
    if c2pa:
        chain, key = make_c2pa_credential(root / "c2pa")
        extra += f'\n[lawful_use.c2pa]\ncertificate_chain = "{chain}"\nkey = "{key}"\nalg = "es256"\n'
    path = archive_config_toml(root / "archive", agency.ca_cert_path, receipt, receipt.with_suffix(".crt"),
                               extra=extra, index=index)
    now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    clock = ManualClock(start=now)
    state = root / "recorder"
    names = record_footage(agency, state, clock, videos=videos)
    archive = Archive(load_archive_config(path), clock=clock)
    receipts = archive.commit_recording(None, state, names, source="test")
    assert len(receipts) == len(names)
    return LawRig(root, agency, archive, clock, names, state, receipt, path)


# -- a local RFC 3161 authority ----------------------------------------------------------------


TSA_CNF = """
[ req ]
distinguished_name = dn
prompt = no
[ dn ]
CN = Test TSA
O = bodycam tests
[ tsa_ext ]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, nonRepudiation
extendedKeyUsage = critical, timeStamping
subjectKeyIdentifier = hash
[ tsa ]
default_tsa = tsa_config
[ tsa_config ]
dir = {dir}
serial = $dir/serial
signer_cert = $dir/tsa.crt
signer_key = $dir/tsa.key
certs = $dir/tsa.crt
signer_digest = sha256
default_policy = 1.2.3.4.1
digests = sha256
accuracy = secs:1
ordering = no
tsa_name = yes
ess_cert_id_chain = no
ess_cert_id_alg = sha256
"""


class LocalTSA:
    """``openssl ts -reply`` answering RFC 3161 POSTs on a free loopback port."""

    def __init__(self, root: Path) -> None:
        if shutil.which("openssl") is None:
            from .archive_rig import unavailable
            unavailable("openssl not installed (Debian package openssl)")
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        (root / "tsa.cnf").write_text(TSA_CNF.replace("{dir}", str(root)))
        (root / "serial").write_text("01\n")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                        "-nodes", "-keyout", str(root / "tsa.key"), "-out", str(root / "tsa.crt"), "-days", "30",
                        "-config", str(root / "tsa.cnf"), "-extensions", "tsa_ext"],
                       check=True, capture_output=True)
        self.cert = root / "tsa.crt"
        self.requests = 0
        tsa = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                n = tsa.requests = tsa.requests + 1
                query = tsa.root / f"q{n}.tsq"
                reply = tsa.root / f"r{n}.tsr"
                query.write_bytes(body)
                done = subprocess.run(["openssl", "ts", "-reply", "-config", str(tsa.root / "tsa.cnf"),
                                       "-queryfile", str(query), "-out", str(reply)], capture_output=True)
                if done.returncode:
                    self.send_response(500)
                    self.end_headers()
                    return
                data = reply.read_bytes()
                self.send_response(200)
                self.send_header("Content-Type", "application/timestamp-reply")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/tsr"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def openssl_ts_verify(response: bytes, data: bytes, tsa_cert: Path, tmp: Path) -> subprocess.CompletedProcess:
    tmp.mkdir(parents=True, exist_ok=True)
    (tmp / "resp.tsr").write_bytes(response)
    (tmp / "data.bin").write_bytes(data)
    return subprocess.run(["openssl", "ts", "-verify", "-in", str(tmp / "resp.tsr"), "-data", str(tmp / "data.bin"),
                           "-CAfile", str(tsa_cert)], capture_output=True, text=True)


def env_for_subprocess() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}


def next_totp(clock: ManualClock, secret: str) -> str:
    """The TOTP code of the next 30-second step, the clock moved onto it: a code works
    once (RFC 6238 §5.2), so each approval or sign-in in a test takes a fresh one."""
    import pyotp

    clock.advance(30)
    return pyotp.TOTP(secret).at(clock.utc_now())
