"""tadkit.engine.allocator: freed large blocks are reused instead of mapped (and faulted in) afresh."""
import subprocess
import sys

_PROBE = """
import resource, sys, torch
from tadkit.engine.allocator import keep_freed_memory
applied = keep_freed_memory() if sys.argv[1] == "1" else False
for _ in range(2):                                       # the heap grows to hold the block
    x = torch.ones(16 * 2 ** 20); del x                  # 64 MiB, above any mmap threshold
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(5):
    x = torch.ones(16 * 2 ** 20); del x
print(int(applied), resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def _page_faults(keep: bool, env: dict | None = None) -> tuple[bool, int]:
    out = subprocess.run([sys.executable, "-c", _PROBE, "1" if keep else "0"], capture_output=True, text=True,
                         check=True, env=env).stdout.split()
    return bool(int(out[0])), int(out[1])


def test_keep_freed_memory_stops_refaulting_large_blocks():
    applied, kept = _page_faults(True)
    _, plain = _page_faults(False)
    if sys.platform.startswith("linux"):             # glibc (the CI's C library)
        assert applied
        assert plain > 5 * 16 * 2 ** 20 // 4096 // 2   # five 64 MiB blocks faulted in afresh (4 KiB pages)
        assert kept < plain / 20                       # reused: almost no new faults
    else:
        assert not applied


def test_keep_freed_memory_can_be_turned_off():
    import os
    applied, _ = _page_faults(True, env={**os.environ, "TADKIT_KEEP_FREED_MEMORY": "0"})
    assert not applied
