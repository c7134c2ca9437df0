#!/usr/bin/env bash
# The CUDA tests and the GPU speed figures in one run, on a machine with Python and a CUDA build of
# torch (and the usual scientific packages: NumPy, SciPy, OpenCV, scikit-image, pytest, hypothesis):
#
#   scripts/gpu_check.sh OUT_DIR [PARTS_DIR]
#
# PARTS_DIR: the parts made by 'python scripts/offline_bundle.py pack' (PyAV, dlib, dlib's landmark
# model, the golden vectors), for a machine that lacks them and cannot download them; they are
# unpacked into .offline first. Without it, what is installed is used.
# It runs 'videoinv bench speed' on the GPU for random:1024 (the naive loop against the pipelined
# run, the bf16 PSNR, the ceilings), then the tests marked gpu, then random:256's speed, all
# within TOTAL_LIMIT seconds (each step also within its own limit), and writes to OUT_DIR: gpu.txt
# (the card and versions), speed-random_1024.json/.log and speed-random_256.json/.log (the
# reports) and gpu-tests.log. The last lines printed are the reports' tables and the outcomes.
#
# Settings (environment): PYTHON (python3), DEVICE (cuda), MODELS ("random:1024 random:256", the
# first before the tests), BENCH_ARGS (extra 'bench speed' arguments, e.g. "--frames 240"),
# TOTAL_LIMIT (540 s, counted after the unpacking), BENCH_LIMIT (260 s a model), TESTS_LIMIT
# (170 s), SKIP_TESTS=1.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT_DIR=${1:?usage: scripts/gpu_check.sh OUT_DIR [PARTS_DIR]}
PARTS_DIR=${2:-}
PYTHON=${PYTHON:-python3}
DEVICE=${DEVICE:-cuda}
MODELS=${MODELS:-random:1024 random:256}
TOTAL_LIMIT=${TOTAL_LIMIT:-540}
BENCH_LIMIT=${BENCH_LIMIT:-260}
TESTS_LIMIT=${TESTS_LIMIT:-170}
mkdir -p "$OUT_DIR"
export PYTHONUNBUFFERED=1

if [ -n "$PARTS_DIR" ]; then
    "$PYTHON" scripts/offline_bundle.py unpack "$PARTS_DIR" --to .offline || exit 1
    export PYTHONPATH=$PWD/.offline/site:$PWD/.offline/models:$PWD:$PWD/plugins${PYTHONPATH:+:$PYTHONPATH}
    # the golden tests read ../shared/golden, beside the checkout
    if [ ! -e ../shared/golden ] && [ -d .offline/golden ]; then
        mkdir -p ../shared && ln -s "$PWD/.offline/golden" ../shared/golden
    fi
else
    export PYTHONPATH=$PWD:$PWD/plugins${PYTHONPATH:+:$PYTHONPATH}
fi

"$PYTHON" -c 'import av, cv2, dlib, torch, videoinv' || { echo "gpu_check: a module is missing (above); give the parts' folder as the second argument" >&2; exit 1; }
if [ "$DEVICE" = cuda ]; then
    "$PYTHON" -c 'import sys, torch; torch.cuda.is_available() or sys.exit(f"gpu_check: torch {torch.__version__} sees no CUDA device")' || exit 1
fi
{
    "$PYTHON" -c 'import torch, av, dlib; print("torch", torch.__version__, "cuda", torch.version.cuda, "| PyAV", av.__version__, "| dlib", dlib.__version__)'
    command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv
    nproc
} > "$OUT_DIR/gpu.txt" 2>&1
cat "$OUT_DIR/gpu.txt"

DEADLINE=$(( $(date +%s) + TOTAL_LIMIT ))
left() { local n=$(( DEADLINE - $(date +%s) )); [ "$n" -lt "$1" ] && echo "$n" || echo "$1"; }

bench() {  # one model: its own report, so that a time limit on one keeps the other's
    local model=$1 cap=$2 name limit
    name=speed-${model//[^A-Za-z0-9]/_}
    limit=$(left "$cap")
    [ "$limit" -gt 10 ] || { echo "gpu_check: no time left for bench speed of $model"; return 124; }
    echo "gpu_check: bench speed --models $model (at most $limit s)"
    # shellcheck disable=SC2086  # BENCH_ARGS is a list of arguments
    timeout "$limit" "$PYTHON" -m videoinv bench speed --device "$DEVICE" --models "$model" ${BENCH_ARGS:-} \
        -o "$OUT_DIR/$name.json" > "$OUT_DIR/$name.log" 2>&1
    local rc=$?
    tail -n 14 "$OUT_DIR/$name.log"
    return $rc
}

# the target model first, then the tests, then the other models with whatever time is left
read -r -a models <<< "$MODELS"
outcome=() failed=0
run_bench() { bench "$1" "$BENCH_LIMIT"; local rc=$?; outcome+=("bench $1: exit $rc"); [ $rc = 0 ] || failed=1; }
run_bench "${models[0]}"
if [ "${SKIP_TESTS:-0}" != 1 ]; then
    limit=$(left "$TESTS_LIMIT")
    if [ "$limit" -gt 10 ]; then  # (timeout 0 would mean no limit)
        echo "gpu_check: the tests marked gpu (at most $limit s)"
        timeout "$limit" "$PYTHON" -m pytest -q -m gpu -p no:cacheprovider > "$OUT_DIR/gpu-tests.log" 2>&1
        rc=$?
        tail -n 25 "$OUT_DIR/gpu-tests.log"
    else
        echo "gpu_check: no time left for the tests"; rc=124
    fi
    outcome+=("tests: exit $rc"); [ $rc = 0 ] || failed=1
fi
for model in "${models[@]:1}"; do run_bench "$model"; done
printf -v summary '%s; ' "${outcome[@]}"
echo "gpu_check: ${summary}124 means out of time; logs in $OUT_DIR"
exit $failed
