"""The S3 additional checksums: CRC32, CRC32C, CRC64NVME, SHA-1, SHA-256, as hash objects.

CRC32 comes from zlib (fast). CRC32C and CRC64NVME are table-driven pure Python: correct but slow
(a few MB/s), computed only when a client asks for them. Values travel base64-encoded big-endian
(https://docs.aws.amazon.com/AmazonS3/latest/userguide/checking-object-integrity.html).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import zlib
from typing import Any

ALGORITHMS = ("crc32", "crc32c", "crc64nvme", "sha1", "sha256")


def _table(poly: int, bits: int) -> list[int]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ poly if crc & 1 else crc >> 1
        table.append(crc & ((1 << bits) - 1))
    return table


_CRC32C = _table(0x82F63B78, 32)
_CRC64NVME = _table(0x9A6C9329AC4BC9B5, 64)


class _Crc:
    bits = 32
    table: list[int] = []

    def __init__(self) -> None:
        self.mask = (1 << self.bits) - 1
        self.crc = self.mask

    def update(self, data: bytes) -> None:
        crc, table = self.crc, self.table
        for byte in data:
            crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8)
        self.crc = crc

    def digest(self) -> bytes:
        return (self.crc ^ self.mask).to_bytes(self.bits // 8, "big")


class Crc32c(_Crc):
    table = _CRC32C


class Crc64Nvme(_Crc):
    bits = 64
    table = _CRC64NVME


class Crc32:
    def __init__(self) -> None:
        self.crc = 0

    def update(self, data: bytes) -> None:
        self.crc = zlib.crc32(data, self.crc)

    def digest(self) -> bytes:
        return self.crc.to_bytes(4, "big")


def new(algorithm: str) -> Any:
    """A hash object with update()/digest() for one of ALGORITHMS."""
    if algorithm == "crc32":
        return Crc32()
    if algorithm == "crc32c":
        return Crc32c()
    if algorithm == "crc64nvme":
        return Crc64Nvme()
    if algorithm in ("sha1", "sha256"):
        return hashlib.new(algorithm)
    raise ValueError(algorithm)


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def unb64(value: str) -> bytes | None:
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return None


def composite(algorithm: str, part_values: list[str]) -> str:
    """A multipart object's COMPOSITE checksum: the checksum of the parts' raw checksums, `-N`."""
    h = new(algorithm)
    for value in part_values:
        h.update(base64.b64decode(value))
    return f"{b64(h.digest())}-{len(part_values)}"


def of_bytes(algorithm: str, data: bytes) -> str:
    h = new(algorithm)
    h.update(data)
    return b64(h.digest())
