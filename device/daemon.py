"""The recorder's name for the shared sd_notify helper (device/sealing/systemd_notify.py)."""

from __future__ import annotations

from .sealing.systemd_notify import SystemdNotifier

__all__ = ["SystemdNotifier"]
