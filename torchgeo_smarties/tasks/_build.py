"""Shared model construction for the SMARTIES task subclasses (band checks, weights, heads, freezing)."""

from collections.abc import Mapping
from typing import Any, Literal, TypeAlias

import timm
from timm.models import split_model_name_tag
from torch import nn
from torchvision.models._api import WeightsEnum

from ..errors import BandCountError, CheckpointError, InputError, UnknownPresetError
from ..models import TIMM_TAGS, SMARTIESViT, default_bands_for, load_encoder_weights, resolve_weights_arg
from ..models.checkpoint import extract_backbone, load_checkpoint
from ..models.vit import Bands
from ..spectrum import ProjectionPlan, plan_bands
from .fusion import FusionStrategy, SMARTIESFusion
from .heads import linear_probe_head

__all__ = ('HeadKind', 'Weights', 'build_classifier', 'create_encoder', 'load_weights', 'resolve_task_bands')

#: What ``weights=`` may be in the SMARTIES tasks: None, a bool, a weights enum member, or a string
#: (``'true'``/``'false'``/``'null'``, ``'demo'``, an enum name, a path or URL; see ``resolve_weights_arg``).
Weights: TypeAlias = WeightsEnum | str | bool | None  # noqa: UP040 (jsonargparse reads it)
HeadKind: TypeAlias = Literal['linear', 'probe']  # noqa: UP040


def resolve_task_bands(model: str, bands: Bands | None, in_channels: int | None) -> ProjectionPlan:
    """The band set a task will use: *bands*, else the model name's tag, else the default for *in_channels*.

    Raises:
        UnknownPresetError: for an unknown tag or preset.
        BandCountError: if *in_channels* differs from the number of bands.
    """
    _, tag = split_model_name_tag(model)
    if bands is not None:
        source = f'bands={bands!r}' if isinstance(bands, str) else 'bands=[...]'
        plan = plan_bands(bands)
    elif tag:
        if tag not in TIMM_TAGS:
            raise UnknownPresetError(
                f'unknown band-set tag {tag!r} in model={model!r}; valid tags: {", ".join(TIMM_TAGS)} '
                "(or pass bands=['<sensor>:<band>', ...])"
            )
        source = f'the model tag {tag!r}'
        plan = plan_bands(tag)
    else:
        if in_channels is None:
            in_channels = 12
        source = f'the default for in_channels={in_channels}'
        plan = plan_bands(default_bands_for(in_channels))
    if in_channels is not None and in_channels != plan.num_bands:
        raise BandCountError(
            f'in_channels={in_channels} but {source} has {plan.num_bands} bands ({", ".join(plan.bands)}); set '
            'in_channels to the number of image channels and pick the band set of your data in channel order, e.g. '
            "bands='eurosat' (13 bands, B8A last) for EuroSAT, 'bigearthnet_s2' (12) for BigEarthNet-S2, "
            "'sentinel1' (VV, VH) for S1"
        )
    return plan


def create_encoder(
    model: str, bands: Bands | ProjectionPlan, *, pretrained: bool = False, num_classes: int = 0, **kwargs: Any
) -> SMARTIESViT:
    """Create a SMARTIES encoder through timm (``model`` is a registered SMARTIES timm name, tag allowed)."""
    plan = bands if isinstance(bands, ProjectionPlan) else plan_bands(bands)
    enc = timm.create_model(
        model, pretrained=pretrained, num_classes=num_classes, in_chans=plan.num_bands, bands=plan, **kwargs
    )
    if not isinstance(enc, SMARTIESViT):
        raise InputError(f'model={model!r} is not a SMARTIES model (got {type(enc).__name__}); use '
                         "'smarties_vit_base_patch16[.<tag>]' or 'smarties_vit_large_patch16[.<tag>]'")
    return enc


def load_weights(model: nn.Module, encoder: SMARTIESViT, weights: Weights) -> None:
    """Load *weights* into *encoder* (release format) or, for a Lightning ``.ckpt``, into *model*.

    *weights* is parsed by :func:`~torchgeo_smarties.models.resolve_weights_arg` (``true``/``false``/``null``
    strings from the command line included):

    * a ``WeightsEnum`` member or its name (``'SMARTIESBase16_Weights.SENTINEL2_L2A_SMARTIES'``, ``'demo'``)
      → strict encoder load (the model must have the member's size);
    * a ``.safetensors``/``.pth``/``.pt`` file (or http(s) URL) in the release's key format → strict encoder load;
    * a Lightning ``.ckpt`` of a torchgeo task → its backbone (read safely) + torchgeo's ``load_state_dict``;
    * ``True`` is handled at creation (timm ``pretrained=True``), ``None``/``False`` does nothing.

    Raises:
        WeightsArgumentError: if *weights* is none of the accepted forms.
        CheckpointError: if the weights cannot be found or do not fit.
    """
    resolved = resolve_weights_arg(weights)
    if resolved is None or isinstance(resolved, bool):
        return
    if isinstance(resolved, WeightsEnum):
        meta = resolved.meta
        depth = len(encoder.blocks)
        if meta.get('embed_dim') not in (None, encoder.embed_dim) or meta.get('depth') not in (None, depth):
            raise CheckpointError(
                f'{resolved!r} holds {meta.get("model")} weights ({meta["embed_dim"]}-d, {meta["depth"]} blocks) but '
                f'the model is {encoder.embed_dim}-d with {depth} blocks; use '
                f'model={meta.get("model")!r} for these weights'
            )
        load_encoder_weights(encoder, resolved.get_state_dict(), source=repr(resolved))
        return
    if str(resolved).lower().split('?')[0].endswith('.ckpt'):
        from torchgeo.tasks import utils

        _, state_dict = extract_backbone(resolved)  # torch.load(weights_only=True), typed errors
        utils.load_state_dict(model, state_dict)
    else:
        load_encoder_weights(encoder, load_checkpoint(resolved), source=str(resolved))


def build_classifier(options: Mapping[str, Any], weights: Weights, num_outputs: int) -> nn.Module:
    """Build a SMARTIES classifier/regressor (optionally a two-sensor fusion model) with weights and head.

    Args:
        options: the task's hyper-parameters: ``model``, ``in_channels`` and ``freeze_backbone``, and
            optionally ``bands``, ``head`` (``'linear'``), ``fusion``, ``bands_b``, ``mixup_ratio`` (0.5) and
            ``fusion_eval_seed`` (0), as documented on :class:`~torchgeo_smarties.tasks.SMARTIESClassification`.
        weights: what to load (:func:`load_weights`).
        num_outputs: outputs of the head.

    Returns:
        A module with ``forward(x) -> (B, num_outputs)``, ``get_classifier()`` and ``num_features``.

    Raises:
        BandCountError: if *in_channels* does not match the band set(s).
        UnknownPresetError: for an unknown tag/preset.
        InputError: for ``fusion`` without ``bands_b`` or an unknown head.
    """
    model: str = options['model']
    in_channels: int = options['in_channels']
    bands: Bands | None = options.get('bands')
    head: HeadKind = options.get('head', 'linear')
    fusion: FusionStrategy | None = options.get('fusion')
    bands_b: Bands | None = options.get('bands_b')
    if head not in ('linear', 'probe'):
        raise InputError(f"unknown head {head!r}; choose 'linear' or 'probe' (BatchNorm1d + Linear)")
    weights = resolve_weights_arg(weights)  # 'true'/'false'/'null'/'demo'/enum name/path from YAML or the CLI
    if fusion is None:
        plan = resolve_task_bands(model, bands, in_channels)
        enc = create_encoder(model, plan, pretrained=weights is True, num_classes=num_outputs)
        net: nn.Module = enc
    else:
        if bands_b is None:
            raise InputError(f"fusion={fusion!r} needs bands (sensor a) and bands_b (sensor b), e.g. bands="
                             "'bigearthnet_s1', bands_b='bigearthnet_s2' for BigEarthNet bands='all'")
        plan_a = resolve_task_bands(model, bands, None)
        plan_b = plan_bands(bands_b)
        if in_channels != plan_a.num_bands + plan_b.num_bands:
            raise BandCountError(
                f'in_channels={in_channels} but the fused pair has {plan_a.num_bands} + {plan_b.num_bands} = '
                f'{plan_a.num_bands + plan_b.num_bands} bands ({", ".join(plan_a.bands + plan_b.bands)})'
            )
        enc = create_encoder(model, plan_a, pretrained=weights is True, num_classes=0)
        net = SMARTIESFusion(enc, plan_a, plan_b, fusion, num_outputs, options.get('mixup_ratio', 0.5),
                             options.get('fusion_eval_seed', 0))
    load_weights(net, enc, weights)
    if head == 'probe':
        new_head = linear_probe_head(net.num_features, num_outputs)  # type: ignore[arg-type]
        if isinstance(net, SMARTIESFusion):
            net.head = new_head
        else:
            enc.head = new_head  # type: ignore[assignment]
    if options['freeze_backbone']:
        for p in net.parameters():
            p.requires_grad = False
        for p in net.get_classifier().parameters():  # type: ignore[operator]
            p.requires_grad = True
    return net
