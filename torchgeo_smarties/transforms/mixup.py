"""Cross-sensor token mixup (paper Eq. 1–2) as a batched pair augmentation.

Built on the shared primitives of :mod:`torchgeo_smarties.ops.mixing`.

.. versionadded:: 0.1
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import Tensor, nn

from ..errors import BandCountError, ImageSizeError, InputError
from ..ops import check_mixup_mode, mix_tokens, random_assignment, stack_pair
from ..spectrum import resolve_bands

__all__ = ('CrossSensorMixup', 'MixedPair', 'MixupMode', 'mix_tokens', 'pair_patch_grid')

#: ``'complementary'``: view b′ is the complement of view a′ (paper Eq. 1–2, release BigEarthNet-MM eval);
#: ``'release'``: view b′ is b unmixed (the release's pretraining code, kept for reproduction; the old spelling
#: ``'release_pretraining'`` is accepted with a DeprecationWarning). The vocabulary is :data:`ops.MixupMode`'s.
MixupMode = Literal['complementary', 'release']


def pair_patch_grid(
    a: Tensor,
    b: Tensor,
    patch_size: int,
    bands: tuple[Sequence[str] | None, Sequence[str] | None] = (None, None),
    *,
    resize: str = 'PairedResize',
) -> tuple[int, int]:
    """The (h, w) patch grid of two co-registered images a (B, Ca, H, W) and b (B, Cb, H, W).

    Args:
        a: image of sensor a.
        b: image of sensor b.
        patch_size: patch size of the grid.
        bands: band ids of the channels of a and of b (None: channel count not checked).
        resize: the transform the error messages suggest to put both images on one grid.

    Returns:
        (H // patch_size, W // patch_size).

    Raises:
        InputError: if an image is not (B, C, H, W) or the batch sizes differ.
        ImageSizeError: if the spatial sizes differ or are not multiples of *patch_size*.
        BandCountError: if a channel count does not match its band ids.
    """
    if a.ndim != 4 or b.ndim != 4:
        raise InputError(f'expected two (B, C, H, W) images, got shapes {tuple(a.shape)} and {tuple(b.shape)}')
    if a.shape[0] != b.shape[0]:
        raise InputError(f'the pair has different batch sizes: {a.shape[0]} and {b.shape[0]}')
    if a.shape[-2:] != b.shape[-2:]:
        raise ImageSizeError(
            f'the pair has different spatial sizes {tuple(a.shape[-2:])} and {tuple(b.shape[-2:])}: both images '
            'must be co-registered on the same grid (same footprint, same pixels); resize/crop them together first '
            f'with {resize}(size)'
        )
    for name, ids, x in (('a', bands[0], a), ('b', bands[1], b)):
        if ids is not None and len(ids) != x.shape[1]:
            raise BandCountError(
                f'image {name} has {x.shape[1]} channels but bands_{name} lists {len(ids)} bands '
                f'({", ".join(ids)}); give bands_{name} in channel order'
            )
    h, w = a.shape[-2:]
    p = patch_size
    if h % p or w % p:
        raise ImageSizeError(
            f'image size {h}×{w} is not a multiple of the patch size {p}, so the patch grid is undefined; '
            f'resize to a multiple of {p} (e.g. {resize}(({(h // p + 1) * p}, {(w // p + 1) * p}))) or crop'
        )
    return h // p, w // p


@dataclass(frozen=True)
class MixedPair:
    """The two mixed views of a pair in the encoder's input form.

    Attributes:
        view_a: x for view a′, ``cat([a, b], dim=1)`` (B, Ca + Cb, H, W).
        mask_a: per-patch band mask of view a′ (B, Ca + Cb, h, w): a's bands valid where *assignment*.
        view_b: x for view b′ (same stacked tensor).
        mask_b: per-patch band mask of view b′ (the complement, or b's bands everywhere in
            ``'release'`` mode).
        assignment: (B, h, w) bool, True = the patch of view a′ comes from sensor a.
        bands: ``bands_a + bands_b`` (band ids) if the mixup knows the bands, else ``None``.

    Encode a view with ``model(view_a, bands=bands, band_mask=mask_a)``.
    """

    view_a: Tensor
    mask_a: Tensor
    view_b: Tensor
    mask_b: Tensor
    assignment: Tensor
    bands: tuple[str, ...] | None = None

    def as_dict(self) -> dict[str, Any]:
        """The fields as a dict (keys ``view_a``, ``mask_a``, ``view_b``, ``mask_b``, ``assignment``, ``bands``)."""
        return {
            'view_a': self.view_a,
            'mask_a': self.mask_a,
            'view_b': self.view_b,
            'mask_b': self.mask_b,
            'assignment': self.assignment,
            'bands': self.bands,
        }


class CrossSensorMixup(nn.Module):
    """Cross-sensor token mixup on a pair of co-registered images from two sensors.

    A per-sample random binary assignment over the 16×16 patch grid (exactly ``round(ratio·h·w)`` patches
    from sensor a) picks, for view a′, a's patch where M = 1 and b's elsewhere (Eq. 1); view b′ is the
    complement (Eq. 2). Because a SMARTIES token is 12 × the mean over the *valid* bands of its patch,
    feeding the stacked bands ``bands_a + bands_b`` with a per-patch band mask gives exactly a's or b's
    token per patch: mixing images this way *is* mixing tokens after the projection.

    ``ratio=1`` gives view a′ = a and view b′ = b; ``ratio=0`` gives view a′ = b and view b′ = a.

    Args:
        ratio: fraction of patches of view a′ taken from sensor a (default 0.5, the release's).
        mode: ``'complementary'`` (default; paper Eq. 1–2 and the release's BigEarthNet-MM evaluation) or
            ``'release'`` — the release's pretraining code overwrites view 1 before building
            view 2, so view b′ is the unmixed image b; kept for reproducing the release.
        patch_size: the encoder's patch size.
        bands_a: optional band ids of sensor a (preset or list), copied to the output's ``bands``.
        bands_b: optional band ids of sensor b.
        generator: default RNG for the assignment (a call's ``generator=`` overrides it). With a generator
            the draw is on the CPU and reproducible across devices.

    Raises:
        InputError: if *ratio* is outside [0, 1] or *mode* is unknown.

    Example:
        >>> mix = CrossSensorMixup(bands_a='sentinel2_l2a', bands_b='sentinel1')
        >>> out = mix(torch.randn(2, 12, 64, 64), torch.randn(2, 2, 64, 64))
        >>> out.view_a.shape, out.mask_a.shape, out.assignment.shape
        (torch.Size([2, 14, 64, 64]), torch.Size([2, 14, 4, 4]), torch.Size([2, 4, 4]))

    .. versionadded:: 0.1
    """

    def __init__(
        self,
        ratio: float = 0.5,
        mode: MixupMode = 'complementary',
        *,
        patch_size: int = 16,
        bands_a: str | Sequence[str] | None = None,
        bands_b: str | Sequence[str] | None = None,
        generator: torch.Generator | None = None,
        keys: tuple[str, str] = ('image_a', 'image_b'),
    ) -> None:
        super().__init__()
        if not 0.0 <= float(ratio) <= 1.0:
            raise InputError(f'mixup ratio must be in [0, 1], got {ratio}; 0.5 is the release default')
        mode = check_mixup_mode(mode, ('complementary', 'release'))  # type: ignore[assignment]
        if patch_size <= 0:
            raise InputError(f'patch_size must be positive, got {patch_size}')
        self.ratio = float(ratio)
        self.mode: MixupMode = mode
        self.patch_size = int(patch_size)
        self.bands_a = tuple(b.id for b in resolve_bands(bands_a)) if bands_a is not None else None
        self.bands_b = tuple(b.id for b in resolve_bands(bands_b)) if bands_b is not None else None
        self.generator = generator
        self.keys = keys

    def _grid(self, a: Tensor, b: Tensor) -> tuple[int, int]:
        return pair_patch_grid(a, b, self.patch_size, (self.bands_a, self.bands_b))

    def draw(self, a: Tensor, b: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Draw the (B, h, w) assignment for a pair (True = view a′ takes sensor a's patch)."""
        grid = self._grid(a, b)
        gen = generator if generator is not None else self.generator
        return random_assignment(a.shape[0], grid, self.ratio, generator=gen, device=a.device)

    def mix(self, a: Tensor, b: Tensor, assignment: Tensor) -> MixedPair:
        """Both views for a given assignment (B, h, w)."""
        self._grid(a, b)
        x, mask_a = stack_pair(a, b, assignment, self.patch_size)
        if self.mode == 'complementary':
            mask_b = ~mask_a
        else:
            mask_b = torch.cat(
                [torch.zeros_like(mask_a[:, : a.shape[1]]), torch.ones_like(mask_a[:, a.shape[1] :])], dim=1
            )
        bands = self.bands_a + self.bands_b if self.bands_a is not None and self.bands_b is not None else None
        return MixedPair(x, mask_a, x, mask_b, assignment.to(torch.bool), bands)

    def forward(
        self, a: Tensor | Mapping[str, Any], b: Tensor | None = None, *, generator: torch.Generator | None = None
    ) -> Any:
        """Mix a pair.

        Args:
            a: images of sensor a (B, Ca, H, W), or a batch dict holding both images under ``keys``.
            b: images of sensor b (B, Cb, H, W), same H, W as *a* (omit for a dict batch).
            generator: RNG for this call.

        Returns:
            A :class:`MixedPair`; for a dict batch, a copy of the dict updated with
            :meth:`MixedPair.as_dict`.

        Raises:
            ImageSizeError: if the spatial sizes differ or are not multiples of the patch size.
            BandCountError: if the channel counts do not match ``bands_a``/``bands_b``.
        """
        if isinstance(a, Mapping):
            batch = dict(a)
            ka, kb = self.keys
            if ka not in batch or kb not in batch:
                raise InputError(f'the batch dict needs the keys {self.keys}; got {sorted(batch)}; set keys=')
            out = self(batch[ka], batch[kb], generator=generator)
            batch.update(out.as_dict())
            return batch
        if b is None:
            raise InputError('give both images: mixup(a, b)')
        assignment = self.draw(a, b, generator)
        return self.mix(a, b, assignment)

    def extra_repr(self) -> str:  # noqa: D102
        return f'ratio={self.ratio}, mode={self.mode!r}, patch_size={self.patch_size}'
