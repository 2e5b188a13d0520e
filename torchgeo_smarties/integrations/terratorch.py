"""TerraTorch backbones ``smarties_vit_base_patch16`` / ``smarties_vit_large_patch16`` (extra ``terratorch``).

Importing this module registers the SMARTIES encoders in TerraTorch's backbone registry (source
``terratorch``: ``BACKBONE_REGISTRY.build('terratorch_smarties_vit_base_patch16')``) as multi-scale
backbones: the :class:`~torchgeo_smarties.models.pyramid.SMARTIESFeaturePyramid` (maps at strides 4, 8,
16, 32, ``out_channels`` per level), so TerraTorch's hierarchical decoders (``UperNetDecoder``, ``FCNDecoder``,
smp decoders) take them without a neck. TerraTorch's own timm source also finds
``timm_smarties_vit_base_patch16`` once :mod:`torchgeo_smarties` is imported.

In a TerraTorch YAML config, load it with ``custom_modules_path`` or an import in your entry script::

    model_args:
      backbone: smarties_vit_base_patch16
      backbone_bands: sentinel2_l2a        # any SMARTIES band set (preset or '<sensor>:<band>' list)
      decoder: UperNetDecoder

TerraTorch 1.2.x has no entry-point discovery of third-party backbones: a module registers them when it is
imported, by your code or by TerraTorch's ``custom_modules_path`` / ``TERRATORCH_CUSTOM_MODULE_PATH``.

Versions: TerraTorch 1.2.x requires ``torchgeo<0.10`` while this package requires ``torchgeo>=0.10``, so the
integration runs in a second environment (``bash scripts/terratorch_env.sh``; docs page "TerraTorch" for the tested
set). Without a working TerraTorch, importing this module raises
:class:`~torchgeo_smarties.errors.MissingExtraError` naming that fix.

.. versionadded:: 0.2
"""

from __future__ import annotations

from typing import Any

import timm

from ..errors import InputError, MissingExtraError
from ..models.pyramid import SMARTIESFeaturePyramid
from ..spectrum import plan_bands

_SECOND_ENV = (
    'TerraTorch 1.2.x needs torchgeo<0.10, this package torchgeo>=0.10: '
    'use the second environment of bash scripts/terratorch_env.sh (docs: TerraTorch)'
)

try:
    from terratorch.registry import TERRATORCH_BACKBONE_REGISTRY
except ImportError as err:
    if isinstance(err, ModuleNotFoundError) and err.name == 'terratorch':
        _why = 'terratorch is not installed'
    else:  # e.g. "cannot import name 'utils' from 'torchgeo.trainers'" next to torchgeo 0.10
        _why = f'terratorch does not import here ({err})'
    raise MissingExtraError(f'the TerraTorch backbones need TerraTorch: {_why}; {_SECOND_ENV}') from err


def smarties_backbone(
    model: str, pretrained: bool = False, bands: Any = None, out_indices: tuple[int, ...] = (0, 1, 2, 3), **kwargs: Any
) -> SMARTIESFeaturePyramid:
    """A SMARTIES feature pyramid for TerraTorch (``out_channels`` = the channels of the selected levels).

    Args:
        model: SMARTIES timm name (tag allowed).
        pretrained: load the released weights.
        bands: band set (TerraTorch's ``backbone_bands``), default: the tag's or sentinel2_l2a.
        out_indices: pyramid levels (0 → stride 4, ..., 3 → stride 32).
        **kwargs: timm / SMARTIESViT arguments (``img_size``, ``embed_dim``, ``pyramid_blocks``, ...).
    """
    kwargs.pop('num_frames', None)  # TerraTorch's temporal argument; SMARTIES is single-date
    if bands is not None:
        plan = plan_bands(bands)
        kwargs['bands'] = plan
        kwargs.setdefault('in_chans', plan.num_bands)  # else timm takes in_chans from the default tag's cfg
    net = timm.create_model(model, pretrained=pretrained, features_only=True, out_indices=tuple(out_indices), **kwargs)
    if not isinstance(net, SMARTIESFeaturePyramid):
        raise InputError(f'{model!r} is not a SMARTIES model; use smarties_vit_base_patch16 or _large_patch16')
    return net


@TERRATORCH_BACKBONE_REGISTRY.register
def smarties_vit_base_patch16(pretrained: bool = False, **kwargs: Any) -> SMARTIESFeaturePyramid:
    """SMARTIES ViT-B/16 as a 4-level TerraTorch backbone."""
    return smarties_backbone('smarties_vit_base_patch16', pretrained, **kwargs)


@TERRATORCH_BACKBONE_REGISTRY.register
def smarties_vit_large_patch16(pretrained: bool = False, **kwargs: Any) -> SMARTIESFeaturePyramid:
    """SMARTIES ViT-L/16 as a 4-level TerraTorch backbone."""
    return smarties_backbone('smarties_vit_large_patch16', pretrained, **kwargs)
