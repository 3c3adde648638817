"""The IPT architecture: parameter counts, official key names, attention equivalence, flags, training."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from iptbench.errors import IptbenchError
from iptbench.models import IPT, create_model, list_models, model_config
from iptbench.models.transformer import Attention
from iptbench.tasks import OFFICIAL_TASK_NAMES


@pytest.mark.parametrize(
    ("tasks", "count"),
    [
        ("sr-x2", 115_460_443),
        ("sr-x3", 115_645_083),
        ("sr-x4", 115_608_155),
        ("denoise-30", 115_312_731),
        (None, 118_892_394),  # the six-task pre-training model
    ],
)
def test_ipt_base_parameter_counts(tasks: str | None, count: int) -> None:
    model = create_model("ipt-base", tasks=tasks, device="meta")
    assert model.num_parameters() == count


def test_out_proj_bias_adds_36_vectors() -> None:
    model = create_model("ipt-base", tasks="sr-x2", device="meta", out_proj_bias=True)
    assert model.num_parameters() == 115_460_443 + 36 * 576


def test_official_key_names_and_shapes() -> None:
    sd = create_model("ipt-base", device="meta").state_dict()
    assert len(sd) == 381
    expected = {
        "sub_mean.weight": (3, 3, 1, 1),
        "add_mean.bias": (3,),
        "head.0.0.weight": (64, 3, 3, 3),
        "head.5.2.body.2.weight": (64, 64, 5, 5),
        "body.linear_encoding.weight": (576, 576),
        "body.mlp_head.0.weight": (2304, 576),
        "body.mlp_head.3.weight": (576, 2304),
        "body.query_embed.weight": (6, 147456),
        "body.encoder.layers.3.self_attn.in_proj_weight": (1728, 576),
        "body.encoder.layers.11.self_attn.out_proj.weight": (576, 576),
        "body.encoder.layers.0.norm2.bias": (576,),
        "body.decoder.layers.11.multihead_attn.in_proj_weight": (1728, 576),
        "body.decoder.layers.0.norm3.weight": (576,),
        "body.position_encoding.pe.weight": (256, 576),
        "body.position_encoding.position_ids": (1, 256),
        "tail.0.0.0.weight": (256, 64, 3, 3),  # x2
        "tail.1.0.0.weight": (576, 64, 3, 3),  # x3
        "tail.2.0.2.weight": (256, 64, 3, 3),  # x4: two x2 stages
        "tail.3.1.weight": (3, 64, 3, 3),  # x1: final conv only
    }
    for key, shape in expected.items():
        assert tuple(sd[key].shape) == shape, key
    assert "tail.3.0.0.weight" not in sd
    assert not any("in_proj_bias" in k or "out_proj.bias" in k for k in sd)
    counts = {
        t: len(create_model("ipt-base", tasks=t, device="meta").state_dict()) for t in OFFICIAL_TASK_NAMES[:4]
    }
    assert counts == {"sr-x2": 315, "sr-x3": 315, "sr-x4": 317, "derain": 313}


def test_mean_shift_is_stored_and_frozen() -> None:
    model = create_model("ipt-tiny", tasks="sr-x2")
    assert torch.allclose(model.sub_mean.bias, -255 * torch.tensor([0.4488, 0.4371, 0.4040]))
    assert not model.sub_mean.weight.requires_grad and not model.add_mean.bias.requires_grad


@pytest.mark.parametrize("out_bias", [False, True])
@pytest.mark.parametrize("shared", ["qkv", "qk", "kv"])
def test_attention_equals_nn_multiheadattention(out_bias: bool, shared: str) -> None:
    torch.manual_seed(0)
    dim, heads, length, batch = 48, 4, 10, 3
    ours = Attention(dim, heads, out_bias=out_bias)
    ref = torch.nn.MultiheadAttention(dim, heads, bias=out_bias)  # sequence-first, as the official code
    with torch.no_grad():
        ref.in_proj_weight.copy_(ours.in_proj_weight)
        ref.out_proj.weight.copy_(ours.out_proj.weight)
        if out_bias:
            ours.out_proj.bias.normal_()
            ref.out_proj.bias.copy_(ours.out_proj.bias)
            ref.in_proj_bias.zero_()  # the official model has none; bias=True here only gives out_proj one
    a, b = torch.randn(batch, length, dim), torch.randn(batch, length, dim)
    q, k, v = {"qkv": (a, a, a), "qk": (a, a, b), "kv": (a, b, b)}[shared]
    want = ref(q.transpose(0, 1), k.transpose(0, 1), v.transpose(0, 1), need_weights=False)[0].transpose(0, 1)
    torch.testing.assert_close(ours(q, k, v), want, rtol=1e-5, atol=1e-5)


def test_token_layout_matches_unfold_and_fold() -> None:
    body = create_model("ipt-tiny", tasks="sr-x2").body
    x = torch.randn(2, 16, 48, 48)
    tokens = body.tokens(x)
    assert torch.equal(tokens, F.unfold(x, 3, stride=3).transpose(1, 2))
    assert torch.equal(body.untokens(tokens), x)


@pytest.mark.parametrize("task", OFFICIAL_TASK_NAMES)
def test_forward_shapes_every_task(task: str) -> None:
    model = create_model("ipt-tiny").eval()
    scale = model.scale_for(task)
    with torch.inference_mode():
        out = model(torch.rand(2, 3, 48, 48) * 255, task)
    assert out.shape == (2, 3, 48 * scale, 48 * scale)


def test_forward_rejects_other_window_sizes_and_unknown_tasks() -> None:
    model = create_model("ipt-tiny", tasks="sr-x2")
    with pytest.raises(ValueError, match="48x48"):
        model(torch.rand(1, 3, 40, 48), "sr-x2")
    with pytest.raises(IptbenchError, match="hold: sr-x2"):
        model(torch.rand(1, 3, 48, 48), "derain")


def test_flags_change_keys_and_outputs() -> None:
    base = create_model("ipt-tiny", tasks="sr-x2")
    keys = set(base.state_dict())
    no_mlp = set(create_model("ipt-tiny", tasks="sr-x2", no_mlp=True).state_dict())
    assert keys - no_mlp == {
        "body.linear_encoding.weight",
        "body.linear_encoding.bias",
        "body.query_embed.weight",
        *(f"body.mlp_head.{i}.{p}" for i in (0, 3) for p in ("weight", "bias")),
    }
    no_pos = set(create_model("ipt-tiny", tasks="sr-x2", no_pos=True).state_dict())
    assert keys - no_pos == {"body.position_encoding.pe.weight", "body.position_encoding.position_ids"}
    no_norm = set(create_model("ipt-tiny", tasks="sr-x2", no_norm=True).state_dict())
    assert all(".norm" in k for k in keys - no_norm) and keys > no_norm
    # pos_every: same weights, position added inside every attention instead of once
    every = create_model("ipt-tiny", tasks="sr-x2", pos_every=True)
    every.load_state_dict(base.state_dict())
    x = torch.rand(1, 3, 48, 48) * 255
    with torch.no_grad():
        assert not torch.allclose(base(x, 0), every(x, 0))
    with pytest.raises(IptbenchError):
        model_config("ipt-tiny", pos_every=True, no_pos=True)


def test_registry() -> None:
    assert list_models() == ["ipt-base", "ipt-small", "ipt-tiny"]
    assert list_models("ipt-t*") == ["ipt-tiny"]
    assert model_config("ipt-base").tasks == OFFICIAL_TASK_NAMES
    with pytest.raises(IptbenchError, match="available"):
        create_model("ipt-huge")
    a = create_model("ipt-tiny", tasks="derain")
    b = create_model("ipt-tiny", tasks="derain")
    assert all(
        torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values(), strict=True)
    )


def test_tiny_model_overfits_one_pair(one_thread: None) -> None:
    torch.manual_seed(0)
    model: IPT = create_model("ipt-tiny", tasks="sr-x2", patch_size=24, num_layers=1)
    hr = torch.rand(1, 3, 48, 48) * 255
    lr = F.avg_pool2d(hr, 2)
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    losses = []
    for _ in range(120):
        loss = F.l1_loss(model(lr, "sr-x2"), hr)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.15 * losses[0]  # about 65 -> 5.5 with this seed
