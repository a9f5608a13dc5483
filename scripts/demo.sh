#!/usr/bin/env bash
# The quick-start, end to end: corpus → train → evaluate on the held-out split → two questions.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
CORPUS=${CORPUS:-data/corpus_quickstart}
RUN=${RUN:-runs/quickstart}
AL="$VENV/bin/audiollm"
start=$(date +%s)

if [ ! -f "$CORPUS/stats.json" ]; then
  echo "== 1/4 building the embedded corpus in $CORPUS"
  "$AL" data synth "$CORPUS" --music-clips "${MUSIC_CLIPS:-3200}" --speech-clips "${SPEECH_CLIPS:-6400}" --seed 0
else
  echo "== 1/4 corpus already built: $CORPUS"
fi

echo "== 2/4 training configs/quickstart.yaml → $RUN"
"$AL" train configs/quickstart.yaml output_dir="$RUN" data.train="$CORPUS/train.jsonl" \
  data.valid="$CORPUS/valid.jsonl" ${TRAIN_OVERRIDES:-}

echo "== 3/4 evaluating on the held-out test split"
"$AL" evaluate "$RUN/final" --data "$CORPUS/test.jsonl" --json "$RUN/test_metrics.json"

echo "== 4/4 asking about two test clips"
music=$("$VENV/bin/python" -c "import json,sys; print(next(json.loads(l)['audio'] for l in open(sys.argv[1]) if json.loads(l)['task']=='tagging'))" "$CORPUS/test.jsonl")
speech=$("$VENV/bin/python" -c "import json,sys; print(next(json.loads(l)['audio'] for l in open(sys.argv[1]) if json.loads(l)['task']=='asr'))" "$CORPUS/test.jsonl")
for q in "Which instrument family is playing?" "Describe this audio."; do
  echo "Q ($CORPUS/$music): $q"; echo "A: $("$AL" ask "$RUN/final" "$CORPUS/$music" --question "$q")"
done
q="Transcribe the speech."  # a transcript: decoded jointly with the model's CTC head
echo "Q ($CORPUS/$speech): $q"; echo "A: $("$AL" ask "$RUN/final" "$CORPUS/$speech" --question "$q" --ctc-weight 0.5)"
echo "== done in $(( $(date +%s) - start )) s"
