"""Metrics: thin wrappers over the field's libraries — text (jiwer, sacrebleu, rouge-score,
nltk), labels, notes (mir_eval), retrieval, and the judges of generated audio: audio
(torchmetrics SI-SDR, pystoi, pesq, speechmos DNSMOS, log-mel and Fréchet distances),
asr_judge (Whisper transcripts → WER) and reference_codecs (Opus, mel + Griffin-Lim)."""
