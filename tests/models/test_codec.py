"""Our codec (model type "codec"): shapes, bitrates, the quantizer, save/load, codes files."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from helpers import tone

import audiollm
from audiollm.errors import ConfigError, ModelDirError
from audiollm.inference.codec import Codes, CodesError, read_codes
from audiollm.models.codec import AudioCodec, CodecConfig
from audiollm.models.codec_loss import MultiResolutionSTFTLoss, MultiScaleMelLoss
from audiollm.models.codec_quantizer import ResidualVQ, ResidualVQConfig
from audiollm.models.codecs import Codec, bitrate, load_codec
from audiollm.models.hub import save_model


def tiny_codec(seed: int = 0) -> AudioCodec:
    torch.manual_seed(seed)
    return AudioCodec(CodecConfig.tiny())


def warmed(codec: AudioCodec, seconds: float = 1.0) -> AudioCodec:
    """One training forward so the codebooks are initialised (k-means on a batch), then eval."""
    codec.train()
    wav = torch.from_numpy(np.stack([tone(seconds, f) for f in (220.0, 330.0, 440.0, 660.0)]))
    codec(wav, torch.full((4,), wav.shape[1]))
    return codec.eval()


def test_shapes_frame_rate_and_bitrate():
    codec = warmed(tiny_codec())
    c = codec.config
    assert isinstance(codec, Codec)
    assert codec.frame_rate == c.sample_rate / c.hop_length == 100.0
    assert bitrate(codec) == codec.frame_rate * 3 * math.log2(16)
    wav = torch.randn(2, 16_000 + 37) * 0.1  # not a whole number of frames
    codes, frames = codec.encode(wav)
    assert codes.shape == (2, 3, math.ceil(wav.shape[1] / c.hop_length)) and codes.dtype == torch.int64
    assert frames.tolist() == [codes.shape[2]] * 2
    audio, lengths = codec.decode(codes, frames)
    assert audio.shape == (2, codes.shape[2] * c.hop_length) and lengths.tolist() == [audio.shape[1]] * 2


def test_fewer_codebooks_are_a_prefix_and_decode():
    codec = warmed(tiny_codec())
    wav = torch.from_numpy(tone(0.5, 300.0))[None]
    full, _ = codec.encode(wav)
    one, _ = codec.encode(wav, num_codebooks=1)
    assert torch.equal(one, full[:, :1])
    assert codec.decode(one)[0].shape == codec.decode(full)[0].shape
    with pytest.raises(ModelDirError, match="1 to 3"):
        codec.encode(wav, num_codebooks=4)


def test_a_short_clip_in_a_batch_codes_like_alone():
    """Padding never leaks: the shorter clip's frames are coded the same in a batch as alone,
    but for the last STFT frame (its window reaches past the clip: zeros in a batch, reflection
    alone) and the frames that frame reaches through the encoder's convolutions."""
    codec = warmed(tiny_codec())
    long, short = torch.from_numpy(tone(1.0, 220.0)), torch.from_numpy(tone(0.6, 500.0))
    batch = torch.zeros(2, long.shape[0])
    batch[0], batch[1, : short.shape[0]] = long, short
    codes, frames = codec.encode(batch, torch.tensor([long.shape[0], short.shape[0]]))
    alone, alone_frames = codec.encode(short[None])
    assert int(frames[1]) == int(alone_frames[0])
    c = codec.config
    n = int(frames[1]) - 1 - (c.kernel_size // 2) * (1 + c.encoder_layers)
    assert n > 40
    assert torch.equal(codes[1, :, :n], alone[0, :, :n])


def test_training_lowers_the_reconstruction_loss():
    codec = tiny_codec()
    codec.train()
    wav = torch.from_numpy(np.stack([tone(0.5, f) for f in (200.0, 410.0, 630.0, 880.0)]))
    lengths = torch.full((4,), wav.shape[1])
    opt = torch.optim.Adam(codec.parameters(), 3e-3)
    losses = []
    for _ in range(20):
        out = codec(wav, lengths)
        (out.loss_sum / 4).backward()
        opt.step()
        opt.zero_grad()
        losses.append(float(out.loss_sum) / 4)
    assert losses[-1] < 0.88 * losses[0] and np.mean(losses[-5:]) < np.mean(losses[:5])
    assert {"mel_loss", "stft_loss", "commitment", "codes_in_use/0"} <= set(out.aux_stats)


def test_quantizer_learns_codebooks_and_drops_levels():
    cfg = ResidualVQConfig(num_codebooks=3, codebook_size=8, codebook_dim=4, kmeans_iters=3, dropout=1.0)
    vq = ResidualVQ(cfg).train()
    x = torch.randn(4, 50, 4)
    mask = torch.ones(4, 50, dtype=torch.bool)
    out = vq(x, mask)
    assert bool(vq.initialised) and vq.codebooks.abs().sum() > 0  # k-means on the first batch
    # residual levels: each level leaves less error (on real frames, eval mode: all levels)
    vq.eval()
    before = vq.codebooks.clone()
    errors = [float((x - vq.decode_codes(vq(x, mask).codes[:, :k])).square().mean()) for k in (1, 2, 3)]
    assert errors[0] > errors[1] > errors[2]
    assert torch.equal(vq.codebooks, before)  # eval never updates codebooks
    # quantizer dropout: with dropout=1 every example keeps a random 1…3 levels in training
    vq.train()
    torch.manual_seed(0)
    keeps = vq._levels_to_keep(1000, torch.device("cpu"))
    assert set(keeps.tolist()) == {1, 2, 3}
    # a dead code (never chosen) is re-seeded from the batch
    vq.cluster_size[0, 0] = 0.0
    vq.codebooks[0, 0] = 1e6
    vq(x, mask)
    assert vq.codebooks[0, 0].abs().max() < 1e3
    assert out.latents.shape == x.shape and out.codes.shape == (4, 3, 50)


def test_losses_are_zero_for_a_perfect_reconstruction_and_skip_padding():
    wav = torch.from_numpy(np.stack([tone(0.5, 300.0), tone(0.5, 600.0)]))
    lengths = torch.tensor([wav.shape[1], wav.shape[1] // 2])
    mel, stft = MultiScaleMelLoss(16_000), MultiResolutionSTFTLoss()
    assert mel(wav, wav, lengths).abs().max() < 1e-6 and stft(wav, wav, lengths).abs().max() < 1e-6
    noisy = wav + 0.05 * torch.randn_like(wav)
    assert (mel(wav, noisy, lengths) > 0.05).all()
    tail = wav.clone()
    tail[1, wav.shape[1] // 2 + 2048:] = torch.randn(wav.shape[1] - wav.shape[1] // 2 - 2048)  # past the real samples
    assert float(mel(wav, tail, lengths)[1]) < 1e-6


def test_save_load_round_trip_keeps_codes_and_identity(tmp_path):
    codec = warmed(tiny_codec())
    save_model(tmp_path / "codec", codec)
    loaded = load_codec(tmp_path / "codec")
    assert isinstance(loaded, AudioCodec)
    wav = torch.from_numpy(tone(0.7, 440.0))[None]
    assert torch.equal(codec.encode(wav)[0], loaded.encode(wav)[0])
    assert loaded.identity()["fingerprint"] == codec.identity()["fingerprint"]
    assert warmed(tiny_codec(seed=1)).identity()["fingerprint"] != codec.identity()["fingerprint"]
    card = (tmp_path / "codec" / "README.md").read_text()
    assert "residual codebooks" in card and "from scratch, trained here" in card


def test_codes_files_and_the_api(tmp_path):
    save_model(tmp_path / "codec", warmed(tiny_codec()))
    save_model(tmp_path / "other", warmed(tiny_codec(seed=1)))
    codec = audiollm.load(tmp_path / "codec")
    wav = tone(0.5, 440.0)
    codes = codec.encode(wav, num_codebooks=2)
    assert codes.codes.shape == (2, 50) and codes.bitrate == 100.0 * 2 * 4
    path = codes.save(tmp_path / "x.codes.safetensors")
    again = read_codes(path)
    assert np.array_equal(again.codes, codes.codes) and again.codec == codes.codec
    out = codec.decode(again)
    assert out.shape == (len(wav),) and out.dtype == np.float32
    # samples at another rate are resampled; stereo is downmixed
    assert codec.encode(np.stack([tone(0.5, 440.0, sr=8000)] * 2), sample_rate=8000).codes.shape[1] == 50
    with pytest.raises(CodesError, match="made by codec audiollm-codec .* not by audiollm-codec"):
        audiollm.load_codec(tmp_path / "other").decode(again)
    (tmp_path / "bad.safetensors").write_bytes(b"not safetensors at all")
    with pytest.raises(CodesError, match="not a codes file"):
        read_codes(tmp_path / "bad.safetensors")
    with pytest.raises(ModelDirError, match="outside 0…15"):
        codec.decode(Codes(np.full((2, 5), 99), codes.codec, 0.1))
    with pytest.raises(ModelDirError, match="no such codec directory"):
        audiollm.load_codec(tmp_path / "missing")


def test_config_errors_name_the_key():
    with pytest.raises(ConfigError, match="model.n_fft"):
        CodecConfig(n_fft=100, hop_length=320)
    with pytest.raises(ConfigError, match="model.quantizer.dropout"):
        ResidualVQConfig(dropout=2.0)
