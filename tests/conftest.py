"""Root test fixtures: the few that several areas share (each area keeps its own fixtures in its folder)."""

import functools
import http.server
import os
import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

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
    'transforms/test_band_subset.py',
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


@pytest.fixture
def sample() -> Path:
    """The bundled 384×384 13-band Sentinel-2 L1C crop (CC0); copy it before modifying it."""
    return _TESTS.parent / 'torchgeo_smarties' / 'data' / 'samples' / 'sentinel2_l1c_crop.tif'


@pytest.fixture
def tiny_weights() -> Path:
    """A 64-d, 2-block, 4-head encoder checkpoint (``--weights PATH --num-heads 4`` on the CLI)."""
    return _TESTS / 'data' / 'tiny_encoder.safetensors'


@pytest.fixture(autouse=True)
def restore_environ() -> Iterator[None]:
    """Undo what a test's code writes to ``os.environ`` (the Lightning CLI sets GDAL defaults process-wide).

    Without it a later test sees them: ``tests/inference/test_sources.py`` asserts that reading a remote
    source leaves ``GDAL_DISABLE_READDIR_ON_OPEN`` unset, and failed when run after ``tests/models``.
    """
    saved = dict(os.environ)
    yield
    for k in os.environ.keys() - saved.keys():
        del os.environ[k]
    for k, v in saved.items():
        if os.environ.get(k) != v:
            os.environ[k] = v


@pytest.fixture(autouse=True)
def torch_hub(tmp_path: Path) -> None:
    """Keep downloads and caches of torch.hub in a per-test temporary folder."""
    torch.hub.set_dir(str(tmp_path))


class _RangeHandler(http.server.SimpleHTTPRequestHandler):
    """Static files with single-range ``Range: bytes=a-b`` support (what GDAL's /vsicurl/ needs); no request log.

    Without a ``Range`` header (urllib, huggingface_hub, a browser) it is the plain standard-library handler.
    """

    _remaining: int | None = None

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def send_head(self) -> IO[bytes] | None:  # type: ignore[override]
        path = Path(self.translate_path(self.path))
        rng = self.headers.get('Range')
        if not path.is_file() or not rng:
            return super().send_head()  # type: ignore[return-value]
        m = re.fullmatch(r'bytes=(\d+)-(\d*)', rng.strip())
        if not m:
            self.send_error(416)
            return None
        size = path.stat().st_size
        a = int(m.group(1))
        b = min(int(m.group(2)) if m.group(2) else size - 1, size - 1)
        f = path.open('rb')
        f.seek(a)
        self._remaining = b - a + 1
        self.send_response(206)
        self.send_header('Content-Type', self.guess_type(str(path)))
        self.send_header('Content-Range', f'bytes {a}-{b}/{size}')
        self.send_header('Content-Length', str(self._remaining))
        self.send_header('Accept-Ranges', 'bytes')
        self.end_headers()
        return f

    def copyfile(self, source: Any, outputfile: Any) -> None:
        if self._remaining is None:
            super().copyfile(source, outputfile)
            return
        outputfile.write(source.read(self._remaining))
        self._remaining = None


@pytest.fixture
def http_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Path, str]]:
    """``(folder, base URL)``: an HTTP server on 127.0.0.1 serving a fresh folder, shut down after the test.

    Files put in the folder are served at ``f'{base}/{name}'`` (404 for missing ones; byte ranges for GDAL).
    The test's environment is offline-safe and fast: no proxy, no GDAL retries, no GDAL sidecar probing.
    """
    root = tmp_path / 'www'
    root.mkdir()
    for k in ('http_proxy', 'https_proxy', 'HTTP_PROXY', 'HTTPS_PROXY'):
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv('NO_PROXY', '127.0.0.1')
    monkeypatch.setenv('GDAL_HTTP_MAX_RETRY', '0')
    monkeypatch.setenv('CPL_VSIL_CURL_ALLOWED_EXTENSIONS', '.tif,.json')
    server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), functools.partial(_RangeHandler, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, kwargs={'poll_interval': 0.05}, daemon=True)
    thread.start()
    try:
        yield root, f'http://127.0.0.1:{server.server_address[1]}'
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
