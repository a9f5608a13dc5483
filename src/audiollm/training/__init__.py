"""Training: the one accelerate loop, model kinds, tokenizer building, checkpoints, validation
and the dry run."""
