#!/usr/bin/env bash
# basic-pitch (Spotify's polyphonic transcriber) for benchmarks/transcription.py, run through
# its bundled ONNX model. Its wheel declares TensorFlow (and numpy 1.x) as dependencies, so it
# is installed with --no-deps, followed by what its ONNX inference path imports.
set -euo pipefail
cd "$(dirname "$0")/.."
PIP="${VENV:-.venv}/bin/python -m pip"
export PIP_CONSTRAINT="$PWD/constraints.txt" PIP_DISABLE_PIP_VERSION_CHECK=1
$PIP install -q --no-deps "basic-pitch==0.4.0"
$PIP install -q "librosa>=0.10" "resampy>=0.2.2,<0.4.3" "onnxruntime>=1.17" "mir_eval>=0.7" "pretty_midi>=0.2.10" "scipy"
echo "[setup] basic-pitch ready (ONNX)"
