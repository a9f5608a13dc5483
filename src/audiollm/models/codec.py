"""`AudioCodec`: our neural audio codec, trained from scratch (model type "codec").

It works at frame rate, as Vocos and WavTokenizer do, which on a CPU trains about twice as fast
per step as a waveform SoundStream::

    wav (B, T) → STFT log-magnitudes (B, n_fft/2+1, F)      F = T / hop_length frames (50 Hz at 16 kHz)
             → ConvNeXt encoder → latent frames (B, F, D)
             → residual VQ: K codes per frame                codes (B, K, F), K·log2(size) bits a frame
             → ConvNeXt decoder → log-magnitude and phase per frame
             → inverse STFT (overlap-add)                    wav (B, F · hop_length)

Trained with multi-scale log-mel + multi-resolution STFT losses and the quantizer's commitment
loss (`models.codec_loss`) through the one training loop (``model.type: codec``); quantizer
dropout lets one model serve 1…K codebooks. It implements the `models.codecs.Codec`
interface (encode, decode, sample rate, frame rate, bitrate, identity).
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from typing import NamedTuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from audiollm.errors import ConfigError, ModelDirError
from audiollm.models.codec_loss import MultiResolutionSTFTLoss, MultiScaleMelLoss
from audiollm.models.codec_quantizer import ResidualVQ, ResidualVQConfig
from audiollm.models.codecs import check_num_codebooks
from audiollm.models.registry import register_model


@dataclass
class CodecConfig:
    sample_rate: int = 16_000  # audio rate in and out
    hop_length: int = 320  # samples per frame (16 kHz / 320 = 50 frames/s)
    n_fft: int = 1280  # STFT window of the encoder's input and the decoder's output (4 hops)
    dim: int = 256  # ConvNeXt width of encoder and decoder
    intermediate: int = 768  # ConvNeXt MLP width
    encoder_layers: int = 4  # ConvNeXt blocks before the quantizer
    decoder_layers: int = 6  # ConvNeXt blocks after it
    kernel_size: int = 7  # depthwise convolution width, in frames
    quantizer: ResidualVQConfig = field(default_factory=ResidualVQConfig)  # codebooks, size, dropout
    mel_weight: float = 1.0  # multi-scale log-mel L1
    stft_weight: float = 1.0  # multi-resolution STFT (spectral convergence + log-magnitude)
    commitment_weight: float = 0.25  # encoder commitment to its codes (per latent dimension)

    def __post_init__(self) -> None:
        for name in ("sample_rate", "hop_length", "n_fft", "dim", "intermediate", "encoder_layers", "decoder_layers",
                     "kernel_size"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"model.{name} must be a positive integer, got {value!r}")
        if self.n_fft < self.hop_length or (self.n_fft - self.hop_length) % 2:
            raise ConfigError(f"model.n_fft ({self.n_fft}) must be ≥ hop_length ({self.hop_length}) and differ "
                              "from it by an even number")
        if self.kernel_size % 2 == 0:
            raise ConfigError(f"model.kernel_size must be odd, got {self.kernel_size}")

    @classmethod
    def tiny(cls) -> "CodecConfig":
        return cls(hop_length=160, n_fft=320, dim=16, intermediate=32, encoder_layers=1, decoder_layers=1,
                   quantizer=ResidualVQConfig.tiny())


class ConvNeXtBlock(nn.Module):
    """Depthwise conv → LayerNorm → MLP, residual with a learned layer scale (Vocos' block)."""

    def __init__(self, dim: int, intermediate: int, kernel_size: int, layer_scale: float):
        super().__init__()
        self.dwconv = nn.Conv1d(dim, dim, kernel_size, padding=kernel_size // 2, groups=dim)
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.up = nn.Linear(dim, intermediate)
        self.down = nn.Linear(intermediate, dim)
        self.gamma = nn.Parameter(torch.full((dim,), layer_scale))

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:  # x (B, F, dim), mask (B, F, 1)
        h = self.dwconv((x * mask).transpose(1, 2)).transpose(1, 2)
        h = self.down(F.gelu(self.up(self.norm(h))))
        return x + self.gamma * h


class ConvNeXtStack(nn.Module):
    def __init__(self, in_dim: int, out_dim: int, c: CodecConfig, layers: int):
        super().__init__()
        self.embed = nn.Conv1d(in_dim, c.dim, c.kernel_size, padding=c.kernel_size // 2)
        self.norm_in = nn.LayerNorm(c.dim, eps=1e-6)
        self.blocks = nn.ModuleList(ConvNeXtBlock(c.dim, c.intermediate, c.kernel_size, 1.0 / layers) for _ in range(layers))
        self.norm_out = nn.LayerNorm(c.dim, eps=1e-6)
        self.out = nn.Linear(c.dim, out_dim)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:  # x (B, F, in_dim) → (B, F, out_dim)
        m = mask[..., None].to(x.dtype)
        h = self.norm_in(self.embed((x * m).transpose(1, 2)).transpose(1, 2))
        for block in self.blocks:
            h = block(h, m)
        return self.out(self.norm_out(h))


class CodecOutput(NamedTuple):
    loss_sum: torch.Tensor  # sum over the batch's examples of mel + STFT + commitment losses
    n_targets: torch.Tensor  # examples
    audio: torch.Tensor  # (B, T) reconstruction
    codes: torch.Tensor  # (B, K, F)
    aux_loss_sum: torch.Tensor | None = None  # the loop's hook for extra losses (none here)
    aux_stats: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}  # name → (sum, count): logged by the loop


@register_model("codec", CodecConfig)
class AudioCodec(nn.Module):
    CARD_TITLE = "audiollm neural audio codec"
    CARD_USE = ('codes, frames = model.encode(wav)  # wav (B, T) float32 at model.sample_rate',
                'audio, lengths = model.decode(codes, frames)')

    def __init__(self, config: CodecConfig):
        super().__init__()
        self.config = c = config
        bins = c.n_fft // 2 + 1
        self.encoder = ConvNeXtStack(bins, c.quantizer.codebook_dim, c, c.encoder_layers)
        self.quantizer = ResidualVQ(c.quantizer)
        self.decoder = ConvNeXtStack(c.quantizer.codebook_dim, 2 * bins, c, c.decoder_layers)
        self.register_buffer("window", torch.hann_window(c.n_fft), persistent=False)
        self.mel_loss = MultiScaleMelLoss(c.sample_rate)
        self.stft_loss = MultiResolutionSTFTLoss()

    # -- the Codec interface ------------------------------------------------------------------

    @property
    def sample_rate(self) -> int:
        return self.config.sample_rate

    @property
    def hop_length(self) -> int:
        return self.config.hop_length

    @property
    def frame_rate(self) -> float:
        return self.config.sample_rate / self.config.hop_length

    @property
    def num_codebooks(self) -> int:
        return self.config.quantizer.num_codebooks

    @property
    def codebook_size(self) -> int:
        return self.config.quantizer.codebook_size

    @torch.no_grad()
    def encode(self, wav: torch.Tensor, lengths: torch.Tensor | None = None, num_codebooks: int | None = None
               ) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, T) waveforms → codes (B, k, F) int64 and each clip's frame count (B,)."""
        k = check_num_codebooks(self, num_codebooks)
        wav, lengths = self._as_batch(wav, lengths)
        latents, mask = self._encode_latents(wav, lengths)
        quantized = self._quantize(latents, mask, torch.full((wav.shape[0],), k, device=wav.device))
        return quantized.codes[:, :k], mask.sum(1)

    @torch.no_grad()
    def decode(self, codes: torch.Tensor, frame_lengths: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """codes (B, k, F) of the first k levels → waveforms (B, F · hop) and lengths (B,)."""
        codes = self.check_codes(codes)
        B, _, frames = codes.shape
        if frame_lengths is None:
            frame_lengths = torch.full((B,), frames, device=codes.device)
        mask = torch.arange(frames, device=codes.device)[None, :] < frame_lengths.to(codes.device)[:, None]
        wav = self._synthesise(self.quantizer.decode_codes(codes), mask)
        return wav, frame_lengths * self.config.hop_length

    def identity(self) -> dict:
        c = self.config
        digest = hashlib.sha1()
        for name, tensor in sorted(self.state_dict().items()):
            digest.update(name.encode())
            digest.update(tensor.detach().float().cpu().numpy().tobytes()[:4096])
        return {"kind": "audiollm-codec", "name": getattr(self, "source", ""), "sample_rate": c.sample_rate,
                "frame_rate": self.frame_rate, "num_codebooks": self.num_codebooks,
                "codebook_size": self.codebook_size, "fingerprint": digest.hexdigest()[:12]}

    def check_codes(self, codes: torch.Tensor) -> torch.Tensor:
        """Codes as (B, k, F) int64 with 1 ≤ k ≤ K and every code in range; ModelDirError otherwise."""
        if not isinstance(codes, torch.Tensor) or codes.dim() != 3 or codes.is_floating_point():
            raise ModelDirError(f"codes must be an integer tensor (batch, codebooks, frames), got "
                                f"{getattr(codes, 'shape', type(codes).__name__)}")
        if not 1 <= codes.shape[1] <= self.num_codebooks:
            raise ModelDirError(f"codes have {codes.shape[1]} codebooks; this codec has 1 to {self.num_codebooks}")
        if codes.numel() and (int(codes.min()) < 0 or int(codes.max()) >= self.codebook_size):
            raise ModelDirError(f"codes outside 0…{self.codebook_size - 1} (this codec's codebook size)")
        return codes.long()

    # -- training -----------------------------------------------------------------------------

    def forward(self, audio: torch.Tensor, audio_lengths: torch.Tensor, **_) -> CodecOutput:
        """One training step's losses on a batch of crops (B, T) with their real lengths (B,)."""
        c = self.config
        wav, lengths = self._as_batch(audio, audio_lengths)
        latents, mask = self._encode_latents(wav, lengths)
        q = self._quantize(latents, mask, None)
        recon = self._synthesise(q.latents, mask)[:, : wav.shape[1]]
        target = wav[:, : recon.shape[1]]
        with torch.autocast(device_type=wav.device.type, enabled=False):
            mel = self.mel_loss(target, recon.float(), lengths)
            stft = self.stft_loss(target, recon.float(), lengths)
        frames = mask.sum().clamp(min=1)
        commit = q.commitment / frames * wav.shape[0]  # per-frame mean, summed like the per-example losses
        loss_sum = c.mel_weight * mel.sum() + c.stft_weight * stft.sum() + c.commitment_weight * commit
        n = torch.tensor(float(wav.shape[0]), device=wav.device)
        stats = {"mel_loss": (mel.detach().sum(), n), "stft_loss": (stft.detach().sum(), n),
                 "commitment": (commit.detach(), n)}
        stats.update({f"codes_in_use/{k}": (u.detach() * n, n) for k, u in enumerate(q.usage)})
        return CodecOutput(loss_sum, n, recon, q.codes, None, stats)

    # -- the pieces -----------------------------------------------------------------------------

    def _as_batch(self, wav: torch.Tensor, lengths: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """Pad (B, T) to whole frames; lengths default to T."""
        if wav.dim() == 1:
            wav = wav[None]
        if wav.dim() != 2:
            raise ConfigError(f"audio must be (batch, samples) mono, got shape {tuple(wav.shape)}")
        B, T = wav.shape
        if lengths is None:
            lengths = torch.full((B,), T, device=wav.device)
        hop = self.config.hop_length
        frames = max(1, math.ceil(T / hop))
        return F.pad(wav.float(), (0, frames * hop - T)), lengths.to(wav.device)

    def _encode_latents(self, wav: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        c = self.config
        pad = (c.n_fft - c.hop_length) // 2
        x = F.pad(wav[:, None], (pad, pad), mode="reflect" if wav.shape[1] > pad else "constant")[:, 0]
        with torch.autocast(device_type=wav.device.type, enabled=False):
            spec = torch.stft(x.float(), c.n_fft, c.hop_length, window=self.window, center=False, return_complex=True)
            feats = torch.log(spec.abs().clamp(min=1e-5)).transpose(1, 2)  # (B, F, bins)
        frames = feats.shape[1]
        mask = torch.arange(frames, device=wav.device)[None, :] < torch.ceil(lengths / c.hop_length)[:, None]
        return self.encoder(feats, mask), mask

    def _quantize(self, latents: torch.Tensor, mask: torch.Tensor, keep: torch.Tensor | None):
        with torch.autocast(device_type=latents.device.type, enabled=False):
            return self.quantizer(latents.float(), mask, keep)

    def _synthesise(self, latents: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Latent frames (B, F, D) → waveform (B, F · hop): magnitude and phase per bin, then
        overlap-add of windowed inverse FFTs with 'same' padding (F frames ↔ F · hop samples)."""
        c = self.config
        out = self.decoder(latents, mask).float()
        log_mag, phase = out.chunk(2, dim=-1)  # (B, F, bins) each
        spec = torch.polar(torch.exp(log_mag).clamp(max=1e2), phase)
        with torch.autocast(device_type=latents.device.type, enabled=False):
            frames = torch.fft.irfft(spec, n=c.n_fft, dim=-1) * self.window  # (B, F, n_fft)
            B, n = frames.shape[:2]
            total = (n - 1) * c.hop_length + c.n_fft
            wav = F.fold(frames.transpose(1, 2), (1, total), (1, c.n_fft), stride=(1, c.hop_length))[:, 0, 0]
            env = F.fold(self.window.square().expand(1, n, -1).transpose(1, 2), (1, total), (1, c.n_fft),
                         stride=(1, c.hop_length))[0, 0, 0]
            pad = (c.n_fft - c.hop_length) // 2
            wav = wav[:, pad: pad + n * c.hop_length] / env[pad: pad + n * c.hop_length].clamp(min=1e-8)
        sample_mask = mask.repeat_interleave(c.hop_length, dim=1)
        return wav * sample_mask

    # -- saving and the model card ------------------------------------------------------------

    def card_summary(self) -> str:
        c, q = self.config, self.config.quantizer
        kbps = self.frame_rate * q.num_codebooks * math.log2(q.codebook_size) / 1000
        return (f"A neural audio codec at {c.sample_rate} Hz: STFT frames at {self.frame_rate:g} Hz → ConvNeXt encoder → "
                f"{q.num_codebooks} residual codebooks of {q.codebook_size} codes ({kbps:g} kbps with all, "
                f"{kbps / q.num_codebooks:g} kbps per codebook) → ConvNeXt decoder → inverse STFT.")

    def state_to_save(self) -> dict[str, torch.Tensor]:
        """Encoder, decoder, and the quantizer's codebooks with their EMA statistics."""
        return self.state_dict()

    @staticmethod
    def load_tokenizer(config: CodecConfig, directory) -> None:
        return None  # a codec has no tokenizer
