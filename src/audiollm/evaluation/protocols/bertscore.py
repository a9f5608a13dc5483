"""BERTScore recall (Zhang et al. 2020) over any local transformers encoder.

MU-LLaMA reports ``bert_score.score(cands, refs, lang="en")`` recall: roberta-large, layer
17, no idf weighting, no baseline rescaling. That model cannot be downloaded here, so the
metric is computed by this module over an encoder directory the user names
(``AutoModel`` + ``AutoTokenizer``, e.g. a local copy of ``roberta-large`` with
``layer=17`` to reproduce the published numbers exactly, or any other encoder — the
report names the directory and layer, because scores are only comparable between runs
that used the same ones).

Recall of a candidate c against a reference r: embed both (hidden states of ``layer``),
L2-normalise each token vector, drop the tokenizer's special tokens (CLS/SEP/BOS/EOS, which
BERTScore gives weight 0 without idf), and average over reference tokens the best cosine
similarity with any candidate token: ``R = (1/|r|) Σ_{i∈r} max_{j∈c} cos(r_i, c_j)``.
An empty candidate or reference scores 0.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import torch

from audiollm.errors import AudioLLMError


class BertScorer:
    """Loads the encoder once; :meth:`recall` scores pairs in batches."""

    def __init__(self, model_dir: str | os.PathLike, layer: int | None = None, device: str = "cpu",
                 batch_size: int = 32, max_length: int = 510):
        from transformers import AutoModel, AutoTokenizer

        path = Path(model_dir).expanduser()
        if not path.is_dir() or not (path / "config.json").is_file():
            raise AudioLLMError(f"BERTScore model {path}: not a transformers model folder (no config.json)")
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(str(path))
            self.model = AutoModel.from_pretrained(str(path)).to(device).eval()
        except (OSError, ValueError) as e:
            raise AudioLLMError(f"BERTScore model {path}: cannot load it ({str(e).splitlines()[0]})") from None
        n_layers = int(getattr(self.model.config, "num_hidden_layers", 0) or 0)
        self.layer = n_layers if layer is None else int(layer)
        if not 0 <= self.layer <= n_layers:
            raise AudioLLMError(f"BERTScore layer {layer} is outside 0..{n_layers} for {path}")
        self.name = f"{path.name} (layer {self.layer} of {n_layers})"
        self.device, self.batch_size, self.max_length = device, batch_size, max_length

    @torch.no_grad()
    def _embed(self, texts: Sequence[str]) -> list[torch.Tensor]:
        """One (tokens, hidden) matrix of unit vectors per text, special tokens removed."""
        out: list[torch.Tensor] = []
        for start in range(0, len(texts), self.batch_size):
            chunk = list(texts[start : start + self.batch_size])
            enc = self.tokenizer(chunk, padding=True, truncation=True, max_length=self.max_length,
                                 return_tensors="pt", return_special_tokens_mask=True)
            special = enc.pop("special_tokens_mask").bool()
            enc = {k: v.to(self.device) for k, v in enc.items()}
            hidden = self.model(**enc, output_hidden_states=True).hidden_states[self.layer]  # (B, L, H)
            hidden = torch.nn.functional.normalize(hidden.float(), dim=-1)
            keep = enc["attention_mask"].bool().cpu() & ~special
            out.extend(hidden[i].cpu()[keep[i]] for i in range(len(chunk)))
        return out

    def recall(self, candidates: Sequence[str], references: Sequence[str]) -> list[float]:
        """BERTScore recall of each candidate against its reference."""
        if len(candidates) != len(references):
            raise AudioLLMError(f"{len(candidates)} candidates but {len(references)} references")
        cands, refs = self._embed(candidates), self._embed(references)
        scores = []
        for c, r in zip(cands, refs):
            if len(c) == 0 or len(r) == 0:
                scores.append(0.0)
                continue
            sim = r @ c.T  # (|r|, |c|) cosine similarities
            scores.append(float(sim.max(dim=1).values.mean()))
        return scores
