"""audiollm: audio-language models for music and audio (encoders → projector → causal LM)."""

__version__ = "0.1.0"
