"""MuLaN benchmark: retrieval metrics, zero-shot accuracy, embedding speed, ONNX audio tower.

    python benchmarks/mulan.py runs/mulan_quickstart/final --manifest data/corpus/test.jsonl

Prints one JSON object:
  retrieval     text→audio / audio→text Recall@1/5/10 and median rank over the manifest's
                caption rows (each clip against every caption of the set)
  zero_shot     accuracy of the best-matching label prompt for each label column present
                (family, instrument), each class embedded through the prompt ensemble
                (--template, default the model's zero-shot prompts) and as the bare class name
  speed         embeddings/s for 10 s clips at batch 32 (eager, this machine's threads)
  real_recordings  zero-shot ranking of trumpet / strings / drums / vibraphone for each of
                the four recordings in ../shared/data/music, and whether the true one is first
  onnx          the audio tower (log-mel in → embedding out) exported to ONNX: max |diff| vs
                eager (≤ 1e-4 passes) and ONNX Runtime speed vs eager on the same batch;
                {"skipped": reason} when onnx/onnxruntime are not installed
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import audiollm  # noqa: E402
from audiollm.audio import load_audio  # noqa: E402
from audiollm.data.manifest import read_manifest  # noqa: E402
from audiollm.inference.embedding import DEFAULT_PROMPTS, zero_shot_accuracy  # noqa: E402
from audiollm.metrics.retrieval import retrieval_metrics  # noqa: E402


class AudioTowerGraph(torch.nn.Module):
    """Log-mel (B, n_mels, F) of equal-length clips → embeddings: the exportable part."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        m = self.model
        lengths = torch.full((features.shape[0],), features.shape[2], dtype=torch.long)
        return torch.nn.functional.normalize(m.audio_proj(m.audio(features, lengths)), dim=-1)


def timed(fn, repeats: int) -> float:
    fn()  # warm-up
    t = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - t) / repeats


def onnx_check(model, batch: int, seconds: float, repeats: int) -> dict:
    try:
        import onnx  # noqa: F401
        import onnxruntime as ort
    except ImportError as e:
        return {"skipped": f"{e.name} not installed (pip install 'audiollm[mulan]')"}
    wav = torch.randn(batch, int(seconds * 16000)) * 0.1
    features, _ = model.frontend(wav, torch.full((batch,), wav.shape[1]))
    graph = AudioTowerGraph(model).eval()
    with torch.no_grad():
        eager = graph(features)
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "audio_tower.onnx"
        torch.onnx.export(graph, (features,), str(path), input_names=["features"], output_names=["embedding"],
                          dynamic_axes={"features": {0: "batch"}, "embedding": {0: "batch"}}, opset_version=17,
                          dynamo=False)
        sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        feed = {"features": features.numpy()}
        out = sess.run(None, feed)[0]
        diff = float((torch.from_numpy(out) - eager).abs().max())
        t_ort = timed(lambda: sess.run(None, feed), repeats)
    with torch.no_grad():
        t_eager = timed(lambda: graph(features), repeats)
    return {"max_abs_diff": diff, "parity_ok": diff <= 1e-4, "batch": batch, "clip_seconds": seconds,
            "eager_s": round(t_eager, 4), "onnxruntime_s": round(t_ort, 4), "speedup_vs_eager": round(t_eager / t_ort, 3)}


# The four real recordings in ../shared/data/music and the label each should rank first.
REAL_MUSIC = Path(__file__).resolve().parents[2] / "shared" / "data" / "music"
REAL_LABELS = ("trumpet", "strings", "drums", "vibraphone")
REAL_TRUTH = {"solo-trumpet": "trumpet", "string_orchestra": "strings", "Drum-bass": "drums", "Vibe_Ace": "vibraphone"}


def real_recordings(mulan, templates: list[str]) -> dict:
    """Zero-shot ranking of REAL_LABELS for each real recording (its first 10 s)."""
    if not REAL_MUSIC.is_dir():
        return {"skipped": f"{REAL_MUSIC} not found"}
    out = {}
    for path in sorted(REAL_MUSIC.glob("*.ogg")):
        truth = next((v for k, v in REAL_TRUTH.items() if k in path.name), None)
        ranked = mulan.tag(load_audio(path, duration=10.0), REAL_LABELS, templates=templates)
        out[path.name] = {"truth": truth, "ranking": [[l, round(p, 4)] for l, p in ranked],
                          "truth_ranks_first": ranked[0][0] == truth}
    out["first_rate"] = sum(v["truth_ranks_first"] for v in out.values()) / max(1, len(out))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model_dir", type=Path, help="a trained MuLaN model directory")
    ap.add_argument("--manifest", type=Path, required=True, help="manifest whose caption rows are the test pairs")
    ap.add_argument("--limit", type=int, default=0, help="use only the first N pairs (0 = all)")
    ap.add_argument("--batch", type=int, default=32, help="batch size for the speed figures (default 32)")
    ap.add_argument("--seconds", type=float, default=10.0, help="clip length for the speed figures (default 10)")
    ap.add_argument("--repeats", type=int, default=3, help="timed repeats (default 3)")
    ap.add_argument("--template", action="append", default=None,
                    help="zero-shot prompt containing {label}; repeat to average several "
                         f"(default {' / '.join(DEFAULT_PROMPTS)})")
    args = ap.parse_args()

    mulan = audiollm.load(args.model_dir)
    model, tok = mulan.model, mulan.tokenizer
    rows = [r for r in read_manifest(args.manifest) if r["task"] == "caption"]
    if args.limit:
        rows = rows[: args.limit]
    if not rows:
        raise SystemExit(f"{args.manifest}: no caption rows")
    a = torch.from_numpy(mulan.embed_audio([r["audio"] for r in rows], batch_size=32))
    t = torch.from_numpy(mulan.embed_text([r["answer"] for r in rows]))
    templates = args.template or list(DEFAULT_PROMPTS)
    result = {"model_dir": str(args.model_dir), "pairs": len(rows), "retrieval": retrieval_metrics(a, t),
              "zero_shot": {"prompts": templates}}
    for column in ("family", "instrument"):
        labels = [r.get(column) for r in rows]
        if all(isinstance(l, str) for l in labels) and len(set(labels)) > 1:
            result["zero_shot"][f"{column}_accuracy"] = zero_shot_accuracy(model, tok, a, labels, templates=templates)
            result["zero_shot"][f"{column}_accuracy_bare_label"] = zero_shot_accuracy(model, tok, a, labels,
                                                                                      templates=["{label}"])
            result["zero_shot"][f"{column}_classes"] = len(set(labels))

    result["real_recordings"] = real_recordings(mulan, templates)

    wav = torch.randn(args.batch, int(args.seconds * 16000)) * 0.1
    lengths = torch.full((args.batch,), wav.shape[1])
    with torch.no_grad():
        per_batch = timed(lambda: model.embed_audio(wav, lengths), args.repeats)
    result["speed"] = {"embeddings_per_s": round(args.batch / per_batch, 2), "batch": args.batch,
                       "clip_seconds": args.seconds, "threads": torch.get_num_threads()}
    result["onnx"] = onnx_check(model, args.batch, args.seconds, args.repeats)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
