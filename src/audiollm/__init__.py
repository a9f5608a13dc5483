"""audiollm: audio-language models for music and audio (encoders → projector → causal LM).

The Python API::

    import audiollm

    model = audiollm.load("runs/quickstart/final", device="auto")   # cpu | cuda | cuda:N | auto
    print(model.ask("clip.wav", "Which instrument family is playing?"))

`load` returns the object a model directory's type supports: an
`audiollm.inference.api.AudioLanguageModel` (ask, transcribe, compose) or an
`audiollm.inference.api.EmbeddingModel` (embed, tag, score, rerank, index) or an
`audiollm.inference.codec.CodecModel` (encode, decode, reconstruct; `load_codec` also opens
transformers EnCodec / DAC / Mimi checkpoints, `read_codes` reads a codes file). Training is
`audiollm.training.loop.train(audiollm.training.config.load_config(...))`; evaluation
`audiollm.evaluation.evaluate.evaluate(model, rows)`. Problems a user can fix raise
`audiollm.errors.AudioLLMError` subclasses.
"""

from audiollm.errors import (
    AudioError,
    AudioLLMError,
    ConfigError,
    ManifestError,
    ModelDirError,
)

__version__ = "0.1.0"
__all__ = ["load", "load_codec", "read_codes", "__version__", "AudioLLMError", "AudioError", "ConfigError", "ManifestError", "ModelDirError"]


def load(model_dir, device: str = "cpu", dtype: str | None = None):
    """Load a saved model directory for inference (see `audiollm.inference.api.load`)."""
    # Imported here, not at the top: `import audiollm` (and so `audiollm --help`) stays free of torch.
    from audiollm.inference.api import load as load_model

    return load_model(model_dir, device=device, dtype=dtype)


def load_codec(source, device: str = "cpu"):
    """A codec for encode/decode: an audiollm codec model directory, or a transformers EnCodec /
    DAC / Mimi checkpoint (directory or hub id); see `audiollm.inference.codec`."""
    from audiollm.inference.codec import open_codec

    return open_codec(source, device=device)


def read_codes(path):
    """A codes file written by ``audiollm codec encode`` (see `audiollm.inference.codec.read_codes`)."""
    from audiollm.inference.codec import read_codes as read

    return read(path)
