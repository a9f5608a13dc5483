"""Joint CTC/attention decoding: exact CTC prefix scores, batch padding, and decoding with them."""

import itertools
import math

import pytest
import torch
import torch.nn.functional as F
from helpers import decode_ids, gen

from audiollm.decoding.ctc_prefix import CTCPrefixScorer
from audiollm.models.audiollm import AudioLLM, AudioLLMConfig
from audiollm.models.lm import Decoder, DecoderConfig


def _collapse(path, blank):
    out, prev = [], None
    for s in path:
        if s != prev and s != blank:
            out.append(s)
        prev = s
    return tuple(out)


def _brute_force(log_probs, prefix, blank):
    """Sum over every frame alignment: P(labels start with prefix), P(labels == prefix)."""
    T, C = log_probs.shape
    starts, exact = 0.0, 0.0
    for path in itertools.product(range(C), repeat=T):
        p = math.exp(sum(float(log_probs[t, s]) for t, s in enumerate(path)))
        labels = _collapse(path, blank)
        starts += p if labels[: len(prefix)] == tuple(prefix) else 0.0
        exact += p if labels == tuple(prefix) else 0.0
    return math.log(starts) if starts else -math.inf, math.log(exact) if exact else -math.inf


def _walk(scorer, tokens, V):
    """Feed ``tokens`` to a one-row scorer; return each step's (candidate → CTC prefix score)."""
    seen = []
    for tok in tokens:
        flat = torch.zeros(1, V)  # equal LM scores: the candidates are the first `candidates` ids
        scorer([0], flat)
        cand, _, _, psi = scorer.pending[0]
        seen.append(dict(zip(cand.tolist(), psi.tolist())))
        scorer.advance([0], torch.tensor([tok]))
    return seen


def test_prefix_scores_equal_a_sum_over_all_alignments():
    torch.manual_seed(0)
    V = 3  # labels 0, 1, 2 (2 doubles as eos); blank is 3
    log_probs = torch.log_softmax(torch.randn(1, 5, V + 1), dim=-1)
    scorer = CTCPrefixScorer(log_probs, torch.tensor([5]), weight=0.5, eos_id=2, candidates=V)
    steps = _walk(scorer, [1, 1, 0], V)  # a repeated label needs a blank between: covered
    for prefix_len, scores in enumerate(steps):
        prefix = [1, 1, 0][:prefix_len]
        for cand, psi in scores.items():
            starts, exact = _brute_force(log_probs[0], prefix + ([] if cand == 2 else [cand]), blank=V)
            expected = exact if cand == 2 else starts  # eos: the labels are exactly the prefix
            assert psi == pytest.approx(expected, abs=1e-4), (prefix, cand)
    # The exact-sequence score is the CTC likelihood torch computes.
    nll = F.ctc_loss(log_probs[0], torch.tensor([1, 0]), torch.tensor([5]), torch.tensor([2]), blank=V,
                     reduction="sum")
    scorer = CTCPrefixScorer(log_probs, torch.tensor([5]), weight=0.5, eos_id=2, candidates=V)
    assert _walk(scorer, [1, 0, 2], V)[2][2] == pytest.approx(-float(nll), abs=1e-4)


def test_padded_frames_change_no_score():
    torch.manual_seed(1)
    V = 6
    short = torch.log_softmax(torch.randn(1, 7, V + 1), dim=-1)
    padded = torch.cat([short, torch.log_softmax(torch.randn(1, 5, V + 1), dim=-1)], dim=1)  # junk past the end
    alone = CTCPrefixScorer(short, torch.tensor([7]), weight=0.5, eos_id=0, candidates=V)
    batch = CTCPrefixScorer(torch.cat([padded, torch.log_softmax(torch.randn(1, 12, V + 1), -1)]),
                            torch.tensor([7, 12]), weight=0.5, eos_id=0, candidates=V)
    for tok in [3, 4, 4, 1]:
        logits = torch.randn(1, V)
        a = alone([0], logits)
        b = batch([0], logits)
        assert torch.allclose(a, b, atol=1e-5)
        alone.advance([0], torch.tensor([tok]))
        batch.advance([0], torch.tensor([tok]))


def test_full_weight_decodes_what_ctc_hears_and_inactive_rows_are_untouched():
    torch.manual_seed(0)
    dec = Decoder(DecoderConfig.tiny()).eval()
    V, eos = dec.config.vocab_size, 1
    # CTC posteriors that spell 5, 9, 9 (blank between the nines) over 8 frames.
    frames = [5, 5, 128, 9, 128, 9, 128, 128]
    log_probs = torch.full((2, 8, V + 1), -20.0)
    for t, s in enumerate(frames):
        log_probs[:, t, s] = 0.0
    log_probs = torch.log_softmax(log_probs, dim=-1)
    prompt = torch.randint(2, V, (2, 4))
    plain = decode_ids(dec, prompt, max_new_tokens=6, eos_id=eos)
    scorer = CTCPrefixScorer(log_probs, torch.tensor([8, 8]), weight=1.0, eos_id=eos,
                             active=torch.tensor([True, False]), candidates=V)
    joint = decode_ids(dec, prompt, max_new_tokens=6, eos_id=eos, processors=[scorer])
    assert joint[0] == [5, 9, 9]
    assert joint[1] == plain[1]


def test_audio_model_joint_decoding_only_on_marked_rows():
    torch.manual_seed(0)
    cfg = AudioLLMConfig.tiny()
    cfg.ctc_weight = 0.5
    model = AudioLLM(cfg).eval()
    audio = torch.randn(3, 16000) * 0.1
    lengths = torch.tensor([16000, 12000, 9000])
    prompts = [[3, 4], [3, 4, 5], [6]]
    plain = gen(model, audio, lengths, prompts, max_new_tokens=5, eos_id=1)
    off = gen(model, audio, lengths, prompts, max_new_tokens=5, eos_id=1, ctc_weight=0.5,
                         ctc_rows=[False, False, False])
    assert off == plain
    joint = gen(model, audio, lengths, prompts, max_new_tokens=5, eos_id=1, ctc_weight=1.0,
                           ctc_rows=[True, False, False])
    assert joint[1:] == plain[1:]
    assert all(0 <= t < cfg.lm_config.vocab_size for t in joint[0])


def test_bad_weight_is_refused():
    with pytest.raises(ValueError, match="weight"):
        CTCPrefixScorer(torch.zeros(1, 2, 3), torch.tensor([2]), weight=0.0, eos_id=None)
