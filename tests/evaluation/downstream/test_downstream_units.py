"""The downstream experiment's parts on known cases: losses, views, folds, data, initialisation."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from evaluation.downstream.config import PretrainConfig, SweepConfig, SwinConfig
from evaluation.downstream.data import (
    Case,
    crop_from,
    pad_to,
    padded_shape,
    read_labelled,
    subject_of,
)
from evaluation.downstream.finetune import build_segmenter, dice
from evaluation.downstream.folds import (
    CASE,
    SUBJECT,
    check_disjoint,
    fraction_unit,
    training_subset,
)
from evaluation.downstream.ssl_head import SSLModel
from evaluation.downstream.ssl_losses import contrastive_loss, inpainting_loss, rotation_loss
from evaluation.downstream.views import make_views, mask_cuboids, rotate
from evaluation.errors import EvalError

# --- losses with known answers ---------------------------------------------------------------


def test_nt_xent_of_identical_orthogonal_views_is_known():
    # Two volumes, embeddings e1 and e2, each view identical: for every anchor the positive has
    # cosine 1 and the two negatives cosine 0, so the loss is -log(e^2 / (e^2 + 2)) at T = 0.5.
    embeddings = torch.eye(2, 8)
    loss = contrastive_loss(embeddings, embeddings.clone(), temperature=0.5)
    assert float(loss) == pytest.approx(math.log(1 + 2 * math.exp(-2)), rel=1e-5)


def test_nt_xent_of_identical_views_is_below_random_ones():
    generator = torch.Generator().manual_seed(0)
    first = torch.randn(8, 32, generator=generator)
    same = contrastive_loss(first, first.clone())
    other = contrastive_loss(first, torch.randn(8, 32, generator=generator))
    # random pairs: the positive is no closer than a negative, about log(2N - 1)
    assert float(same) < float(other) - 1.0
    assert float(other) == pytest.approx(math.log(15), abs=0.5)


def test_rotation_loss_is_zero_for_confident_right_and_log4_for_uniform():
    labels = torch.tensor([0, 1, 2, 3])
    confident = 100.0 * torch.nn.functional.one_hot(labels, 4).float()
    assert float(rotation_loss(confident, labels)) == pytest.approx(0.0, abs=1e-6)
    assert float(rotation_loss(torch.zeros(4, 4), labels)) == pytest.approx(math.log(4))


def test_inpainting_loss_is_the_mean_absolute_error():
    target = torch.zeros(1, 1, 4, 4, 4)
    assert float(inpainting_loss(target + 0.25, target)) == pytest.approx(0.25)
    assert float(inpainting_loss(target, target)) == 0.0


# --- views -----------------------------------------------------------------------------------


def test_rotate_turns_each_volume_by_its_label():
    volume = torch.arange(16.0).reshape(1, 1, 1, 4, 4)
    turned = rotate(volume.repeat(4, 1, 1, 1, 1), torch.tensor([0, 1, 2, 3]))
    assert torch.equal(turned[0], volume[0])
    assert torch.equal(turned[2], volume[0].flip(-1).flip(-2))
    assert torch.equal(rotate(turned[1:2], torch.tensor([3])), volume)


def test_views_mask_up_to_the_fraction_and_targets_are_the_unmasked_turned_volumes():
    torch.manual_seed(0)
    volumes = torch.rand(3, 1, 8, 16, 16) + 2.0  # values nowhere near the noise's range
    views = make_views(volumes, mask_fraction=0.3)
    for k in range(3):
        assert torch.equal(views.first_target[k:k + 1],
                           rotate(volumes[k:k + 1], views.first_rotation[k:k + 1]))
        changed = float((views.first[k] != views.first_target[k]).float().mean())
        assert 0.05 < changed <= 0.3 + 0.1  # the last cuboid may overshoot a little
    masked = mask_cuboids(volumes[:1], 0.3)
    assert masked.shape == volumes[:1].shape


# --- the SSL model ---------------------------------------------------------------------------


def test_ssl_model_outputs_and_refuses_a_single_token_input():
    model = SSLModel(SwinConfig(12), contrastive_dim=16)
    rotation, embedding, reconstruction = model(torch.rand(2, 1, 32, 32, 64))
    assert rotation.shape == (2, 4) and embedding.shape == (2, 16)
    assert reconstruction.shape == (2, 1, 32, 32, 64)
    with pytest.raises(ValueError, match="one token"):
        model(torch.rand(2, 1, 32, 32, 32))


# --- initialisation --------------------------------------------------------------------------


def test_finetuning_starts_from_the_pretrained_encoder_or_the_seeds_initialisation():
    torch.manual_seed(123)
    encoder = {k: v.clone() for k, v in SSLModel(SwinConfig(12), 16).encoder.state_dict().items()}
    pretrained = build_segmenter(SwinConfig(12), seed=5, encoder=encoder)
    scratch = build_segmenter(SwinConfig(12), seed=5)
    again = build_segmenter(SwinConfig(12), seed=5)
    for key, value in pretrained.swinViT.state_dict().items():
        assert torch.equal(value, encoder[key]), key
    differs = [k for k, v in scratch.swinViT.state_dict().items()
               if v.is_floating_point() and not torch.equal(v, encoder[k])]
    assert differs  # the scratch arm did not receive the pre-trained tensors
    for (key, a), b in zip(scratch.state_dict().items(), again.state_dict().values(),
                           strict=True):
        assert torch.equal(a, b), key  # the seed alone fixes the scratch initialisation
    decoder = [k for k in scratch.state_dict() if not k.startswith("swinViT.")]
    for key in decoder:  # both arms share the seed's decoder
        assert torch.equal(scratch.state_dict()[key], pretrained.state_dict()[key]), key


def test_an_encoder_that_does_not_fit_is_refused():
    from diffusion_core.run_folder import CheckpointError

    encoder = SSLModel(SwinConfig(12), 16).encoder.state_dict()
    encoder.pop(next(iter(encoder)))
    with pytest.raises(CheckpointError, match="missing"):
        build_segmenter(SwinConfig(12), seed=0, encoder=encoder)
    wider = SSLModel(SwinConfig(24), 16).encoder.state_dict()
    with pytest.raises(CheckpointError, match="shape"):
        build_segmenter(SwinConfig(12), seed=0, encoder=wider)


# --- folds -----------------------------------------------------------------------------------


def _cases(names: list[str]) -> list[Case]:
    empty = np.zeros((1, 1, 1), dtype=np.float32)
    return [Case(n, subject_of(n), empty, empty > 0, (1.0, 1.0, 1.0)) for n in names]


def test_subsets_keep_whole_subjects_nest_across_fractions_and_never_hold_test_subjects():
    cases = _cases([f"s{s}_{c:03d}.nii.gz" for s in range(10) for c in range(3)])
    test = _cases(["t0_000.nii.gz", "t1_000.nii.gz"])
    check_disjoint(cases, test)
    assert fraction_unit(cases, (0.1, 1.0)) == SUBJECT
    for seed in range(3):
        previous: set[int] = set()
        for fraction in (0.1, 0.2, 0.5, 1.0):
            subset = training_subset(cases, fraction, seed, SUBJECT)
            subjects = {cases[i].subject for i in subset}
            assert len(subjects) == max(1, round(fraction * 10))
            assert len(subset) == 3 * len(subjects)  # all of a subject's copies, or none
            assert not subjects & {c.subject for c in test}
            assert previous <= set(subset)
            previous = set(subset)


def test_few_subjects_make_fractions_count_cases():
    cases = _cases([f"itk_t1_{c:03d}.nii.gz" for c in range(20)])
    assert fraction_unit(cases, (0.1, 1.0)) == CASE
    assert len(training_subset(cases, 0.1, 0, CASE)) == 2
    assert training_subset(cases, 0.1, 0, CASE) != training_subset(cases, 0.1, 1, CASE)


def test_a_subject_in_both_sets_is_refused():
    with pytest.raises(EvalError, match="'colin'"):
        check_disjoint(_cases(["colin_001.nii", "itk_000.nii"]), _cases(["colin_000.nii"]))


def test_subject_names():
    assert subject_of("itk_t1_007.nii.gz") == "itk_t1"
    assert subject_of("sub-03.nii") == "sub"
    assert subject_of("patient7.nii.gz") == "patient7"
    assert subject_of("p12_scan_a.nii.gz", r"^(p\d+)_") == "p12"
    with pytest.raises(EvalError, match="pattern"):
        subject_of("x.nii", r"^(p\d+)")


# --- data ------------------------------------------------------------------------------------


def test_padding_to_multiples_of_32_and_back():
    assert padded_shape((30, 40, 50)) == (32, 64, 64)
    assert padded_shape((32, 32, 32)) == (32, 32, 64)  # two tokens at the last stage
    assert padded_shape((32, 40, 70), square=True) == (32, 96, 96)
    array = np.random.default_rng(0).random((30, 40, 50))
    assert np.array_equal(crop_from(pad_to(array, (32, 64, 64)), array.shape), array)


def test_labelled_folder_errors(tmp_path, write_labelled):
    folder = write_labelled(tmp_path / "lab", ["a", "b"])
    assert [c.subject for c in read_labelled(folder, "--labelled")] == ["a", "b"]
    (folder / "masks" / "b_000.nii.gz").unlink()
    with pytest.raises(EvalError, match="b_000.nii.gz has no file of that name in masks/"):
        read_labelled(folder, "--labelled")
    write_labelled(tmp_path / "other", ["b"], shape=(32, 32, 30))
    (tmp_path / "other" / "images" / "b_000.nii.gz").rename(folder / "images" / "b_000.nii.gz")
    write_labelled(tmp_path / "third", ["b"])
    (tmp_path / "third" / "masks" / "b_000.nii.gz").rename(folder / "masks" / "b_000.nii.gz")
    with pytest.raises(EvalError, match="give each image a mask of its own grid"):
        read_labelled(folder, "--labelled")
    (tmp_path / "third" / "masks").rmdir()  # its one mask moved away above
    with pytest.raises(EvalError, match="has no masks/ folder"):
        read_labelled(tmp_path / "third", "--test")


def test_dice_known_values():
    a = np.zeros((4, 4, 4), bool)
    b = a.copy()
    a[:2] = True
    b[1:3] = True
    assert dice(a, b) == pytest.approx(0.5)
    assert dice(a, a) == 1.0


def test_settings_are_checked():
    with pytest.raises(ValueError, match="multiple of 12"):
        SwinConfig(16)
    with pytest.raises(ValueError, match="at least 2 volumes"):
        PretrainConfig(batch_size=1)
    with pytest.raises(ValueError, match=r"\(0, 1\]"):
        SweepConfig(fractions=(0.0, 0.5))


def test_command_line_defaults_are_the_configs():
    """The command repeats the configs' defaults so that --help imports no torch."""
    from evaluation.cli import downstream as cli
    from evaluation.downstream.config import FinetuneConfig

    assert cli.fractions_value(cli.DEFAULT_FRACTIONS) == SweepConfig().fractions
    assert cli.DEFAULT_SEEDS == SweepConfig().seeds
    assert (cli.DEFAULT_PRETRAIN_STEPS, cli.DEFAULT_PRETRAIN_LR) == (
        PretrainConfig().steps, PretrainConfig().learning_rate)
    assert (cli.DEFAULT_FINETUNE_STEPS, cli.DEFAULT_FINETUNE_LR) == (
        FinetuneConfig().steps, FinetuneConfig().learning_rate)
    assert cli.DEFAULT_FEATURE_SIZE == SwinConfig().feature_size
    assert cli.DEFAULT_BATCH == PretrainConfig().batch_size == FinetuneConfig().batch_size
