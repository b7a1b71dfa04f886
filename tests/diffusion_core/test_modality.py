"""The shared modality constants and the NIfTI header text that records a modality."""

import pytest

from diffusion_core.modality import MODALITIES, modality_from_header, modality_header


@pytest.mark.parametrize("modality", MODALITIES)
def test_header_round_trip(modality):
    assert modality_from_header(modality_header(modality)) == modality


def test_header_text_is_pinned():
    # Existing study files carry these exact bytes: changing them would orphan every study.
    assert modality_header("CT") == b"mdiff modality=CT"


def test_unknown_modality_and_foreign_header():
    with pytest.raises(ValueError, match="unknown modality"):
        modality_header("US")
    assert modality_from_header(b"FSL 6.0") is None
    assert modality_from_header(b"mdiff modality=CTX") is None
