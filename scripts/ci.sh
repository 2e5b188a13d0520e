#!/usr/bin/env bash
# Set-up command (b): create the environment, install the test extras and run the whole
# test suite: ruff, mypy, pytest and the Sphinx docs build (warnings are errors).
# .ci/run runs exactly this script. Every step runs; the script fails if any step fails.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=scripts/_env.sh
source scripts/_env.sh

make_venv
echo '== pip install -e .[tests]'
"$VENV/bin/python" -m pip install --quiet -e '.[tests]'

export MPLBACKEND=Agg
failed=()
step() {  # step NAME COMMAND...: run, remember a failure, go on
    local name="$1"
    shift
    echo "== $name"
    local rc=0
    "$@" || rc=$?
    if [ "$rc" -ne 0 ]; then
        case "$name" in pytest*) [ "$rc" -eq 5 ] && echo 'pytest collected no tests: that is a failure' >&2;; esac
        echo "!! $name failed (exit $rc)" >&2
        failed+=("$name")
    fi
}

step ruff "$VENV/bin/ruff" check .
step mypy "$VENV/bin/mypy"
step pytest "$VENV/bin/python" -m pytest -q
# The float-sensitive tests again on ATen's portable kernels (no AVX2/AVX-512), so an assertion that holds only for
# one CPU's rounding fails on every machine, not only on some (markers set in tests/conftest.py).
step pytest-default-capability env ATEN_CPU_CAPABILITY=default "$VENV/bin/python" -m pytest -q -m 'float_sensitive and not slow'
# timm's own tests/test_models.py on our ViT-B/ViT-L/demo entrypoints (fetches timm's sdist from PyPI; ~5 min on 2 cores)
step timm-models env PYTHON="$VENV/bin/python" bash scripts/timm_model_tests.sh
# TerraTorch 1.2.x pins torchgeo<0.10: its integration tests run in a second, pinned environment layered on $VENV
# (torch is already there: no second SMARTIES_TORCH_INDEX_URL install).
step terratorch env VENV="$VENV" SMARTIES_TORCH_INDEX_URL= bash scripts/terratorch_env.sh
step docs "$VENV/bin/sphinx-build" -W --keep-going -q -b html docs docs/_build/html

if [ "${#failed[@]}" -ne 0 ]; then
    echo "FAILED: ${failed[*]}" >&2
    exit 1
fi
echo 'all checks passed'
