"""Runs inside the arm64 tree (tests/arm64/smoke.sh): import everything, then
record → seal → verify → unseal on the sim hardware.  Prints one JSON line."""

import importlib
import json
import pkgutil
import platform
import sys
import tempfile
import time
from pathlib import Path

assert platform.machine() == "aarch64", platform.machine()
assert sys.version_info[:2] == (3, 11), sys.version

imported = []
for package in ("bodycam", "device", "dock", "archive"):
    module = importlib.import_module(package)
    imported.append(package)
    for info in pkgutil.walk_packages(module.__path__, package + "."):
        # bodycam.__main__ runs the CLI; alembic's env.py only runs inside alembic's context
        if info.name in ("bodycam.__main__", "archive.migrations.env"):
            continue
        importlib.import_module(info.name)
        imported.append(info.name)

from device.config import AudioConfig, load_hw_config  # noqa: E402
from device.recorder import Recorder  # noqa: E402
from device.sealing import pki  # noqa: E402
from device.sealing.unseal import unseal_recordings  # noqa: E402
from device.sealing.verifier import Verifier  # noqa: E402

work = Path(tempfile.mkdtemp(prefix="smoke-"))
ca = pki.create_ca(work / "ca", "arm64 smoke")
identity = pki.issue_keypair(ca, pki.ROLE_ARCHIVE_RECIPIENT, "smoke", work / "archive")
pki.enrol_device(ca, work / "rec", "ARM6401", pki.load_cert(identity.with_suffix(".crt")))

config = load_hw_config(Path("/opt/hw-configs/sim.toml"))
config = config.model_copy(update={
    "camera": config.camera.model_copy(update={"width": 320, "height": 240, "bitrate": 300_000}),
    "audio": AudioConfig(backend="tone"),
    "recording": config.recording.model_copy(update={"segment_seconds": 2, "preroll_seconds": 1}),
})
start = time.monotonic()
recorder = Recorder(config, work / "rec", config_name="sim.toml", officer="010203", realtime=False)
recorder.power_on()
while recorder.camera.frames < 30:
    assert recorder.camera.error is None, recorder.camera.error
    time.sleep(0.05)
recorder.start()
while recorder.camera.frames < 150:
    time.sleep(0.05)
recorder.stop()
sealed = list(recorder.segmenter.sealed)
recorder.shutdown()
verifier = Verifier(pki.load_cert(work / "ca" / "ca.crt"), pki.load_x25519_key(identity))
report, _ = verifier.verify_recording(work / "rec")
result = unseal_recordings(verifier, work / "rec", work / "out")
print(json.dumps({
    "machine": platform.machine(), "python": platform.python_version(),
    "modules": len(imported), "segments": len(sealed), "verification": report.status,
    "unsealed": len(result.files), "seconds": round(time.monotonic() - start, 1),
}))
sys.exit(0 if report.status == "verified" and result.ok and sealed else 1)
