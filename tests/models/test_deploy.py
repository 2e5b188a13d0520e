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
