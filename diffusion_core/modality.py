"""The imaging modalities mdiff handles and the intensity conventions every package shares.

Written once here (numpy-free, torch-free) so the reader, the study builder and the I/O agree:
the modality list, how a NIfTI header records the modality, the MR percentile window and the CT
windows (soft tissue, the default, and the others a reader picks from).
"""

from __future__ import annotations

import re

MODALITIES: tuple[str, ...] = ("CT", "MR")

# NIfTI has no modality field; mdiff writes it into `descrip` and reads it back from there.
_HEADER_PREFIX = "mdiff modality="
_HEADER_PATTERN = re.compile(rb"modality=(CT|MR)\b")

# Robust MR intensity range: the 0.5th-99.5th percentiles (used for study values and display).
MR_PERCENTILES: tuple[float, float] = (0.5, 99.5)

# Soft-tissue CT window as (level, width) in Hounsfield units.
CT_SOFT_TISSUE: tuple[float, float] = (40.0, 400.0)

# The CT windows radiologists know, as (level, width) in HU; soft tissue first, the default. The
# reader app offers them on F1-F4 and `mdiff-eval figure --ct-window` by name.
CT_WINDOWS: dict[str, tuple[float, float]] = {
    "soft tissue": CT_SOFT_TISSUE,
    "lung": (-600.0, 1500.0),
    "bone": (480.0, 2500.0),
    "brain": (40.0, 80.0),
}


def modality_header(modality: str) -> bytes:
    """The NIfTI `descrip` bytes that record `modality`."""
    if modality not in MODALITIES:
        raise ValueError(f"unknown modality {modality!r}; expected one of {', '.join(MODALITIES)}")
    return f"{_HEADER_PREFIX}{modality}".encode("ascii")


def modality_from_header(descrip: bytes) -> str | None:
    """The modality recorded in a NIfTI `descrip` field, or None when it records none."""
    match = _HEADER_PATTERN.search(descrip)
    return match.group(1).decode("ascii") if match else None
