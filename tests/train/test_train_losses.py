"""Losses and optimisation helpers: SupCon against a per-anchor loop, L1 scale, clipping, lr schedule."""

from __future__ import annotations

import math

import pytest
import torch

from iptbench.train import clip_per_tensor, epoch_lr, l1_loss, supcon_loss, supcon_loss_reference


def _loop_supcon(f: torch.Tensor, labels: list[int], t: float) -> float:
    """SupCon written from its definition with scalar Python arithmetic, independent of both versions."""
    f = torch.nn.functional.normalize(f, dim=-1)
    n = f.shape[0]
    cos = [[float(f[i] @ f[j]) for j in range(n)] for i in range(n)]
    losses = []
    for i in range(n):
        denominator = sum(math.exp(cos[i][a] / t) for a in range(n) if a != i)
        positives = [p for p in range(n) if p != i and labels[p] == labels[i]]
        if positives:
            losses.append(-sum(cos[i][p] / t - math.log(denominator) for p in positives) / len(positives))
    return sum(losses) / len(losses)


@pytest.mark.parametrize(
    "labels", [[0, 0, 1, 1, 2, 2], [0, 1, 0, 1, 0, 1], [0, 0, 0, 1, 2, 3], [5, 5, 5, 5, 5, 5]]
)
def test_supcon_matches_a_per_anchor_loop(labels: list[int]) -> None:
    g = torch.Generator().manual_seed(len(labels) + labels[-1])
    f = torch.randn(len(labels), 5, generator=g, dtype=torch.float64)
    lab = torch.tensor(labels)
    expected = _loop_supcon(f, labels, 0.07)
    assert supcon_loss(f, lab, 0.07).item() == pytest.approx(expected, rel=1e-9)
    assert supcon_loss_reference(f, lab, 0.07).item() == pytest.approx(expected, rel=1e-9)


def test_supcon_tokens_gradients_and_chunks() -> None:
    g = torch.Generator().manual_seed(0)
    tokens = torch.randn(3, 7, 6, generator=g, dtype=torch.float64, requires_grad=True)
    images = torch.tensor([10, 11, 10])  # images 0 and 2 come from the same source
    flat_labels = images.repeat_interleave(7)
    ref = supcon_loss_reference(tokens.reshape(21, 6), flat_labels, 0.5)
    (g_ref,) = torch.autograd.grad(ref, tokens)
    for chunk in (4096, 5):  # one block, and checkpointed row blocks
        out = supcon_loss(tokens, images, 0.5, chunk_rows=chunk)
        (g_out,) = torch.autograd.grad(out, tokens)
        assert out.item() == pytest.approx(ref.item(), rel=1e-10)
        torch.testing.assert_close(g_out, g_ref, rtol=1e-8, atol=1e-10)


def test_supcon_edge_cases() -> None:
    f = torch.randn(4, 3, dtype=torch.float64)
    lone = supcon_loss(f, torch.arange(4))  # no anchor has a positive
    assert lone.item() == 0.0
    scaled = supcon_loss(f, torch.tensor([0, 0, 1, 1]), 0.1, base_temperature=0.2)
    plain = supcon_loss(f, torch.tensor([0, 0, 1, 1]), 0.1)
    assert scaled.item() == pytest.approx(plain.item() / 2)
    half = supcon_loss(f.to(torch.bfloat16), torch.tensor([0, 0, 1, 1]))
    assert half.dtype == torch.float32
    with pytest.raises(ValueError):
        supcon_loss(torch.randn(2, 4, 3), torch.tensor([0, 1, 2]))


def test_l1_is_on_the_0_255_scale() -> None:
    out, target = torch.zeros(1, 3, 4, 4), torch.full((1, 3, 4, 4), 255, dtype=torch.uint8)
    assert l1_loss(out, target).item() == 255.0


def test_clip_per_tensor_clips_each_gradient_alone() -> None:
    big, small, unused = (torch.nn.Parameter(torch.zeros(4)) for _ in range(3))
    big.grad = torch.tensor([3.0, 4.0, 0.0, 0.0])  # norm 5
    small.grad = torch.tensor([0.3, 0.4, 0.0, 0.0])  # norm 0.5, left alone
    clip_per_tensor([big, small, unused], 1.0)
    torch.testing.assert_close(big.grad, torch.tensor([0.6, 0.8, 0.0, 0.0]))
    torch.testing.assert_close(small.grad, torch.tensor([0.3, 0.4, 0.0, 0.0]))
    assert unused.grad is None


def test_epoch_lr_steps_at_milestones() -> None:
    assert [epoch_lr(5e-5, (2, 4), 0.5, e) for e in range(5)] == [5e-5, 5e-5, 2.5e-5, 2.5e-5, 1.25e-5]
