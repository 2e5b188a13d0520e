"""Fixtures of the retrieval tests: synthetic embedding rasters."""

from pathlib import Path

import pytest

from .synthetic import CELL, S1, X0, random_embedding, write_embedding


@pytest.fixture
def emb_s2(tmp_path: Path) -> Path:
    """A 5×6-cell, 8-d Sentinel-2 embedding raster with 3 NaN cells."""
    return write_embedding(tmp_path / 'S2A_20230615_scene_embeddings.tif', random_embedding(0))


@pytest.fixture
def emb_s1(tmp_path: Path) -> Path:
    """A Sentinel-1 embedding raster next to the S2 one (shifted east by 6 cells)."""
    return write_embedding(tmp_path / 's1_scene_embeddings.tif', random_embedding(1), bands=S1, x0=X0 + 6 * CELL)


@pytest.fixture(autouse=True)
def faiss_one_thread() -> None:
    """One faiss (OpenMP) thread: spinning OpenMP threads slow down by 10× on a busy shared 2-core machine."""
    import faiss

    faiss.omp_set_num_threads(1)
