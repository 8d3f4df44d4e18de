"""Child process for the crash tests: seal fragments until killed.

Each fragment starts with its index and the monotonic time it was made, so
the parent can tell after a kill -9 how much was lost.
    python -m tests.helpers.seal_loop STATE_DIR CHECKPOINT_INTERVAL
"""

import os
import struct
import sys
import time
from pathlib import Path

from device.clock import SystemClock
from device.sealing.state import SealingState


def main() -> None:
    state = SealingState.open(Path(sys.argv[1]), SystemClock(), checkpoint_interval=float(sys.argv[2]))
    print("ready", flush=True)
    i = 0
    while True:
        writer = state.open_segment("application/octet-stream", "010203")
        for _ in range(15):
            head = struct.pack(">QQ", i, time.monotonic_ns())
            writer.append(head + os.urandom(20_000))
            i += 1
            time.sleep(0.01)
        writer.close({})


if __name__ == "__main__":
    main()
