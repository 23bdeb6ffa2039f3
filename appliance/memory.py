"""How `nube serve` asks glibc's malloc to handle the 1 MiB buffers that large bodies stream in.

By default glibc maps each allocation from 128 KiB up on its own, raising that threshold to the
size of the last such block freed, and gives the top of the heap back to the kernel as soon as
twice that is free. A large upload makes and frees 1 MiB buffers all the time (the body joined
into batches, read chunks), so the heap grew and shrank with every batch, and every page given
back was faulted in again as a new zero page by the next buffer: about 8,000 faults per 128 MiB
uploaded (as many again for direct I/O buffers, see blob_files.Buffers; 5 with both fixed), and
in a VM whose freed memory goes back to the host each of them is a round trip to the host.

`tune` fixes both thresholds: blocks up to MMAP_THRESHOLD come from the heap (the 64 MiB of an
argon2 hash is still mapped on its own and unmapped when freed), and the heap keeps up to
TRIM_THRESHOLD free at its top. `trim` gives all free memory back, for a server gone idle.
Where malloc is not glibc's, both do nothing.
"""

from __future__ import annotations

import ctypes
import logging

log = logging.getLogger(__name__)

M_TRIM_THRESHOLD = -1  # mallopt parameters, from glibc's malloc.h
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 4 << 20
TRIM_THRESHOLD = 64 << 20

_libc = ctypes.CDLL(None)
_mallopt = getattr(_libc, "mallopt", None)
_malloc_trim = getattr(_libc, "malloc_trim", None)


def tune() -> None:
    if _mallopt is None:
        return
    if not (
        _mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD) and _mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD)
    ):
        log.warning("mallopt refused the malloc thresholds; large bodies will cost page faults")


def trim() -> None:
    if _malloc_trim is not None:
        _malloc_trim(0)
