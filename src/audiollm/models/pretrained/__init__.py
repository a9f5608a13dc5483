"""Pretrained components through transformers (audio encoders, causal LMs), checkpoint
converters, and the tiny random checkpoints the tests build."""
