#!/usr/bin/env bash
# Every test in one command (the README's): the Rust workspace's tests, then the Python package,
# built without the release profile and installed into a virtualenv, under pytest.
#
# The virtualenv (target/py-test-venv, or $MELPIPE_TEST_VENV) is made on the first run and gets
# python/requirements-test.txt from PyPI (NVRTC included, to compile the GPU kernels); its bin/ goes first on PATH, so the Rust tests' `python3`
# is the one with numpy and soundfile. Extra arguments go to pytest (e.g. `-k extract`).
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${MELPIPE_TEST_VENV:-target/py-test-venv}
if [ ! -x "$VENV/bin/python" ]; then
    python3 -m venv "$VENV" || {
        echo "scripts/test.sh: could not make a virtualenv; on Debian or Ubuntu: apt install python3-venv" >&2
        exit 1
    }
fi
VENV=$(cd "$VENV" && pwd)
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r python/requirements-test.txt
export PATH="$VENV/bin:$PATH"
export VIRTUAL_ENV="$VENV"

cargo test --workspace

# The GPU kernels compile in every variant: NVRTC from PyPI needs no GPU (the GPU machine's own
# check, scripts/gpu_check.sh, runs them).
NVRTC_LIB=$("$VENV/bin/python" -c 'import nvidia, os; print(next(p for d in nvidia.__path__ for p in [os.path.join(d, "cu13", "lib")] if os.path.isdir(p)))')
LD_LIBRARY_PATH="$NVRTC_LIB${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" MELPIPE_REQUIRE_NVRTC=1 \
    cargo test -p melpipe-cuda --test nvrtc_compile

# The dev profile: dependencies are optimised (Cargo.toml), and most of them are built already.
rm -rf target/py-wheels
maturin build --quiet --profile dev --out target/py-wheels
python -m pip install --quiet --disable-pip-version-check --force-reinstall --no-deps target/py-wheels/melpipe-*.whl
python -m pytest -q python/tests "$@"
