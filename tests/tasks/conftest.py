"""Fixtures of the task tests (tiny models are registered by importing tasks_synthetic)."""

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import tasks_synthetic  # noqa: F401  (registers smarties_test_d2 / smarties_test_d4)
import torch

import torchgeo_smarties.models  # noqa: F401  (registers the SMARTIES timm models)

DATA = Path(__file__).resolve().parents[1] / 'data'
TINY = DATA / 'tiny_encoder.safetensors'


@pytest.fixture
def tiny_weights() -> Path:
    """The release-format tiny encoder (64-d, 2 blocks, 4 heads)."""
    return TINY


@pytest.fixture
def hub_weights(tmp_path: Path) -> Path:
    """Put the tiny encoder where the released ViT-B file is looked up (torch hub checkpoints dir)."""
    dest = Path(torch.hub.get_dir()) / 'checkpoints' / 'smarties-v1-vitb.safetensors'
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(TINY, dest)
    return dest


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


@pytest.fixture(scope='package', autouse=True)
def _one_thread() -> Iterator[None]:
    """Tiny models run fastest single-threaded (and do not oversubscribe a shared 2-core CI box)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
