"""Decoding: the one autoregressive loop every model and task generates with, its options,
next-token sampling, and the logits processors that shape it (joint CTC scoring, the MIDI
event grammar, classifier-free guidance)."""
