"""Root test fixtures (kept minimal: each area keeps its own fixtures in its folder)."""

from pathlib import Path

import matplotlib
import pytest
import torch

#: Tests whose numbers depend on floating-point kernels (matmul / conv / reductions). CI runs them a second time
#: under ``ATEN_CPU_CAPABILITY=default`` (no AVX2/AVX-512 kernels), so an assertion that only holds for one
#: kernel's rounding fails on every machine, not only on some. Paths are relative to ``tests/``.
FLOAT_SENSITIVE = (
    'models/',
    'pretrain/test_nodata.py',
    'pretrain/test_mae.py',
    'transforms/test_mixup.py',
    'transforms/test_normalize.py',
)

_TESTS = Path(__file__).resolve().parent


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark the tests of :data:`FLOAT_SENSITIVE` with ``float_sensitive``."""
    for item in items:
        try:
            rel = item.path.resolve().relative_to(_TESTS).as_posix()
        except ValueError:
            continue
        if rel.startswith(FLOAT_SENSITIVE):
            item.add_marker(pytest.mark.float_sensitive)


@pytest.fixture(scope='session', autouse=True)
def matplotlib_agg() -> None:
    """Never open a window: draw with the Agg backend."""
    matplotlib.use('agg')


@pytest.fixture(autouse=True)
def torch_hub(tmp_path: Path) -> None:
    """Keep downloads and caches of torch.hub in a per-test temporary folder."""
    torch.hub.set_dir(str(tmp_path))
