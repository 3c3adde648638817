"""The IPT body: a ViT-style encoder-decoder over 3x3 feature patches, laid out like the official code.

Submodule and parameter names follow the official PyTorch implementation one to one, so an official
state dict loads without renaming. Internally everything is batch-first (B, L, E); the official code is
sequence-first, which only changes the layout of activations, never of weights.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class Attention(nn.Module):
    """Multi-head attention with nn.MultiheadAttention's parameter names (bias=False flavour).

    `in_proj_weight` stacks the q, k, v projections row-wise ([q; k; v], each E rows). There is no input
    bias; `out_proj.bias` exists only when `out_bias` (checkpoints written by PyTorch 1.6-1.8 carry it).
    """

    def __init__(self, dim: int, num_heads: int, dropout: float = 0.0, out_bias: bool = False) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"embedding dim {dim} is not divisible by {num_heads} heads")
        self.dim = dim
        self.num_heads = num_heads
        self.dropout = dropout
        self.in_proj_weight = nn.Parameter(torch.empty(3 * dim, dim))
        self.out_proj = nn.Linear(dim, dim, bias=out_bias)
        nn.init.xavier_uniform_(self.in_proj_weight)  # nn.MultiheadAttention's default
        if self.out_proj.bias is not None:
            nn.init.zeros_(self.out_proj.bias)

    def _heads(self, x: Tensor) -> Tensor:
        b, n, _ = x.shape
        return x.view(b, n, self.num_heads, -1).transpose(1, 2)

    def forward(self, query: Tensor, key: Tensor, value: Tensor) -> Tensor:
        e, w = self.dim, self.in_proj_weight
        # Fuse projections that share an input: one GEMM instead of two or three.
        if query is key and key is value:
            q, k, v = F.linear(query, w).chunk(3, dim=-1)
        elif query is key:
            q, k = F.linear(query, w[: 2 * e]).chunk(2, dim=-1)
            v = F.linear(value, w[2 * e :])
        else:
            q = F.linear(query, w[:e])
            if key is value:
                k, v = F.linear(key, w[e:]).chunk(2, dim=-1)
            else:
                k = F.linear(key, w[e : 2 * e])
                v = F.linear(value, w[2 * e :])
        b, n, _ = q.shape
        out = F.scaled_dot_product_attention(
            self._heads(q),
            self._heads(k),
            self._heads(v),
            dropout_p=self.dropout if self.training else 0.0,
        )
        return self.out_proj(out.transpose(1, 2).reshape(b, n, e))


def _norm(dim: int, no_norm: bool) -> nn.Module:
    return nn.Identity() if no_norm else nn.LayerNorm(dim)


class TransformerEncoderLayer(nn.Module):
    """Pre-norm self-attention + ReLU FFN; position added to q and k only when given (pos_every)."""

    def __init__(
        self, dim: int, heads: int, hidden: int, dropout: float, no_norm: bool, out_bias: bool
    ) -> None:
        super().__init__()
        self.self_attn = Attention(dim, heads, dropout, out_bias)
        self.linear1 = nn.Linear(dim, hidden)
        self.dropout = nn.Dropout(dropout)
        self.linear2 = nn.Linear(hidden, dim)
        self.norm1 = _norm(dim, no_norm)
        self.norm2 = _norm(dim, no_norm)
        self.dropout1 = nn.Dropout(dropout)
        self.dropout2 = nn.Dropout(dropout)
        # The official encoder re-initialises its in-projection (decoder layers keep Xavier).
        nn.init.kaiming_uniform_(self.self_attn.in_proj_weight, a=math.sqrt(5))

    def forward(self, x: Tensor, pos: Tensor | None = None) -> Tensor:
        h = self.norm1(x)
        qk = h if pos is None else h + pos
        x = x + self.dropout1(self.self_attn(qk, qk, h))
        h = self.norm2(x)
        return x + self.dropout2(self.linear2(self.dropout(F.relu(self.linear1(h)))))


class TransformerDecoderLayer(nn.Module):
    """Pre-norm decoder layer: the task embedding rides on the queries of both attentions."""

    def __init__(
        self, dim: int, heads: int, hidden: int, dropout: float, no_norm: bool, out_bias: bool
    ) -> None:
        super().__init__()
        self.self_attn = Attention(dim, heads, dropout, out_bias)
        self.multihead_attn = Attention(dim, heads, dropout, out_bias)
        self.linear1 = nn.Linear(dim, hidden)
        self.dropout = nn.Dropout(dropout)
        self.linear2 = nn.Linear(hidden, dim)
        self.norm1 = _norm(dim, no_norm)
        self.norm2 = _norm(dim, no_norm)
        self.norm3 = _norm(dim, no_norm)
        self.dropout1 = nn.Dropout(dropout)
        self.dropout2 = nn.Dropout(dropout)
        self.dropout3 = nn.Dropout(dropout)

    def forward(
        self, x: Tensor, memory: Tensor, pos: Tensor | None = None, query_pos: Tensor | None = None
    ) -> Tensor:
        h = self.norm1(x)
        q = h if query_pos is None else h + query_pos
        x = x + self.dropout1(self.self_attn(q, q, h))
        h = self.norm2(x)
        q = h if query_pos is None else h + query_pos
        k = memory if pos is None else memory + pos
        x = x + self.dropout2(self.multihead_attn(q, k, memory))
        h = self.norm3(x)
        return x + self.dropout3(self.linear2(self.dropout(F.relu(self.linear1(h)))))


class _Stack(nn.Module):
    """Holds `layers` so keys read `encoder.layers.i...` like the official TransformerEncoder/Decoder."""

    def __init__(self, layers: list[nn.Module]) -> None:
        super().__init__()
        self.layers = nn.ModuleList(layers)


class LearnedPositionalEncoding(nn.Module):
    def __init__(self, seq_length: int, dim: int) -> None:
        super().__init__()
        self.pe = nn.Embedding(seq_length, dim)
        # Persistent because the official checkpoints store it (1, L) int64.
        self.register_buffer("position_ids", torch.arange(seq_length).expand((1, -1)).clone())

    def forward(self) -> Tensor:
        return self.pe(self.position_ids)  # (1, L, E), broadcast over the batch


class VisionTransformer(nn.Module):
    """The shared IPT body: (B, C, P, P) features -> (B, C, P, P) features for one task index."""

    def __init__(
        self,
        *,
        img_dim: int,
        patch_dim: int,
        num_channels: int,
        num_heads: int,
        num_layers: int,
        num_queries: int,
        dropout: float = 0.0,
        no_mlp: bool = False,
        pos_every: bool = False,
        no_pos: bool = False,
        no_norm: bool = False,
        out_proj_bias: bool = False,
    ) -> None:
        super().__init__()
        if img_dim % patch_dim:
            raise ValueError(f"patch_size {img_dim} is not a multiple of patch_dim {patch_dim}")
        if pos_every and no_pos:
            raise ValueError("pos_every needs a position encoding; it cannot be combined with no_pos")
        dim = num_channels * patch_dim * patch_dim
        hidden = 4 * dim
        self.img_dim = img_dim
        self.patch_dim = patch_dim
        self.grid = img_dim // patch_dim
        self.seq_length = self.grid * self.grid
        self.embedding_dim = dim
        self.no_mlp, self.pos_every, self.no_pos = no_mlp, pos_every, no_pos

        if not no_mlp:
            self.linear_encoding = nn.Linear(dim, dim)
            self.mlp_head = nn.Sequential(
                nn.Linear(dim, hidden),
                nn.Dropout(dropout),
                nn.ReLU(),
                nn.Linear(hidden, dim),
                nn.Dropout(dropout),
            )
            # One learned vector per token position and task (num_queries x (L * E)).
            self.query_embed = nn.Embedding(num_queries, dim * self.seq_length)
        args = (dim, num_heads, hidden, dropout, no_norm, out_proj_bias)
        self.encoder = _Stack([TransformerEncoderLayer(*args) for _ in range(num_layers)])
        self.decoder = _Stack([TransformerDecoderLayer(*args) for _ in range(num_layers)])
        if not no_pos:
            self.position_encoding = LearnedPositionalEncoding(self.seq_length, dim)
        self.dropout_layer1 = nn.Dropout(dropout)
        if no_norm:
            for m in self.modules():
                if isinstance(m, nn.Linear):
                    nn.init.normal_(m.weight, std=1 / m.weight.size(1))

    def tokens(self, x: Tensor) -> Tensor:
        """(B, C, P, P) -> (B, L, C*pd*pd): raster token order, channel-major inside a token (as unfold)."""
        b, c, _, _ = x.shape
        g, pd = self.grid, self.patch_dim
        x = x.reshape(b, c, g, pd, g, pd).permute(0, 2, 4, 1, 3, 5)
        return x.reshape(b, g * g, c * pd * pd)

    def untokens(self, x: Tensor) -> Tensor:
        b = x.shape[0]
        g, pd = self.grid, self.patch_dim
        c = x.shape[-1] // (pd * pd)
        x = x.reshape(b, g, g, c, pd, pd).permute(0, 3, 1, 4, 2, 5)
        return x.reshape(b, c, g * pd, g * pd)

    def forward(
        self, x: Tensor, task_index: int, *, return_tokens: bool = False
    ) -> Tensor | tuple[Tensor, Tensor]:
        """Features for one task; with `return_tokens` also the (B, L, E) decoder tokens after the MLP head
        (what IPT's contrastive loss compares), as the official `con=True` path returns them."""
        if x.shape[-2:] != (self.img_dim, self.img_dim):
            raise ValueError(
                f"IPT body takes {self.img_dim}x{self.img_dim} windows, got {tuple(x.shape[-2:])}; "
                "tile larger images with iptbench.models.restore"
            )
        x = self.tokens(x)
        query_pos = None
        if not self.no_mlp:
            x = self.dropout_layer1(self.linear_encoding(x)) + x
            query_pos = self.query_embed.weight[task_index].view(1, self.seq_length, self.embedding_dim)
        pos = None if self.no_pos else self.position_encoding()
        if self.pos_every:
            for layer in self.encoder.layers:
                x = layer(x, pos=pos)
            memory = x
            for layer in self.decoder.layers:
                x = layer(x, memory, pos=pos, query_pos=query_pos)
        else:
            if pos is not None:
                x = x + pos
            for layer in self.encoder.layers:
                x = layer(x)
            memory = x
            for layer in self.decoder.layers:
                x = layer(x, memory, query_pos=query_pos)
        if not self.no_mlp:
            x = self.mlp_head(x) + x
        if return_tokens:
            return self.untokens(x), x
        return self.untokens(x)
