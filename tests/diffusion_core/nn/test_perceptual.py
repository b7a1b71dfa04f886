"""VGG16 features in torchvision's layout, the weights-file checks and the perceptual loss."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from diffusion_core.nn.perceptual import (
    PerceptualLoss,
    PerceptualWeightsError,
    VGG16Features,
    load_vgg16_state,
)

# torchvision's vgg16 `features`, written out here independently of the module under test.
TORCHVISION_VGG16 = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M",
                     512, 512, 512, "M"]
TAPS = (3, 8, 15, 22, 29)  # relu1_2, relu2_2, relu3_3, relu4_3, relu5_3 in torchvision's indices


def _torchvision_features() -> nn.Sequential:
    """The reference stack, module for module as torchvision builds it (in-place ReLUs)."""
    layers: list[nn.Module] = []
    c_in = 3
    for item in TORCHVISION_VGG16:
        if item == "M":
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
        else:
            layers += [nn.Conv2d(c_in, item, kernel_size=3, padding=1), nn.ReLU(inplace=True)]
            c_in = item
    return nn.Sequential(*layers)


@pytest.fixture(scope="module")
def reference() -> nn.Sequential:
    """A torchvision-layout stack with seeded He-scaled random weights (no activations blow up)."""
    torch.manual_seed(0)
    stack = _torchvision_features()
    for layer in stack:
        if isinstance(layer, nn.Conv2d):
            fan_in = layer.weight[0].numel()
            nn.init.normal_(layer.weight, std=(2.0 / fan_in) ** 0.5)
            nn.init.normal_(layer.bias, std=0.01)
    return stack.eval()


@pytest.fixture(scope="module")
def weight_files(reference, tmp_path_factory) -> dict[str, Path]:
    """The reference saved as torchvision's full state dict, as .pth and as .safetensors."""
    state = {f"features.{key}": value.clone() for key, value in reference.state_dict().items()}
    # torchvision's file also carries classifier.* (4096 x 25088 and more, 0.5 GB); the loader
    # must ignore those keys whatever their shapes, so small stand-ins keep the test fast.
    for index in (0, 3, 6):
        state[f"classifier.{index}.weight"] = torch.randn(4, 8)
        state[f"classifier.{index}.bias"] = torch.randn(4)
    folder = tmp_path_factory.mktemp("vgg")
    files = {"pth": folder / "vgg16.pth", "safetensors": folder / "vgg16.safetensors"}
    torch.save(state, files["pth"])
    save_file(state, str(files["safetensors"]))
    return files


@pytest.mark.parametrize("kind", ["pth", "safetensors"])
def test_torchvision_layout_file_round_trips(kind, reference, weight_files):
    """Both formats give exactly the reference's features.* tensors, classifier.* left out."""
    state = load_vgg16_state(weight_files[kind])
    expected = {f"features.{key}": value for key, value in reference.state_dict().items()}
    assert sorted(state) == sorted(expected)
    assert all(torch.equal(state[key], expected[key]) for key in expected)


def test_loaded_network_gives_the_reference_features(reference, weight_files):
    """Our stack with the file's weights reproduces torchvision's five ReLU maps bit for bit."""
    net = VGG16Features()
    net.load_state_dict(load_vgg16_state(weight_files["pth"]))
    x = torch.randn(1, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    expected, h = [], x
    with torch.no_grad():
        for index, layer in enumerate(reference[: TAPS[-1] + 1]):  # the 5th pool follows
            h = layer(h)
            if index in TAPS:
                expected.append(h.clone())
        got = net(x)
    assert len(got) == len(expected) == 5
    for ours, theirs in zip(got, expected, strict=True):
        assert torch.equal(ours, theirs)


@pytest.fixture(scope="module")
def random_net() -> VGG16Features:
    """VGG16Features with PyTorch's default initialisation, seeded."""
    torch.manual_seed(0)
    return VGG16Features()


def test_random_init_feature_shapes_at_32(random_net):
    """Seeded random weights: the five maps have VGG16's widths and halve in size each stage."""
    with torch.no_grad():
        maps = random_net(torch.randn(1, 3, 32, 32))
    assert [tuple(m.shape) for m in maps] == [(1, 64, 32, 32), (1, 128, 16, 16), (1, 256, 8, 8),
                                              (1, 512, 4, 4), (1, 512, 2, 2)]


def test_small_maps_keep_all_five_layers(random_net):
    """8x8 and odd 5x7 inputs reach 1-pixel maps and still give five finite feature maps."""
    with torch.no_grad():
        small = random_net(torch.randn(1, 3, 8, 8))
        odd = random_net(torch.randn(1, 3, 5, 7))
    assert [tuple(m.shape[-2:]) for m in small] == [(8, 8), (4, 4), (2, 2), (1, 1), (1, 1)]
    assert [tuple(m.shape[-2:]) for m in odd] == [(5, 7), (2, 3), (1, 1), (1, 1), (1, 1)]
    assert all(torch.isfinite(m).all() for m in small + odd)


@pytest.fixture(scope="module")
def loss(weight_files) -> PerceptualLoss:
    """The perceptual loss built from the .pth file."""
    return PerceptualLoss(weight_files["pth"])


def _slices(size: int = 16) -> torch.Tensor:
    """A smooth single-channel slice in [-1, 1], (1, 1, size, size)."""
    grid = torch.linspace(-3.0, 3.0, size)
    image = torch.sin(grid[:, None] + 0.5 * grid[None, :]) * torch.cos(0.7 * grid[None, :])
    return image[None, None]


def test_loss_is_zero_for_identical_slices(loss):
    """The distance of a slice to itself is exactly 0."""
    x = _slices()
    assert loss(x, x.clone()).item() == 0.0


def test_loss_grows_with_the_perturbation(loss):
    """Larger noise of one fixed pattern gives a larger distance; both are positive."""
    x = _slices()
    noise = torch.randn(x.shape, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        values = [loss(x, x + scale * noise).item() for scale in (0.01, 0.1, 0.5)]
    assert 0.0 < values[0] < values[1] < values[2] <= 4.0


def test_gradient_reaches_the_input_and_not_the_network(loss):
    """Backward gives a finite, non-zero input gradient; the frozen VGG gets none."""
    x = _slices()
    x_hat = (x + 0.2 * torch.randn(x.shape, generator=torch.Generator().manual_seed(3)))
    x_hat.requires_grad_(True)
    loss(x, x_hat).backward()
    assert x_hat.grad is not None and torch.isfinite(x_hat.grad).all()
    assert x_hat.grad.abs().sum() > 0
    assert all(not p.requires_grad and p.grad is None for p in loss.parameters())


def test_stays_in_eval_mode(loss):
    """A parent's train() does not switch the frozen network to training mode."""
    parent = nn.ModuleDict({"perceptual": loss})
    parent.train()
    assert not loss.training and not loss.net.training


def test_rejects_slices_that_are_not_single_channel(loss):
    """(N, 3, H, W) input is refused with a sentence giving the shape."""
    x = torch.zeros(1, 3, 16, 16)
    with pytest.raises(ValueError, match=r"\(N, 1, H, W\).*\(1, 3, 16, 16\)"):
        loss(x, x)


def _missing(folder: Path, good: dict[str, Path]) -> Path:
    return folder / "absent.pth"


def _truncated_pth(folder: Path, good: dict[str, Path]) -> Path:
    data = good["pth"].read_bytes()
    (path := folder / "cut.pth").write_bytes(data[: len(data) // 2])
    return path


def _truncated_safetensors(folder: Path, good: dict[str, Path]) -> Path:
    data = good["safetensors"].read_bytes()
    (path := folder / "cut.safetensors").write_bytes(data[: len(data) // 2])
    return path


def _foreign_keys(folder: Path, good: dict[str, Path]) -> Path:
    torch.save({"conv1.weight": torch.zeros(64, 3, 7, 7), "fc.bias": torch.zeros(10)},
               path := folder / "resnet.pth")
    return path


def _wrong_shapes(folder: Path, good: dict[str, Path]) -> Path:
    # Every VGG16 key, none with its shape (small tensors keep the file tiny).
    state = {f"features.{key}": torch.zeros(1) for key in _torchvision_features().state_dict()}
    save_file(state, str(path := folder / "shapes.safetensors"))
    return path


def _non_tensor(folder: Path, good: dict[str, Path]) -> Path:
    torch.save({"features.0.weight": [0.0, 1.0], "step": 3}, path := folder / "lists.pt")
    return path


def _pickled_module(folder: Path, good: dict[str, Path]) -> Path:
    torch.save(nn.Linear(2, 2), path := folder / "module.pth")  # weights_only refuses objects
    return path


def _unknown_extension(folder: Path, good: dict[str, Path]) -> Path:
    (path := folder / "vgg16.h5").write_bytes(good["pth"].read_bytes()[:64])
    return path


BAD_FILES = [_missing, _truncated_pth, _truncated_safetensors, _foreign_keys, _wrong_shapes,
             _non_tensor, _pickled_module, _unknown_extension]


@pytest.mark.parametrize("make", BAD_FILES, ids=[f.__name__.strip("_") for f in BAD_FILES])
def test_bad_weights_file_is_one_sentence_naming_it(make, weight_files, tmp_path):
    """Each broken file gives PerceptualWeightsError: one line, one sentence, the file's path."""
    path = make(tmp_path, weight_files)
    for build in (load_vgg16_state, PerceptualLoss):
        with pytest.raises(PerceptualWeightsError) as caught:
            build(path)
        message = str(caught.value)
        assert str(path) in message
        assert message.endswith(".") and "\n" not in message
    assert issubclass(PerceptualWeightsError, ValueError)
