#!/usr/bin/env bash
# Run timm's own tests/test_models.py against the SMARTIES timm entrypoints
# (smarties_vit_base_patch16 / smarties_vit_large_patch16), the way timm runs its ViTs.
#
#   scripts/timm_model_tests.sh [extra pytest args, e.g. -x]
#
#   PYTHON=/path/to/python   interpreter with torchgeo_smarties' dependencies (default: .venv/bin/python, else python3)
#   ONLY='smarties_vit_base'  narrow the selection further (and-ed into -k; e.g. one model or 'fx')
#
# What it does:
# 1. downloads the sdist of the *installed* timm version into a temporary directory (pip download, PyPI) and
#    unpacks its tests/ (timm's code is never copied into this repository);
# 2. adds our models to timm's name filters, exactly as timm lists its own ViTs: 'smarties_vit_*' to
#    NON_STD_FILTERS (the "transformer / hybrid" set, which includes vit_*) and our registering module
#    ('builders') to FEAT_INTER_FILTERS (models with forward_intermediates); a conftest imports
#    torchgeo_smarties.models so the entrypoints are registered before timm's test module lists models;
# 3. runs `pytest tests/test_models.py -k smarties` without the two tests that download pretrained weights from
#    the Hugging Face hub (test_model_load_pretrained, test_model_features_pretrained), and prints the counts.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="${PYTHON:-}"
if [ -z "$PY" ]; then
    if [ -x "$ROOT/.venv/bin/python" ]; then PY="$ROOT/.venv/bin/python"; else PY=python3; fi
fi
if [[ "$PY" == */* ]]; then  # absolute: pytest runs from timm's unpacked sdist below (keeps the venv's symlink)
    PY="$(cd "$(dirname "$PY")" && pwd)/$(basename "$PY")"
fi
VERSION="$("$PY" -c 'import timm; print(timm.__version__)')"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/timm-tests.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT
echo "== timm $VERSION: fetching its sdist into $WORK"
"$PY" -m pip download --quiet --no-deps --no-binary :all: "timm==$VERSION" -d "$WORK/sdist"
tar -xzf "$WORK"/sdist/timm-*.tar.gz -C "$WORK"
TESTS="$(echo "$WORK"/timm-*/tests)"

"$PY" - "$TESTS/test_models.py" <<'EOF'
import sys
from pathlib import Path

path = Path(sys.argv[1])
src = path.read_text()
patches = {  # anchor in timm's file -> line inserted before it
    '# transformer / hybrid models don\'t support full set': "FEAT_INTER_FILTERS.append('builders')  # SMARTIES\n",
    'NUM_NON_STD = len(NON_STD_FILTERS)': "NON_STD_FILTERS.append('smarties_vit_*')  # SMARTIES\n",
}
for anchor, line in patches.items():
    if src.count(anchor) != 1:
        sys.exit(f'timm_model_tests.sh: anchor {anchor!r} not found once in {path}; update the script for this timm')
    src = src.replace(anchor, line + anchor)
path.write_text(src)
EOF
cat >> "$TESTS/conftest.py" <<'EOF'

import torchgeo_smarties.models  # noqa: E402,F401  (registers the SMARTIES timm entrypoints)
EOF

echo "== pytest $TESTS/test_models.py -k smarties (hub-download tests excluded)"
LOG="$WORK/pytest.log"
rc=0
(cd "$TESTS/.." && PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}" "$PY" -m pytest -q -p no:cacheprovider -rfE \
    tests/test_models.py -k "smarties and not load_pretrained and not features_pretrained${ONLY:+ and ($ONLY)}" "$@") \
    2>&1 | tee "$LOG" || rc=$?
echo "== result (timm $VERSION): $(grep -E '^[0-9]+ (passed|failed)|^=+ .*(passed|failed)' "$LOG" | tail -1)"
exit "$rc"
