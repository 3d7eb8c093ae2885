#!/usr/bin/env bash
# Create .venv (Python >= 3.12) and install fe2 with its dependencies from pyproject.toml.
# Idempotent: when .venv already holds an install of the current pyproject.toml, nothing is
# reinstalled. Usage: bash scripts/setup.sh   (FE2_PYTHON=/path/to/python3.12 to choose)
set -euo pipefail
cd "$(dirname "$0")/.."
venv=.venv
stamp="$venv/.fe2-installed"

usable() {  # usable PYTHON -> true if it runs and is >= 3.12
    "$1" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 12) else 1)' >/dev/null 2>&1
}

find_python() {
    local candidate version root
    # 3.12 first: the version this route is tested with; newer ones after it.
    for candidate in "${FE2_PYTHON:-}" python3.12 python3.13 python3; do
        [ -n "$candidate" ] && command -v "$candidate" >/dev/null 2>&1 && usable "$candidate" \
            && { command -v "$candidate"; return; }
    done
    # pyenv: its shims only work with PYENV_VERSION set, so use the interpreters directly.
    local roots=("${PYENV_ROOT:-}" "$HOME/.pyenv")
    command -v pyenv >/dev/null 2>&1 && roots=("$(pyenv root 2>/dev/null)" "${roots[@]}")
    for root in "${roots[@]}"; do
        [ -n "$root" ] && [ -d "$root/versions" ] || continue
        for version in $(ls "$root/versions" | grep -E '^3\.12\.[0-9]+$' | sort -rV) \
                       $(ls "$root/versions" | grep -E '^3\.1[3-9]\.[0-9]+$' | sort -V); do
            for candidate in "$root/versions/$version"/bin/python3.1[2-9]; do
                usable "$candidate" && { echo "$candidate"; return; }
            done
        done
    done
    echo "error: no Python >= 3.12 found (tried FE2_PYTHON, python3.13, python3.12, python3," \
         "pyenv versions); install one or set FE2_PYTHON=/path/to/python3.12" >&2
    return 1
}

want=$(cat pyproject.toml | sha256sum | cut -d' ' -f1)
if [ -x "$venv/bin/python" ] && usable "$venv/bin/python" && [ -f "$stamp" ] \
        && [ "$(cat "$stamp")" = "$want" ]; then
    echo "fe2 set-up: $venv is up to date"
    exit 0
fi

if ! { [ -x "$venv/bin/python" ] && usable "$venv/bin/python"; }; then
    python=$(find_python)
    echo "fe2 set-up: creating $venv with $python"
    rm -rf "$venv"
    "$python" -m venv "$venv"
fi
echo "fe2 set-up: installing fe2 and its dependencies into $venv"
"$venv/bin/python" -m pip install --quiet --upgrade pip
"$venv/bin/python" -m pip install --quiet -e ".[test]"
"$venv/bin/python" -c "import fe2, dolfinx, gmsh; print('fe2 set-up: fe2', fe2.__version__, '| DOLFINx', dolfinx.__version__, '| gmsh', gmsh.__version__)"
echo "$want" > "$stamp"
