"""PCA-RGB previews of embedding rasters beside the input's true colour.

.. versionadded:: 0.1
"""

import textwrap
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import rasterio

from ..errors import OptionError
from ..spectrum import resolve_bands
from .outputs import atomic_target
from .source import RasterSource

__all__ = ('PREVIEW_FORMATS', 'check_preview_path', 'pca_rgb', 'true_colour_channels', 'write_preview')

#: Preview image formats (by suffix) that matplotlib's Agg backend writes.
PREVIEW_FORMATS = ('.png', '.jpg', '.jpeg', '.pdf', '.svg', '.tif', '.tiff', '.webp')


def check_preview_path(path: Path) -> None:
    """Refuse a preview path whose suffix is not an image format matplotlib writes (:data:`PREVIEW_FORMATS`)."""
    if path.suffix.lower() not in PREVIEW_FORMATS:
        raise OptionError(f'preview {str(path)!r}: the file name must end in one of {", ".join(PREVIEW_FORMATS)} '
                          '(e.g. preview.png)')


def _stretch(a: np.ndarray, lo: float = 2, hi: float = 98) -> np.ndarray:
    """Percentile stretch of (..., 3) or (...) to [0, 1] per last channel (NaN → 0)."""
    out = np.zeros_like(a, dtype=np.float32)
    chans = a.reshape(-1, a.shape[-1]) if a.ndim == 3 else a.reshape(-1, 1)
    res = out.reshape(chans.shape)
    for c in range(chans.shape[1]):
        v = chans[:, c]
        f = v[np.isfinite(v)]
        if f.size == 0:
            continue
        p0, p1 = np.percentile(f, [lo, hi])
        res[:, c] = np.clip((v - p0) / max(p1 - p0, 1e-12), 0, 1)
    res[~np.isfinite(chans)] = 0
    return out


def pca_rgb(emb: np.ndarray, max_fit: int = 50_000, seed: int = 0) -> np.ndarray:
    """First three principal components of a (D, h, w) embedding raster as a stretched (h, w, 3) RGB image.

    Cells that are NaN (no data) are black.
    """
    d, h, w = emb.shape
    flat = emb.reshape(d, -1).T.astype(np.float64)
    ok = np.isfinite(flat).all(1)
    rgb = np.zeros((h * w, 3), dtype=np.float32)
    if ok.sum() >= 3:
        x = flat[ok]
        rng = np.random.default_rng(seed)
        fit = x[rng.choice(len(x), max_fit, replace=False)] if len(x) > max_fit else x
        mu = fit.mean(0)
        _, _, vt = np.linalg.svd(fit - mu, full_matrices=False)
        comps = vt[:3]
        # fix the sign of each component so previews are stable across runs
        comps *= np.sign(comps[np.arange(len(comps)), np.abs(comps).argmax(1)])[:, None]
        proj = (x - mu) @ comps.T
        if proj.shape[1] < 3:
            proj = np.pad(proj, ((0, 0), (0, 3 - proj.shape[1])))
        rgb[ok] = _stretch(proj.astype(np.float32)[:, None, :])[:, 0, :]
    return rgb.reshape(h, w, 3)


def true_colour_channels(band_ids: Sequence[str]) -> list[int]:
    """Channels closest to red (665 nm), green (560 nm) and blue (490 nm); the first channel(s) otherwise."""
    bands = resolve_bands(list(band_ids))
    picks = []
    for target in (665.0, 560.0, 490.0):
        dist = [abs(b.center_nm - target) if b.center_nm is not None else np.inf for b in bands]
        i = int(np.argmin(dist))
        if dist[i] > 60:
            break
        picks.append(i)
    if len(picks) < 3:
        picks = [0, 0, 0] if len(bands) < 3 else [0, 1, 2]
    return picks


def write_preview(source: RasterSource, band_ids: Sequence[str], embeddings: str | Path, png: str | Path,
                  title: str = '', max_size: int = 1024) -> Path:
    """Write a PNG with the input's true colour (left) and the embeddings' PCA-RGB (right), atomically."""
    import matplotlib

    matplotlib.use('agg', force=False)
    import matplotlib.pyplot as plt

    rgb_in = source.read_overview(true_colour_channels(band_ids), max_size=max_size)
    tc = _stretch(np.moveaxis(rgb_in, 0, -1))
    with rasterio.open(embeddings) as ds:
        scale = max(1.0, max(ds.height, ds.width) / max_size)
        shape = (max(1, int(round(ds.height / scale))), max(1, int(round(ds.width / scale))))
        emb = ds.read(out_shape=(ds.count, *shape)).astype(np.float32)
    pc = pca_rgb(emb)
    fig, axes = plt.subplots(1, 2, figsize=(10, 5.2), dpi=100)
    axes[0].imshow(tc, interpolation='nearest')
    axes[0].set_title(f'input true colour ({source.height}×{source.width} px)')
    axes[1].imshow(pc, interpolation='nearest')
    axes[1].set_title(f'embeddings PCA-RGB ({emb.shape[0]}-d, {emb.shape[1]}×{emb.shape[2]} patches)')
    for ax in axes:
        ax.set_axis_off()
    if title:
        fig.suptitle(textwrap.fill(title, 110), fontsize=9)
    fig.tight_layout(rect=(0, 0, 1, 0.92) if title else None)
    out = Path(png)
    try:
        with atomic_target(out) as tmp:
            fig.savefig(tmp, format=out.suffix.lstrip('.').lower())
    finally:
        plt.close(fig)
    return out
