"""The embedded corpus: rendered music (music21 scores × a General MIDI soundfont) and
spoken sentences (espeak-ng), with exact labels, written as audio + JSONL manifests.

``music.py`` renders clips, ``speech.py`` speaks sentences, ``templates.py`` holds every
piece of text (sentences, captions, questions), ``corpus.py`` plans, splits and writes.
``tts.py`` builds the separate TTS corpus (``audiollm data synth-tts``): WordNet sentences
(``sentences.py``) read by Piper's natural voice (``piper_voice.py``) and espeak-ng voices.
Heavy dependencies (music21, FluidSynth, torch) load only when a build runs.
"""

from audiollm.data.synth.corpus import build_corpus, split_of

__all__ = ["build_corpus", "split_of"]
