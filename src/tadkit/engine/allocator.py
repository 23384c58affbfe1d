"""Keep freed memory in the process when computing on the CPU (glibc's malloc).

glibc serves every block above its mmap threshold (at most 32 MiB) by ``mmap`` and unmaps it at
``free``; a THUMOS14-sized activation (2 × 2048 × 2304 float32 = 38 MiB) is such a block, so every
training step maps, page-faults and zeroes its largest tensors afresh, and the kernel's page-fault
path, not the arithmetic, sets the speed of element-wise operations on them. Turning mmap off
(``M_MMAP_MAX = 0``) and trimming the heap only when 2 GiB are free at its top
(``M_TRIM_THRESHOLD``) keeps freed blocks for reuse: element-wise passes on such tensors run 2-6x
faster and the CPU training step at the THUMOS14 configuration ~15-25 % faster
(``benchmarks/train_speed.py``). The cost: the process
keeps its peak resident set until it exits. ``TADKIT_KEEP_FREED_MEMORY=0`` leaves malloc alone;
other C libraries (musl, macOS, Windows) are left alone too.

The same goes for oneDNN's cache of compiled convolution kernels (:func:`cache_primitives`): every
sequence length needs its own, ~200 for a THUMOS14-sized one-stage model, and the default cache of
1,024 holds five lengths' worth; training on videos of varying length then recompiles them at most
steps. Eight lengths in turn, ASL at the THUMOS14 configuration on 2 CPU cores: 626 ms a step with the
default cache, 539 ms with 4,096 entries (about 60 MiB more resident memory per length kept).
"""
from __future__ import annotations

import ctypes
import os
import sys

__all__ = ["keep_freed_memory", "cache_primitives"]

PRIMITIVE_CACHE_CAPACITY = 4096

_M_TRIM_THRESHOLD, _M_MMAP_MAX = -1, -4   # glibc's mallopt parameter numbers (malloc.h)
_applied: bool | None = None


def keep_freed_memory() -> bool:
    """Set glibc's malloc to keep freed blocks (once per process); True when it is set."""
    global _applied
    if _applied is not None:
        return _applied
    _applied = False
    if os.environ.get("TADKIT_KEEP_FREED_MEMORY", "1") == "0" or not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.gnu_get_libc_version  # glibc only  # noqa: B018
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    # mallopt returns 1 on success; its value is an int, so 2**31 - 1 bytes is the largest trim threshold
    _applied = bool(mallopt(_M_MMAP_MAX, 0)) and bool(mallopt(_M_TRIM_THRESHOLD, 2 ** 31 - 1))
    return _applied


def cache_primitives(capacity: int = PRIMITIVE_CACHE_CAPACITY) -> bool:
    """Let oneDNN keep ``capacity`` compiled kernels (``ONEDNN_PRIMITIVE_CACHE_CAPACITY``) unless the user
    set it; True when set here. Read by oneDNN at its first kernel, so call it before any computation."""
    if "ONEDNN_PRIMITIVE_CACHE_CAPACITY" in os.environ:
        return False
    os.environ["ONEDNN_PRIMITIVE_CACHE_CAPACITY"] = str(int(capacity))
    return True
