"""Inference pipelines over a loaded model: ask, transcribe, compose (text → MIDI → audio),
embed, tag, score and search. The CLI, the benchmarks and the Python API call these."""

DEFAULT_QUESTION = "Describe this audio."  # what `ask` asks when no question is given
