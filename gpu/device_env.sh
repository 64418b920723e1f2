# Sourced by the GPU scripts (run_device_checks.sh, profile_kernels.sh): the repository root
# as working directory, OUT, PY, and the optional offline wheels of $1 (WHEEL_DIR) installed
# into a private site folder on PYTHONPATH, then the repository itself.
#   OUT     where results go (default ./gpu-results)
#   PYTHON  interpreter (default: python3, the device image's one with cupy and torch)
cd "$(dirname "${BASH_SOURCE[0]}")/.."
OUT="${OUT:-./gpu-results}"
PY="${PYTHON:-python3}"
mkdir -p "$OUT"
if [ -n "${1:-}" ]; then
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/numlib-site "$1"/*.whl || exit 1
    export PYTHONPATH="/tmp/numlib-site${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONPATH="$PWD:${PYTHONPATH:-}"
export PYTHONUNBUFFERED=1
