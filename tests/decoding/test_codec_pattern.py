"""Codec patterns: the delay and flattened layouts, their training targets and their decoding rule."""

from __future__ import annotations

import pytest
import torch

from audiollm.decoding.codec_pattern import (
    IGNORE,
    DelayPattern,
    FlattenPattern,
    make_pattern,
)
from audiollm.errors import ConfigError


def test_delay_pattern_lays_codebook_k_k_steps_late_and_ends_every_codebook_on_one_frame():
    p = DelayPattern(3, 10)
    codes = torch.tensor([[1, 2], [3, 4], [5, 6]])  # (K=3, T=2)
    ids, targets = p.steps(codes)
    assert ids.shape == (5, 3) and targets.shape == (5, 3)  # T + K steps
    local = ids - p.offsets
    pad, eoa = p.pad, p.eoa
    assert local.tolist() == [[1, pad, pad], [2, 3, pad], [eoa, 4, 5], [pad, eoa, 6], [pad, pad, eoa]]
    # PAD is never a target; every real code and each codebook's EOA is
    assert (targets == IGNORE).sum() == 6 and (targets != IGNORE).sum() == (2 + 1) * 3
    assert p.codes_from_steps(local[:-1].tolist()).tolist() == codes.tolist()  # the eos step is not kept


def test_flatten_pattern_is_frame_major_with_one_eoa_and_one_target_per_step():
    p = FlattenPattern(2, 10)
    codes = torch.tensor([[1, 2], [3, 4]])
    ids, targets = p.steps(codes)
    assert ids[:, 0].tolist() == [1, 12 + 3, 2, 12 + 4, p.eoa]  # codebook k's ids start at k·V (V = 12)
    assert ((targets != IGNORE).sum(1) == 1).all()  # one codebook scored per step
    assert targets[:, 0].tolist()[::2] == [1, 2, p.eoa] and targets[1::2, 1].tolist() == [3, 4]
    assert p.codes_from_steps(ids[:-1, 0].tolist()).tolist() == codes.tolist()


@pytest.mark.parametrize("name", ["delay", "flatten"])
def test_training_steps_pad_rows_and_leave_rows_without_audio_untargeted(name):
    p = make_pattern(name, 2, 8)
    codes = torch.randint(0, 8, (3, 2, 5))
    lengths = torch.tensor([5, 3, 0])
    inputs, targets, n_steps = p.training_steps(codes, lengths)
    assert n_steps.tolist() == [p.num_steps(5), p.num_steps(3), 0]
    assert inputs.shape[1] == targets.shape[1] - 1
    assert (targets[2] == IGNORE).all()
    assert (targets[1, p.num_steps(3):] == IGNORE).all()
    assert int((targets[0] != IGNORE).sum()) == (6 * 2 if name == "delay" else 5 * 2 + 1)


@pytest.mark.parametrize("name", ["delay", "flatten"])
def test_the_mask_allows_only_the_layout_and_ends_within_the_budget(name):
    p = make_pattern(name, 2, 4)
    mask = p.processor([3], min_frames=2)
    steps = []
    for _ in range(p.max_steps(3) + 2):
        shape = (1, p.width, p.V) if name == "delay" else (1, p.K * p.V)
        scores = mask([0], torch.zeros(shape))
        pick = scores.view(1, -1, scores.shape[-1]).argmax(-1) if name == "delay" else scores.argmax(-1)
        # always prefer EOA when allowed, to test the floor; else the first allowed id
        allowed = torch.isfinite(scores)
        if name == "delay":
            pick = torch.where(allowed[0, :, p.eoa], torch.tensor(p.eoa), allowed[0].float().argmax(-1))[None]
        else:
            pick = torch.tensor([p.eoa]) if bool(allowed[0, p.eoa]) else allowed.float().argmax(-1)
        mask.advance([0], pick)
        last = int(pick[0, -1]) if name == "delay" else int(pick[0])
        if last == p.eos_id:
            break
        steps.append(pick[0].tolist() if name == "delay" else int(pick[0]))
    codes = p.codes_from_steps(steps)
    assert codes.shape == (2, 2)  # the minimum, not earlier


def test_unknown_pattern_is_refused_by_name():
    with pytest.raises(ConfigError, match="unknown codec pattern 'zigzag'"):
        make_pattern("zigzag", 2, 4)
