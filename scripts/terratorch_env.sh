#!/usr/bin/env bash
# The TerraTorch integration's own environment and tests (a step of scripts/ci.sh; runs on its own too).
#
# TerraTorch 1.2.13, the current release, requires torchgeo>=0.9,<0.10 and fails to import next to torchgeo 0.10
# ("cannot import name 'utils' from 'torchgeo.trainers'"); this package requires torchgeo>=0.10. So the integration
# is tested in a second virtual environment, $TT_VENV (default .venv-terratorch, ignored by git), that holds exactly
# the pinned set of scripts/terratorch_requirements.txt (terratorch 1.2.13, torchgeo 0.9.0 and what they add) and
# sees the main environment $VENV (default .venv: torch, timm, lightning, smp, ...) BEHIND its own site-packages,
# through a .pth file: its torchgeo 0.9 shadows the main torchgeo 0.10, and nothing in the main environment changes.
# The package itself is imported from this clone (PYTHONPATH), so the tests run the working tree's code.
#
#   bash scripts/terratorch_env.sh        # build $TT_VENV if missing or stale, run tests/integrations there
#   TT_VENV=/tmp/tt VENV=.venv PYTHON=/path/to/python3.12 bash scripts/terratorch_env.sh
#
# The main environment is created (scripts/_env.sh, the same Python discovery as scripts/ci.sh) and the package
# installed into it if needed. $TT_VENV is reused when it has the same Python as the main environment and every
# pinned version; otherwise it is rebuilt from scratch.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=scripts/_env.sh
source scripts/_env.sh

TT_VENV="${TT_VENV:-.venv-terratorch}"
REQS=scripts/terratorch_requirements.txt

die() {
    echo "terratorch_env: $*" >&2
    exit 1
}

# --- the main environment (the layer below): reuse it, or create it as scripts/ci.sh does
make_venv
if ! "$VENV/bin/python" -c 'import torchgeo_smarties, pytest, timm, torchgeo' >/dev/null 2>&1; then
    echo "== pip install -e .[tests] into $VENV (the main environment)"
    "$VENV/bin/python" -m pip install --quiet -e '.[tests]' || die "could not install the package into $VENV"
fi
main_site=$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
main_ver=$("$VENV/bin/python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
# The second environment loads the main one's compiled wheels (torch, ...), so it needs the same Python: the
# interpreter the main environment was made from (found by scripts/_env.sh's find_python).
base_py=$("$VENV/bin/python" -c 'import os, sys; print(os.path.join(sys.base_prefix, "bin", "python%d.%d" % sys.version_info[:2]))')
_py_ok "$base_py" || die "the main environment $VENV was made from $base_py, which is not a working Python >= 3.12; delete $VENV and rerun"

# Exit 0 when $TT_VENV has Python $main_ver and exactly the pinned versions of $REQS in its own site-packages.
tt_current() {
    _py_ok "$TT_VENV/bin/python" || return 1
    "$TT_VENV/bin/python" - "$REQS" "$main_ver" <<'PY' >/dev/null 2>&1
import importlib.metadata as md
import sys
import sysconfig

from_file, want_py = sys.argv[1], sys.argv[2]
if '%d.%d' % sys.version_info[:2] != want_py:
    sys.exit(1)
own = {}
for dist in md.distributions(path=[sysconfig.get_paths()['purelib']]):
    own[dist.metadata['Name'].lower().replace('_', '-')] = dist.version
for line in open(from_file):
    line = line.split('#', 1)[0].strip()
    if line:
        name, version = line.split('==')
        if own.get(name.lower().replace('_', '-')) != version:
            sys.exit(1)
PY
}

start=$SECONDS
if tt_current; then
    echo "== using existing environment $TT_VENV (pinned set of $REQS present)"
else
    echo "== creating $TT_VENV with $base_py ($("$base_py" --version)) and the pinned set of $REQS"
    rm -rf "$TT_VENV"
    "$base_py" -m venv "$TT_VENV" || die "could not create the virtual environment $TT_VENV with $base_py"
    # pip runs before the main environment is layered in, so it sees (and can change) only $TT_VENV.
    if ! "$TT_VENV/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps -r "$REQS"; then
        rm -rf "$TT_VENV"
        die "pip could not install the pinned set of $REQS into $TT_VENV (is PyPI reachable?)"
    fi
    echo "== $TT_VENV built in $((SECONDS - start)) s"
fi
tt_site=$("$TT_VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
# Rewritten on every run, so a moved or recreated main environment is picked up. "zz_" sorts it after the other .pth
# files; a plain path line appends the main site-packages after $TT_VENV's own.
echo "$(cd "$main_site" && pwd)" >"$tt_site/zz_smarties_main_venv.pth"

export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
# Versions from the metadata and where torchgeo comes from, without importing anything (TerraTorch's import alone
# takes tens of seconds; the tests import it once).
"$TT_VENV/bin/python" - "$tt_site" <<'PY' || die "$TT_VENV does not shadow the main torchgeo; delete $TT_VENV and rerun"
import importlib.util
import sys
from importlib.metadata import version

names = ('terratorch', 'torchgeo', 'timm', 'torch', 'lightning', 'segmentation-models-pytorch', 'torchgeo-smarties')
print('== versions:', ' | '.join(f'{n} {version(n)}' for n in names), '| python', sys.version.split()[0])
origin = importlib.util.find_spec('torchgeo').origin or ''
if not (version('torchgeo').startswith('0.9.') and origin.startswith(sys.argv[1])):
    sys.exit(f'torchgeo {version("torchgeo")} is imported from {origin}, not the pinned 0.9 of {sys.argv[1]}')
PY
# SMARTIES_REQUIRE_TERRATORCH turns the tests' "terratorch not importable" skip into a failure: here it must run.
SMARTIES_REQUIRE_TERRATORCH=1 "$TT_VENV/bin/python" -m pytest -q -p no:cacheprovider -rs tests/integrations ||
    die "the TerraTorch integration tests failed in $TT_VENV (output above)"
echo "== terratorch step: $((SECONDS - start)) s"
