"""Joint CTC/attention decoding: the encoder's CTC head re-scores the LM's next-token choices.

A model trained with a CTC head (``model.heads: {ctc: w}``) has two views of a transcript: the LM (which
knows how sentences go, and can talk itself into a familiar sentence the audio does not
support) and the CTC head on the encoder frames (which reads the sounds, one frame at a time,
with no sentence prior). Hybrid CTC/attention decoding (Watanabe et al., 2017, as in ESPnet)
scores each candidate next token ``c`` of a prefix ``g`` by

    (1 - λ) · log p_lm(c | g, audio)  +  λ · [log p_ctc(g + c… | audio) - log p_ctc(g… | audio)]

where ``p_ctc(h… | audio)`` is the CTC *prefix* probability: the total probability of every
frame alignment whose label sequence starts with ``h``. For end-of-sequence the CTC term is
the probability that the labels are exactly ``g``. λ is the ``weight``.

:class:`CTCPrefixScorer` keeps, per row, the CTC forward variables of the prefix decoded so
far (``r_n``: paths ending in the prefix's last label, ``r_b``: ending in blank, both (T,) in
log space), scores the LM's top ``candidates`` tokens each step, and advances to the chosen
one. A batch holds rows of different lengths: frames past a row's length are given blank
probability 1 and label probability 0, which leaves every prefix probability unchanged, so
all rows share one loop over frames. Rows with ``active`` False (not transcripts) are passed
through untouched. It is a logits processor of the decoding loop
(`audiollm.decoding.processors`): called on each step's logits before a token is picked,
told the pick after.
"""

from __future__ import annotations

import torch

NEG_INF = float("-inf")


class CTCPrefixScorer:
    """CTC prefix scores for batched greedy/sampled decoding (see the module docstring).

    log_probs: (B, T, V + 1) CTC log-probabilities over the LM vocabulary plus the blank (last
    index); lengths: (B,) real frames per row; active: (B,) bool, the rows to re-score;
    candidates: how many of the LM's best tokens are re-scored each step (the others are
    ruled out for active rows).
    """

    def __init__(self, log_probs: torch.Tensor, lengths: torch.Tensor, *, weight: float, eos_id: int | None,
                 active: torch.Tensor | None = None, candidates: int = 8):
        if not 0.0 < weight <= 1.0:
            raise ValueError(f"CTC decoding weight must be in (0, 1], got {weight}")
        B, T, C = log_probs.shape
        self.weight = float(weight)
        self.eos_id = eos_id
        self.candidates = int(candidates)
        self.blank = C - 1
        lengths = lengths.to(log_probs.device).long()
        x = log_probs.float().clone()
        past = torch.arange(T, device=x.device)[None, :] >= lengths[:, None]  # (B, T)
        x[past] = NEG_INF
        x[..., self.blank] = x[..., self.blank].masked_fill(past, 0.0)
        self.x = x  # (B, T, V + 1)
        self.active = (torch.ones(B, dtype=torch.bool) if active is None else active.bool().cpu()).tolist()
        # The empty prefix: no label yet, so every path so far is all blanks.
        self.r_n = torch.full((B, T), NEG_INF, device=x.device)
        self.r_b = torch.cumsum(x[..., self.blank], dim=1)
        self.last = torch.full((B,), -1, dtype=torch.long, device=x.device)
        self.score = torch.zeros(B, device=x.device)  # log p_ctc(prefix…) of each row's prefix
        self.pending: dict[int, tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]] = {}

    def _extend(self, rows: torch.Tensor, cand: torch.Tensor):
        """Forward variables and prefix scores of prefix + each candidate: rows (b,), cand (b, K)."""
        x = self.x[rows]  # (b, T, C)
        r_n, r_b, last = self.r_n[rows], self.r_b[rows], self.last[rows]  # (b, T), (b, T), (b,)
        b, T, _ = x.shape
        xc = torch.gather(x, 2, cand[:, None, :].expand(b, T, cand.shape[1])).transpose(1, 2)  # (b, K, T)
        x_blank = x[..., self.blank][:, None, :]  # (b, 1, T)
        # phi: probability of the prefix ending by frame t in a state the new label may follow
        # (a repeated label needs a blank in between).
        total = torch.logaddexp(r_n, r_b)[:, None, :]  # (b, 1, T)
        phi = torch.where((cand == last[:, None])[:, :, None], r_b[:, None, :], total)  # (b, K, T)
        new_n = torch.full_like(xc, NEG_INF)
        new_b = torch.full_like(xc, NEG_INF)
        empty = (last < 0)[:, None]  # (b, 1): the prefix is empty, the label may start at frame 0
        new_n[:, :, 0] = torch.where(empty, xc[:, :, 0], torch.full_like(xc[:, :, 0], NEG_INF))
        psi = new_n[:, :, 0].clone()
        for t in range(1, T):
            new_n[:, :, t] = torch.logaddexp(new_n[:, :, t - 1], phi[:, :, t - 1]) + xc[:, :, t]
            new_b[:, :, t] = torch.logaddexp(new_b[:, :, t - 1], new_n[:, :, t - 1]) + x_blank[:, :, t]
            psi = torch.logaddexp(psi, phi[:, :, t - 1] + xc[:, :, t])
        if self.eos_id is not None:  # ending here: the labels are exactly the prefix
            psi = torch.where(cand == self.eos_id, total[:, :, -1].expand_as(psi), psi)
        return new_n, new_b, psi

    branches = 1

    def __call__(self, rows: list[int], logits: torch.Tensor) -> torch.Tensor:
        """Joint scores for the active rows among ``rows`` (original batch indices of the
        (b, V) ``logits``); other rows and all but the top candidates get -inf."""
        use = [j for j, r in enumerate(rows) if self.active[r]]
        self.pending = {}
        if not use:
            return logits
        use_t = torch.tensor(use, device=logits.device)
        orig = torch.tensor([rows[j] for j in use], device=self.x.device)
        att = torch.log_softmax(logits[use_t].float(), dim=-1)  # (u, V)
        k = min(self.candidates, att.shape[-1])
        att_top, cand = att.topk(k, dim=-1)  # (u, K)
        cand_ctc = cand.to(self.x.device)
        new_n, new_b, psi = self._extend(orig, cand_ctc)
        gain = psi - self.score[orig][:, None]  # (u, K): log p_ctc(prefix + c…) - log p_ctc(prefix…)
        joint = (1 - self.weight) * att_top + self.weight * gain.to(att_top.device)
        # A row whose every candidate is impossible for CTC (more labels than frames) keeps the LM's scores.
        joint = torch.where(torch.isfinite(joint).any(-1, keepdim=True), joint, att_top)
        out = logits.float().clone()
        out[use_t] = NEG_INF
        out[use_t[:, None], cand] = joint
        for i, j in enumerate(use):
            self.pending[rows[j]] = (cand_ctc[i], new_n[i], new_b[i], psi[i])
        return out

    def advance(self, rows: list[int], next_tok: torch.Tensor) -> None:
        """Move each re-scored row's prefix on by the token it took."""
        for j, r in enumerate(rows):
            if r not in self.pending:
                continue
            cand, new_n, new_b, psi = self.pending[r]
            hit = (cand == int(next_tok[j])).nonzero()
            if len(hit) == 0:  # a token outside the re-scored candidates (not reachable greedily)
                continue
            i = int(hit[0])
            self.r_n[r], self.r_b[r] = new_n[i], new_b[i]
            self.last[r] = cand[i]
            self.score[r] = psi[i]
        self.pending = {}
