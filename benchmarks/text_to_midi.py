"""Text-to-MIDI benchmark: attribute adherence of sampled pieces, against the reference notes.

    python benchmarks/text_to_midi.py runs/text_to_midi/final --manifest data/corpus/t2m_test.jsonl

Reads the manifest's text_to_midi rows, samples one piece per caption with the model directory
exactly as ``audiollm evaluate`` does (the task's seeded sampling: guidance 3, temperature 1,
top-p 0.95, grammar-constrained), and scores it with :func:`audiollm.metrics.notes.attribute_adherence`.
The same metric is run on each row's own notes, the corpus's ground truth: that is the
ceiling the estimators allow (a tempo word is judged at the estimate's metrical level, which
notes alone leave ambiguous; the key of a 4 s excerpt is noisy). Prints one JSON object:

  model / reference      valid_rate, instrument / tempo (all, bpm requests, class requests) / key adherence;
                         and the tempo scores of the same notes played at the requested tempo
                         (``*_fitted``: what ``audiollm generate`` writes unless --no-tempo-fit)
  model_own_plan         for a vocabulary with attribute tokens: the model's scores when it writes its
                         own tempo/key plan instead of one narrowed to what the caption asks for
  ratio_to_reference     model / reference per attribute (1.0 = as good as the ground truth)
  pieces_per_s           sampled pieces per wall second (batch 16 captions)
  reranked               with --rerank MULAN_DIR --num-samples N: N pieces per caption, each rendered
                         and scored against its caption by MuLaN; the scores of the best-scoring piece
                         ("best_of_n") and of the first piece of each caption ("first"), same samples
"""

from __future__ import annotations

import random
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import emit, log, machine, parser, run, setup  # noqa: E402

import audiollm  # noqa: E402
from audiollm.data.manifest import read_manifest  # noqa: E402
from audiollm.errors import AudioLLMError  # noqa: E402
from audiollm.evaluation.evaluate import compose_notes  # noqa: E402
from audiollm.music.render import render_notes  # noqa: E402
from audiollm.tasks import get_task  # noqa: E402
from audiollm.tasks.transcription import notes_to_json  # noqa: E402


def main() -> None:
    p = parser(__doc__.split("\n\n")[0])
    p.add_argument("model_dir", type=Path, help="a model directory trained on the text_to_midi task")
    p.add_argument("--manifest", type=Path, default=Path("data/corpus/t2m_test.jsonl"),
                   help="manifest with text_to_midi rows (default data/corpus/t2m_test.jsonl)")
    p.add_argument("--limit", type=int, default=None, help="first N captions only")
    p.add_argument("--batch-size", type=int, default=16, help="captions sampled together (default 16)")
    p.add_argument("--rerank", type=Path, default=None, metavar="MULAN_DIR",
                   help="also sample --num-samples pieces per caption and keep the one MuLaN scores best")
    p.add_argument("--num-samples", type=int, default=4, help="pieces per caption for --rerank (default 4)")
    args = p.parse_args()
    if args.num_samples < 1:
        raise AudioLLMError(f"--num-samples must be at least 1, got {args.num_samples}")
    device = setup(args)
    rows = [r for r in read_manifest(args.manifest, require_answer=False) if r.get("task") == "text_to_midi"]
    rows = rows[: 4 if args.quick and not args.limit else args.limit]
    if not rows:
        raise AudioLLMError(f"{args.manifest}: no text_to_midi rows")
    task = get_task("text_to_midi")
    model = audiollm.load(args.model_dir, device=str(device))
    rng = random.Random(args.seed)
    questions = [task.question(r, rng) for r in rows]
    log(f"{len(rows)} captions")
    t0 = time.perf_counter()
    with torch.inference_mode():
        pieces = compose_notes(model, task, rows, questions, batch_size=args.batch_size)
    predictions = [task.prediction(p) for p in pieces]
    wall = time.perf_counter() - t0
    model_scores = task.score(predictions, rows)
    model_scores.pop("n")
    own_plan = None
    if model.writes_midi and model.tokenizer.midi.attributes:
        log("again, the model writing its own tempo/key plan")
        with torch.inference_mode():
            free = compose_notes(model, task, rows, questions, batch_size=args.batch_size, follow_caption=False)
        own_plan = {k: round(v, 4) for k, v in task.score([task.prediction(p) for p in free], rows).items() if k != "n"}
    reference = task.score([notes_to_json(task.notes(r)) for r in rows], rows)
    reference.pop("n")
    result = {
        "benchmark": "text_to_midi", "manifest": str(args.manifest), "captions": len(rows),
        "machine": machine(device),
        "model": {k: round(v, 4) for k, v in model_scores.items()},
        **({"model_own_plan": own_plan} if own_plan is not None else {}),
        "reference": {k: round(v, 4) for k, v in reference.items()},
        "ratio_to_reference": {k: round(model_scores[k] / v, 3) for k, v in reference.items() if v > 0 and k in model_scores},
        "notes_per_piece": round(sum(len(p) for p in pieces) / len(rows), 1),
        "pieces_per_s": round(len(rows) / wall, 2),
    }
    if args.rerank is not None:
        result["reranked"] = reranked(task, model, rows, questions, args)
    emit(result)


def reranked(task, model, rows: list, questions: list[str], args) -> dict:
    """Adherence of the first of N pieces per caption and of the one MuLaN scores best."""
    mulan = audiollm.load(args.rerank, device=args.device)
    n = args.num_samples
    log(f"{n} pieces per caption, reranked by {args.rerank}")
    with torch.inference_mode():
        pieces = compose_notes(model, task, [r for r in rows for _ in range(n)], [q for q in questions for _ in range(n)],
                               batch_size=args.batch_size)
    best, first, gain = [], [], []
    for k, row in enumerate(rows):
        cands = pieces[k * n : (k + 1) * n]
        seconds = min(task.duration(row), task.window_seconds)
        ranked = mulan.rerank(questions[k], [render_notes(c, seconds) for c in cands])  # best first
        best.append(notes_to_json(cands[ranked[0][0]]))
        first.append(notes_to_json(cands[0]))
        gain.append(ranked[0][1] - dict(ranked)[0])
    out = {}
    for name, preds in (("first", first), ("best_of_n", best)):
        out[name] = {k: round(v, 4) for k, v in task.score(preds, rows).items() if k != "n"}
    out.update({"num_samples": n, "mulan": str(args.rerank), "mean_similarity_gain": round(sum(gain) / len(gain), 4)})
    return out


if __name__ == "__main__":
    run(main)
