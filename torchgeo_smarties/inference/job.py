"""Parameter objects of the inference entry points, validated when they are built.

:func:`~torchgeo_smarties.inference.embed_raster`, :func:`~torchgeo_smarties.inference.pool_raster`,
:func:`~torchgeo_smarties.inference.predict_raster` and
:func:`~torchgeo_smarties.inference.distributed.embed_raster_distributed` keep their keyword APIs. The keywords
they share are declared once, as typed dicts (:class:`SourceKeywords`, :class:`EncoderKeywords`,
:class:`ReadKeywords`, :class:`TilingKeywords`, :class:`DenseKeywords` and their unions :class:`PoolKeywords`,
:class:`PredictKeywords`, :class:`EmbedKeywords`, taken as ``**options``), and :meth:`RasterOptions.from_keywords` is
the one place that turns them into the parameter objects:

* a :class:`TilingOptions` (tile, overlap, batch, workers, compression, block size),
* an :class:`EncoderSpec` (weights or an in-memory model, heads, device, precision),
* a :class:`DenseOptions` (what the embedding raster holds: dtype, block, final norm), and
* an :class:`EmbedJob` (the opened source, its band ids and projection plan, the normaliser;
  :meth:`RasterOptions.open`),

which the wrappers hand to the shared engine. Every constructor validates its values and raises a typed error
(:class:`~torchgeo_smarties.errors.OptionError`, :class:`~torchgeo_smarties.errors.DeviceError`) that lists the valid
choices, so a bad option is refused before anything is read or written.

.. versionadded:: 0.2
"""

import dataclasses
import hashlib
import math
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypedDict, Unpack, cast

import torch
from torch import Tensor

from ..errors import DeviceError, OptionError
from ..spectrum import ProjectionPlan, plan_bands
from .outputs import file_fingerprint, input_files
from .source import RasterSource, is_remote, open_source, resolve_source_bands

if TYPE_CHECKING:
    from ..models import SMARTIESViT

__all__ = ('ACCELERATORS', 'CODECS', 'DEFAULT_CODEC', 'DTYPES', 'POOLS', 'PRECISIONS', 'VECTOR_SUFFIXES',
           'DenseKeywords', 'DenseOptions', 'EmbedJob', 'EmbedKeywords', 'EncoderKeywords', 'EncoderSpec',
           'PoolKeywords', 'Precision', 'PredictKeywords', 'RasterOptions', 'ReadKeywords', 'SourceKeywords',
           'TilingKeywords', 'TilingOptions', 'check_choice', 'check_device', 'keyword_names')

#: GeoTIFF codec of the outputs when none is given: zstd level 1 with the floating-point predictor (about half the
#: CPU time of deflate level 1 for 768 float32 bands at the same size; readable by GDAL >= 2.3, rasterio, QGIS).
DEFAULT_CODEC = 'zstd'
#: An autocast precision (one of :data:`PRECISIONS`).
Precision = Literal['fp32', 'bf16', 'fp16']
#: Autocast precisions.
PRECISIONS = ('fp32', 'bf16', 'fp16')
#: Output data types of the embedding raster.
DTYPES = ('float32', 'float16')
#: GeoTIFF codecs accepted by ``compress`` (GDAL names, case-insensitive).
CODECS = ('deflate', 'zstd', 'lzw', 'lzma', 'packbits', 'none')
#: Pooling modes of ``pool_raster``.
POOLS = ('mean', 'cls')
#: Output suffixes of ``pool_raster`` (GeoParquet or CSV).
VECTOR_SUFFIXES = ('.parquet', '.geoparquet', '.csv')
#: Lightning accelerators accepted by the distributed path.
ACCELERATORS = ('auto', 'cpu', 'gpu', 'cuda', 'mps', 'tpu')
PATCH = 16


def check_choice(name: str, value: Any, valid: Sequence[str]) -> str:
    """*value* if it is one of *valid*, else :class:`OptionError` listing them."""
    if not isinstance(value, str) or value not in valid:
        raise OptionError(f'{name} must be one of {", ".join(valid)}; got {value!r}')
    return value


def _check_int(name: str, value: Any, minimum: int, hint: str = '') -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise OptionError(f'{name} must be an integer >= {minimum}; got {value!r}{hint}')
    return value


def check_device(device: str | torch.device) -> torch.device:
    """Parse and check a torch device string (``cpu``, ``cuda``, ``cuda:1``, ``mps``).

    Raises:
        DeviceError: if the string is not a device, or the device is not available here.
    """
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise DeviceError(f'{device!r} is not a torch device; use cpu, cuda, cuda:N or mps') from None
    if dev.type == 'cuda':
        if not torch.cuda.is_available():
            raise DeviceError(f'device {str(device)!r} requested but no CUDA GPU is available here (torch '
                              f'{torch.__version__}, CUDA build: {torch.version.cuda or "none"}); use --device cpu')
        n = torch.cuda.device_count()
        if dev.index is not None and dev.index >= n:
            raise DeviceError(f'device {str(device)!r} requested but this machine has {n} CUDA device(s) '
                              f'(cuda:0 … cuda:{n - 1})')
    elif dev.type == 'mps':
        if not (hasattr(torch.backends, 'mps') and torch.backends.mps.is_available()):
            raise DeviceError(f'device {str(device)!r} requested but Apple MPS is not available here; use --device cpu')
    elif dev.type != 'cpu':
        raise DeviceError(f'device {str(device)!r} is not supported for inference; use cpu, cuda, cuda:N or mps')
    return dev


class SourceKeywords(TypedDict, total=False):
    """How a raster's channels are named and normalised (the keywords of :meth:`EmbedJob.open`).

    Attributes:
        bands: band ids per channel (``'sentinel2:B02,...'`` or a preset name); default: from the raster.
        sensor: a preset naming the channels (``'sentinel2_l2a'``).
        stats: a statistics file (:func:`~torchgeo_smarties.transforms.compute_statistics`).
        norm: statistics preset, or ``'none'`` for already-normalised input (default: from the bands).
        normalizer: a callable (1, C, h, w) → (1, C, h, w) used instead of *stats*/*norm* (picklable for
            DataLoader workers and DDP).
        require_crs: refuse rasters without a CRS (default False: warn).
    """

    bands: str | None
    sensor: str | None
    stats: str | os.PathLike[str] | None
    norm: str | None
    normalizer: Callable[[Tensor], Tensor] | None
    require_crs: bool


class EncoderKeywords(TypedDict, total=False):
    """Which weights run and at what precision (with the wrapper's ``model`` and ``device``: an :class:`EncoderSpec`).

    Attributes:
        weights: see :func:`~torchgeo_smarties.inference.weights.load_encoder` (with an in-memory model: only its
            label).
        num_heads: attention heads of a custom-size checkpoint (>= 1).
        precision: autocast precision, one of :data:`PRECISIONS` (default ``'fp32'``).
    """

    weights: str | None
    num_heads: int | None
    precision: Precision


class ReadKeywords(TypedDict, total=False):
    """How tiles are read and batched (the part of :class:`TilingOptions` every entry point takes).

    Attributes:
        tile: tile size in px, a positive multiple of 16 (default 224).
        batch_size: tiles per forward pass (default 8).
        num_workers: DataLoader workers (>= 0; default: one fewer than the CPU cores, at most 4).
    """

    tile: int
    batch_size: int
    num_workers: int | None


class TilingKeywords(ReadKeywords, total=False):
    """:class:`ReadKeywords` plus the overlap of neighbouring tiles and the GeoTIFF codec.

    Attributes:
        overlap: overlap in px, a multiple of 16 below *tile*; None (the default): the entry point's default (32;
            :func:`~torchgeo_smarties.inference.predict_raster`: 0 for classification, else 32).
        compress: GeoTIFF codec, one of :data:`CODECS` (default :data:`DEFAULT_CODEC`).
        checkpoint_seconds: least seconds between two resume check-points (default 10; 0: after every tile row).
    """

    overlap: int | None
    compress: str
    checkpoint_seconds: float


class DenseKeywords(TypedDict, total=False):
    """What the dense embedding raster holds (a :class:`DenseOptions`).

    Attributes:
        dtype: output data type, one of :data:`DTYPES` (default ``'float32'``).
        layer: the block whose tokens are written (default -1 = the last; negative counts from the end).
        final_norm: apply the encoder's final LayerNorm (default False, the release's ``all_tokens``).
    """

    dtype: Literal['float32', 'float16']
    layer: int
    final_norm: bool


class PoolKeywords(SourceKeywords, EncoderKeywords, ReadKeywords, total=False):
    """The ``**options`` of :func:`~torchgeo_smarties.inference.pool_raster` (non-overlapping tiles, no raster)."""


class PredictKeywords(SourceKeywords, EncoderKeywords, TilingKeywords, total=False):
    """The ``**options`` of :func:`~torchgeo_smarties.inference.predict_raster`."""


class EmbedKeywords(PredictKeywords, DenseKeywords, total=False):
    """The ``**options`` of :func:`~torchgeo_smarties.inference.embed_raster`, of the DDP path and of a batch job."""


def keyword_names(keywords: type) -> frozenset[str]:
    """The keys a :class:`~typing.TypedDict` such as :class:`EmbedKeywords` declares (its own and inherited)."""
    return frozenset(getattr(keywords, '__required_keys__')) | frozenset(getattr(keywords, '__optional_keys__'))


@dataclass(frozen=True)
class TilingOptions:
    """How a raster is cut into tiles and how the outputs are stored.

    Attributes:
        tile: tile size in px, a positive multiple of 16.
        overlap: overlap of neighbouring tiles in px, a multiple of 16 in ``[0, tile)``.
        batch_size: tiles per forward pass (>= 1).
        num_workers: DataLoader worker processes (>= 0; None: :func:`default_num_workers`).
        compress: GeoTIFF codec, one of :data:`CODECS`.
        block_size: GeoTIFF block size in cells (a positive multiple of 16).
        checkpoint_seconds: least seconds between two resume checkpoints (>= 0; 0: after every finished tile row).

    Raises:
        OptionError: for any value out of range, naming the valid ones.
    """

    tile: int = 224
    overlap: int = 32
    batch_size: int = 8
    num_workers: int | None = None
    compress: str = DEFAULT_CODEC
    block_size: int = 64
    checkpoint_seconds: float = 10.0

    def __post_init__(self) -> None:
        if isinstance(self.tile, bool) or not isinstance(self.tile, int) or self.tile <= 0 or self.tile % PATCH:
            raise OptionError(f'tile size {self.tile!r} must be a positive multiple of the patch size {PATCH} '
                              '(e.g. 224)')
        if (isinstance(self.overlap, bool) or not isinstance(self.overlap, int) or self.overlap < 0
                or self.overlap % PATCH or self.overlap >= self.tile):
            raise OptionError(f'overlap {self.overlap!r} must be a multiple of {PATCH} in [0, tile size {self.tile})')
        _check_int('batch size', self.batch_size, 1)
        if self.num_workers is not None:
            _check_int('number of workers', self.num_workers, 0, ' (0 reads in the main process)')
        comp = self.compress.lower() if isinstance(self.compress, str) else self.compress
        object.__setattr__(self, 'compress', check_choice('compression', comp, CODECS))
        if isinstance(self.block_size, bool) or not isinstance(self.block_size, int) or self.block_size <= 0 \
                or self.block_size % 16:
            raise OptionError(f'block size {self.block_size!r} must be a positive multiple of 16')
        cs = self.checkpoint_seconds
        if isinstance(cs, bool) or not isinstance(cs, (int, float)) or not math.isfinite(cs) or cs < 0:
            raise OptionError(f'checkpoint interval {cs!r} must be a number of seconds >= 0 (0: after every tile row)')

    @property
    def workers(self) -> int:
        """The resolved number of DataLoader workers (without a device: :func:`default_num_workers`)."""
        if self.num_workers is not None:
            return self.num_workers
        from .embed import default_num_workers  # embed.py owns it (and imports this module)

        return default_num_workers()

    def on(self, device: torch.device) -> 'TilingOptions':
        """These options for a model on *device*: an unset ``num_workers`` becomes 0 on the CPU, else the default.

        A model on the CPU already uses every core (torch's intra-op threads), so reader processes and a writer
        thread beside it only take turns with it — and pre-empted OpenMP threads waste more than the work they
        make room for (``benchmarks/embed.py``). With 0 workers the tiles are read, normalised, blended and
        written in the calling thread between the model's batches. On an accelerator the workers and the
        background writer overlap that work with the model.
        """
        if self.num_workers is not None:
            return self
        from .embed import default_num_workers

        return dataclasses.replace(self, num_workers=0 if device.type == 'cpu' else default_num_workers())


@dataclass(frozen=True)
class DenseOptions:
    """What the dense embedding raster holds.

    Attributes:
        dtype: output data type, one of :data:`DTYPES`.
        layer: the block whose tokens are written (negative counts from the end); checked against the encoder's
            depth by :meth:`block_index`.
        final_norm: apply the encoder's final LayerNorm.

    Raises:
        OptionError: for an unknown dtype or a non-integer layer.
    """

    dtype: str = 'float32'
    layer: int = -1
    final_norm: bool = False

    def __post_init__(self) -> None:
        check_choice('output dtype', self.dtype, DTYPES)
        if isinstance(self.layer, bool) or not isinstance(self.layer, int):
            raise OptionError(f'layer must be an integer block index; got {self.layer!r}')

    def block_index(self, depth: int) -> int:
        """The non-negative block index of :attr:`layer` in a *depth*-block encoder.

        Raises:
            OptionError: if the layer is outside ``[-depth, depth - 1]``.
        """
        if not -depth <= self.layer < depth:
            raise OptionError(f'layer {self.layer} does not exist: the encoder has {depth} blocks, so give a layer '
                              f'in [{-depth}, {depth - 1}] (-1 = the last)')
        return self.layer % depth


@dataclass(frozen=True)
class EncoderSpec:
    """Which encoder runs, where, and at what precision.

    Attributes:
        weights: see :func:`~torchgeo_smarties.inference.weights.load_encoder` (with *model*: only its label).
        model: an in-memory encoder used instead of loading *weights*.
        num_heads: attention heads of a custom-size checkpoint (>= 1).
        device: torch device (checked for availability).
        precision: autocast precision, one of :data:`PRECISIONS`.

    Raises:
        OptionError, DeviceError: for bad values.
    """

    weights: str | None = None
    model: 'SMARTIESViT | None' = field(default=None, compare=False)
    num_heads: int | None = None
    device: str | torch.device = 'cpu'
    precision: Precision = 'fp32'

    def __post_init__(self) -> None:
        check_choice('precision', self.precision, PRECISIONS)
        if self.num_heads is not None:
            _check_int('number of heads', self.num_heads, 1)
        object.__setattr__(self, 'device', check_device(self.device))

    @property
    def torch_device(self) -> torch.device:
        """The checked device."""
        assert isinstance(self.device, torch.device)
        return self.device

    def load(self) -> tuple['SMARTIESViT', str]:
        """The encoder (on CPU, eval mode) and a one-line description of its weights."""
        if self.model is not None:
            m = self.model
            return m, self.weights or f'in-memory model ({type(m).__name__}, embed_dim {m.embed_dim})'
        from .weights import load_encoder

        return load_encoder(self.weights, num_heads=self.num_heads)


def _default_channels(source: RasterSource, bands: str | None, sensor: str | None) -> RasterSource:
    """With ``sensor=<sensor id>`` and a raster holding *all* that sensor's bands, keep its default channels.

    A hyperspectral sensor's default band set (``resolve_bands('enmap')``) leaves out the water-vapour absorption bands
    and the bands outside the pretraining spectrum; a full product (EnMAP's 224 bands) then embeds with
    ``--sensor enmap`` alone, those channels being skipped (the band mapping lists the channels used).
    """
    if bands is not None or sensor is None:
        return source
    from ..errors import SmartiesError
    from ..spectrum import get_sensor

    try:
        sen = get_sensor(sensor)
    except SmartiesError:
        return source  # a preset or an unknown name: resolve_source_bands says what is wrong
    keep = sen.default_bands
    if source.count != len(sen.bands) or len(keep) == len(sen.bands):
        return source
    index = {b.name: i for i, b in enumerate(sen.bands)}
    return source.select([index[b.name] for b in keep])


@dataclass(frozen=True)
class EmbedJob:
    """One raster to run: the opened source, its band ids, the projection plan and the normaliser.

    Build it with :meth:`open` (a context manager: ``with EmbedJob.open(...) as job:`` closes the source).
    ``stats``/``norm`` are kept as labels for the run's tags and fingerprint.
    """

    input: str
    source: RasterSource
    band_ids: tuple[str, ...]
    plan: ProjectionPlan
    normalizer: Callable[[Tensor], Tensor] | None = field(compare=False)
    stats: str | None = None
    norm: str | None = None

    @classmethod
    def open(cls, input: str | os.PathLike[str], *, policy: Any = 'linear', out_of_range: Any = 'error',
             **source: Unpack[SourceKeywords]) -> 'EmbedJob':
        """Open *input*, name its bands, plan them (*policy*, *out_of_range*) and build the normaliser.

        Args:
            input: a raster path, URL or STAC item (:func:`~torchgeo_smarties.inference.source.open_source`).
            policy: the planning policy (:func:`~torchgeo_smarties.spectrum.plan_bands`).
            out_of_range: what planning does with bands outside the learned spectrum.
            **source: the keywords of :class:`SourceKeywords` (bands, sensor, stats, norm, normalizer,
                require_crs).

        Raises:
            InputError, BandCountError, UnknownPresetError, UnknownBandError: for a bad input or band list.
        """
        bands, sensor, stats = source.get('bands'), source.get('sensor'), source.get('stats')
        normalizer, norm = source.get('normalizer'), source.get('norm')
        src = open_source(input, require_crs=source.get('require_crs', False))
        try:
            src = _default_channels(src, bands, sensor)
            band_ids = resolve_source_bands(src, bands, sensor)
            plan = plan_bands(band_ids, policy, out_of_range)
            if normalizer is None:
                from ..transforms import make_normalizer

                normalizer = make_normalizer(band_ids, stats, norm, src)
        except BaseException:
            src.close()
            raise
        return cls(str(input), src, band_ids, plan, normalizer, None if stats is None else str(stats), norm)

    def input_files(self) -> list[Path]:
        """Every local file the run reads (the raster files, VRT sources, sidecars); remote inputs are not files."""
        return input_files(p for p in self.source.paths if not is_remote(p))

    def normalization_fingerprint(self) -> str:
        """SHA-1 of the normaliser applied to a fixed probe tile: changes whenever its statistics change."""
        if self.normalizer is None:
            return 'none'
        c = len(self.band_ids)
        g = torch.Generator().manual_seed(0)
        probe = torch.rand(1, c, 4, 4, generator=g) * 10000.0
        probe[0, :, 0, 0] = 0.0
        with torch.no_grad():
            y = self.normalizer(probe.clone())
        return hashlib.sha1(y.detach().float().cpu().contiguous().numpy().tobytes()).hexdigest()

    def fingerprint(self) -> dict[str, Any]:
        """What a resumed run must find unchanged about the input: file contents, bands, normalisation."""
        files = [f for f in self.input_files() if not f.name.endswith('.aux.xml')]  # GDAL may rewrite sidecars
        # remote inputs (URLs, /vsi paths) are fingerprinted by name: an in-place change there is not detected
        remote = sorted(str(p) for p in self.source.paths if is_remote(p))
        return {'input': file_fingerprint(files), 'remote': remote, 'label': self.source.label or self.input,
                'bands': list(self.band_ids), 'normalization': self.normalization_fingerprint()}

    def close(self) -> None:
        """Close the source's file handles."""
        self.source.close()

    def __enter__(self) -> 'EmbedJob':
        """Use the job in a ``with`` block: its source is closed when the block ends."""
        return self

    def __exit__(self, *exc: object) -> None:
        """Close the source (:meth:`close`)."""
        self.close()


@dataclass(frozen=True)
class RasterOptions:
    """Everything an entry point needs besides its input and output, built from its keywords in one place.

    Attributes:
        source: the keywords :meth:`open` passes to :meth:`EmbedJob.open`.
        encoder: the encoder to run.
        tiling: how tiles are cut, batched and written.
        dense: what a dense embedding raster holds (unused by pooling and prediction).

    Example:
        >>> opts = RasterOptions.from_keywords({'tile': 64, 'overlap': 0, 'weights': 'demo'}, EmbedKeywords)
        >>> opts.tiling.tile, opts.tiling.overlap, opts.encoder.precision
        (64, 0, 'fp32')
    """

    source: SourceKeywords
    encoder: EncoderSpec
    tiling: TilingOptions
    dense: DenseOptions = field(default_factory=DenseOptions)

    @classmethod
    def from_keywords(cls, options: Mapping[str, Any], accepted: type = EmbedKeywords, *, caller: str = 'embed_raster',
                      model: 'SMARTIESViT | None' = None, device: str | torch.device = 'cpu',
                      overlap: int = 32) -> 'RasterOptions':
        """Validate *options* (the ``**options`` of an entry point) and build the parameter objects.

        Args:
            options: keywords declared by *accepted*; a missing one takes its documented default.
            accepted: the :class:`~typing.TypedDict` of keywords the entry point takes (:class:`EmbedKeywords`,
                :class:`PredictKeywords`, :class:`PoolKeywords`).
            caller: the entry point's name, for the error of an unknown keyword.
            model: an in-memory encoder (:attr:`EncoderSpec.model`).
            device: the torch device (:attr:`EncoderSpec.device`).
            overlap: the overlap used when *options* gives none (or None).

        Raises:
            TypeError: for a keyword *accepted* does not declare (as Python does for a misspelt argument).
            OptionError, DeviceError: for an invalid value, before anything is read.
        """
        unknown = sorted(set(options) - keyword_names(accepted))
        if unknown:
            raise TypeError(f'{caller}() got an unexpected keyword argument {unknown[0]!r}')
        given = {k: v for k, v in options.items() if not (k == 'overlap' and v is None)}
        tiling = TilingOptions(**{'overlap': overlap, **_pick(given, TilingKeywords)})
        encoder = EncoderSpec(model=model, device=device, **_pick(given, EncoderKeywords))
        dense = DenseOptions(**_pick(given, DenseKeywords))
        return cls(cast(SourceKeywords, _pick(given, SourceKeywords)), encoder, tiling, dense)

    def open(self, input: str | os.PathLike[str]) -> EmbedJob:
        """:meth:`EmbedJob.open` of *input* with :attr:`source` (use it as ``with options.open(path) as job:``)."""
        return EmbedJob.open(input, **self.source)


def _pick(options: Mapping[str, Any], keywords: type) -> dict[str, Any]:
    """The items of *options* that the :class:`~typing.TypedDict` *keywords* declares."""
    keys = keyword_names(keywords)
    return {k: v for k, v in options.items() if k in keys}
