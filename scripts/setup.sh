#!/usr/bin/env bash
# One-shot environment setup: Debian packages, a virtualenv in .venv, torch pinned to the
# CPU wheel, then the project with its extras under a constraints file that keeps torch put.
# Safe to re-run: each step is skipped when already done.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${VENV:-.venv}
PY=${PYTHON:-python3}
# ffmpeg: the Opus reference codec (libopus); gcc + libc6-dev: pesq ships only as source.
APT_PACKAGES="fluidsynth fluid-soundfont-gm espeak-ng wordnet-base wordnet-sense-index libsndfile1 ffmpeg gcc libc6-dev"
# Building pesq also needs the interpreter's C headers; Debian's own python3 keeps them in python3-dev.
if ! "$PY" -c 'import os, sysconfig; raise SystemExit(not os.path.isfile(os.path.join(sysconfig.get_paths()["include"], "Python.h")))' 2>/dev/null; then
  APT_PACKAGES="$APT_PACKAGES python3-dev"
fi

need_apt=0
for p in $APT_PACKAGES; do dpkg -s "$p" >/dev/null 2>&1 || need_apt=1; done
if [ "$need_apt" = 1 ]; then
  if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
  echo "[setup] installing Debian packages: $APT_PACKAGES"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $APT_PACKAGES >/dev/null
fi

if [ ! -x "$VENV/bin/python" ]; then
  echo "[setup] creating $VENV"
  "$PY" -m venv "$VENV"
fi
PIP="$VENV/bin/python -m pip"
export PIP_CONSTRAINT="$PWD/constraints.txt"
export PIP_DISABLE_PIP_VERSION_CHECK=1
stamp="$VENV/.installed-$(cat pyproject.toml constraints.txt | sha1sum | cut -c1-12)"
if [ ! -f "$stamp" ]; then
  echo "[setup] installing torch (CPU wheel) and the project"
  $PIP install -q "torch==${TORCH_VERSION:-2.13.0}"
  $PIP install -q -e ".[dev,mulan,plot,judges,tts]"
  touch "$stamp"
fi

# NLTK's METEOR needs WordNet; Debian ships it, NLTK wants its own layout (copied, not linked).
"$VENV/bin/python" -m audiollm.metrics.wordnet
echo "[setup] ready: $VENV"
