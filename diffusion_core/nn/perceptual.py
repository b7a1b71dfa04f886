"""A VGG16-feature perceptual loss whose weights come from a local file.

The authors' VQ-GAN uses LPIPS (Zhang et al., 2018) on one random slice, with weights downloaded
at run time. No machine here can download anything, so the VGG16 weights are read from a file the
user provides: torchvision's `vgg16().state_dict()` saved with `torch.save` (.pth/.pt) or as
safetensors. Only the convolutional `features.*` part is used; `classifier.*` keys are ignored.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

# torchvision's VGG16 ("configuration D") feature stack: conv widths, "M" for a 2x2 max-pool.
_VGG16_CONFIG: tuple[int | str, ...] = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M",
                                        512, 512, 512, "M", 512, 512, 512)
# Indices in `features` of the ReLUs LPIPS taps: relu1_2, relu2_2, relu3_3, relu4_3, relu5_3.
# The stack stops at relu5_3: the fifth pool only feeds torchvision's classifier.
FEATURE_LAYERS: dict[str, int] = {"relu1_2": 3, "relu2_2": 8, "relu3_3": 15, "relu4_3": 22,
                                  "relu5_3": 29}
# ImageNet statistics the torchvision weights were trained with (RGB in [0, 1]).
_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)
_TORCH_SUFFIXES = (".pth", ".pt")
_SAFETENSORS_SUFFIX = ".safetensors"


class PerceptualWeightsError(ValueError):
    """A VGG16 weights file that is missing, unreadable or not VGG16's."""


class _GuardedMaxPool(nn.Module):
    """torchvision's 2x2 stride-2 max-pool, except that an axis of length 1 is kept as it is.

    Small slices (16x16 and below) reach a 1-pixel map before the last pools; pooling over a
    1-wide axis is the identity, so every layer still has a map and the loss keeps all five terms.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (N, C, H, W) -> (N, C, H', W'), H' = H // 2 (H when H == 1), likewise W."""
        kernel = tuple(min(2, size) for size in x.shape[-2:])
        return F.max_pool2d(x, kernel_size=kernel, stride=kernel)


def _feature_stack() -> nn.Sequential:
    """VGG16's `features` up to relu5_3, with torchvision's module indices (so its keys)."""
    layers: list[nn.Module] = []
    in_channels = 3
    for item in _VGG16_CONFIG:
        if item == "M":
            layers.append(_GuardedMaxPool())
        else:
            layers += [nn.Conv2d(in_channels, int(item), kernel_size=3, padding=1), nn.ReLU()]
            in_channels = int(item)
    return nn.Sequential(*layers)


class VGG16Features(nn.Module):
    """The 13 conv layers of VGG16 (with ReLUs and max-pools) in torchvision's key layout.

    `state_dict()` keys are `features.0.weight`, `features.0.bias`, ..., `features.28.bias`, so
    a file from `load_vgg16_state` loads with `load_state_dict`. Without one the weights are
    PyTorch's default random initialisation (useful only for tests).
    """

    def __init__(self) -> None:
        super().__init__()
        self.features = _feature_stack()

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """x: (N, 3, H, W), ImageNet-normalised -> the five maps of FEATURE_LAYERS, in order.

        Shapes: (N, 64, H, W), (N, 128, H/2, W/2), (N, 256, H/4, W/4), (N, 512, H/8, W/8),
        (N, 512, H/16, W/16), each size floored and never below 1.
        """
        taps = set(FEATURE_LAYERS.values())
        outputs = []
        for index, layer in enumerate(self.features):
            x = layer(x)
            if index in taps:
                outputs.append(x)
        return outputs


def _expected_shapes() -> dict[str, tuple[int, ...]]:
    """Key -> shape of every tensor in VGG16Features' state dict."""
    with torch.device("meta"):  # shapes only: no memory, no initialisation
        net = VGG16Features()
    return {key: tuple(value.shape) for key, value in net.state_dict().items()}


def _read_tensors(path: Path) -> object:
    """The raw object stored in a .pth/.pt or .safetensors file, without running pickled code."""
    if path.suffix.lower() == _SAFETENSORS_SUFFIX:
        from safetensors.torch import load_file

        return load_file(str(path), device="cpu")
    return torch.load(path, map_location="cpu", weights_only=True)


def load_vgg16_state(path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """The `features.*` tensors (float32, CPU) of a torchvision VGG16 state dict saved in `path`.

    Raises PerceptualWeightsError, with one sentence naming the file, when it is missing,
    truncated or unreadable, holds something other than tensors, or is not VGG16's (keys or
    shapes differ). Keys under `classifier.` are ignored.
    """
    path = Path(path)
    hint = "save torchvision's vgg16().state_dict() with torch.save or safetensors"
    if not path.is_file():
        raise PerceptualWeightsError(f"VGG16 weights file {path} does not exist; {hint}.")
    if path.suffix.lower() not in (*_TORCH_SUFFIXES, _SAFETENSORS_SUFFIX):
        raise PerceptualWeightsError(
            f"VGG16 weights file {path} has the extension {path.suffix!r}; expected "
            f"{', '.join(_TORCH_SUFFIXES)} (torch.save) or {_SAFETENSORS_SUFFIX}.")
    try:
        raw = _read_tensors(path)
    except Exception as exc:  # each reader has its own error types for a damaged file
        raise PerceptualWeightsError(
            f"VGG16 weights file {path} could not be read as tensors "
            f"({type(exc).__name__}: it may be truncated or not a weights file); {hint}.") from exc
    if not isinstance(raw, dict) or not all(isinstance(v, torch.Tensor) for v in raw.values()):
        raise PerceptualWeightsError(
            f"VGG16 weights file {path} does not hold a state dict of tensors; {hint}.")
    expected = _expected_shapes()
    state = {key: value for key, value in raw.items() if not str(key).startswith("classifier.")}
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected), key=str)
    wrong = sorted(key for key in set(expected) & set(state)
                   if tuple(state[key].shape) != expected[key]
                   or not state[key].is_floating_point())
    if missing or unexpected or wrong:
        problems = [f"{label} {', '.join(map(str, keys[:3]))}{' ...' if len(keys) > 3 else ''}"
                    for label, keys in (("lacks", missing), ("has unexpected keys", unexpected),
                                        ("has wrong shapes or dtypes for", wrong)) if keys]
        raise PerceptualWeightsError(
            f"VGG16 weights file {path} is not torchvision's VGG16: it {'; it '.join(problems)}; "
            f"{hint}.")
    return {key: state[key].to(torch.float32) for key in expected}


def _unit_normalise(features: torch.Tensor, eps: float = 1e-10) -> torch.Tensor:
    """Each spatial position's channel vector scaled to unit length (LPIPS's normalisation)."""
    return features / (features.pow(2).sum(dim=1, keepdim=True).sqrt() + eps)


class PerceptualLoss(nn.Module):
    """LPIPS-style distance on VGG16 features of single-channel slices, frozen.

    For each of relu1_2 ... relu5_3 the channel vectors of both images are unit-normalised, the
    squared Euclidean distance between them (summed over channels) is averaged over the map, and
    the loss is the mean over the five layers and the batch. This is LPIPS without its learned
    per-channel linear weights (Zhang et al.'s "lin" layers, a separate download that cannot be
    had here): every channel counts equally, and the layers are averaged instead of summed, so
    the value lies in [0, 4].

    The network stays in eval mode with requires_grad False; gradients flow to the inputs.
    """

    def __init__(self, weights_path: str | os.PathLike[str]) -> None:
        super().__init__()
        state = load_vgg16_state(weights_path)
        with torch.device("meta"):  # the file supplies every weight: skip a random init
            self.net = VGG16Features()
        self.net.load_state_dict(state, assign=True)
        self.net.requires_grad_(False)
        # Not persistent: ImageNet's statistics are constants, not state a checkpoint should hold.
        self.register_buffer("mean", torch.tensor(_IMAGENET_MEAN).view(1, 3, 1, 1),
                             persistent=False)
        self.register_buffer("std", torch.tensor(_IMAGENET_STD).view(1, 3, 1, 1),
                             persistent=False)
        self.train(False)

    def train(self, mode: bool = True) -> PerceptualLoss:
        """Always eval: a trainer's `model.train()` on a parent module must not unfreeze this."""
        return super().train(False)

    def _normalise(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 1, H, W) in [-1, 1] -> (N, 3, H, W) in ImageNet statistics."""
        rgb = ((x + 1.0) / 2.0).expand(-1, 3, -1, -1)
        return (rgb - self.mean) / self.std

    def forward(self, x: torch.Tensor, x_hat: torch.Tensor) -> torch.Tensor:
        """x, x_hat: (N, 1, H, W) in [-1, 1] -> scalar loss, 0 when they are equal."""
        if x.ndim != 4 or x.shape[1] != 1:
            raise ValueError(f"PerceptualLoss expects (N, 1, H, W) slices, got {tuple(x.shape)}")
        if x.shape != x_hat.shape:
            raise ValueError(f"PerceptualLoss needs equal shapes, got {tuple(x.shape)} and "
                             f"{tuple(x_hat.shape)}")
        # One pass over both halves: half the kernel launches of two separate passes.
        features = self.net(self._normalise(torch.cat([x, x_hat])))
        per_layer = []
        for both in features:
            a, b = _unit_normalise(both).chunk(2)
            per_layer.append((a - b).pow(2).sum(dim=1).mean())
        return torch.stack(per_layer).mean()
