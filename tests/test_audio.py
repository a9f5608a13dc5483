"""Audio loading: every kind of bad input gets one clear AudioError; odd-but-valid input is fixed."""

import struct

import numpy as np
import pytest
import soundfile as sf
import torch
from helpers import tone

from audiollm.audio import load_audio, save_audio
from audiollm.errors import AudioError


def _write(path, data: bytes):
    path.write_bytes(data)
    return path


def test_load_resamples_and_downmixes(tmp_path):
    stereo = np.stack([tone(1.0, 440, sr=44100), tone(1.0, 440, sr=44100)], axis=1)
    p = tmp_path / "stereo.wav"
    sf.write(p, stereo, 44100)
    wav = load_audio(p)
    assert wav.dtype == torch.float32 and wav.dim() == 1
    assert abs(wav.shape[0] - 16000) <= 1


def test_window_offset_duration(wav_file):
    assert load_audio(wav_file, offset=0.25, duration=0.5).shape[0] == 8000


def test_save_roundtrip(tmp_path):
    p = save_audio(tmp_path / "x.wav", torch.from_numpy(tone(0.5)))
    assert torch.allclose(load_audio(p), torch.from_numpy(tone(0.5)), atol=1e-3)
    assert not list(tmp_path.glob(".*tmp"))  # no temp file left behind


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda d: d / "missing.wav", "no such file"),
        (lambda d: d, "is a directory"),
        (lambda d: _write(d / "empty.wav", b""), "0 bytes"),
        (lambda d: _write(d / "junk.wav", b"RIFF" + b"\x00" * 7 + b"garbage" * 20), "cannot read audio"),
        (lambda d: _write(d / "notes.txt", b"hello, not audio\n" * 50), "cannot read audio"),
    ],
    ids=["missing", "directory", "zero-length", "corrupt", "unsupported"],
)
def test_bad_files(tmp_path, make, message):
    with pytest.raises(AudioError, match=message):
        load_audio(make(tmp_path))


def test_truncated_file(tmp_path, wav_file):
    data = wav_file.read_bytes()
    p = tmp_path / "truncated.wav"
    p.write_bytes(data[:30])  # header cut mid-way
    with pytest.raises(AudioError):
        load_audio(p)


def test_wav_cut_short_in_its_audio_is_refused(tmp_path, wav_file):
    """A WAV whose data stops before its header says it ends (an interrupted copy) would
    otherwise load as a shorter clip without a word."""
    data = wav_file.read_bytes()
    p = tmp_path / "cut.wav"
    p.write_bytes(data[: len(data) // 2])
    with pytest.raises(AudioError, match="truncated audio file"):
        load_audio(p)


def test_streamed_wav_header_placeholder_still_loads(tmp_path, wav_file):
    """A streaming writer leaves 0xFFFFFFFF as the data size: not truncation."""
    data = wav_file.read_bytes()
    i = data.index(b"data")
    p = tmp_path / "streamed.wav"
    p.write_bytes(data[: i + 4] + struct.pack("<I", 0xFFFFFFFF) + data[i + 8:])
    assert torch.allclose(load_audio(p), load_audio(wav_file))


def test_zero_samples_silent_and_nan(tmp_path):
    p = tmp_path / "zero.wav"
    sf.write(p, np.zeros(0, dtype=np.float32), 16000)
    with pytest.raises(AudioError, match="0 samples"):
        load_audio(p)
    sf.write(p, np.zeros(16000, dtype=np.float32), 16000)
    with pytest.raises(AudioError, match="silent"):
        load_audio(p)
    x = tone()
    x[100] = np.nan
    sf.write(p, x, 16000, subtype="FLOAT")
    with pytest.raises(AudioError, match="NaN"):
        load_audio(p)


def test_too_long_names_limit(wav_file):
    with pytest.raises(AudioError, match="limit is 0.5 s"):
        load_audio(wav_file, max_seconds=0.5)
