"""Pretrained codecs through transformers (EnCodec, DAC, Mimi) on tiny random checkpoints.

Each loads through `load_codec`, and its codes and waveforms are the ones the transformers
model gives when called directly (with its feature extractor's padding where it has one).
A clip in a batch keeps its codes except in its last frames, where the batch's padding stands
in for the clip's own edge: frames well inside the clip are compared exactly (see TAIL).
"""

from __future__ import annotations

import os

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
transformers = pytest.importorskip("transformers")

from audiollm.errors import AudioLLMError, ConfigError, ModelDirError  # noqa: E402
from audiollm.models.codecs import CODECS, Codec, bitrate, frames_for, load_codec  # noqa: E402
from audiollm.models.pretrained import hf_codec, tiny_checkpoints  # noqa: E402
from audiollm.models.pretrained.hf_codec import HFCodec  # noqa: E402
from audiollm.models.pretrained.tiny_checkpoints import tiny_checkpoint  # noqa: E402

KINDS = ["encodec", "dac", "mimi"]
# What the tiny checkpoints are (tiny_checkpoints.py): frames/s, codebooks, samples per frame.
EXPECTED = {"encodec": (250.0, 4, 64), "dac": (250.0, 3, 64), "mimi": (200.0, 4, 80)}
# Frames at the end of a batched shorter clip that may differ from the clip encoded alone:
# EnCodec's non-causal convolutions reach back ~4 frames, DAC's 1, Mimi (causal) only its
# last partial frame.
TAIL = {"encodec": 5, "dac": 2, "mimi": 1}
SR = 16000


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """These tiny convolutions gain nothing from a second thread and lose 10-100x to it when the
    other core is busy (measured: 14 ms vs 1.9 s an EnCodec round trip); restored afterwards."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def codecs() -> dict[str, HFCodec]:
    return {kind: load_codec(tiny_checkpoint(kind)) for kind in KINDS}


@pytest.fixture(scope="module")
def references() -> dict:
    """The same checkpoints loaded straight into transformers, to compare against."""
    classes = {"encodec": transformers.EncodecModel, "dac": transformers.DacModel, "mimi": transformers.MimiModel}
    return {kind: classes[kind].from_pretrained(tiny_checkpoint(kind)).eval() for kind in KINDS}


def clips(*lengths: int, seed: int = 0) -> torch.Tensor:
    """(B, max length) noise over a tone, each clip zero past its length."""
    g = torch.Generator().manual_seed(seed)
    T = max(lengths)
    t = torch.arange(T) / SR
    wav = 0.3 * torch.sin(2 * torch.pi * 330 * t) + 0.1 * torch.randn(len(lengths), T, generator=g)
    return wav * (torch.arange(T) < torch.tensor(lengths)[:, None])


@torch.no_grad()
def reference_encode(kind: str, model, wav: torch.Tensor) -> torch.Tensor:
    """All codebooks (B, K, F) of mono ``wav`` (B, T) as transformers' own recipe makes them."""
    x = wav[:, None, :]  # (B, 1, T)
    if kind == "encodec":
        return model.encode(x, bandwidth=max(model.config.target_bandwidths)).audio_codes[0]
    if kind == "dac":  # its feature extractor pads to whole frames
        fe = transformers.DacFeatureExtractor.from_pretrained(tiny_checkpoint("dac"))
        x = fe(raw_audio=list(wav.numpy()), sampling_rate=SR, return_tensors="pt")["input_values"]
        return model.encode(x).audio_codes
    return model.encode(x).audio_codes


@torch.no_grad()
def reference_decode(kind: str, model, codes: torch.Tensor) -> torch.Tensor:
    if kind == "encodec":
        return model.decode(codes[None], [None]).audio_values[:, 0]
    if kind == "dac":
        return model.decode(audio_codes=codes).audio_values
    return model.decode(codes).audio_values[:, 0]


# ---------------------------------------------------------------------------------------------
# Loading and geometry
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_load_codec_gives_a_frozen_hf_codec_with_the_checkpoints_geometry(kind, codecs, references):
    codec, config = codecs[kind], references[kind].config
    assert isinstance(codec, HFCodec) and isinstance(codec, Codec) and CODECS[kind] is type(codec)
    assert codec.identity()["kind"] == kind == codec.kind
    # The frame rate as each model's strides make it (transformers' config.frame_rate rounds
    # EnCodec's and DAC's up; Mimi's is exact).
    if kind == "encodec":
        exact = SR / torch.tensor(config.upsampling_ratios).prod().item()
    else:
        exact = SR / config.hop_length if kind == "dac" else config.frame_rate
    assert (codec.frame_rate, codec.num_codebooks, codec.hop_length) == EXPECTED[kind]
    assert codec.frame_rate == exact and codec.sample_rate == SR and codec.codebook_size == 32
    assert codec.pretrained_source == tiny_checkpoint(kind)
    assert not codec.training and not codec.model.training
    codec.train()
    assert not codec.model.training  # stays frozen in eval mode
    assert all(not p.requires_grad and p.dtype == torch.float32 for p in codec.parameters())
    assert codec.trainable_state_keys() == set()


def test_encodec_codebooks_follow_its_target_bandwidths(codecs):
    codec = codecs["encodec"]
    # target_bandwidths 1.25 / 2.5 / 5 kbps at 250 frames/s · 5 bits = 1, 2, 4 codebooks
    assert [codec.quantizers_at(bw) for bw in (1.25, 2.5, 5.0)] == [1, 2, 4]
    assert [codec.bandwidth_for(k) for k in (1, 2, 3, 4)] == [1.25, 2.5, 5.0, 5.0]
    assert bitrate(codec, 4) == 5000.0 and bitrate(codec, 2) == 2500.0  # EnCodec's own bandwidths


@pytest.mark.parametrize("kind", KINDS)
def test_bitrate_is_frame_rate_times_codebooks_times_bits(kind, codecs):
    codec = codecs[kind]
    for k in range(1, codec.num_codebooks + 1):
        assert bitrate(codec, k) == codec.frame_rate * k * 5  # log2(32) bits a code
    assert bitrate(codec) == codec.frame_rate * codec.num_codebooks * 5


# ---------------------------------------------------------------------------------------------
# Encode and decode equal transformers' own
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("samples", [4480, 3001])  # a whole number of frames (70 or 56), and not
def test_codes_and_waveforms_equal_the_transformers_models(kind, samples, codecs, references):
    codec, model = codecs[kind], references[kind]
    wav = clips(samples)
    codes, frames = codec.encode(wav)
    F = -(-samples // codec.hop_length)  # frames covering the clip
    assert codes.dtype == torch.int64 and codes.shape == (1, codec.num_codebooks, F)
    assert frames.tolist() == [F] == frames_for(codec, torch.tensor([samples])).tolist()
    if samples == 4480:
        assert F == codec.frame_rate * samples / SR
    expected = reference_encode(kind, model, wav)
    assert torch.equal(codes, expected)
    assert len(codes.unique()) > 4  # the tiny codebooks give varied codes

    audio, lengths = codec.decode(codes, frames)
    ref = reference_decode(kind, model, expected)
    assert audio.dtype == torch.float32 and audio.shape == ref.shape == (1, F * codec.hop_length)
    torch.testing.assert_close(audio, ref, rtol=0, atol=0)
    assert lengths.tolist() == [F * codec.hop_length]


@pytest.mark.parametrize("kind", KINDS)
def test_a_clip_in_a_batch_keeps_its_codes_except_its_last_frames(kind, codecs):
    codec = codecs[kind]
    long, short = 4000, 2251
    wav = clips(long, short)
    wav[1, short:] = 1.0  # what lies past a clip's length must not matter
    codes, frames = codec.encode(wav, torch.tensor([long, short]))
    alone_long, _ = codec.encode(wav[:1])
    alone_short, frames_short = codec.encode(wav[1:, :short])
    hop = codec.hop_length
    assert frames.tolist() == [-(-long // hop), -(-short // hop)] and frames_short.tolist() == frames[1:].tolist()
    assert torch.equal(codes[:1], alone_long)  # the longest clip is encoded as if alone
    inside = frames_short.item() - TAIL[kind]
    assert inside > 20 and torch.equal(codes[1, :, :inside], alone_short[0, :, :inside])

    audio, lengths = codec.decode(codes, frames)
    assert lengths.tolist() == [frames[0] * hop, frames[1] * hop]
    assert audio.shape == (2, codes.shape[-1] * hop)
    assert audio[1, lengths[1]:].abs().max() == 0  # nothing past a clip's end


def test_mimi_clips_a_whole_number_of_frames_long_keep_every_code_in_a_batch(codecs):
    codec = codecs["mimi"]  # causal throughout
    wav = clips(4000, 2400)
    codes, frames = codec.encode(wav, torch.tensor([4000, 2400]))
    alone, _ = codec.encode(wav[1:, :2400])
    assert torch.equal(codes[1, :, : frames[1]], alone[0])


@pytest.mark.parametrize("kind", KINDS)
def test_fewer_codebooks_are_the_first_rows_of_all(kind, codecs, references):
    codec = codecs[kind]
    wav = clips(4000)
    full, _ = codec.encode(wav)
    for k in range(1, codec.num_codebooks + 1):
        codes, _ = codec.encode(wav, num_codebooks=k)
        assert codes.shape[1] == k and torch.equal(codes, full[:, :k]), k
    first, frames = codec.encode(wav, num_codebooks=1)
    audio, _ = codec.decode(first, frames)
    torch.testing.assert_close(audio, reference_decode(kind, references[kind], first), rtol=0, atol=0)


def test_stereo_encodec_takes_mono_by_duplicating_it(tmp_path):
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        tiny_checkpoints.encodec(tmp_path / "stereo", audio_channels=2)
    codec = load_codec(tmp_path / "stereo")
    model = transformers.EncodecModel.from_pretrained(tmp_path / "stereo").eval()
    wav = clips(2000)
    codes, frames = codec.encode(wav)
    with torch.no_grad():
        expected = model.encode(wav[:, None].expand(-1, 2, -1).contiguous(), bandwidth=5.0).audio_codes[0]
        ref = model.decode(expected[None], [None]).audio_values.mean(dim=1)
    assert torch.equal(codes, expected)
    assert torch.equal(codec.encode(wav[:, None].expand(-1, 2, -1))[0], codes)  # stereo as given
    torch.testing.assert_close(codec.decode(codes, frames)[0], ref, rtol=0, atol=0)


@pytest.mark.gpu
@pytest.mark.parametrize("kind", KINDS)
def test_on_cuda_it_gives_the_cpu_codes_and_waveforms(kind, codecs):
    cpu, cuda = codecs[kind], load_codec(tiny_checkpoint(kind), device="cuda")
    wav, lengths = clips(4480, 3001), torch.tensor([4480, 3001])
    codes, frames = cpu.encode(wav, lengths)
    codes_cuda, frames_cuda = cuda.encode(wav.cuda(), lengths.cuda())
    assert codes_cuda.is_cuda and torch.equal(frames_cuda.cpu(), frames)
    assert (codes_cuda.cpu() == codes).float().mean() > 0.95  # TF32 convolutions may flip a near tie
    audio, audio_lengths = cpu.decode(codes, frames)
    audio_cuda, lengths_cuda = cuda.decode(codes.cuda(), frames.cuda())
    assert torch.equal(lengths_cuda.cpu(), audio_lengths)
    torch.testing.assert_close(audio_cuda.cpu(), audio, rtol=0, atol=2e-3)
    assert cuda.identity() == cpu.identity()


# ---------------------------------------------------------------------------------------------
# Identity
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_fingerprint_is_stable_across_loads_and_differs_between_inits(kind, codecs, tmp_path):
    identity = codecs[kind].identity()
    assert identity == {"kind": kind, "name": tiny_checkpoint(kind), "sample_rate": SR,
                        "frame_rate": EXPECTED[kind][0], "num_codebooks": EXPECTED[kind][1], "codebook_size": 32,
                        "fingerprint": identity["fingerprint"]}
    assert len(identity["fingerprint"]) == 12 and int(identity["fingerprint"], 16) >= 0
    assert load_codec(tiny_checkpoint(kind)).identity() == identity
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(1)
        tiny_checkpoints.BUILDERS[kind](tmp_path / "other")
    other = load_codec(tmp_path / "other").identity()
    assert other["fingerprint"] != identity["fingerprint"]
    assert {k: v for k, v in other.items() if k not in ("name", "fingerprint")} == \
           {k: v for k, v in identity.items() if k not in ("name", "fingerprint")}


# ---------------------------------------------------------------------------------------------
# Bad input: one-line errors
# ---------------------------------------------------------------------------------------------


def one_line(error: type, call, match: str) -> None:
    with pytest.raises(error, match=match) as info:
        call()
    assert isinstance(info.value, AudioLLMError) and "\n" not in str(info.value)


@pytest.mark.parametrize("kind", KINDS)
def test_bad_codes_are_one_line_errors(kind, codecs):
    codec = codecs[kind]
    K, size = codec.num_codebooks, codec.codebook_size
    good = torch.zeros(2, K, 10, dtype=torch.long)
    one_line(ConfigError, lambda: codec.decode(good.float()), "codes must be an integer tensor")
    one_line(ConfigError, lambda: codec.decode(good[0]), rf"codes must be \(B, K, F\).*shape \({K}, 10\)")
    one_line(ConfigError, lambda: codec.decode(good[:, :, :0]), r"codes must be \(B, K, F\)")
    one_line(ModelDirError, lambda: codec.decode(torch.zeros(2, K + 1, 10, dtype=torch.long)),
             f"codes have {K + 1} codebooks; .* decodes 1 to {K}: not codes of this codec")
    one_line(ModelDirError, lambda: codec.decode(good + size), f"codes lie in {size}..{size}; .* has codes 0..{size - 1}")
    one_line(ModelDirError, lambda: codec.decode(good - 1), r"codes lie in -1\.\.-1")
    one_line(ConfigError, lambda: codec.decode(good, torch.tensor([10, 11])), r"frame_lengths must lie in 0\.\.10")
    one_line(ConfigError, lambda: codec.decode(good, torch.tensor([10])), "frame_lengths must be 2 integers")
    one_line(ConfigError, lambda: codec.decode(good, torch.tensor([1.0, 2.0])), "frame_lengths must be 2 integers")
    assert codec.decode(good.int(), [10, 3])[1].tolist() == [10 * codec.hop_length, 3 * codec.hop_length]


@pytest.mark.parametrize("kind", KINDS)
def test_bad_audio_and_codebook_counts_are_one_line_errors(kind, codecs):
    codec = codecs[kind]
    wav = clips(800, 500)
    one_line(ConfigError, lambda: codec.encode((wav * 1000).long()), "codec input must be a float tensor")
    one_line(ConfigError, lambda: codec.encode(wav[None, None]), r"must be \(B, T\) or \(B, C, T\)")
    one_line(ConfigError, lambda: codec.encode(torch.zeros(2, 0)), r"with B, T ≥ 1, got shape \(2, 1, 0\)")
    one_line(ConfigError, lambda: codec.encode(torch.stack([wav, wav], 1)), "codec input has 2 channels; .* takes 1")
    one_line(ConfigError, lambda: codec.encode(wav.masked_fill(wav > 0.2, float("nan"))), "NaN or infinite")
    one_line(ConfigError, lambda: codec.encode(wav, torch.tensor([800, 900])), r"lengths must lie in 1\.\.800")
    one_line(ConfigError, lambda: codec.encode(wav, torch.tensor([800, 0])), r"lengths must lie in 1\.\.800")
    one_line(ConfigError, lambda: codec.encode(wav, torch.tensor([800.0, 500.0])), "lengths must be 2 integers")
    for k in (0, codec.num_codebooks + 1, 1.5):
        one_line(ModelDirError, lambda: codec.encode(wav, num_codebooks=k), f"num_codebooks={k}: this codec has 1 to")
    assert codec.encode(wav, [800, 500])[1].tolist() == [-(-800 // codec.hop_length), -(-500 // codec.hop_length)]


def test_unsupported_and_mismatched_checkpoints_are_one_line_errors(tmp_path):
    config = transformers.EncodecConfig(
        sampling_rate=16000, audio_channels=2, hidden_size=8, num_filters=4, upsampling_ratios=[4, 4],
        num_lstm_layers=1, codebook_size=16, target_bandwidths=[1.0], chunk_length_s=0.5, overlap=0.01,
        normalize=True,
    )
    transformers.EncodecModel(config).save_pretrained(tmp_path / "e48")
    one_line(ConfigError, lambda: load_codec(tmp_path / "e48"),
             r"encodes in overlapping chunks, each with its own loudness scale .*not supported")
    one_line(ConfigError, lambda: hf_codec.EncodecCodec(tiny_checkpoint("dac")),
             r"codec.model=.*dac-v\d+ has model type 'dac', not 'encodec'")
    one_line(ConfigError, lambda: hf_codec.DacCodec(str(tmp_path / "absent")), "no such checkpoint here")
