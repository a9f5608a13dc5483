"""Pretrained neural audio codecs through transformers — EnCodec, DAC, Mimi — behind `Codec`.

MusicGen tokenises with EnCodec (facebook/encodec_32khz: 4 codebooks of 2048 at 50 Hz), the
music_llm recipes with DAC (descript/dac_44khz: 9 of 1024 at 86.13 Hz), Moshi with Mimi
(kyutai/mimi: 32 of 2048 at 12.5 Hz). Each loads from a local checkpoint directory or a hub id
(`load_codec` picks the class by the checkpoint's transformers model type) and keeps the
checkpoint's own code path: `encode` calls the transformers model's ``encode``, `decode` its
``decode``, so codes are exactly the ones the reference implementation makes::

    wav (B, T) at sample_rate + lengths (B,) → zero past each clip's end (the feature
        extractors' padding; DAC pads to a whole frame) → model.encode → codes (B, K, F) int64
        + frame_lengths (B,) = ceil(length / hop)
    codes (B, K, F) → model.decode → (B, C, T') → mono (B, T') + lengths = frames · hop ≤ T'

What each model type's geometry is, read from transformers 5.25's modelling code:
* EnCodec: hop = prod(upsampling_ratios), frame_rate = sampling_rate / hop (the config's
  ``frame_rate`` rounds it up). The codebooks used follow the target bandwidth (kbps):
  floor(bandwidth · 1000 / (frame_rate · log2(codebook_size))) of them; ``num_codebooks`` is
  the most any of ``target_bandwidths`` gives, ``encode(num_codebooks=k)`` runs the smallest
  bandwidth giving ≥ k and keeps the first k (residual levels do not depend on later ones).
  Checkpoints that encode in overlapping chunks with a per-chunk loudness scale
  (facebook/encodec_48khz: chunk_length_s, normalize) are refused: codes alone cannot carry
  the scales their decoder needs.
* DAC: hop = hop_length = prod(downsampling_ratios), frame_rate = sampling_rate / hop (44.1
  kHz: 86.1328125; the config's ``frame_rate`` rounds it up); ``n_quantizers`` = k.
* Mimi: hop = prod(upsampling_ratios) · latent_stride (a stride-2 downsampling after the
  SEANet), frame_rate = config.frame_rate = sampling_rate / hop; ``num_quantizers`` = k, and
  at least ``num_semantic_quantizers`` (the first codebook is the semantic one).

Batches: the shorter clip's codes equal its codes encoded alone except near its end, where the
batch's zero padding replaces the clip's own edge padding: Mimi's convolutions and transformer
are causal (equal up to the last partial frame), EnCodec's encoder LSTM runs forwards (its
non-causal convolutions reach a few frames back), DAC's convolutions are non-causal (its last
frame or so). Mono input is duplicated to a stereo model's channels; its output is averaged.
The model stays frozen in eval mode, in float32.
"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from audiollm.errors import ConfigError, ModelDirError
from audiollm.models.codecs import check_num_codebooks, register_codec
from audiollm.models.pretrained.hf_common import (
    PretrainedPart,
    import_transformers,
    load_pretrained,
    local_or_hub,
)

WHERE = "codec"  # how load errors name the checkpoint: "codec.model=<source>: ..."


class HFCodec(PretrainedPart, nn.Module):
    """A frozen transformers codec with the `Codec` interface; one subclass per model type."""

    kind = ""  # transformers model type ("encodec", "dac", "mimi"), set by each subclass
    model_class = ""  # the transformers class that loads it

    def __init__(self, source: str, device: torch.device | str = "cpu"):
        super().__init__()
        T = import_transformers(f"codec {source}")
        self.source = local_or_hub(str(source))
        self._check_model_type(self.source)
        model = load_pretrained(getattr(T, self.model_class), str(source), where=WHERE, dtype=torch.float32)
        self.model = model.float().eval().requires_grad_(False)
        config = model.config
        self.sample_rate = int(config.sampling_rate)
        self.audio_channels = int(getattr(config, "audio_channels", 1))  # the model's input channels
        self.codebook_size = int(config.codebook_size)
        self.hop_length = self.frame_hop(config)  # samples per frame
        self.frame_rate = self.sample_rate / self.hop_length  # frames per second, exact
        self.num_codebooks = self.max_codebooks(config)
        self.min_codebooks = 1  # Mimi: its semantic codebooks always come
        self._fingerprint: str | None = None
        self.to(device).eval()

    def _check_model_type(self, source: str) -> None:
        config = Path(source) / "config.json"
        if config.is_file():
            try:
                found = json.loads(config.read_text()).get("model_type")
            except (OSError, json.JSONDecodeError, AttributeError) as e:
                raise ConfigError(f"{WHERE}.model={source}: unreadable config.json ({e})") from None
            if found != self.kind:
                raise ConfigError(f"{WHERE}.model={source} has model type {found!r}, not {self.kind!r}")

    # -- per model type ---------------------------------------------------------------------------

    def frame_hop(self, config: Any) -> int:
        raise TypeError(f"{type(self).__name__} must implement frame_hop()")

    def max_codebooks(self, config: Any) -> int:
        raise TypeError(f"{type(self).__name__} must implement max_codebooks()")

    def _encode(self, wav: torch.Tensor, mask: torch.Tensor, k: int) -> torch.Tensor:
        """(B, C, T) zero-padded + mask (B, C, T) → the model's codes (B, ≥k, F), first k used."""
        raise TypeError(f"{type(self).__name__} must implement _encode()")

    def _decode(self, codes: torch.Tensor) -> torch.Tensor:
        """(B, K, F) int64 → the model's waveform (B, C, T')."""
        raise TypeError(f"{type(self).__name__} must implement _decode()")

    # -- the Codec interface ----------------------------------------------------------------------

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def pretrained_source(self) -> str:
        """The checkpoint (absolute directory or hub id), as model cards name it."""
        return self.source

    def train(self, mode: bool = True) -> HFCodec:
        return super().train(False)  # frozen: DAC would drop quantizers at random in train mode

    @torch.no_grad()
    def encode(self, wav: torch.Tensor, lengths: torch.Tensor | None = None, num_codebooks: int | None = None
               ) -> tuple[torch.Tensor, torch.Tensor]:
        """Codes (B, K, F) int64 of ``wav`` (B, T) at ``sample_rate`` (or (B, C, T)), and each
        clip's frame count (B,): the frames that cover its ``lengths`` samples (all T if None)."""
        k = check_num_codebooks(self, num_codebooks)
        if k < self.min_codebooks:
            raise ModelDirError(f"num_codebooks={k}: {self.source} always emits its first {self.min_codebooks}")
        wav, lengths = self._check_audio(wav, lengths)
        mask = torch.arange(wav.shape[-1], device=wav.device) < lengths[:, None]  # (B, T)
        mask = mask[:, None, :].expand_as(wav)  # (B, C, T)
        codes = self._encode(wav * mask, mask, k)[:, :k].long()  # (B, k, F)
        frames = (-(-lengths // self.hop_length)).clamp(max=codes.shape[-1])  # ceil, in integers
        return codes, frames

    @torch.no_grad()
    def decode(self, codes: torch.Tensor, frame_lengths: torch.Tensor | None = None
               ) -> tuple[torch.Tensor, torch.Tensor]:
        """Waveforms (B, T') float32 at ``sample_rate`` of ``codes`` (B, K, F), K ≤ num_codebooks,
        and their lengths (B,): ``frame_lengths`` (all F if None) · hop, at most T'. Samples past
        a clip's length are zero."""
        codes, frame_lengths = self._check_codes(codes, frame_lengths)
        wav = self._decode(codes).float()  # (B, C, T')
        wav = wav.mean(dim=1) if wav.shape[1] > 1 else wav[:, 0]  # (B, T')
        lengths = (frame_lengths * self.hop_length).clamp(max=wav.shape[-1])
        wav = wav * (torch.arange(wav.shape[-1], device=wav.device) < lengths[:, None])
        return wav, lengths

    def identity(self) -> dict[str, Any]:
        return {"kind": self.kind, "name": self.source, "sample_rate": self.sample_rate,
                "frame_rate": self.frame_rate, "num_codebooks": self.num_codebooks,
                "codebook_size": self.codebook_size, "fingerprint": self.fingerprint()}

    def fingerprint(self) -> str:
        """12 hex digits of a sha1 over every tensor of the checkpoint and the geometry above.

        Each tensor is hashed on its own (shape, dtype, bytes) and the digests are sorted, so
        the fingerprint survives transformers renaming modules (Mimi's were moved in 5.x) and
        knows nothing of config keys that change with its version. One pass over the weights,
        on the first call (~0.4 s for DAC 44 kHz's 300 MB here)."""
        if self._fingerprint is None:
            digests = []
            for tensor in self.model.state_dict().values():
                t = tensor.detach().cpu().contiguous()
                t = t.float() if t.dtype == torch.bfloat16 else t
                digest = hashlib.sha1(f"{tuple(t.shape)}{t.dtype}".encode())
                digest.update(t.numpy())  # the bytes, without a copy
                digests.append(digest.hexdigest())
            geometry = [self.kind, self.sample_rate, self.hop_length, self.num_codebooks, self.codebook_size]
            self._fingerprint = hashlib.sha1(json.dumps([geometry, sorted(digests)]).encode()).hexdigest()[:12]
        return self._fingerprint

    # -- input checks (one-line errors) -----------------------------------------------------------

    def _check_audio(self, wav: Any, lengths: Any) -> tuple[torch.Tensor, torch.Tensor]:
        """``wav`` as (B, C, T) float32 on the model's device, ``lengths`` as (B,) int64."""
        if not isinstance(wav, torch.Tensor) or not wav.is_floating_point():
            raise ConfigError(f"codec input must be a float tensor (B, T) at {self.sample_rate} Hz, "
                              f"got {type(wav).__name__} {getattr(wav, 'dtype', '')}".rstrip())
        if wav.ndim == 2:
            wav = wav[:, None, :]  # (B, 1, T)
        if wav.ndim != 3 or wav.shape[0] == 0 or wav.shape[-1] == 0:
            raise ConfigError(f"codec input must be (B, T) or (B, C, T) with B, T ≥ 1, got shape {tuple(wav.shape)}")
        channels = wav.shape[1]
        if channels not in (1, self.audio_channels):
            raise ConfigError(f"codec input has {channels} channels; {self.source} takes {self.audio_channels} "
                              f"(or mono, duplicated)")
        if not torch.isfinite(wav).all():
            raise ConfigError("codec input has NaN or infinite samples")
        wav = wav.to(self.device, torch.float32).expand(-1, self.audio_channels, -1)
        B, T = wav.shape[0], wav.shape[-1]
        if lengths is None:
            return wav, torch.full((B,), T, dtype=torch.long, device=wav.device)
        lengths = torch.as_tensor(lengths)
        if lengths.shape != (B,) or lengths.is_floating_point() or lengths.dtype == torch.bool:
            raise ConfigError(f"codec lengths must be {B} integers (one per clip), got {lengths.dtype} {tuple(lengths.shape)}")
        if lengths.numel() and not (1 <= int(lengths.min()) and int(lengths.max()) <= T):
            raise ConfigError(f"codec lengths must lie in 1..{T} (the samples given), got {lengths.tolist()}")
        return wav, lengths.to(wav.device, torch.long)

    def _check_codes(self, codes: Any, frame_lengths: Any) -> tuple[torch.Tensor, torch.Tensor]:
        """``codes`` as (B, K, F) int64 on the model's device, checked against this codec."""
        if not isinstance(codes, torch.Tensor) or codes.is_floating_point() or codes.is_complex() \
                or codes.dtype == torch.bool:
            raise ConfigError(f"codes must be an integer tensor (B, K, F), got {type(codes).__name__} "
                              f"{getattr(codes, 'dtype', '')}".rstrip())
        if codes.ndim != 3 or 0 in codes.shape:
            raise ConfigError(f"codes must be (B, K, F) with B, K, F ≥ 1, got shape {tuple(codes.shape)}")
        B, K, F = codes.shape
        if not self.min_codebooks <= K <= self.num_codebooks:
            raise ModelDirError(f"codes have {K} codebooks; {self.source} decodes {self.min_codebooks} to "
                                f"{self.num_codebooks}: not codes of this codec")
        low, high = int(codes.min()), int(codes.max())
        if low < 0 or high >= self.codebook_size:
            raise ModelDirError(f"codes lie in {low}..{high}; {self.source} has codes 0..{self.codebook_size - 1}: "
                                f"not codes of this codec")
        codes = codes.to(self.device, torch.long)
        if frame_lengths is None:
            return codes, torch.full((B,), F, dtype=torch.long, device=codes.device)
        frame_lengths = torch.as_tensor(frame_lengths)
        if frame_lengths.shape != (B,) or frame_lengths.is_floating_point() or frame_lengths.dtype == torch.bool:
            raise ConfigError(f"frame_lengths must be {B} integers (one per clip), got {frame_lengths.dtype} "
                              f"{tuple(frame_lengths.shape)}")
        if not (0 <= int(frame_lengths.min()) and int(frame_lengths.max()) <= F):
            raise ConfigError(f"frame_lengths must lie in 0..{F} (the frames given), got {frame_lengths.tolist()}")
        return codes, frame_lengths.to(codes.device, torch.long)


# -- the model types -------------------------------------------------------------------------------


@register_codec("encodec")
class EncodecCodec(HFCodec):
    """transformers `EncodecModel`: facebook/encodec_24khz, facebook/encodec_32khz (MusicGen)."""

    kind = "encodec"
    model_class = "EncodecModel"

    def __init__(self, source: str, device: torch.device | str = "cpu"):
        super().__init__(source, device)
        config = self.model.config
        if config.chunk_length_s is not None or config.normalize:
            raise ConfigError(
                f"{WHERE}.model={self.source}: this EnCodec encodes in overlapping chunks, each with its own "
                f"loudness scale (chunk_length_s={config.chunk_length_s}, normalize={config.normalize}, as "
                f"facebook/encodec_48khz does); codes alone cannot carry the scales, so it is not supported"
            )

    def frame_hop(self, config: Any) -> int:
        return math.prod(config.upsampling_ratios)

    def quantizers_at(self, bandwidth: float) -> int:
        """Codebooks EnCodec uses at ``bandwidth`` kbps (its own rule, at most the ones it has)."""
        quantizer = self.model.quantizer
        return min(quantizer.get_num_quantizers_for_bandwidth(bandwidth), len(quantizer.layers))

    def max_codebooks(self, config: Any) -> int:
        return max(self.quantizers_at(bw) for bw in config.target_bandwidths)

    def bandwidth_for(self, k: int) -> float:
        """The smallest target bandwidth that yields at least ``k`` codebooks."""
        return min((self.quantizers_at(bw), bw) for bw in self.model.config.target_bandwidths
                   if self.quantizers_at(bw) >= k)[1]

    def _encode(self, wav: torch.Tensor, mask: torch.Tensor, k: int) -> torch.Tensor:
        out = self.model.encode(wav, padding_mask=mask, bandwidth=self.bandwidth_for(k), return_dict=True)
        return out.audio_codes[0]  # (chunks=1, B, K, F): unchunked checkpoints encode in one piece

    def _decode(self, codes: torch.Tensor) -> torch.Tensor:
        return self.model.decode(codes[None], [None], return_dict=True).audio_values  # scales: none (no normalize)


@register_codec("dac")
class DacCodec(HFCodec):
    """transformers `DacModel`: descript/dac_16khz, dac_24khz, dac_44khz (music_llm)."""

    kind = "dac"
    model_class = "DacModel"

    def frame_hop(self, config: Any) -> int:
        return int(config.hop_length)

    def max_codebooks(self, config: Any) -> int:
        return int(config.n_codebooks)

    def _encode(self, wav: torch.Tensor, mask: torch.Tensor, k: int) -> torch.Tensor:
        # DacFeatureExtractor pads with zeros to a whole number of frames; its encoder needs that.
        pad = -wav.shape[-1] % self.hop_length
        wav = nn.functional.pad(wav, (0, pad))
        return self.model.encode(wav, n_quantizers=k, return_dict=True).audio_codes  # (B, k, F)

    def _decode(self, codes: torch.Tensor) -> torch.Tensor:
        return self.model.decode(audio_codes=codes, return_dict=True).audio_values[:, None]  # (B, 1, T')


@register_codec("mimi")
class MimiCodec(HFCodec):
    """transformers `MimiModel`: kyutai/mimi (semantic codebook first, then acoustic ones)."""

    kind = "mimi"
    model_class = "MimiModel"

    def __init__(self, source: str, device: torch.device | str = "cpu"):
        super().__init__(source, device)
        config = self.model.config
        self.min_codebooks = int(config.num_semantic_quantizers)
        if not math.isclose(float(config.frame_rate), self.frame_rate):
            raise ConfigError(f"{WHERE}.model={self.source}: config frame_rate {config.frame_rate} disagrees with its "
                              f"strides ({self.sample_rate} Hz / {self.hop_length} samples = {self.frame_rate})")

    def frame_hop(self, config: Any) -> int:
        return math.prod(config.upsampling_ratios) * int(config.latent_stride)

    def max_codebooks(self, config: Any) -> int:
        return int(config.num_quantizers)

    def _encode(self, wav: torch.Tensor, mask: torch.Tensor, k: int) -> torch.Tensor:
        return self.model.encode(wav, padding_mask=mask, num_quantizers=k, return_dict=True).audio_codes

    def _decode(self, codes: torch.Tensor) -> torch.Tensor:
        return self.model.decode(codes, return_dict=True).audio_values
