"""retain_freed_memory: freed blocks stay in the process instead of being re-faulted."""

from __future__ import annotations

import platform
import subprocess
import sys

import pytest

from diffusion_core.runtime import retain_freed_memory

# Allocates, touches and frees a 40 MB block 20 times and prints the page faults it cost. Above
# 32 MB (the most glibc's dynamic threshold reaches) stock malloc maps every block afresh.
FAULTS = """
import resource, sys
from diffusion_core.runtime import retain_freed_memory
if sys.argv[1] == "retain":
    assert retain_freed_memory()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(20):
    block = bytearray(40 << 20)
    del block
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""

glibc = pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="a glibc setting")


@glibc
def test_retain_freed_memory_is_accepted_and_idempotent() -> None:
    assert retain_freed_memory() is True
    assert retain_freed_memory() is True


@glibc
def test_freed_blocks_are_reused_not_refaulted() -> None:
    def faults(mode: str) -> int:
        out = subprocess.run([sys.executable, "-c", FAULTS, mode], capture_output=True,
                             text=True, check=True)
        return int(out.stdout)

    stock, retained = faults("stock"), faults("retain")
    # Stock: ~10,000 faults a block (one per 4 KB page), 200,000 in all; retained: the first.
    assert stock > 100_000
    assert retained < stock / 10
