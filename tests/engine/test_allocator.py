"""The process settings of tadkit.cpu_fast_paths: freed large blocks are reused instead of mapped (and faulted
in) afresh; oneDNN's kernel cache is enlarged."""
import os
import subprocess
import sys

BLOCK_PAGES = 64 * 2 ** 20 // 4096   # a 64 MiB tensor in 4 KiB pages

_PROBE = """
import resource, sys, torch
from tadkit.cpu_fast_paths import keep_freed_memory
applied = keep_freed_memory() if sys.argv[1] == "1" else False
faults = []
for _ in range(16):                                      # 64 MiB, above any mmap threshold
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    x = torch.ones(16 * 2 ** 20); del x
    faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
print(int(applied), *faults)
"""


def _page_faults(keep: bool, env: dict | None = None) -> tuple[bool, list[int]]:
    out = subprocess.run([sys.executable, "-c", _PROBE, "1" if keep else "0"], capture_output=True, text=True,
                         check=True, env=env).stdout.split()
    return bool(int(out[0])), [int(x) for x in out[1:]]


def test_keep_freed_memory_stops_refaulting_large_blocks():
    applied, kept = _page_faults(True)
    _, plain = _page_faults(False)
    if sys.platform.startswith("linux"):             # glibc (the CI's C library)
        assert applied
        # the C library's defaults: every allocation is mapped and faulted in afresh
        assert all(f > BLOCK_PAGES // 2 for f in plain[4:])
        # kept: once the heap has grown to hold the block (a few rounds; how many varies from run to run),
        # it is reused with (almost) no new faults
        assert sum(kept) < sum(plain) // 2
        assert sum(f < BLOCK_PAGES // 4 for f in kept[8:]) >= 6
    else:
        assert not applied


def test_keep_freed_memory_can_be_turned_off():
    applied, _ = _page_faults(True, env={**os.environ, "TADKIT_KEEP_FREED_MEMORY": "0"})
    assert not applied


_CACHE_PROBE = """
import os
from tadkit.engine.distributed import resolve_device
resolve_device("cpu")
print(os.environ.get("ONEDNN_PRIMITIVE_CACHE_CAPACITY"))
"""


def test_cpu_device_enlarges_onednn_kernel_cache_unless_the_user_set_it():
    env = {k: v for k, v in os.environ.items() if k != "ONEDNN_PRIMITIVE_CACHE_CAPACITY"}
    out = subprocess.run([sys.executable, "-c", _CACHE_PROBE], capture_output=True, text=True, check=True, env=env)
    assert out.stdout.split() == ["4096"]
    env["ONEDNN_PRIMITIVE_CACHE_CAPACITY"] = "77"
    out = subprocess.run([sys.executable, "-c", _CACHE_PROBE], capture_output=True, text=True, check=True, env=env)
    assert out.stdout.split() == ["77"]
