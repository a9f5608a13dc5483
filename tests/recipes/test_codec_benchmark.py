"""benchmarks/codec.py runs its whole path on real FSDD clips and real music, with a stand-in
codec written here (any object with the Codec protocol's shape will do), and its figures order
the systems as they must: more codebooks, better; the original copy scores itself perfectly."""

from __future__ import annotations

import importlib.util
import json
import math
import shutil

import pytest
import torch
from helpers import REPO, SHARED_DATA, build_tiny_whisper_judge

from audiollm.errors import AudioLLMError

pytest.importorskip("torchmetrics")
pytest.importorskip("transformers")
needs_ffmpeg = pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs ffmpeg (apt-get install ffmpeg)")


class MuLawCodec:
    """G.711-style stand-in: one code per sample (frame rate = sample rate). Level 1 is 8-bit
    mu-law of the sample; level 2 quantises what level 1 left, uniformly in ±half a step."""

    sample_rate = 16000
    frame_rate = 16000.0
    num_codebooks = 2
    codebook_size = 256
    mu = 255.0

    def _compand(self, x):
        return torch.sign(x) * torch.log1p(self.mu * x.abs()) / math.log1p(self.mu)

    def _expand(self, y):
        return torch.sign(y) * ((1 + self.mu) ** y.abs() - 1) / self.mu

    def _level1(self, codes):
        return self._expand(codes.float() / 127.5 - 1.0)

    def _step(self, y):
        """The mu-law quantiser's step around the level-1 value ``y`` (its derivative × 2/255)."""
        return 2.0 / 255 * (1 + self.mu * y.abs()) * math.log1p(self.mu) / self.mu

    def encode(self, wav, lengths=None, num_codebooks=None):
        k = num_codebooks or self.num_codebooks
        x = wav.clamp(-1, 1)
        c1 = torch.round((self._compand(x) + 1.0) * 127.5).clamp(0, 255).long()  # (B, T)
        levels = [c1]
        if k > 1:
            y1 = self._level1(c1)
            levels.append(torch.round(((x - y1) / self._step(y1) + 0.5) * 255).clamp(0, 255).long())
        frames = lengths if lengths is not None else torch.full((wav.shape[0],), wav.shape[1])
        return torch.stack(levels, dim=1), frames  # (B, K, F=T)

    def decode(self, codes, frame_lengths=None):
        y = self._level1(codes[:, 0])
        if codes.shape[1] > 1:
            y = y + (codes[:, 1].float() / 255 - 0.5) * self._step(y)
        lengths = frame_lengths if frame_lengths is not None else torch.full((codes.shape[0],), codes.shape[2])
        return y, lengths

    def identity(self):
        return {"kind": "test", "name": "mulaw"}


def load_benchmark():
    spec = importlib.util.spec_from_file_location("codec_benchmark", REPO / "benchmarks" / "codec.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.shared_data
@needs_ffmpeg
def test_codec_benchmark_on_real_speech_and_music_with_a_stand_in_codec(tmp_path, capsys):
    bench = load_benchmark()
    judge = build_tiny_whisper_judge(tmp_path / "whisper")
    music = tmp_path / "music"  # two of the four recordings: the short trumpet (5.3 s) and a 25 s one
    music.mkdir()
    for name in ("sorohanro_-_solo-trumpet-06.ogg", "admiralbob77_-_Choice_-_Drum-bass.ogg"):
        shutil.copy(SHARED_DATA / "music" / name, music / name)
    out = bench.main(["--quick", "--num-codebooks", "1", "2", "--fsdd", str(SHARED_DATA / "fsdd"),
                      "--music", str(music), "--whisper", str(judge)], codec=MuLawCodec())
    printed = [line for line in capsys.readouterr().out.splitlines() if line.strip()]
    assert len(printed) == 1 and json.loads(printed[0]) == json.loads(json.dumps(out))

    speech, music = out["speech"], out["music"]
    assert music["audio_seconds"] == 6.0
    assert speech["clips"] == 3 and music["clips"] == 2  # --quick: 3 clips, one 3 s excerpt a recording
    assert set(speech) >= {"original", "codec_k1", "codec_k2", "opus_6kbps", "mel_griffin_lim"}
    assert set(music) >= {"codec_k1", "codec_k2", "opus_6kbps", "opus_12kbps", "mel_griffin_lim"}
    k1, k2, opus = speech["codec_k1"], speech["codec_k2"], speech["opus_6kbps"]
    assert (k1["bitrate_bps"], k2["bitrate_bps"], opus["bitrate_bps"]) == (128000, 256000, 6000)
    assert opus["measured_bps"] > 6000  # Ogg headers on sub-second clips
    gl = speech["mel_griffin_lim"]
    assert gl["bitrate_bps"] is None and gl["raw_bps"] == 160000 and gl["iterations"] == 8
    # 8-bit mu-law is ~35 dB SNR on speech; its residual level adds ~48 dB more.
    assert 25 < k1["si_sdr_db"] < k2["si_sdr_db"] - 20 and k2["mel_distance"] < k1["mel_distance"]
    # Wide-band PESQ hears mu-law's white noise in the 4-8 kHz band this 8 kHz speech leaves empty.
    assert k1["stoi"] > 0.95 and 1.5 < k1["pesq_wb"] < k2["pesq_wb"] and k2["pesq_wb"] > 4.5
    assert opus["stoi"] > 0.7 and opus["si_sdr_db"] < k1["si_sdr_db"]
    assert music["codec_k1"]["si_sdr_db"] > music["opus_6kbps"]["si_sdr_db"]
    for row in (k1, k2, opus, speech["mel_griffin_lim"]):
        assert 1.0 <= row["dnsmos_ovrl"] <= 5.0 and 0 <= row["wer"] and row["rtf"] > 0
    assert speech["original"]["bitrate_bps"] == 256000 and "wer" in speech["original"]
    assert set(out["codec_vs_opus_6kbps"]["codec_k1"]) >= {"bitrate_ratio", "pesq_wb_delta", "mel_distance_ratio"}
    assert out["codec_vs_opus_6kbps"]["codec_k2"]["pesq_wb_delta"] > 1  # 256 kbps beats 6 kbps Opus


def test_codec_benchmark_refuses_a_codebook_count_the_codec_lacks():
    with pytest.raises(AudioLLMError, match="1 to 2"):
        load_benchmark().main(["--num-codebooks", "3", "--no-speech", "--no-music"], codec=MuLawCodec())
