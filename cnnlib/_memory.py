"""Keep freed memory in the process for the next call instead of handing it back to the OS.

A training loop allocates the same few arrays on every step: im2col columns, products, results.
glibc's malloc, by default, serves a large block with fresh pages of an mmap, or returns freed
memory at the top of its heap to the OS once more than a moving threshold is free, so the next
step touches fresh pages again and each 4 KiB page costs a fault. On the course's machine
(1.5 us per fault) the bench's N=32 64->64 32x32 convolution took 2,249 faults per forward
(18.6 ms, 13.9 ms without) and 4,106 per backward (37.7 ms, 28.6 ms without); PyTorch's
convolution in the same process was slowed too (12.0 against 5.5 ms in a pair of bench runs).
Fixed thresholds end this: blocks under 32 MiB come from the heap, and up to 64 MiB of freed
memory stays there for reuse.
"""
from __future__ import annotations

import ctypes
import sys

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # from glibc's <malloc.h>
MMAP_BYTES = 32 << 20  # glibc's upper bound for this threshold on 64-bit systems
KEEP_BYTES = 64 << 20


def keep_freed_memory() -> bool:
    """Set the thresholds above for this process; False where there is no glibc malloc to tune
    (macOS, Windows and musl allocators keep memory by their own rules)."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_BYTES)) and bool(mallopt(M_TRIM_THRESHOLD, KEEP_BYTES))
