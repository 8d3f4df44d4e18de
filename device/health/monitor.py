"""One place that knows the recorder's health, and the alarms that follow from it.

Battery (low at <= 30 min of recording, the GA/T 947 window of >= 5 min;
critical at <= 10 min: seal and shut down), storage (low at <= 30 min left,
full at the reserve: stop cleanly), CPU temperature, clock, camera and
microphone.  A snapshot (integers only) goes into every segment's manifest.
"""

from __future__ import annotations

import datetime as dt
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from ..sealing.clock import Clock, utc_text
from ..config import HwConfig
from .gauges import BatteryReading, GaugeError, ImplausibleReading, make_gauge
from .rtc import RtcReading, kernel_rtc

# A battery alarm needs agreement: at least AGREE_READS plausible readings within
# AGREE_WINDOW_SECONDS, judged on their median (of 2: the higher), so that one
# glitched read (an INA219 bus voltage of 0, a known UPS-HAT failure) never
# raises an alarm or shuts the recorder down.  With a read every 5 s an alarm
# is confirmed within 10 s.
AGREE_READS = 2
AGREE_LAST = 3
AGREE_WINDOW_SECONDS = 120

BATTERY_LOW_MINUTES = 30
BATTERY_CRITICAL_MINUTES = 10
THERMAL_ZONE = Path("/sys/class/thermal/thermal_zone0/temp")

ALARM_BATTERY_LOW = "battery-low"
ALARM_BATTERY_CRITICAL = "battery-critical"
ALARM_STORAGE_LOW = "storage-low"
ALARM_STORAGE_FULL = "storage-full"
ALARM_GAUGE_FAILED = "gauge-failed"


@dataclass
class Health:
    battery: BatteryReading | None  # the latest plausible reading (what is shown)
    battery_error: str | None
    storage_free_bytes: int
    storage_minutes: float
    cpu_temp_c: float | None
    rtc: RtcReading
    clock_state: str
    last_sync_utc: str | None
    drift_estimate_ms: int | None
    camera_alive: bool | None
    microphone_alive: bool | None
    audio_overflows: int | None = None
    audio_gaps: int | None = None
    sources: dict[str, dict[str, Any]] | None = None
    battery_agreed: BatteryReading | None = None  # what alarms are judged on (see AGREE_READS)
    battery_implausible: str | None = None  # the last implausible reading, flagged, never used
    battery_minutes_recording: int | None = None  # the charge at the recording draw (readiness)

    def snapshot(self) -> dict[str, Any]:
        """For manifests: integers and strings only."""
        return {
            "battery": self.battery.as_dict() if self.battery else None,
            "battery_error": self.battery_error,
            "battery_confirmed": self.battery_agreed is not None,
            "battery_minutes_recording": self.battery_minutes_recording,
            "battery_implausible": self.battery_implausible,
            "storage_free_mb": self.storage_free_bytes // 1_000_000,
            "storage_minutes": int(self.storage_minutes),
            "cpu_temp_c": None if self.cpu_temp_c is None else round(self.cpu_temp_c),
            "rtc_present": self.rtc.present,
            "clock_state": self.clock_state,
            "last_sync_utc": self.last_sync_utc,
            "drift_estimate_ms": self.drift_estimate_ms,
            "camera_alive": self.camera_alive,
            "microphone_alive": self.microphone_alive,
            "audio_overflows": self.audio_overflows,
            "audio_gaps": self.audio_gaps,
            "sources": self.sources,
            "source_faults": [f"{name}: {s['last_fault']}" for name, s in (self.sources or {}).items()
                              if s.get("last_fault")],
        }


@dataclass
class Alarms:
    raised: set[str] = field(default_factory=set)

    def evaluate(self, health: Health, config: HwConfig) -> list[str]:
        """New alarms since the last evaluation (each raised once until cleared)."""
        active = set()
        battery = health.battery_agreed
        minutes = battery.minutes_left if battery else None
        if health.battery_error:
            active.add(ALARM_GAUGE_FAILED)
        if minutes is not None and not battery.charging:
            if minutes <= BATTERY_CRITICAL_MINUTES:
                active |= {ALARM_BATTERY_CRITICAL, ALARM_BATTERY_LOW}
            elif minutes <= BATTERY_LOW_MINUTES:
                active.add(ALARM_BATTERY_LOW)
        rec = config.recording
        if health.storage_minutes <= rec.storage_reserve_minutes:
            active |= {ALARM_STORAGE_FULL, ALARM_STORAGE_LOW}
        elif health.storage_minutes <= rec.storage_warn_minutes:
            active.add(ALARM_STORAGE_LOW)
        new = sorted(active - self.raised, key=_severity)
        self.raised = active
        return new


def _alive(sources: dict[str, dict[str, Any]], name: str) -> bool | None:
    return None if name not in sources else sources[name]["state"] != "down"


def _severity(alarm: str) -> int:
    return [ALARM_BATTERY_CRITICAL, ALARM_STORAGE_FULL, ALARM_BATTERY_LOW,
            ALARM_STORAGE_LOW, ALARM_GAUGE_FAILED].index(alarm)


def open_bus(config: HwConfig):
    """The I2C bus of the hw-config: a real /dev/i2c-N, or the sim board's."""
    if config.power.i2c_bus == "sim":
        from .simbus import SimulatedBus, max17048_map, open_simulated

        # 80 % falling at 7 %/h: the simulated recorder lasts a 10-hour shift.
        return open_simulated(SimulatedBus({config.power.address: max17048_map(crate_pct_h=-7.0)}))
    import smbus2

    return smbus2.SMBus(int(config.power.i2c_bus))


class HealthMonitor:
    def __init__(self, config: HwConfig, storage: Path, clock: Clock, *,
                 bus=None, sources: Callable[[], dict[str, dict[str, Any]]] | None = None,
                 thermal: Path = THERMAL_ZONE,
                 last_sync: dt.datetime | None = None,
                 free_bytes: Callable[[], int] | None = None, faults=None) -> None:
        self.config = config
        self.storage = Path(storage)
        self.clock = clock
        self.sources = sources  # the recorder's sources_report(), when one is running
        self.thermal = thermal
        self.last_sync = last_sync
        self.free_bytes = free_bytes or (lambda: shutil.disk_usage(self.storage).free)
        self.alarms = Alarms()
        self.faults = faults  # a capture.seam.FaultChannel: sensor faults on their transitions
        self._sensor_fault: dict[str, str | None] = {"gauge": None, "rtc": None}
        self._readings: list[tuple[int, BatteryReading]] = []
        self.gauge = None
        self.gauge_error: str | None = None
        if config.power.gauge != "none":
            try:
                self.bus = bus if bus is not None else open_bus(config)
                p = config.power
                self.gauge = make_gauge(p.gauge, self.bus, p.address, p.capacity_mah, p.typical_draw_ma)
            except (OSError, ValueError) as exc:
                self.gauge_error = f"cannot open I2C bus {config.power.i2c_bus}: {exc}"

    def read(self) -> Health:
        battery, error, implausible = None, self.gauge_error, None
        now = self.clock.monotonic_ns()
        if self.gauge is not None:
            try:
                battery = self.gauge.read()
                self._readings.append((now, battery))
            except ImplausibleReading as exc:
                implausible = str(exc)
            except GaugeError as exc:
                error = str(exc)
        self._sensor("gauge", "implausible" if implausible else "read-error" if error else None,
                     implausible or error)
        window = now - AGREE_WINDOW_SECONDS * 10**9
        self._readings = [(t, r) for t, r in self._readings if t >= window][-AGREE_LAST:]
        if battery is None and self._readings:
            battery = self._readings[-1][1]  # shown as last known; alarms use the agreed value
        sources = self.sources() if self.sources else {}
        free = self.free_bytes()
        minutes = free / self.config.bytes_per_second / 60
        kind = self.config.rtc.kind
        if kind == "host":
            rtc = RtcReading(True, self.clock.utc_now(), True)
        elif kind == "none":
            rtc = RtcReading(False, None, False)
        else:
            rtc = kernel_rtc(self.config.rtc.device)
        self._sensor("rtc", None if kind in ("host", "none") or (rtc.present and rtc.valid) else
                     "implausible" if rtc.present else "read-error",
                     f"{self.config.rtc.kind} at {self.config.rtc.device}: "
                     + ("the kernel refuses its time" if rtc.present else "not found"))
        drift = None
        if self.last_sync is not None:
            elapsed = (self.clock.utc_now() - self.last_sync).total_seconds()
            drift = round(elapsed * self.config.rtc.drift_ppm / 1000)  # ppm of seconds, in ms
        return Health(
            battery=battery,
            battery_error=error,
            storage_free_bytes=free,
            storage_minutes=minutes,
            cpu_temp_c=self._cpu_temp(),
            rtc=rtc,
            clock_state=self.clock.state,
            last_sync_utc=utc_text(self.last_sync) if self.last_sync else None,
            drift_estimate_ms=drift,
            camera_alive=_alive(sources, "camera"),
            microphone_alive=_alive(sources, "microphone"),
            audio_overflows=(sources.get("microphone") or {}).get("overflows"),
            audio_gaps=(sources.get("microphone") or {}).get("gaps"),
            sources=sources or None,
            battery_agreed=self._agreed(),
            battery_implausible=implausible,
            battery_minutes_recording=None if battery is None else round(
                battery.percent / 100 * self.config.power.capacity_mah / self.config.power.typical_draw_ma * 60),
        )

    def _agreed(self) -> BatteryReading | None:
        """The median (of two: the fuller) of the recent plausible readings, or None
        while fewer than AGREE_READS agree to judge by."""
        if len(self._readings) < AGREE_READS:
            return None
        ranked = sorted((r for _, r in self._readings),
                        key=lambda r: (r.minutes_left if r.minutes_left is not None else float("inf"), r.percent))
        return ranked[len(ranked) // 2]

    def _sensor(self, source: str, kind: str | None, detail: str | None) -> None:
        """Report a sensor's fault when it starts or changes, and when it clears."""
        before = self._sensor_fault[source]
        if kind == before:
            return
        self._sensor_fault[source] = kind
        if self.faults is None:
            return
        if kind is None:
            self.faults.report(source, "recovered", "reading sensibly again")
        else:
            self.faults.report(source, kind, detail or "")

    def _cpu_temp(self) -> float | None:
        try:
            return int(self.thermal.read_text().strip()) / 1000
        except (OSError, ValueError):
            return None

    def check(self) -> tuple[Health, list[str]]:
        health = self.read()
        return health, self.alarms.evaluate(health, self.config)

