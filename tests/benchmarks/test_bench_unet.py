"""benchmarks/bench_unet.py: its training step is the trainer's, its arithmetic filter is right."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

from diffusion_core.nn.config import UNetConfig
from diffusion_core.nn.unet import UNet

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_unet.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_unet", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_train_step_uses_the_trainers_fused_adam_and_changes_every_weight(bench, monkeypatch):
    built = []
    original = torch.optim.Adam.__init__

    def record(self, *args, **kwargs):
        built.append(kwargs)
        original(self, *args, **kwargs)

    monkeypatch.setattr(torch.optim.Adam, "__init__", record)
    torch.manual_seed(0)
    model = UNet(UNetConfig(channels=3, base_channels=8, heads=2, head_channels=8,
                            norm_groups=4, channel_multipliers=(1, 2)))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    bench._train_step(model, torch.randn(1, 3, 2, 4, 4))()
    assert [kwargs.get("fused") for kwargs in built] == [True]  # DDPMTask.build_optimizers
    changed = [not torch.equal(before[k], v) for k, v in model.state_dict().items()]
    assert all(changed)


@pytest.mark.parametrize(("name", "computes"), [
    ("aten::mm", True), ("aten::bmm", True), ("aten::convolution_backward", True),
    ("aten::mkldnn_convolution", True), ("aten::_softmax_backward_data", True),
    ("aten::native_group_norm", True), ("aten::_fused_adam_", True), ("aten::add_", True),
    ("aten::conv2d", False), ("aten::convolution", False), ("aten::_convolution", False),
    ("aten::matmul", False), ("aten::_slow_conv2d_forward", True),
    ("aten::copy_", False), ("aten::_to_copy", False), ("aten::view", False),
    ("aten::transpose", False), ("aten::empty", False), ("aten::cat", False),
    ("Optimizer.step#Adam.step", False),
])
def test_arithmetic_kernels_are_told_from_dispatch_views_and_copies(bench, name, computes):
    assert bench._is_arithmetic(name) is computes
