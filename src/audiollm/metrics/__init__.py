"""Metrics: thin wrappers over the field's libraries — text (jiwer, sacrebleu, rouge-score,
nltk), labels, notes (mir_eval) and retrieval."""
