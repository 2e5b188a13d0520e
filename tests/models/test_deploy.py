"""Deployment paths for a fixed band plan: torch.compile (no graph breaks), torch.export, ONNX, bf16."""

import os
from pathlib import Path

import pytest
import torch

from torchgeo_smarties.models import SMARTIESViT


@pytest.fixture(scope='module')
def model_and_input() -> tuple[SMARTIESViT, torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    model = SMARTIESViT(bands='sentinel2_l2a', embed_dim=64, depth=2, num_heads=4, img_size=64).eval()
    x = torch.randn(2, 12, 64, 64)
    with torch.no_grad():
        ref = model(x)
    return model, x, ref


def test_compile_fullgraph(model_and_input: tuple[SMARTIESViT, torch.Tensor, torch.Tensor]) -> None:
    model, x, ref = model_and_input
    torch._dynamo.reset()
    # Inductor's C++ code generation does not build under ATEN_CPU_CAPABILITY=default (its kernels reference
    # at::vec, which that capability compiles out); the graph-break check is Dynamo's and holds for any backend.
    backend = 'aot_eager' if os.environ.get('ATEN_CPU_CAPABILITY') == 'default' else 'inductor'
    compiled = torch.compile(model, fullgraph=True, backend=backend)  # fullgraph: any graph break raises
    with torch.no_grad():
        out = compiled(x)
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)


def test_torch_export(model_and_input: tuple[SMARTIESViT, torch.Tensor, torch.Tensor]) -> None:
    model, x, ref = model_and_input
    exported = torch.export.export(model, (x,))
    with torch.no_grad():
        torch.testing.assert_close(exported.module()(x), ref, atol=1e-5, rtol=1e-5)


def test_onnx_export(model_and_input: tuple[SMARTIESViT, torch.Tensor, torch.Tensor], tmp_path: Path) -> None:
    ort = pytest.importorskip('onnxruntime')
    model, x, ref = model_and_input
    path = tmp_path / 'smarties.onnx'
    torch.onnx.export(model, (x,), str(path), dynamo=False, input_names=['image'], output_names=['features'])
    session = ort.InferenceSession(str(path))
    out = session.run(None, {'image': x.numpy()})[0]
    assert abs(out - ref.numpy()).max() < 1e-4


def test_bf16_autocast(model_and_input: tuple[SMARTIESViT, torch.Tensor, torch.Tensor]) -> None:
    model, x, ref = model_and_input
    with torch.no_grad(), torch.autocast('cpu', dtype=torch.bfloat16):
        out = model(x)
    assert out.dtype == torch.bfloat16
    assert (out.float() - ref).abs().max() < 0.1


def test_torchscript_default_band_set(model_and_input: tuple[SMARTIESViT, torch.Tensor, torch.Tensor]) -> None:
    model, x, ref = model_and_input
    scripted = torch.jit.script(model)
    with torch.no_grad():
        out = scripted(x)
    # a strided convolution instead of patchify + matmul: float32 reduction order only
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)


def test_fx_feature_extractors(model_and_input: tuple[SMARTIESViT, torch.Tensor, torch.Tensor]) -> None:
    import timm
    from torchvision.models.feature_extraction import create_feature_extractor, get_graph_node_names

    model, x, ref = model_and_input
    _, eval_nodes = get_graph_node_names(model)
    fx = create_feature_extractor(model, return_nodes=[eval_nodes[-1]])
    with torch.no_grad():
        out = next(iter(fx(x).values()))
        torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)  # conv vs matmul tokenizer: float32 rounding
        # traced graphs follow the input size (the position table is resampled inside the graph)
        small = torch.randn(1, 12, 32, 48)
        torch.testing.assert_close(next(iter(fx(small).values())), model(small), atol=1e-5, rtol=1e-5)
    feats = timm.create_model('smarties_vit_base_patch16', embed_dim=64, depth=2, num_heads=4, img_size=64,
                              features_only=True, feature_cls='fx', out_indices=(0, 1)).eval()
    with torch.no_grad():
        maps = feats(x)
    assert [tuple(m.shape) for m in maps] == [(2, 17, 64)] * 2  # block outputs (CLS + 16 tokens)
