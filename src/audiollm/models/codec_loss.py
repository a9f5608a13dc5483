"""Reconstruction losses of a codec: multi-scale log-mel L1 and multi-resolution STFT.

Both compare the decoded waveform with the input at several time–frequency resolutions, so
neither pre-echo nor smeared transients go unpunished at any one scale (HiFi-GAN's mel loss,
Parallel WaveGAN's multi-resolution STFT loss: spectral convergence + log-magnitude L1). Each
returns the loss PER EXAMPLE (B,), computed in float32 on the real samples only (a mask drops
the padded tail), so the training loop can sum over examples like it sums over tokens.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from audiollm.models.frontend import mel_filterbank

MEL_SCALES = ((512, 128, 40), (1024, 256, 80), (2048, 512, 128))  # (n_fft, hop, n_mels)
STFT_SCALES = ((512, 128), (1024, 256), (2048, 512))  # (n_fft, hop)


def magnitudes(wav: torch.Tensor, n_fft: int, hop: int, window: torch.Tensor) -> torch.Tensor:
    """(B, T) → (B, n_fft/2+1, frames) STFT magnitudes, float32."""
    spec = torch.stft(wav.float(), n_fft, hop, window=window, center=True, return_complex=True)
    return spec.abs().clamp(min=1e-7)


def frame_mask(lengths: torch.Tensor, hop: int, frames: int) -> torch.Tensor:
    """(B,) sample counts → (B, 1, frames) float mask of the STFT frames centred on real samples."""
    idx = torch.arange(frames, device=lengths.device)
    return (idx[None, :] * hop < lengths[:, None]).float()[:, None, :]


class MultiScaleMelLoss(nn.Module):
    """Mean |log mel(x) − log mel(x̂)| per example, averaged over ``MEL_SCALES``."""

    def __init__(self, sample_rate: int):
        super().__init__()
        for i, (n_fft, _, n_mels) in enumerate(MEL_SCALES):
            self.register_buffer(f"fb{i}", mel_filterbank(sample_rate, n_fft, n_mels, 0.0, sample_rate / 2).T.contiguous(),
                                 persistent=False)  # (n_mels, bins)
            self.register_buffer(f"win{i}", torch.hann_window(n_fft), persistent=False)

    def forward(self, ref: torch.Tensor, est: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        total = ref.new_zeros(ref.shape[0], dtype=torch.float32)
        for i, (n_fft, hop, _) in enumerate(MEL_SCALES):
            fb, win = getattr(self, f"fb{i}"), getattr(self, f"win{i}")
            a = torch.log(fb @ magnitudes(ref, n_fft, hop, win) + 1e-5)  # (B, n_mels, frames)
            b = torch.log(fb @ magnitudes(est, n_fft, hop, win) + 1e-5)
            m = frame_mask(lengths, hop, a.shape[-1])
            total = total + ((a - b).abs() * m).sum((1, 2)) / (m.sum((1, 2)) * a.shape[1]).clamp(min=1)
        return total / len(MEL_SCALES)


class MultiResolutionSTFTLoss(nn.Module):
    """Spectral convergence + mean |log |X| − log |X̂||, per example, averaged over ``STFT_SCALES``."""

    def __init__(self):
        super().__init__()
        for i, (n_fft, _) in enumerate(STFT_SCALES):
            self.register_buffer(f"win{i}", torch.hann_window(n_fft), persistent=False)

    def forward(self, ref: torch.Tensor, est: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        total = ref.new_zeros(ref.shape[0], dtype=torch.float32)
        for i, (n_fft, hop) in enumerate(STFT_SCALES):
            win = getattr(self, f"win{i}")
            a, b = magnitudes(ref, n_fft, hop, win), magnitudes(est, n_fft, hop, win)
            m = frame_mask(lengths, hop, a.shape[-1])
            convergence = ((a - b) * m).square().sum((1, 2)).sqrt() / (a * m).square().sum((1, 2)).sqrt().clamp(min=1e-7)
            log_mag = ((a.log() - b.log()).abs() * m).sum((1, 2)) / (m.sum((1, 2)) * a.shape[1]).clamp(min=1)
            total = total + convergence + log_mag
        return total / len(STFT_SCALES)
