"""Evaluation protocols: the published formulas (hand-computed cases), BERTScore over a tiny
encoder, candidate log-likelihoods against the training loss, selection, table and JSON."""

from __future__ import annotations

import json
import math

import pytest
import torch
from helpers import build_tiny_bert, tone

from audiollm.cli.parser import main
from audiollm.errors import AudioLLMError
from audiollm.evaluation.evaluate import evaluate, format_table, write_json
from audiollm.evaluation.protocols import (
    ProtocolContext,
    dataset_of,
    run_protocols,
    select,
)
from audiollm.evaluation.protocols.bertscore import BertScorer
from audiollm.evaluation.protocols.cider import cider_d, cider_d_per_clip
from audiollm.evaluation.protocols.english import normalize_english
from audiollm.evaluation.protocols.librispeech import wer
from audiollm.evaluation.protocols.mullama import pair_scores, shuffled_references
from audiollm.inference.api import AudioLanguageModel
from audiollm.metrics.labels import tag_auc
from audiollm.metrics.text import meteor_wordpunct, nltk_sentence_bleu, rouge_l_recall
from audiollm.models import hub
from audiollm.models.audiollm import AudioLLM, AudioLLMConfig
from audiollm.tokenizers.text import TextTokenizer

# --------------------------------------------------------------------------- CIDEr-D


def test_cider_d_identical_caption_hand_computed():
    # Two clips, N = 2, every reference n-gram has df = 1: weight log 2 each.
    # Clip 1: candidate == reference "a b": cosine 1 for n = 1, 2; no 3/4-grams → 0.
    # CIDEr-D = 10 · (1 + 1 + 0 + 0) / 4 = 5. Clip 2 shares nothing with its reference → 0.
    assert cider_d_per_clip(["a b", "c"], [["a b"], ["d"]]) == pytest.approx([5.0, 0.0])
    assert cider_d(["a b", "c"], [["a b"], ["d"]]) == pytest.approx(2.5)


def test_cider_d_clipping_and_length_penalty_hand_computed():
    L = math.log(2)
    # Clip X: "a a" vs "a b". Candidate unigram weight 2L is clipped to the reference's L:
    # dot = L·L, norms 2L and √2·L → 1/(2√2); bigram "a a" does not match; equal lengths.
    x = 10 * (1 / (2 * math.sqrt(2))) / 4
    # Clip Y: "c d" vs an 8-word reference: Gaussian penalty exp(-(2-8)²/(2·6²)) = e^-0.5;
    # unigrams 2L² / (√2L · √8L) = 1/2; bigram "c d" against 7 bigrams → 1/√7.
    y = 10 * math.exp(-0.5) * (0.5 + 1 / math.sqrt(7)) / 4
    got = cider_d_per_clip(["a a", "c d"], [["a b"], ["c d e f g h i j"]])
    assert got == pytest.approx([x, y])
    del L


def test_cider_d_averages_over_references_and_uses_corpus_idf():
    # The second reference adds nothing in common: the score halves.
    one = cider_d_per_clip(["a b", "x"], [["a b"], ["y"]])[0]
    two = cider_d_per_clip(["a b", "x"], [["a b", "q r"], ["y"]])[0]
    assert two == pytest.approx(one / 2)
    # An n-gram every clip's references contain has idf log(N/N) = 0: no credit for it.
    assert cider_d_per_clip(["the", "the"], [["the"], ["the"]]) == pytest.approx([0.0, 0.0])
    with pytest.raises(AudioLLMError):
        cider_d(["a"], [[]])


# --------------------------------------------------------------------------- MU-LLaMA


def test_mullama_bleu_is_over_characters():
    # Word-level BLEU of a one-word pair is 0 (no 2-grams); over characters "music" vs
    # "musics" shares every 1..4-gram of the candidate: precision 1, brevity penalty e^(1-6/5).
    assert nltk_sentence_bleu("music", "musics") == pytest.approx(math.exp(1 - 6 / 5))
    assert nltk_sentence_bleu("abc", "xyz") == pytest.approx(0.0, abs=1e-12)
    # Character 4-grams only: "abcd" vs "abce" shares none.
    assert nltk_sentence_bleu("abcd", "abce", weights=(0, 0, 0, 1)) == pytest.approx(0.0, abs=1e-12)


def test_mullama_rouge_recall_and_meteor(wordnet):
    # Recall = LCS / reference length; stemming makes "cats" match "cat".
    assert rouge_l_recall("the cat", "the cats sat") == pytest.approx(2 / 3)
    assert rouge_l_recall("the cats sat here now", "the cat sat") == pytest.approx(1.0)
    assert meteor_wordpunct("a slow, sad song.", "a slow, sad song.") > 0.99
    scores = pair_scores(["A slow piano piece."], ["A slow piano piece."])
    assert scores["bleu"] == pytest.approx(1.0) and scores["rouge_l_recall"] == pytest.approx(1.0)


def test_shuffled_references_pair_other_clips_deterministically():
    rows = [{"audio": f"c{i % 3}.wav", "question": q, "qa_type": "t"}
            for i, q in enumerate(["Describe the audio", "Describe the audio", "Describe the audio", "What key?"])]
    refs = ["r0", "r1", "r2", "r3"]
    out, n_type, n_any = shuffled_references(rows, refs, seed=0)
    assert out == shuffled_references(rows, refs, seed=0)[0]
    for i in range(3):  # same question, another clip
        assert out[i] != refs[i] and out[i] in refs[:3]
    # "What key?" is asked only about clip c0: it falls back to the qa_type pool, another clip.
    assert n_type == 1 and n_any == 0 and out[3] in ("r1", "r2")
    assert shuffled_references(rows[:1], refs[:1])[0] == ["r0"]  # a single clip: nothing to swap


def test_mullama_protocol_reports_baseline_and_skips_bertscore(wordnet):
    rows = [{"audio": f"c{i}.wav", "task": "qa", "question": "Describe the audio", "answer": a, "dataset": "musicqa"}
            for i, a in enumerate(["A fast rock song with loud drums.", "A calm piano piece.", "Sad violin music."])]
    preds = ["A fast rock song with drums.", "A calm piano piece.", "Sad violin music."]
    res = run_protocols(rows, preds, "auto")
    m = res.results["mullama"]
    assert m["n"] == 3 and "bertscore_recall" not in m
    for k in ("bleu", "bleu4", "meteor", "rouge_l_recall"):
        assert m[k] > m[f"shuffled_ref/{k}"]  # the predictions do match their own clips
    assert any("BERTScore skipped" in n for n in res.notes)
    table = format_table(res.results)
    assert table.splitlines()[0].split() == ["task", "metric", "value", "n", "shuffled_ref"]
    assert any(line.split()[:2] == ["mullama", "bleu"] and len(line.split()) == 5 for line in table.splitlines())


# --------------------------------------------------------------------------- BERTScore


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory):
    pytest.importorskip("transformers")
    words = "the a cat dog sat ran on mat fast slow piano guitar song music is".split()
    return build_tiny_bert(tmp_path_factory.mktemp("bert"), words, intermediate_size=37)


def test_bertscore_recall_matches_greedy_cosine_by_hand(tiny_bert):
    from transformers import AutoModel, AutoTokenizer

    scorer = BertScorer(tiny_bert, layer=1)
    assert scorer.recall(["the cat sat"], ["the cat sat"])[0] == pytest.approx(1.0, abs=1e-5)
    cand, ref = "a dog ran fast", "the cat sat on the mat"
    tok, model = AutoTokenizer.from_pretrained(tiny_bert), AutoModel.from_pretrained(tiny_bert).eval()

    def emb(text):
        ids = tok(text, return_tensors="pt")
        with torch.no_grad():
            h = model(**ids, output_hidden_states=True).hidden_states[1][0]
        h = h[1:-1]  # drop [CLS] and [SEP]
        return h / h.norm(dim=-1, keepdim=True)

    c, r = emb(cand), emb(ref)
    expected = sum(max(float(ri @ cj) for cj in c) for ri in r) / len(r)
    assert scorer.recall([cand], [ref])[0] == pytest.approx(expected, abs=1e-5)
    assert scorer.recall([""], [ref]) == [0.0]
    with pytest.raises(AudioLLMError, match="layer 9"):
        BertScorer(tiny_bert, layer=9)


def test_mullama_protocol_with_bertscore_names_the_model(tiny_bert, wordnet):
    rows = [{"audio": f"c{i}.wav", "task": "qa", "question": "Describe the audio", "answer": a}
            for i, a in enumerate(["the cat sat", "a dog ran fast"])]
    res = run_protocols(rows, ["the cat sat", "a dog ran fast"], "mullama",
                        ProtocolContext(bertscore_model=str(tiny_bert)))
    m = res.results["mullama"]
    assert m["bertscore_recall"] == pytest.approx(1.0, abs=1e-5)
    assert m["shuffled_ref/bertscore_recall"] < 1.0
    assert any(tiny_bert.name in n and "layer 2 of 2" in n for n in res.notes)


# --------------------------------------------------------------------------- LibriSpeech


def test_english_normaliser_rules():
    assert normalize_english("Mr. Brown [NOISE] won't go to the THEATRE, um, today!") == \
        "mr brown will not go to the theater today"
    assert normalize_english("They're (inaudible) here; I'd say it's 1,000 cafés") == \
        "they are here i would say it s 1000 cafes"
    assert normalize_english("HMM... THE COLOUR GREY") == "the color gray"


def test_librispeech_wer_per_subset():
    rows = [{"task": "asr", "subset": "test-clean", "text": "HELLO WORLD", "answer": "hello world", "id": "librispeech-1-2-3"},
            {"task": "asr", "subset": "test-other", "text": "I CAN'T GO", "answer": "i can't go", "id": "librispeech-1-2-4"},
            {"task": "asr", "subset": "test-other", "text": "GOOD DAY", "answer": "good day", "id": "librispeech-1-2-5"}]
    preds = ["Hello, world!", "I can not go", "good bay"]
    res = run_protocols(rows, preds, "auto").results
    assert res["librispeech/test-clean"] == {"n": 1.0, "wer": 0.0}
    # test-other: "can't" → "can not" on the reference side (4 words + 2); "bay" is 1 error in 6.
    assert res["librispeech/test-other"]["wer"] == pytest.approx(1 / 6)
    assert wer(["x"], ["[noise]"]) == 1.0  # empty normalised reference: one insertion


# --------------------------------------------------------------------------- MagnaTagATune


def test_tag_auc_hand_computed():
    # Tag 1: positives 0.9, 0.5 above the negative 0.1 → ROC 1, AP 1.
    # Tag 2: the negative (0.8) ranks first → ROC 0; AP = (1/2 + 2/3) / 2.
    scores = [[0.9, 0.2], [0.1, 0.8], [0.5, 0.5]]
    targets = [[1, 1], [0, 0], [1, 1]]
    out = tag_auc(scores, targets)
    assert out["roc_auc"] == pytest.approx(0.5) and out["pr_auc"] == pytest.approx((1 + (0.5 + 2 / 3) / 2) / 2)
    # A tag every clip has is left out.
    assert tag_auc([[0.1, 0.3], [0.2, 0.4]], [[1, 0], [1, 1]])["n_tags"] == 1
    with pytest.raises(AudioLLMError, match="no tag"):
        tag_auc([[0.1], [0.2]], [[1], [1]])


def test_mtt_presence_scores():
    rows = [{"task": "tagging", "labels": ls, "audio": "x.wav", "dataset": "magnatagatune"}
            for ls in (["guitar", "rock"], ["piano"], ["guitar"], ["piano", "rock"])]
    preds = ["guitar, rock", "piano", "piano", "rock"]
    res = run_protocols(rows, preds, "auto")
    m = res.results["mtt"]
    # guitar: predicted for clip 0 only (clips 0, 2 have it) → ROC 0.75; piano: clips 1,2 predicted,
    # truth 1,3 → ROC 0.5; rock: perfect → 1.
    assert m["roc_auc"] == pytest.approx((0.75 + 0.5 + 1.0) / 3) and m["n_tags"] == 3
    assert any("presence" in n for n in res.notes)


def _tiny_audiollm(tok):
    torch.manual_seed(0)
    cfg = AudioLLMConfig.tiny()
    cfg.lm_config.vocab_size = tok.vocab_size
    return AudioLLM(cfg).eval()


def test_candidate_logprobs_equal_the_training_loss():
    torch.manual_seed(0)
    model = AudioLLM(AudioLLMConfig.tiny()).eval()
    audio = torch.randn(2, 6400) * 0.1
    lengths = torch.tensor([6400, 4000])
    audio[1, 4000:] = 0
    contexts = [[[5, 6, 7], [5, 6]], [[9, 10, 11, 12]]]
    cands = [[[20, 21], [22, 23, 24]], [[30]]]
    got = model.candidate_logprobs(audio, lengths, contexts, cands, chunk=1)
    for i in range(2):
        for k, (ctx, cand) in enumerate(zip(contexts[i], cands[i])):
            ids = torch.tensor([ctx + cand])
            labels = torch.tensor([[-100] * len(ctx) + cand])
            with torch.no_grad():
                out = model(audio[i : i + 1, : lengths[i]], lengths[i : i + 1], ids, torch.tensor([ids.shape[1]]),
                            labels=labels)
            assert got[i][k] == pytest.approx(-float(out.loss_sum), rel=1e-4, abs=1e-4)


def test_mtt_likelihood_scores_with_a_real_model(tmp_path):
    import soundfile as sf

    tags = ["guitar", "rock", "piano", "calm"]
    tok = TextTokenizer.train([", ".join(tags), "Which tags describe this music?"] * 5, vocab_size=300)
    model = _tiny_audiollm(tok)
    rows = []
    for i, ls in enumerate((["guitar", "rock"], ["piano", "calm"], ["guitar"], ["piano"])):
        p = tmp_path / f"{i}.wav"
        sf.write(p, tone(0.3, 200.0 * (i + 1)), 16000)
        rows.append({"audio": str(p), "task": "tagging", "labels": ls, "id": f"magnatagatune-{i}"})
    preds = ["guitar, rock", "piano", "", "calm, piano"]
    ctx = ProtocolContext(model=AudioLanguageModel(model, tok), questions=["Which tags describe this music?"] * 4, batch_size=3)
    res = run_protocols(rows, preds, "mtt", ctx)
    m = res.results["mtt"]
    assert 0.0 <= m["roc_auc"] <= 1.0 and 0.0 < m["pr_auc"] <= 1.0 and m["n_tags"] == 4
    assert any("log-likelihood" in n for n in res.notes)
    # The likelihood scores are real-valued, so they differ from the 0/1 presence scores.
    presence = run_protocols(rows, preds, "mtt", ProtocolContext(tag_scores="presence")).results["mtt"]
    assert presence != m


# --------------------------------------------------------------------------- selection and reports


def test_selection_by_dataset_field_and_id_prefix():
    rows = [{"task": "qa", "dataset": "musicqa"}, {"task": "qa", "id": "musicqa-eval-1-0"},
            {"task": "qa", "id": "corpus-qa0"}, {"task": "caption", "dataset": "clotho"},
            {"task": "tagging", "id": "gtzan-blues-1"}]
    assert dataset_of(rows[1]) == "musicqa" and dataset_of(rows[2]) is None
    assert select(rows, "auto") == {"mullama": [0, 1], "clotho": [3]}
    assert select(rows, "default") == {}
    assert select(rows, "mullama") == {"mullama": [0, 1, 2]}  # named: every qa row
    with pytest.raises(AudioLLMError, match="unknown protocol 'bogus'"):
        select(rows, "bogus")
    with pytest.raises(AudioLLMError, match="scores 'asr' rows"):
        select(rows, "librispeech")


def test_clotho_protocol(wordnet):
    rows = [{"task": "caption", "dataset": "clotho", "audio": f"{i}.wav", "answer": refs[0], "answers": refs}
            for i, refs in enumerate([["A dog barks loudly.", "A dog is barking."], ["Rain falls on a roof.", "Rain on a tin roof."]])]
    res = run_protocols(rows, ["A dog barks loudly.", "Rain falls on a roof."], "auto").results["clotho"]
    assert res["bleu_1"] == pytest.approx(1.0) and res["bleu_4"] == pytest.approx(1.0)
    assert res["rouge_l"] == pytest.approx(1.0) and res["meteor"] > 0.9
    assert res["cider_d"] == pytest.approx(cider_d(["A dog barks loudly.", "Rain falls on a roof."],
                                                   [r["answers"] for r in rows]))
    bad = run_protocols(rows, ["Music plays.", "Birds sing."], "clotho").results["clotho"]
    assert bad["cider_d"] == 0.0 and bad["bleu_1"] == 0.0


def test_evaluate_adds_protocol_results_to_table_and_json(tmp_path, wordnet):
    import soundfile as sf
    from helpers import LengthEchoModel

    rows = []
    for i in range(3):
        p = tmp_path / f"{i}.wav"
        sf.write(p, tone(0.2 + 0.1 * i), 16000)
        rows.append({"audio": str(p), "task": "qa", "question": "Describe the audio", "answer": f"{i} clip",
                     "id": f"musicqa-eval-{i}-0"})
    tok = TextTokenizer.train([str(n) for n in range(10)] * 5 + ["Describe the audio"] * 3, vocab_size=300)
    result = evaluate(AudioLanguageModel(LengthEchoModel(tok), tok), rows, progress=False)
    assert {"qa", "mullama"} <= set(result.results) and result.notes
    out = write_json(tmp_path / "e.json", result.results, result.predictions, rows, notes=result.notes)
    data = json.loads(out.read_text())
    assert data["metrics"]["mullama"]["n"] == 3 and data["notes"] == result.notes
    with pytest.raises(AudioLLMError, match="no config.json"):
        evaluate(AudioLanguageModel(LengthEchoModel(tok), tok), rows, progress=False, protocol_options={"bertscore_model": str(tmp_path)})


def test_evaluate_cli_protocol_flags(tmp_path, capsys, wordnet):
    import soundfile as sf

    tok = TextTokenizer.train(["Describe the audio", "A calm piano piece.", "Loud rock."] * 5, vocab_size=300)
    hub.save_model(tmp_path / "model", _tiny_audiollm(tok), tok)
    lines = []
    for i, answer in enumerate(["A calm piano piece.", "Loud rock."]):
        p = tmp_path / f"{i}.wav"
        sf.write(p, tone(0.3, 300.0 * (i + 1)), 16000)
        lines.append(json.dumps({"audio": str(p), "task": "qa", "question": "Describe the audio", "answer": answer,
                                 "dataset": "musicqa"}))
    (tmp_path / "m.jsonl").write_text("\n".join(lines) + "\n")
    base = ["evaluate", str(tmp_path / "model"), "--data", str(tmp_path / "m.jsonl"), "--no-progress",
            "--max-new-tokens", "4"]
    assert main(base + ["--json", str(tmp_path / "e.json")]) == 0
    out = capsys.readouterr().out
    assert "shuffled_ref" in out and "mullama" in out and "note: mullama: BERTScore skipped" in out
    assert json.loads((tmp_path / "e.json").read_text())["metrics"]["mullama"]["n"] == 2
    for argv, fragment in ((["--protocol", "bogus"], "unknown protocol 'bogus'"),
                           (["--protocol", "clotho"], "scores 'caption' rows"),
                           (["--bertscore-model", str(tmp_path)], "no config.json")):
        code = main(base + argv)
        err = capsys.readouterr().err
        assert code == 2 and err.startswith("audiollm: error:") and fragment in err and "Traceback" not in err
