#!/usr/bin/env bash
# The Python package on the GPU machine, from the repository root (no cargo or network there: pass
# the wheel built elsewhere, `maturin build --release`). Installs the wheel into a fresh target
# folder (numpy and torch are the machine's), then runs scripts/python_gpu_check.py:
#   1. melpipe.run(device="cuda") against a CPU run: 1 f16 ulp on >= 99.9 % of values, same
#      statuses and mapping; both verify;
#   2. Extractor(device="cuda") against the CPU extract, int16 and float32 batches, and from 8
#      threads at once;
#   3. torch_dataset() in a DataLoader with 4 workers against the arrays; Ctrl-C at five moments
#      of a GPU run (melpipe.run and the wheel's command), each resumed to the bytes of a whole
#      run; the README's Python snippets;
#   4. with PYWHEELS (a folder of wheels of pytest, soundfile and tqdm: the machine has no
#      network), the pytest suite too, its torch tests included.
# usage: WHEEL=.carry/wheels/melpipe-….whl [PYWHEELS=.carry/pywheels] WORK=/tmp/melpipe-py \
#        scripts/python_gpu_check.sh [files]
set -euo pipefail
export LD_LIBRARY_PATH=/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}
WHEEL=${WHEEL:?WHEEL=path of the wheel}
W=${WORK:-/tmp/melpipe-py}
FILES=${1:-3000}
rm -rf "$W/site" && mkdir -p "$W"
python3 -m pip install --quiet --no-deps --no-index --target "$W/site" "$WHEEL"
export PYTHONPATH="$W/site"
python3 -c "import melpipe, sys; print('melpipe', melpipe.__version__, 'from', melpipe.__file__, 'on Python', sys.version.split()[0])"
[ -d "$W/data" ] || python3 -m melpipe generate "$W/data" --files "$FILES" --corrupt 7
python3 scripts/python_gpu_check.py "$W"
if [ -n "${PYWHEELS:-}" ]; then
    python3 -m pip install --quiet --no-deps --no-index --target "$W/site" "$PYWHEELS"/*.whl
    echo "== pytest python/tests"
    PATH="$W/site/bin:$PATH" python3 -m pytest -q -rs -p no:cacheprovider python/tests
fi
