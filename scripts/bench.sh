#!/usr/bin/env bash
# Run every benchmark; each prints one JSON object (ratios measured side by side in one run).
# Results are also saved under runs/benchmarks/. Pass --quick for a seconds-long smoke run.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${VENV:-.venv}/bin/python
mkdir -p runs/benchmarks
BENCHES="decode_kv_cache vs_hf_llama mfu decode_midi codec_lm"
[ -d ../shared/data/fsdd ] && BENCHES="$BENCHES feature_cache"  # needs the spoken-digit recordings
for b in $BENCHES; do
  echo "== benchmarks/$b.py" >&2
  "$PY" "benchmarks/$b.py" "$@" | tee "runs/benchmarks/$b.json"
done
