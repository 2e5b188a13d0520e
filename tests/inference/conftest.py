"""Fixtures for the inference tests: a tiny deterministic encoder (the bundled crop: ``sample``, tests/conftest.py)."""

from pathlib import Path

import pytest
import torch

from torchgeo_smarties.models import SMARTIESViT

TINY_WEIGHTS = Path(__file__).resolve().parents[1] / 'data' / 'tiny_encoder.safetensors'


@pytest.fixture
def tiny_model() -> SMARTIESViT:
    """A random but seeded 32-d, 2-block encoder (L1C band set)."""
    torch.manual_seed(0)
    return SMARTIESViT(bands='sentinel2_l1c', embed_dim=32, depth=2, num_heads=2, img_size=64).eval()


@pytest.fixture(autouse=True)
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    """Never reach the network."""
    monkeypatch.setenv('HF_HUB_OFFLINE', '1')
