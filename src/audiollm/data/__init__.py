"""Data: manifests (JSONL ⇄ rows), batching, the embedded synthetic corpus (`synth`) and
readers that turn real dataset layouts into manifest rows (`formats`).

Submodules are imported on use so that ``import audiollm.data`` stays cheap.
"""
