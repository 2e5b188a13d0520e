"""Root test fixtures (kept minimal: each area keeps its own fixtures in its folder)."""

from pathlib import Path

import matplotlib
import pytest
import torch


@pytest.fixture(scope='session', autouse=True)
def matplotlib_agg() -> None:
    """Never open a window: draw with the Agg backend."""
    matplotlib.use('agg')


@pytest.fixture(autouse=True)
def torch_hub(tmp_path: Path) -> None:
    """Keep downloads and caches of torch.hub in a per-test temporary folder."""
    torch.hub.set_dir(str(tmp_path))
