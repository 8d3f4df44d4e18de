"""A simulated I2C bus behind smbus2's real code.

smbus2 talks to ``/dev/i2c-N`` through ``fcntl.ioctl``; here its module's
``ioctl`` is routed, for the file descriptors of simulated buses only, to a
handler that answers like the kernel's i2c-dev would, from register maps
written from the datasheets (byte order included).  Real buses in the same
process keep using the real ioctl.  The sim board and the tests use it.
"""

from __future__ import annotations

import errno
import fcntl
import os
import threading
from typing import Protocol

import smbus2
import smbus2.smbus2 as _smbus2

I2C_SLAVE, I2C_SLAVE_FORCE, I2C_FUNCS, I2C_SMBUS, I2C_PEC = 0x0703, 0x0706, 0x0705, 0x0720, 0x0708
READ = 1
SIZE_QUICK, SIZE_BYTE, SIZE_BYTE_DATA, SIZE_WORD_DATA, SIZE_I2C_BLOCK_DATA = 0, 1, 2, 3, 8


class I2CDevice(Protocol):
    def read(self, register: int, length: int) -> bytes: ...

    def write(self, register: int, data: bytes) -> None: ...


class WordRegisters:
    """16-bit registers sent MSB first (MAX17048, INA219)."""

    def __init__(self, values: dict[int, int], read_only: set[int] | None = None,
                 nack_on_write: set[int] | None = None) -> None:
        self.values = dict(values)
        self.read_only = read_only or set()
        self.nack_on_write = nack_on_write or set()
        self.writes: list[tuple[int, int]] = []

    def read(self, register: int, length: int) -> bytes:
        if register not in self.values:
            raise OSError(errno.EREMOTEIO, "register not implemented")
        return self.values[register].to_bytes(2, "big")[:length]

    def write(self, register: int, data: bytes) -> None:
        value = int.from_bytes(data[:2], "big")
        self.writes.append((register, value))
        if register in self.nack_on_write:
            raise OSError(errno.EREMOTEIO, "NACK")  # MAX17048 resets on CMD and NACKs
        if register not in self.read_only:
            self.values[register] = value


class ByteRegisters:
    """8-bit registers (PiSugar 3 MCU, DS3231)."""

    def __init__(self, values: dict[int, int]) -> None:
        self.values = dict(values)
        self.writes: list[tuple[int, bytes]] = []

    def read(self, register: int, length: int) -> bytes:
        return bytes(self.values.get(register + i, 0) for i in range(length))

    def write(self, register: int, data: bytes) -> None:
        self.writes.append((register, bytes(data)))
        for i, b in enumerate(data):
            self.values[register + i] = b


class SimulatedBus:
    """The devices on one simulated bus, by 7-bit address."""

    def __init__(self, devices: dict[int, I2CDevice]) -> None:
        self.devices = devices
        self.address: int | None = None

    def handle(self, request: int, arg) -> int:
        if request in (I2C_SLAVE, I2C_SLAVE_FORCE):
            self.address = int(arg)
            return 0
        if request == I2C_FUNCS:
            arg.value = 0x0EFF0009  # I2C | SMBus emulation, as i2c-bcm2835 reports
            return 0
        if request == I2C_PEC:
            return 0
        if request != I2C_SMBUS:
            raise OSError(errno.ENOTTY, "unsupported ioctl")
        device = self.devices.get(self.address)
        if device is None:
            raise OSError(errno.EREMOTEIO, f"no device at 0x{self.address or 0:02x}")
        msg = arg
        data = msg.data.contents
        if msg.size == SIZE_QUICK:
            return 0
        if msg.read_write == READ:
            if msg.size == SIZE_BYTE_DATA:
                data.byte = device.read(msg.command, 1)[0]
            elif msg.size == SIZE_WORD_DATA:
                wire = device.read(msg.command, 2)
                data.word = wire[0] | wire[1] << 8  # SMBus words: first byte is the low one
            elif msg.size == SIZE_I2C_BLOCK_DATA:
                length = data.block[0]
                wire = device.read(msg.command, length)
                data.block[0] = length
                for i, b in enumerate(wire):
                    data.block[1 + i] = b
            else:
                raise OSError(errno.EOPNOTSUPP, f"SMBus size {msg.size}")
        else:
            if msg.size == SIZE_BYTE_DATA:
                device.write(msg.command, bytes([data.byte]))
            elif msg.size == SIZE_WORD_DATA:
                device.write(msg.command, bytes([data.word & 0xFF, data.word >> 8]))
            elif msg.size == SIZE_I2C_BLOCK_DATA:
                device.write(msg.command, bytes(data.block[1 : 1 + data.block[0]]))
            else:
                raise OSError(errno.EOPNOTSUPP, f"SMBus size {msg.size}")
        return 0


_buses: dict[int, SimulatedBus] = {}
_lock = threading.Lock()
_real_ioctl = fcntl.ioctl


def _ioctl(fd, request, arg=0, mutate_flag=True):
    bus = _buses.get(fd)
    if bus is None:
        return _real_ioctl(fd, request, arg, mutate_flag)
    return bus.handle(request, arg)


def open_simulated(bus: SimulatedBus) -> smbus2.SMBus:
    """An ``smbus2.SMBus`` whose transfers go to ``bus``."""
    with _lock:
        _smbus2.ioctl = _ioctl  # idempotent; other fds still reach the kernel
        smb = smbus2.SMBus()
        smb.fd = os.open(os.devnull, os.O_RDWR)
        _buses[smb.fd] = bus
        smb.funcs = smb._get_funcs()
    return smb


def close_simulated(smb: smbus2.SMBus) -> None:
    with _lock:
        _buses.pop(smb.fd, None)
    smb.close()


# -- register maps of the simulated board -------------------------------------


def max17048_map(vcell_v: float = 3.85, soc: float = 80.0, crate_pct_h: float = -10.0) -> WordRegisters:
    """A MAX17048 as the datasheet lays it out (HARDWARE.md §1)."""
    return WordRegisters(
        {
            0x02: round(vcell_v / 78.125e-6) & 0xFFFF,
            0x04: round(soc * 256) & 0xFFFF,
            0x06: 0x0000,
            0x08: 0x0012,
            0x0A: 0x8030,
            0x0C: 0x971C,
            0x14: 0x00FF,
            0x16: round(crate_pct_h / 0.208) & 0xFFFF,
            0x18: 0x9600,
            0x1A: 0x0100,
        },
        read_only={0x02, 0x04, 0x08, 0x16},
        nack_on_write={0xFE},
    )
