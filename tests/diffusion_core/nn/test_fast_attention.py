"""The fast attention routes against the plain attention that `blocks` writes out."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from diffusion_core.nn import fast_attention
from diffusion_core.nn.blocks import Attention, HeadProjections, LinearAttention
from diffusion_core.nn.fast_attention import dot_product_attention, is_narrow

pytestmark = pytest.mark.usefixtures("one_thread")


def _randomise_norm(att: nn.Module) -> None:
    """LayerNorm starts as the identity; random affine parameters make the test see it."""
    for p in att.norm.parameters():
        p.data.normal_()


def _output_and_gradients(att: HeadProjections, path: str, tokens: torch.Tensor,
                          *bias: torch.Tensor) -> list[torch.Tensor]:
    """The output by `path`, then the gradients of its squares' sum for the tokens and weights."""
    att.path = path
    tokens = tokens.detach().requires_grad_()
    out = att(tokens, *bias)
    return [out, *torch.autograd.grad(out.square().sum(), [tokens, *att.parameters()])]


def _all_close(fast: list[torch.Tensor], plain: list[torch.Tensor], atol: float) -> bool:
    return all(torch.allclose(a, b, atol=atol) for a, b in zip(fast, plain, strict=True))


@pytest.mark.parametrize("channels", [6, 16, 40])  # up to 2 head_channels: the C x C route
@pytest.mark.parametrize("path", ["auto", "sdpa"])
def test_softmax_attention_fast_routes_match_the_plain_one(channels, path):
    torch.manual_seed(0)
    att = Attention(channels, heads=3, head_channels=8)
    _randomise_norm(att)
    assert is_narrow(att) == (channels <= 16)
    tokens, bias = torch.randn(2, 5, channels), torch.randn(3, 5, 5)
    for extra in ((bias,), ()):
        plain = _output_and_gradients(att, "explicit", tokens, *extra)
        assert _all_close(_output_and_gradients(att, path, tokens, *extra), plain, atol=1e-4)


@pytest.mark.parametrize(("channels", "length"), [(8, 40), (40, 3), (12, 12)])
def test_linear_attention_fast_routes_match_the_plain_one(channels, length):
    # (8, 40): the folded route (C^2 <= 2 L e); (40, 3): v and the heads' outputs are formed.
    torch.manual_seed(1)
    att = LinearAttention(channels, heads=2, head_channels=8)
    _randomise_norm(att)
    tokens = torch.randn(3, length, channels)
    plain = _output_and_gradients(att, "explicit", tokens)
    assert _all_close(_output_and_gradients(att, "auto", tokens), plain, atol=1e-4)


def test_linear_attention_in_cache_sized_groups_matches_the_whole_batch(monkeypatch):
    torch.manual_seed(3)
    att = LinearAttention(8, heads=2, head_channels=8)
    tokens = torch.randn(7, 40, 8, requires_grad=True)
    whole = att(tokens)
    # 640 values per item (40 tokens x 2 heads x 8): groups of 3 items, the last one of 1.
    monkeypatch.setattr(fast_attention, "CACHE_ELEMENTS", 3 * 640)
    sizes = []
    group = fast_attention.linear_attention_group
    monkeypatch.setattr(fast_attention, "linear_attention_group",
                        lambda att, part: sizes.append(len(part)) or group(att, part))
    grouped = att(tokens)
    assert sizes == [3, 3, 1]
    assert torch.allclose(grouped, whole, atol=1e-6)
    (grad_whole,) = torch.autograd.grad(whole.square().sum(), tokens)
    (grad_grouped,) = torch.autograd.grad(grouped.square().sum(), tokens)
    assert torch.allclose(grad_grouped, grad_whole, atol=1e-5)


@pytest.mark.parametrize("channels", [8, 40])
def test_sdpa_auto_and_the_explicit_softmax_agree_within_1e_5(channels):
    torch.manual_seed(2)
    att = Attention(channels, heads=4, head_channels=16)
    tokens, bias = torch.randn(6, 9, channels), torch.randn(4, 9, 9)
    outputs = {}
    for path in ("sdpa", "auto", "explicit"):
        att.path = path
        with torch.no_grad():
            outputs[path] = att(tokens, bias)
    assert float((outputs["auto"] - outputs["explicit"]).abs().max()) < 1e-5
    assert float((outputs["sdpa"] - outputs["explicit"]).abs().max()) < 1e-5


def test_auto_attention_writes_short_sequences_out_on_the_cpu_and_fuses_long_ones(monkeypatch):
    fused = []
    sdpa = F.scaled_dot_product_attention
    monkeypatch.setattr(F, "scaled_dot_product_attention",
                        lambda *a, **kw: fused.append(a[1].shape[-2]) or sdpa(*a, **kw))
    torch.manual_seed(4)
    q = torch.randn(2, 3, 5, 8, requires_grad=True)
    short = fast_attention.CPU_SHORT_KEYS
    for keys in (short, short + 1):
        k, v, bias = torch.randn(2, 3, keys, 8), torch.randn(2, 3, keys, 8), torch.randn(3, 5, keys)
        auto = dot_product_attention(q, k, v, bias)
        reference = dot_product_attention(q, k, v, bias, path="explicit")
        plain = ((q @ k.transpose(-2, -1)) * 8 ** -0.5 + bias).softmax(dim=-1) @ v
        assert torch.allclose(auto, reference, atol=1e-5)
        assert torch.allclose(reference, plain, atol=1e-5)
        # the in-place scaling and bias leave the gradient intact
        (grad_auto,) = torch.autograd.grad(auto.square().sum(), q)
        (grad_reference,) = torch.autograd.grad(reference.square().sum(), q)
        (grad_plain,) = torch.autograd.grad(plain.square().sum(), q)
        assert torch.allclose(grad_auto, grad_reference, atol=1e-4)
        assert torch.allclose(grad_reference, grad_plain, atol=1e-4)
    assert fused == [short + 1]
    with pytest.raises(ValueError, match="attention path"):
        dot_product_attention(q, k, v, path="flash")
