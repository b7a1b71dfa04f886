"""Process settings that make the networks faster on the CPU; torch-free.

`retain_freed_memory`: PyTorch's CPU tensors come from the C library's malloc. glibc hands
blocks above a (dynamic) threshold back to the operating system as soon as they are freed, and
trims the heap's free top just as eagerly, so every U-Net call maps its activations afresh and
pays a page fault per 4 KB touched: about 8,000 faults, a third of a width-16 forward's CPU time
on this machine (benchmarks/bench_unet.py, `--stock-malloc`). Keeping freed memory in the
process, as the CPU deployment guides do with jemalloc or tcmalloc, brings that to a few dozen.
The cost: the process keeps its peak heap instead of shrinking after it.
"""

from __future__ import annotations

import ctypes
import functools

# glibc's mallopt parameters (malloc.h).
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
TRIM_THRESHOLD = 1 << 30  # free heap top kept before it is given back: 1 GiB
MMAP_THRESHOLD = 256 << 20  # blocks from a private mapping only above 256 MiB


@functools.cache
def retain_freed_memory() -> bool:
    """Ask glibc's malloc to keep freed memory for reuse; False where the C library is not glibc.

    Idempotent, process-wide; the command-line tools call it before they start.
    """
    try:
        # glibc's own name: no library search (find_library runs ldconfig, ~7 ms at every start)
        libc = ctypes.CDLL("libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False  # musl, macOS, Windows: their allocators decide for themselves
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    return bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD)
                and mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD))
