#!/usr/bin/env bash
# A second environment for the TerraTorch integration, which cannot share the main one:
# TerraTorch 1.2.x (the current line, 1.2.13 at the time of writing) requires torchgeo<0.10, this package
# torchgeo>=0.10. Tested set: terratorch 1.2.13 + torchgeo 0.9.0 + timm 1.0.31 (+ the torch, kornia,
# lightning, smp of the main environment).
#
#   bash scripts/terratorch_env.sh                 # creates $TT_ENV (default /tmp/smarties-terratorch) and runs the test
#   MAIN_VENV=/path/to/.venv bash scripts/terratorch_env.sh
#
# The environment reuses the main environment's packages through a .pth file placed AFTER its own
# site-packages, so its torchgeo 0.9 shadows the main torchgeo 0.10 and nothing of the main environment changes.
set -euo pipefail
cd "$(dirname "$0")/.."
MAIN_VENV=${MAIN_VENV:-$PWD/.venv}
TT_ENV=${TT_ENV:-/tmp/smarties-terratorch}
BASE_PY=$("$MAIN_VENV/bin/python" -c 'import sys; print(sys.base_prefix)')/bin/python3
SITE=$("$MAIN_VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
if [ ! -x "$TT_ENV/bin/python" ]; then
  "$BASE_PY" -m venv "$TT_ENV"
  "$TT_ENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])' | {
    read -r tt_site; echo "$SITE" > "$tt_site/zz_main_venv.pth"; }
  # --no-deps: the main environment provides torch & co.; these are what TerraTorch adds or pins
  "$TT_ENV/bin/pip" install -q --no-deps terratorch==1.2.13 'torchgeo==0.9.*' albumentations==2.0.8 \
    albucore==0.0.24 'opencv-python-headless<4.13' stringzilla simsimd numkong pydantic pydantic_core \
    typing_inspection annotated_types python-box tifffile termcolor rich scikit-learn scikit-image h5py \
    diffusers scipy joblib threadpoolctl lazy_loader cloudpickle narwhals
fi
"$TT_ENV/bin/python" -c 'import terratorch, torchgeo, timm; print("terratorch", terratorch.__version__ if hasattr(terratorch, "__version__") else "?", "torchgeo", torchgeo.__version__, "timm", timm.__version__)'
PYTHONPATH=$PWD "$TT_ENV/bin/python" -m pytest -q -p no:cacheprovider tests/tasks/test_terratorch.py
