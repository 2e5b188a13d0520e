"""The light core: the band registry and the ``smarties`` dispatcher import no torch/timm/torchgeo (issue 11.1).

Each check runs in a fresh interpreter (this test process has torch loaded already). Start times are printed,
not asserted: the machine may be loaded; "torch is not imported" is the assertion.
"""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ('torch', 'timm', 'torchgeo', 'lightning', 'kornia', 'rasterio', 'matplotlib')

# Runs the code, then prints the heavy modules that got imported as a JSON list on the last line.
_WRAPPER = """
import contextlib, io, json, sys
{code}
print(json.dumps(sorted(m for m in {heavy!r} if m in sys.modules)))
"""

_RUN_CLI = """
from torchgeo_smarties.cli import main
out = io.StringIO()
with contextlib.redirect_stdout(out):
    rc = main({argv!r})
assert rc == 0, rc
assert out.getvalue(), 'no output'
"""


def _heavy_after(code: str) -> tuple[list[str], float]:
    env = {**os.environ, 'PYTHONPATH': os.pathsep.join([str(ROOT), os.environ.get('PYTHONPATH', '')])}
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, '-c', _WRAPPER.format(code=code, heavy=HEAVY)],
        capture_output=True, text=True, env=env, cwd=ROOT, timeout=120, check=False,
    )
    elapsed = time.perf_counter() - start
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1]), elapsed


@pytest.mark.parametrize(
    'code',
    [
        'import torchgeo_smarties.spectrum',
        'import torchgeo_smarties',
        'import torchgeo_smarties.spectrum.cli',
        'import torchgeo_smarties.errors',
        'from torchgeo_smarties import plan_bands; plan_bands("landsat8")',
        'import torchgeo_smarties; torchgeo_smarties.__version__',
    ],
)
def test_light_imports(code: str) -> None:
    heavy, elapsed = _heavy_after(code)
    print(f'{code}: {elapsed:.2f} s (interpreter start included)')
    assert heavy == []


@pytest.mark.parametrize(
    'argv', [['bands', '--sensor', 'landsat8'], ['--help'], ['--version'], ['bands', '--presets'], ['bands', '--json']]
)
def test_dispatcher_is_light(argv: list[str]) -> None:
    heavy, elapsed = _heavy_after(_RUN_CLI.format(argv=argv))
    print(f'smarties {" ".join(argv)}: {elapsed:.2f} s (interpreter start included)')
    assert heavy == []


def test_model_names_are_lazy_and_register() -> None:
    # accessing a model name imports torchgeo_smarties.models, which registers with timm and torchgeo
    code = (
        'import torchgeo_smarties as t\n'
        'assert "torch" not in sys.modules\n'
        'assert "SMARTIESViT" in dir(t)\n'
        'cls = t.SMARTIESViT\n'
        'assert cls.__module__ == "torchgeo_smarties.models.vit", cls.__module__\n'
        'import timm\n'
        'assert {"smarties_vit_base_patch16", "smarties_vit_large_patch16"} <= set(timm.list_models("smarties_*"))\n'
        'from torchgeo.models import get_model_weights\n'
        'assert get_model_weights("smarties_vit_base_patch16") is t.SMARTIESBase16_Weights\n'
    )
    heavy, _ = _heavy_after(code)
    assert {'torch', 'timm', 'torchgeo'} <= set(heavy)


def test_timm_first_registers_eagerly() -> None:
    # timm already imported: `import torchgeo_smarties` registers at once (torch is loaded already)
    code = (
        'import timm\n'
        'import torchgeo_smarties\n'
        'assert "torchgeo_smarties.models" in sys.modules\n'
        'assert "smarties_vit_base_patch16" in timm.list_models("smarties_*")\n'
    )
    _heavy_after(code)


def test_unknown_attribute() -> None:
    import torchgeo_smarties

    with pytest.raises(AttributeError, match='no attribute'):
        torchgeo_smarties.not_a_name
