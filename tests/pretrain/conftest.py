"""Fixtures of the pretraining tests."""

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CROP = ROOT / 'torchgeo_smarties' / 'data' / 'samples' / 'sentinel2_l1c_crop.tif'


@pytest.fixture
def crop() -> str:
    """The bundled CC0 Sentinel-2 L1C sample crop (13 bands, 384×384, 10 m)."""
    return str(CROP)
