#!/usr/bin/env bash
# Set-up command (a): create the environment, install the package and run its main job
# on bundled data. Output goes to out/.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=scripts/_env.sh
source scripts/_env.sh

make_venv
echo '== pip install -e .'
"$VENV/bin/python" -m pip install --quiet -e .

export MPLBACKEND=Agg
echo '== smarties embed --sample sentinel2 -o out/'
"$VENV/bin/smarties" embed --sample sentinel2 -o out/
echo 'done: see out/sentinel2_l1c_crop_embeddings.tif and out/sentinel2_l1c_crop_preview.png'
