"""``smarties eval retrieval``: single- and cross-sensor retrieval on paired Sentinel-1 / Sentinel-2 chips.

Two data sources give (S1 image, S2 image, multi-hot labels) triples:

- torchgeo's :class:`~torchgeo.datasets.BigEarthNetV2` (``bands='all'``; S1 channels in the dataset's file order
  (VH, VV), S2 in the ``bigearthnet_s2`` order);
- a folder of paired chips (:func:`read_paired_folder`)::

      ROOT/labels.csv        id,labels          (labels separated by ';', e.g. "forest;water")
      ROOT/s1/<id>.tif       the Sentinel-1 chip
      ROOT/s2/<id>.tif       the Sentinel-2 chip (band names from --s2-bands or the file's band descriptions)

Each chip is normalised with the sensor's statistics, resized to ``image_size`` and embedded by the frozen encoder;
the vector is the mean of the patch tokens after the final norm (the ``--pool mean`` feature). Directions
``s1->s2``, ``s2->s1`` (cross-sensor: the gallery is the other sensor's chips, the query's own counterpart included
unless ``exclude_pair``) and ``s1->s1``, ``s2->s2`` (single-sensor: the query itself is left out) are scored by
:func:`~torchgeo_smarties.retrieval.metrics.retrieval_metrics`.

.. versionadded:: 0.2
"""

import csv
import functools
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from ..errors import EmbeddingFileError, InputError
from .metrics import retrieval_metrics

__all__ = ('BIGEARTHNET_V2_BANDS', 'DIRECTIONS', 'PairedChips', 'PairedEmbeddings', 'bigearthnet_v2_chips',
           'embed_chips', 'embed_pairs', 'evaluate_pairs', 'read_paired_folder')

#: Band ids of torchgeo BigEarthNetV2's ``image_s1`` / ``image_s2`` channels, in the order the dataset returns them.
BIGEARTHNET_V2_BANDS: dict[str, tuple[str, ...]] = {
    's1': ('sentinel1:VH', 'sentinel1:VV'),
    's2': tuple(f'sentinel2:{b}' for b in
                ('B01', 'B02', 'B03', 'B04', 'B05', 'B06', 'B07', 'B08', 'B8A', 'B09', 'B11', 'B12')),
}
#: Statistics presets of the BigEarthNet channels.
_BEN_NORM = {'s1': 'bigearthnet_s1', 's2': 'bigearthnet_s2'}
#: The scored query → gallery directions.
DIRECTIONS = ('s1->s2', 's2->s1', 's1->s1', 's2->s2')


@dataclass
class PairedChips:
    """Paired images of two sensors with shared labels (a sequence-like source of samples).

    Attributes:
        images: per sensor key (``'s1'``, ``'s2'``), an indexable of (C, H, W) tensors.
        bands: per sensor key, the band ids of the channels.
        labels: (N, C) multi-hot.
        norm: per sensor key, a statistics preset or file (None: the band set's default; ``'none'``: as is).
        ids: item names.
    """

    images: dict[str, Any]
    bands: dict[str, tuple[str, ...]]
    labels: Tensor
    norm: dict[str, str | None] = field(default_factory=dict)
    ids: list[str] = field(default_factory=list)


@dataclass
class PairedEmbeddings:
    """Per sensor key, (N, D) vectors of the same N items, and their (N, C) multi-hot labels."""

    vectors: dict[str, Tensor]
    labels: Tensor
    ids: list[str] = field(default_factory=list)


class _Lazy(Sequence[Tensor]):
    def __init__(self, n: int, get: Callable[[int], Tensor]) -> None:
        self._n, self._get = n, get

    def __len__(self) -> int:
        return self._n

    def __getitem__(self, i: Any) -> Any:
        i = int(i)
        if not -self._n <= i < self._n:
            raise IndexError(i)
        return self._get(i % self._n)

    def __iter__(self) -> Iterator[Tensor]:
        return (self._get(i) for i in range(self._n))


def _image(sample: Callable[[int], dict[str, Any]], key: str, i: int) -> Tensor:
    return torch.as_tensor(sample(i)[key])


def bigearthnet_v2_chips(dataset: Any, *, max_samples: int = 0) -> PairedChips:
    """Adapt a torchgeo ``BigEarthNetV2(bands='all')`` dataset to :class:`PairedChips`.

    Any dataset returning ``image_s1``, ``image_s2`` and a multi-hot ``label`` works.

    Raises:
        InputError: the dataset does not return both sensors.
    """
    n = len(dataset) if not max_samples else min(max_samples, len(dataset))
    if not n:
        raise InputError('the dataset is empty')
    first = dataset[0]
    if not {'image_s1', 'image_s2', 'label'} <= set(first):
        raise InputError(f'the dataset returns {sorted(first)}; cross-sensor retrieval needs image_s1, image_s2 and '
                         "label: build it with BigEarthNetV2(..., bands='all')")
    cache: dict[int, dict[str, Any]] = {0: first}

    def sample(i: int) -> dict[str, Any]:
        if i not in cache:
            cache.clear()
            cache[i] = dataset[i]
        return cache[i]

    labels = torch.stack([torch.as_tensor(sample(i)['label']) for i in range(n)]).bool()
    images: dict[str, Any] = {s: _Lazy(n, functools.partial(_image, sample, f'image_{s}')) for s in ('s1', 's2')}
    return PairedChips(images,
                       dict(BIGEARTHNET_V2_BANDS), labels, dict(_BEN_NORM), [str(i) for i in range(n)])


def read_paired_folder(root: str | os.PathLike[str], *, sensors: Sequence[str] = ('s1', 's2'),
                       bands: dict[str, str | None] | None = None, norm: dict[str, str | None] | None = None,
                       max_samples: int = 0) -> PairedChips:
    """A folder of paired chips (layout in the module docstring) as :class:`PairedChips`.

    Raises:
        EmbeddingFileError: missing folder, labels file or chip; a label file without items.
    """
    import rasterio

    from ..inference.source import open_source, resolve_source_bands

    base = Path(root)
    if not base.is_dir():
        raise EmbeddingFileError(f'paired-chip folder {str(root)!r} does not exist')
    lab = base / 'labels.csv'
    if not lab.is_file():
        raise EmbeddingFileError(f'{base} has no labels.csv (columns id,labels with labels separated by ";")')
    with open(lab, newline='') as f:
        rows = [r for r in csv.DictReader(f)]
    if not rows or not {'id', 'labels'} <= set(rows[0]):
        raise EmbeddingFileError(f'{lab} needs a header "id,labels" and at least one row')
    if max_samples:
        rows = rows[:max_samples]
    names = sorted({lbl.strip() for r in rows for lbl in (r['labels'] or '').split(';') if lbl.strip()})
    cls = {n: i for i, n in enumerate(names)}
    labels = torch.zeros(len(rows), len(names), dtype=torch.bool)
    for i, r in enumerate(rows):
        for lbl in (r['labels'] or '').split(';'):
            if lbl.strip():
                labels[i, cls[lbl.strip()]] = True
    images: dict[str, Any] = {}
    band_ids: dict[str, tuple[str, ...]] = {}
    for s in sensors:
        paths = []
        for r in rows:
            cands = [base / s / f'{r["id"]}{ext}' for ext in ('.tif', '.tiff')]
            p = next((c for c in cands if c.is_file()), None)
            if p is None:
                raise EmbeddingFileError(f'chip {base / s / (r["id"] + ".tif")} is missing (listed in {lab})')
            paths.append(p)
        src = open_source(paths[0])
        band_ids[s] = resolve_source_bands(src, (bands or {}).get(s), None)
        src.close()

        def read(i: int, paths: list[Path] = paths) -> Tensor:
            with rasterio.open(paths[i]) as ds:
                return torch.from_numpy(ds.read(out_dtype='float32'))

        images[s] = _Lazy(len(rows), read)
    return PairedChips(images, band_ids, labels, dict(norm or {}), [r['id'] for r in rows])


def embed_chips(images: Iterable[Tensor], model: Any, bands: Sequence[str], *, norm: str | None = None,
                image_size: int = 224, batch_size: int = 32, device: str | torch.device = 'cpu') -> Tensor:
    """(N, D) mean-pooled patch tokens (after the final norm) of (C, H, W) chips with the given band ids.

    Chips are normalised (:func:`~torchgeo_smarties.inference.make_normalizer`: a preset, a statistics file,
    ``'none'``, or the band set's default) and resized to *image_size* (0: keep; then H, W must be multiples of 16).
    """
    from ..inference import make_normalizer

    ids = tuple(bands)
    stats = norm if norm is not None and Path(norm).suffix in ('.json', '.yaml', '.yml') else None
    normalizer = make_normalizer(ids, stats, None if stats else norm)
    plan = model.plan_for(ids)
    dev = torch.device(device)
    model = model.to(dev).eval()
    out: list[Tensor] = []
    batch: list[Tensor] = []

    def flush() -> None:
        x = torch.stack(batch).float()
        if normalizer is not None:
            x = normalizer(x)
        if image_size:
            x = F.interpolate(x, size=(image_size, image_size), mode='bilinear', align_corners=False, antialias=True)
        with torch.inference_mode():
            feats = model.forward_features(x.to(dev), bands=plan).float().cpu()
        out.append(feats[:, 1:].mean(1))
        batch.clear()

    for img in images:
        t = torch.as_tensor(img)
        if t.ndim != 3 or t.shape[0] != len(ids):
            raise InputError(f'a chip has shape {tuple(t.shape)}, expected ({len(ids)}, H, W) for bands '
                             f'{",".join(ids)}')
        batch.append(t)
        if len(batch) == batch_size:
            flush()
    if batch:
        flush()
    return torch.cat(out) if out else torch.zeros(0, model.embed_dim)


def embed_pairs(chips: PairedChips, model: Any, *, image_size: int = 224, batch_size: int = 32,
                device: str | torch.device = 'cpu', log: Callable[[str], None] = print) -> PairedEmbeddings:
    """Embed every sensor's chips of a :class:`PairedChips`."""
    vectors = {}
    for s, imgs in chips.images.items():
        log(f'embedding {len(imgs)} {s} chips ({",".join(chips.bands[s])})')
        vectors[s] = embed_chips(imgs, model, chips.bands[s], norm=chips.norm.get(s), image_size=image_size,
                                 batch_size=batch_size, device=device)
    return PairedEmbeddings(vectors, chips.labels, chips.ids)


def evaluate_pairs(emb: PairedEmbeddings, *, k: Sequence[int] = (10,), directions: Sequence[str] = DIRECTIONS,
                   exclude_pair: bool = False) -> list[dict[str, Any]]:
    """Score each direction ``'<query sensor>-><gallery sensor>'`` at each cut-off; one result dict per pair.

    Raises:
        InputError: an unknown direction (sensor key not in *emb*) or mismatched lengths.
    """
    results = []
    for d in directions:
        qs, _, gs = d.partition('->')
        if qs not in emb.vectors or gs not in emb.vectors:
            raise InputError(f'direction {d!r}: sensors must be among {sorted(emb.vectors)} (e.g. s1->s2)')
        same = qs == gs
        for kk in k:
            r = retrieval_metrics(emb.vectors[qs], emb.labels, emb.vectors[gs], emb.labels, k=int(kk),
                                  exclude_self=same or exclude_pair)
            results.append({'protocol': 'retrieval', 'direction': d, 'cross_sensor': not same,
                            'relevance': 'at least one shared label (nDCG: Jaccard-graded)', **r})
    return results


