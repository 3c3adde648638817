"""IPT's training losses: L1 on the 0-255 scale plus a supervised-contrastive term on decoder tokens.

The contrastive term follows the official MindSpore `SupConLoss` as used by IPT: every token is an
anchor, its positives are the other tokens of the same source image, the softmax denominator runs over
all other tokens of the batch, similarity is cosine / temperature, and the loss is the mean (over
anchors) of minus the mean log-probability of the positives, times temperature / base temperature.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.checkpoint import checkpoint

DEFAULT_TEMPERATURE = 0.07
# Rows of the N x N similarity matrix materialised at once. Above this the log-sum-exp is computed in
# recomputed (checkpointed) row blocks, so ipt-base's 64 x 256 = 16k tokens need ~256 MB, not ~2 GB.
DEFAULT_CHUNK_ROWS = 4096


def l1_loss(output: Tensor, target: Tensor) -> Tensor:
    """Mean absolute error on the 0-255 scale, as the official code (EDSR `1*L1` with rgb_range 255 and
    MindSpore's L1 on mean-shifted 0-255 tensors; the shift cancels): the 0.1 contrastive weight was tuned
    against this scale, so dividing by 255 would silently make the contrastive term 255x stronger."""
    return (output.float() - target.float()).abs().mean()


def _token_labels(features: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
    """(N, E) features and (N,) group ids; (B, L, E) features take one label per image."""
    if features.dim() == 3:
        b, length, e = features.shape
        if labels.shape != (b,):
            raise ValueError(f"labels must have shape ({b},) for features {tuple(features.shape)}")
        return features.reshape(b * length, e), labels.repeat_interleave(length)
    if features.dim() != 2 or labels.shape != features.shape[:1]:
        raise ValueError(f"features {tuple(features.shape)} and labels {tuple(labels.shape)} do not match")
    return features, labels


def _at_least_fp32(x: Tensor) -> Tensor:
    # bf16 cosines / 0.07 lose ~2 digits before the exp; float64 is kept for exact tests.
    return x if x.dtype == torch.float64 else x.float()


def _row_logsumexp(f: Tensor, start: int, stop: int, inv_t: float) -> Tensor:
    """log sum_{j != i} exp(cos_ij / T) for anchors start..stop-1 (self-similarity excluded)."""
    sim = (f[start:stop] @ f.T) * inv_t
    rows = torch.arange(stop - start, device=f.device)
    # -inf on the self column instead of subtracting exp(1/T) afterwards: the self term is the largest
    # in every row, so subtracting it would cancel catastrophically.
    sim[rows, rows + start] = -math.inf
    return torch.logsumexp(sim, dim=1)


def supcon_loss(
    features: Tensor,
    labels: Tensor,
    temperature: float = DEFAULT_TEMPERATURE,
    base_temperature: float | None = None,
    *,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
) -> Tensor:
    """Supervised-contrastive loss over tokens (vectorised; equals `supcon_loss_reference`).

    features: (B, L, E) decoder tokens with labels (B,) source-image ids, or (N, E) with labels (N,).
    Anchors without any positive are left out of the mean (they would divide by zero); with IPT's
    256 tokens per window every anchor has at least 255. Computed in float32 (float64 stays float64).
    """
    f, lab = _token_labels(features, labels)
    f = F.normalize(_at_least_fp32(f), dim=-1)
    n = f.shape[0]
    inv_t = 1.0 / temperature
    scale = temperature / (base_temperature if base_temperature is not None else temperature)
    _, group, counts = torch.unique(lab, return_inverse=True, return_counts=True)
    n_pos = (counts[group] - 1).to(f.dtype)
    # Sum over positives of cos_ip, without an N x N mask: f_i . (sum of f over i's group) - f_i . f_i.
    group_sum = torch.zeros(counts.numel(), f.shape[1], dtype=f.dtype, device=f.device)
    group_sum = group_sum.index_add(0, group, f)
    pos_sim = ((f * group_sum[group]).sum(1) - (f * f).sum(1)) * inv_t
    if n <= chunk_rows:
        lse = _row_logsumexp(f, 0, n, inv_t)
    else:
        lse = torch.cat(
            [
                checkpoint(_row_logsumexp, f, s, min(s + chunk_rows, n), inv_t, use_reentrant=False)
                for s in range(0, n, chunk_rows)
            ]
        )
    has_pos = n_pos > 0
    if not bool(has_pos.any()):
        return f.sum() * 0.0  # keeps the graph; nothing to contrast
    mean_log_prob = (pos_sim - n_pos * lse)[has_pos] / n_pos[has_pos]
    return -scale * mean_log_prob.mean()


def supcon_loss_reference(
    features: Tensor,
    labels: Tensor,
    temperature: float = DEFAULT_TEMPERATURE,
    base_temperature: float | None = None,
) -> Tensor:
    """The same loss written anchor by anchor, as the SupCon paper states it (slow; tests and benchmarks)."""
    f, lab = _token_labels(features, labels)
    f = F.normalize(_at_least_fp32(f), dim=-1)
    base = base_temperature if base_temperature is not None else temperature
    terms: list[Tensor] = []
    for i in range(f.shape[0]):
        others = torch.arange(f.shape[0], device=f.device) != i
        logits = (f[others] @ f[i]) / temperature
        log_denominator = torch.logsumexp(logits, dim=0)
        positives = lab[others] == lab[i]
        if not bool(positives.any()):
            continue
        log_prob = logits[positives] - log_denominator
        terms.append(-(temperature / base) * log_prob.mean())
    if not terms:
        return f.sum() * 0.0
    return torch.stack(terms).mean()
