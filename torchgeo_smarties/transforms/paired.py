"""Paired geometric augmentations for co-registered images of different resolutions.

The same random crop / flip / rot90 is applied to both images of a pair (e.g. 10 m Sentinel-2 at
64×64 px and 2.5 m imagery at 256×256 px of the same footprint), both resampled to the model size.
The random parameters are drawn once with kornia's own generators on image *a* and re-expressed in
image *b*'s pixel coordinates, then applied with kornia's classes through ``params=``.

.. versionadded:: 0.1
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import kornia.augmentation as K
import torch
from torch import Tensor, nn

from ..errors import ImageSizeError, InputError

__all__ = ('PairSequential', 'PairedGeometric', 'PairedResize', 'pair_scale')


def _size2(size: int | tuple[int, int]) -> tuple[int, int]:
    if isinstance(size, int):
        return (size, size)
    if len(size) != 2:
        raise InputError(f'size must be an int or (height, width), got {size!r}')
    return (int(size[0]), int(size[1]))


def pair_scale(a: Tensor, b: Tensor, rtol: float = 1e-6) -> tuple[float, float]:
    """Pixel scale (sy, sx) of *b* relative to *a*, checking that both cover the same footprint.

    Raises:
        InputError: if the images are not batched (B, C, H, W) with equal batch size.
        ImageSizeError: if their aspect ratios differ (different spatial extents).
    """
    if a.ndim != 4 or b.ndim != 4:
        raise InputError(f'expected two (B, C, H, W) images, got shapes {tuple(a.shape)} and {tuple(b.shape)}')
    if a.shape[0] != b.shape[0]:
        raise InputError(f'the pair has different batch sizes: {a.shape[0]} and {b.shape[0]}')
    ha, wa = a.shape[-2:]
    hb, wb = b.shape[-2:]
    sy, sx = hb / ha, wb / wa
    if abs(sy - sx) > rtol * max(sy, sx):
        raise ImageSizeError(
            f'the pair covers different spatial extents: {ha}×{wa} px and {hb}×{wb} px have different aspect ratios '
            f'(scales {sy:.4g} vs {sx:.4g}); crop both to the same footprint (same ground extent) before pairing'
        )
    return sy, sx


@contextmanager
def _seeded(generator: torch.Generator | None) -> Iterator[None]:
    """Run kornia's (global-RNG) parameter draw from *generator* without touching the global RNG state."""
    if generator is None:
        yield
        return
    seed = int(torch.randint(0, 2**62, (1,), generator=generator).item())
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


class _PairBase(nn.Module):
    """A transform of a pair of images to the model size, called as ``aug(a, b)`` or on a dict batch."""

    def __init__(self, size: int | tuple[int, int], keys: tuple[str, str]) -> None:
        super().__init__()
        self.size = _size2(size)
        self.keys = keys

    def _apply(self, fn: Any, *args: Any, **kwargs: Any) -> Any:  # keep kornia's draws on the CPU
        out = super()._apply(fn, *args, **kwargs)
        for m in self.modules():
            if isinstance(m, K.AugmentationBase2D):
                m.set_rng_device_and_dtype(torch.device('cpu'), torch.float32)
        return out

    def _pair(self, a: Tensor, b: Tensor, generator: torch.Generator | None) -> tuple[Tensor, Tensor]:
        raise NotImplementedError

    def forward(
        self, a: Tensor | Mapping[str, Any], b: Tensor | None = None, *, generator: torch.Generator | None = None
    ) -> Any:
        """Transform a pair ``(a, b)`` → ``(a′, b′)``, or a batch dict holding both under ``keys``."""
        if isinstance(a, Mapping):
            batch = dict(a)
            ka, kb = self.keys
            if ka not in batch or kb not in batch:
                raise InputError(f'the batch dict needs the keys {self.keys}; got {sorted(batch)}; set keys=')
            batch[ka], batch[kb] = self._pair(batch[ka], batch[kb], generator)
            return batch
        if b is None:
            raise InputError('give both images of the pair: aug(a, b)')
        return self._pair(a, b, generator)


class PairedResize(_PairBase):
    """Resize both images of a pair to the model size (half-pixel convention, so they stay co-registered).

    Built on :class:`kornia.augmentation.Resize` (``align_corners=False``: image edges map to image edges).

    Args:
        size: output (height, width) or an int.
        antialias: low-pass before downsampling (recommended for large factors, e.g. 0.5 m → 10 m).
        keys: the two image keys for dict batches.

    Raises:
        ImageSizeError: if the two images cover different extents (aspect ratios differ).

    .. versionadded:: 0.1
    """

    def __init__(
        self,
        size: int | tuple[int, int] = 224,
        *,
        antialias: bool = True,
        keys: tuple[str, str] = ('image_a', 'image_b'),
    ) -> None:
        super().__init__(size, keys)
        self.resize = K.Resize(self.size, align_corners=False, antialias=antialias)

    def _pair(self, a: Tensor, b: Tensor, generator: torch.Generator | None) -> tuple[Tensor, Tensor]:
        pair_scale(a, b)
        return self.resize(a), self.resize(b)


class PairedGeometric(_PairBase):
    """The same random resized crop, flips and rot90 on both images of a pair, at any resolution ratio.

    The crop is drawn by :class:`kornia.augmentation.RandomResizedCrop` on image *a* (integer box, as
    kornia draws it) and applied to both images in ``cropping_mode='resample'`` with sampling points that
    cover the same ground positions: output pixel j samples the ground point at the centre of the j-th
    of ``size`` equal cells of the crop box (half-pixel convention), expressed in each image's own pixel
    coordinates. Flips (:class:`~kornia.augmentation.RandomHorizontalFlip`,
    :class:`~kornia.augmentation.RandomVerticalFlip`) and :class:`~kornia.augmentation.RandomRotation90`
    are then applied once to both images stacked along channels, so they are identical by construction.

    Defaults follow the release's pretraining: crop scale (0.25, 1), aspect 1, flips and rot90.

    Args:
        size: output (height, width) of both images (the model size).
        scale: crop area range, as a fraction of the image.
        ratio: crop aspect (width/height) range.
        hflip: probability of a horizontal flip.
        vflip: probability of a vertical flip.
        rot90: probability of drawing a rotation by k·90°; kornia draws k = round(U(−1.5, 2.5)), i.e.
            k ∈ {−1, 0, 1, 2} (−90°, 0°, 90°, 180°) each with probability 1/4.
        crop: apply the random crop (``False``: only resize both to *size* with the same convention).
        resample: interpolation (``'bilinear'`` or ``'nearest'``).
        keys: the two image keys for dict batches.
        generator: default RNG (a call's ``generator=`` overrides it); otherwise kornia draws from torch's
            global RNG, so ``torch.manual_seed`` makes it deterministic.

    Raises:
        ImageSizeError: if the two images cover different extents (aspect ratios differ).

    .. versionadded:: 0.1
    """

    def __init__(
        self,
        size: int | tuple[int, int] = 224,
        *,
        scale: tuple[float, float] = (0.25, 1.0),
        ratio: tuple[float, float] = (1.0, 1.0),
        hflip: float = 0.5,
        vflip: float = 0.5,
        rot90: float = 0.5,
        crop: bool = True,
        resample: str = 'bilinear',
        keys: tuple[str, str] = ('image_a', 'image_b'),
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__(size, keys)
        self.generator = generator
        self.do_crop = crop
        self.crop = K.RandomResizedCrop(
            self.size,
            scale=scale if crop else (1.0, 1.0),
            ratio=ratio,
            resample=resample,
            align_corners=True,
            cropping_mode='resample',
        )
        augs: list[K.AugmentationBase2D] = []
        if hflip > 0:
            augs.append(K.RandomHorizontalFlip(p=hflip))
        if vflip > 0:
            augs.append(K.RandomVerticalFlip(p=vflip))
        if rot90 > 0:
            augs.append(K.RandomRotation90(times=(-1.5, 2.5), p=rot90, resample=resample))  # type: ignore[arg-type]
        self.flips = K.AugmentationSequential(*augs) if augs else None
        self._apply(lambda t: t)

    def crop_params(self, a: Tensor, b: Tensor) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
        """Draw one crop on *a* and return kornia ``params`` for *a* and *b* (same ground footprint)."""
        sy, sx = pair_scale(a, b)
        ha, wa = a.shape[-2:]
        if self.do_crop:
            params = self.crop.forward_parameters(a.shape)
            box = params['src'].to(torch.float64)
            x0, y0 = box[:, 0, 0], box[:, 0, 1]
            # kornia's boxes are inclusive pixel indices: the crop covers edges [x0, x1 + 1]
            cw, ch = box[:, 2, 0] - x0 + 1.0, box[:, 2, 1] - y0 + 1.0
        else:
            params = self.crop.forward_parameters(a.shape)
            n = a.shape[0]
            x0 = y0 = torch.zeros(n, dtype=torch.float64)
            cw, ch = torch.full((n,), float(wa), dtype=torch.float64), torch.full((n,), float(ha), dtype=torch.float64)
        oh, ow = self.size

        def box_in(s_y: float, s_x: float) -> Tensor:
            # ground (edge) coordinates of the first/last output pixel centres, in a's pixel units
            gx0 = x0 + 0.5 * cw / ow
            gx1 = x0 + (ow - 0.5) * cw / ow
            gy0 = y0 + 0.5 * ch / oh
            gy1 = y0 + (oh - 0.5) * ch / oh
            # → pixel-centre coordinates of the image with scale (s_y, s_x) relative to a
            px0, px1 = s_x * gx0 - 0.5, s_x * gx1 - 0.5
            py0, py1 = s_y * gy0 - 0.5, s_y * gy1 - 0.5
            pts = torch.stack(
                [
                    torch.stack([px0, py0], -1),
                    torch.stack([px1, py0], -1),
                    torch.stack([px1, py1], -1),
                    torch.stack([px0, py1], -1),
                ],
                dim=1,
            )
            return pts.to(torch.float32)

        pa = dict(params)
        pa['src'] = box_in(1.0, 1.0)
        pa['dst'] = params['dst'].to(torch.float32)
        pb = dict(pa)
        pb['src'] = box_in(sy, sx)
        if 'input_size' in params:
            pb['input_size'] = torch.tensor([b.shape[-2], b.shape[-1]], dtype=torch.long).expand(b.shape[0], -1)
        return pa, pb

    def _pair(self, a: Tensor, b: Tensor, generator: torch.Generator | None) -> tuple[Tensor, Tensor]:
        gen = generator if generator is not None else self.generator
        with _seeded(gen):
            pa, pb = self.crop_params(a, b)
            out_a = self.crop(a, params=pa)
            out_b = self.crop(b, params=pb)
            if self.flips is not None:
                ca = out_a.shape[1]
                both = self.flips(torch.cat([out_a, out_b.to(out_a.dtype)], dim=1))
                out_a, out_b = both[:, :ca], both[:, ca:].to(b.dtype)
        return out_a, out_b

    def extra_repr(self) -> str:  # noqa: D102
        return f'size={self.size}, crop={self.do_crop}'


class PairSequential(nn.Module):
    """A pipeline for image pairs with the call shape of kornia's ``AugmentationSequential``.

    kornia's ``AugmentationSequential`` transforms the data keys of *one* image (image, mask, boxes); a pair
    of images from two sensors at different resolutions needs the same geometry on both, which
    :class:`PairedGeometric` / :class:`PairedResize` draw jointly, and :class:`CrossSensorMixup` needs both
    images at once. ``PairSequential`` chains them:

    * pair steps (:class:`PairedGeometric`, :class:`PairedResize`, :class:`CrossSensorMixup`, or any module
      or a nested ``PairSequential``) get both images;
    * any other module (kornia intensity augmentations, :class:`SmartiesNormalize`, ...) is applied to each
      image separately; per-image *geometric* kornia augmentations are refused (they would misalign the pair);
    * :class:`CrossSensorMixup` may only be the last step (its output is the mixed views).

    Call it like kornia's: ``seq(a, b)`` → ``(a′, b′)`` (or a :class:`MixedPair` when the last step is the
    mixup), or ``seq(batch)`` with a dict holding ``data_keys`` → a copy of the dict with both images
    replaced (and the mixup's ``view_a``/``mask_a``/... keys added).

    Args:
        *steps: the steps, in order.
        data_keys: the two image keys of dict batches (set on every pair step).

    Raises:
        InputError: for a geometric per-image step, a mixup that is not last, or bad inputs.

    Example:
        >>> seq = PairSequential(PairedGeometric(64), K.RandomGaussianNoise(p=0.5), CrossSensorMixup())
        >>> out = seq({'image_a': torch.randn(2, 12, 32, 32), 'image_b': torch.randn(2, 2, 128, 128)})
        >>> out['view_a'].shape
        torch.Size([2, 14, 64, 64])

    .. versionadded:: 0.2
    """

    def __init__(self, *steps: nn.Module, data_keys: tuple[str, str] = ('image_a', 'image_b')) -> None:
        super().__init__()
        from .mixup import CrossSensorMixup

        if len(data_keys) != 2:
            raise InputError(f'data_keys must name the two images of the pair, got {data_keys!r}')
        for i, step in enumerate(steps):
            if isinstance(step, CrossSensorMixup) and i != len(steps) - 1:
                raise InputError('CrossSensorMixup must be the last step of a PairSequential (it outputs the views)')
            if not self._is_pair(step) and isinstance(step, K.GeometricAugmentationBase2D):
                raise InputError(
                    f'{type(step).__name__} is a per-image geometric augmentation: applied to each image separately '
                    'it would misalign the pair; use PairedGeometric (crop, flips, rot90) or PairedResize'
                )
            if isinstance(step, (_PairBase, CrossSensorMixup)):
                step.keys = (data_keys[0], data_keys[1])
        self.data_keys = tuple(data_keys)
        self.steps = nn.ModuleList(steps)

    @staticmethod
    def _is_pair(step: nn.Module) -> bool:
        from .mixup import CrossSensorMixup

        return isinstance(step, (_PairBase, CrossSensorMixup, PairSequential))

    def _run(self, a: Tensor, b: Tensor) -> Any:
        out: Any = (a, b)
        for step in self.steps:
            a, b = out
            out = step(a, b) if self._is_pair(step) else (step(a), step(b))
        return out

    def forward(self, a: Tensor | Mapping[str, Any], b: Tensor | None = None) -> Any:
        """Run the pipeline on ``(a, b)`` or on a dict batch holding ``data_keys``."""
        if isinstance(a, Mapping):
            batch = dict(a)
            ka, kb = self.data_keys
            if ka not in batch or kb not in batch:
                raise InputError(f'the batch dict needs the keys {self.data_keys}; got {sorted(batch)}; set data_keys=')
            out = self._run(batch[ka], batch[kb])
            if isinstance(out, tuple):
                batch[ka], batch[kb] = out
            else:
                batch.update(out.as_dict())
            return batch
        if b is None:
            raise InputError('give both images of the pair: seq(a, b), or a dict batch')
        return self._run(a, b)
