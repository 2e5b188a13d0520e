# shellcheck shell=bash
# Shared by scripts/demo.sh and scripts/ci.sh (sourced, not run): find a Python >= 3.12
# and create the virtual environment "$VENV" (default .venv) if it is missing or broken.
#
#   PYTHON=/path/to/python3.12   use this interpreter
#   VENV=.venv                   where the environment lives
#   SMARTIES_TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
#                                install torch/torchvision from this index first (e.g. the small CPU build)

VENV="${VENV:-.venv}"

_py_ok() {  # is "$1" a working Python >= 3.12?
    [ -n "$1" ] && "$1" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 12) else 1)' >/dev/null 2>&1
}

find_python() {
    if [ -n "${PYTHON:-}" ]; then
        _py_ok "$PYTHON" || { echo "PYTHON=$PYTHON is not a working Python >= 3.12" >&2; return 1; }
        echo "$PYTHON"
        return 0
    fi
    # pyenv installs are used directly, so a pyenv global of 3.11 does not get in the way.
    local root cand
    root="$(pyenv root 2>/dev/null || echo "${PYENV_ROOT:-$HOME/.pyenv}")"
    for cand in $(ls -d "$root"/versions/3.12.*/bin/python3.12 2>/dev/null | sort -V -r) \
                python3.12 \
                $(ls -d "$root"/versions/3.1[3-9].*/bin/python3 2>/dev/null | sort -V -r) \
                python3.13 python3 python; do
        if _py_ok "$cand"; then
            command -v "$cand"
            return 0
        fi
    done
    echo 'no Python >= 3.12 found; install one (e.g. "pyenv install 3.12") or set PYTHON=/path/to/python3.12' >&2
    return 1
}

make_venv() {
    if _py_ok "$VENV/bin/python"; then
        echo "== using existing environment $VENV ($("$VENV/bin/python" --version))"
    else
        local py
        py="$(find_python)"
        echo "== creating $VENV with $py ($("$py" --version))"
        "$py" -m venv --clear "$VENV"
        "$VENV/bin/python" -m pip install --quiet --upgrade pip
    fi
    if [ -n "${SMARTIES_TORCH_INDEX_URL:-}" ]; then
        "$VENV/bin/python" -m pip install --quiet torch torchvision --index-url "$SMARTIES_TORCH_INDEX_URL"
    fi
}
