"""One exception type for every problem a user can fix.

The CLI turns an `AudioLLMError` into a one-line ``error: ...`` message and a non-zero exit;
anything else is a bug and keeps its traceback. Library code raises these with a message
that names the offending file, key or value and, where it helps, the allowed values.
"""


class AudioLLMError(Exception):
    """A user-facing error: bad input, bad config, missing file. Message is one line."""


class AudioError(AudioLLMError):
    """An audio file that cannot be used (missing, corrupt, silent, NaN, too long...)."""


class ManifestError(AudioLLMError):
    """A manifest line that is not JSON or lacks a required key."""


class ConfigError(AudioLLMError):
    """A config key that does not exist or a value outside the allowed set."""


class ModelDirError(AudioLLMError):
    """A model directory that lacks config, weights or tokenizer."""
