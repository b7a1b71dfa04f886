"""The U-Net's blocks: slice-wise convolutions, the residual block, the written-out attention."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from diffusion_core.nn.blocks import (
    Attention,
    DepthAttention,
    HeadProjections,
    LinearAttention,
    RelativePositionBias,
    ResnetBlock,
    SliceConv,
    SliceConvTranspose,
    SpatialAttention,
)

pytestmark = pytest.mark.usefixtures("one_thread")


def _plain_attention(att: HeadProjections, tokens: torch.Tensor, bias: torch.Tensor | None = None,
                     *, linear: bool = False) -> torch.Tensor:
    """The textbook formula from the module's weights: LN, q k v, heads, softmax, out."""
    x = F.layer_norm(tokens, tokens.shape[-1:], att.norm.weight, att.norm.bias, att.norm.eps)
    n, length, _ = x.shape
    q, k, v = (x @ att.to_qkv.weight.T).split(att.heads * att.head_channels, dim=-1)
    q, k, v = (t.view(n, length, att.heads, att.head_channels).transpose(1, 2)
               for t in (q, k, v))
    scale = att.head_channels ** -0.5
    if linear:
        out = (q.softmax(-1) * scale) @ (k.softmax(-2).transpose(-2, -1) @ v)
    else:
        scores = q @ k.transpose(-2, -1) * scale + (0 if bias is None else bias)
        out = scores.softmax(-1) @ v
    out = out.transpose(1, 2).reshape(n, length, -1)
    return out @ att.to_out.weight.T + att.to_out.bias


def _randomise_norm(att: nn.Module) -> None:
    """LayerNorm starts as the identity; random affine parameters make the test see it."""
    for p in att.norm.parameters():
        p.data.normal_()


@pytest.mark.parametrize("channels", [6, 40])
def test_softmax_attention_written_out_is_the_textbook_formula(channels):
    torch.manual_seed(0)
    att = Attention(channels, heads=3, head_channels=8)
    _randomise_norm(att)
    att.path = "explicit"
    tokens, bias = torch.randn(2, 5, channels), torch.randn(3, 5, 5)
    assert torch.allclose(att(tokens, bias), _plain_attention(att, tokens, bias), atol=1e-5)
    assert torch.allclose(att(tokens), _plain_attention(att, tokens), atol=1e-5)


def test_linear_attention_written_out_is_the_textbook_formula():
    torch.manual_seed(1)
    att = LinearAttention(12, heads=2, head_channels=8)
    _randomise_norm(att)
    att.path = "explicit"
    tokens = torch.randn(3, 7, 12)
    assert torch.allclose(att(tokens), _plain_attention(att, tokens, linear=True), atol=1e-5)


def test_relative_position_bias_is_one_value_per_offset_clipped_at_max_distance():
    bias = RelativePositionBias(heads=2, max_distance=3)
    bias.values.data = torch.arange(14.0).view(2, 7)  # offsets -3..3 -> columns 0..6
    table = bias(6).detach()
    assert table.shape == (2, 6, 6)
    for i in range(6):
        for j in range(6):
            offset = max(-3, min(3, j - i))
            assert float(table[1, i, j]) == 7 + offset + 3


def _depth_permuted(module: nn.Module, x: torch.Tensor, order: torch.Tensor) -> float:
    """max |f(x[:, :, order]) - f(x)[:, :, order]|: zero for an order-blind block."""
    with torch.no_grad():
        return float((module(x[:, :, order]) - module(x)[:, :, order]).abs().max())


def test_depth_attention_knows_slice_order_only_through_its_bias():
    torch.manual_seed(3)
    block = DepthAttention(8, heads=2, head_channels=8, max_distance=4)
    x, order = torch.randn(2, 8, 6, 3, 3), torch.tensor([2, 0, 5, 1, 4, 3])
    nn.init.normal_(block.position_bias.values)
    assert _depth_permuted(block, x, order) > 1e-2
    nn.init.zeros_(block.position_bias.values)
    assert _depth_permuted(block, x, order) < 1e-5


def test_depth_attention_mixes_depth_only_and_spatial_attention_slices_only():
    torch.manual_seed(4)
    depth, spatial = DepthAttention(8, 2, 8), SpatialAttention(8, 2, 8)
    x = torch.randn(1, 8, 4, 3, 3)
    poked = x.clone()
    poked[0, :, 1, 2, 0] += torch.randn(8)  # one voxel of slice 1 (not a constant: LN removes it)
    with torch.no_grad():
        moved_depth = (depth(poked) - depth(x)).abs().sum(dim=1)[0] > 1e-6  # (D, H, W)
        moved_spatial = (spatial(poked) - spatial(x)).abs().sum(dim=1)[0] > 1e-6
    assert moved_depth[:, 2, 0].all() and moved_depth.sum() == 4  # its column, every slice
    assert moved_spatial[1].all() and moved_spatial.sum() == 9  # its slice, every position


def test_spatial_attention_in_2d_is_the_3d_one_on_a_single_slice():
    torch.manual_seed(5)
    block = SpatialAttention(8, 2, 8, linear=True)
    x = torch.randn(2, 8, 4, 5)
    with torch.no_grad():
        assert torch.allclose(block(x), block(x[:, :, None])[:, :, 0], atol=1e-6)


@pytest.mark.parametrize(("stride", "transposed"), [(1, False), (2, False), (2, True)])
def test_slice_convolutions_equal_a_conv3d_with_a_depth_1_kernel(stride, transposed):
    torch.manual_seed(6)
    kernel, padding = (3, 1) if stride == 1 else (4, 1)
    two_d = (SliceConvTranspose if transposed else SliceConv)(5, 7, kernel, stride=stride,
                                                              padding=padding)
    three_d = (nn.ConvTranspose3d if transposed else nn.Conv3d)(
        5, 7, (1, kernel, kernel), stride=(1, stride, stride), padding=(0, padding, padding))
    three_d.weight.data = two_d.weight.data[:, :, None].clone()
    three_d.bias.data = two_d.bias.data.clone()
    x = torch.randn(2, 5, 3, 8, 6)
    for layout in (torch.contiguous_format, torch.channels_last_3d):
        out = two_d(x.contiguous(memory_format=layout))
        assert out.shape == three_d(x).shape
        assert torch.allclose(out, three_d(x), atol=1e-5)


def test_resnet_block_with_an_in_plane_kernel_is_slice_wise():
    block = ResnetBlock(3, 4, 6, kernel_size=(1, 3, 3), norm_groups=2, time_dim=5)
    assert all(isinstance(c, SliceConv) for c in (block.conv1, block.conv2, block.skip))
    assert isinstance(ResnetBlock(3, 4, 6, norm_groups=2).conv1, nn.Conv3d)
    x = torch.randn(2, 4, 3, 4, 4)
    out = block(x, torch.randn(2, 5))
    assert out.shape == (2, 6, 3, 4, 4)
    poked = x.clone()
    poked[:, :, 0] += 1.0  # slice 0 only: GroupNorm statistics span depth, convolutions do not
    assert not torch.allclose(block(poked, torch.zeros(2, 5))[:, :, 1:],
                              block(x, torch.zeros(2, 5))[:, :, 1:])
    with pytest.raises(ValueError, match="time embedding"):
        block(x)
