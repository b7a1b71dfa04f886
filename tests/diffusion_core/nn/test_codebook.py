"""Codebook: chunked nearest-code search, the EMA step, restarts, init state and its round trip."""

from __future__ import annotations

import pytest
import torch

from diffusion_core.nn.codebook import Codebook, nearest_codes


def test_chunked_search_matches_brute_force():
    generator = torch.Generator().manual_seed(0)
    vectors = torch.randn(1000, 8, generator=generator)
    codes = torch.randn(300, 8, generator=generator)
    brute = torch.cdist(vectors, codes).argmin(1)
    # A budget of 3000 distances forces chunks of 10 vectors.
    assert torch.equal(nearest_codes(vectors, codes, budget=3000), brute)
    assert torch.equal(nearest_codes(vectors, codes), brute)


def test_quantize_snaps_to_codes_without_updating():
    book = Codebook(4, 2)
    book.embedding.copy_(torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [5.0, 5.0]]))
    before = book.state_dict()
    z = torch.tensor([[0.9, 0.2], [0.1, 0.8], [4.0, 6.0]]).t().reshape(1, 2, 3)
    z_q = book.quantize(z)
    assert torch.equal(z_q[0].t(), torch.tensor([[1.0, 0.0], [0.0, 1.0], [5.0, 5.0]]))
    assert all(torch.equal(before[k], v) for k, v in book.state_dict().items())


def _book_with(codes: list[list[float]], decay: float = 0.5) -> Codebook:
    book = Codebook(len(codes), len(codes[0]), decay=decay, epsilon=0.0, restart_threshold=0.0)
    book.embedding.copy_(torch.tensor(codes))
    book.ema_sum.copy_(book.embedding)
    book.ema_count.fill_(1.0)
    book.initialised.fill_(True)
    return book


def test_ema_step_against_a_hand_computed_update():
    book = _book_with([[0.0], [10.0]], decay=0.5)
    # Vectors 1 and 3 go to code 0, vector 9 to code 1.
    out = book(torch.tensor([1.0, 3.0, 9.0]).view(1, 1, 3))
    # counts: 0.5 * 1 + 0.5 * 2 = 1.5 and 0.5 * 1 + 0.5 * 1 = 1.0
    assert book.ema_count.tolist() == pytest.approx([1.5, 1.0])
    # sums: 0.5 * 0 + 0.5 * (1 + 3) = 2.0 and 0.5 * 10 + 0.5 * 9 = 9.5
    assert book.ema_sum.squeeze(1).tolist() == pytest.approx([2.0, 9.5])
    # codes = sums / counts (no smoothing with epsilon 0): 4/3 and 9.5
    assert book.embedding.squeeze(1).tolist() == pytest.approx([4.0 / 3.0, 9.5])
    # The output used the codes from before the update; commitment = 0.25 * mean((z - e)^2).
    assert out.z_q.flatten().tolist() == [0.0, 0.0, 10.0]
    assert float(out.commitment_loss) == pytest.approx(0.25 * (1 + 9 + 1) / 3)
    assert out.indices.flatten().tolist() == [0, 0, 1]
    assert float(out.usage) == 1.0
    p = torch.tensor([2 / 3, 1 / 3])
    assert float(out.perplexity) == pytest.approx(float(torch.exp(-(p * p.log()).sum())))


def test_laplace_smoothing_keeps_an_empty_code_finite():
    book = Codebook(2, 1, decay=0.0, epsilon=1e-5, restart_threshold=0.0)
    book.embedding.copy_(torch.tensor([[0.0], [100.0]]))
    book.initialised.fill_(True)
    book(torch.tensor([1.0, 2.0]).view(1, 1, 2))
    assert torch.isfinite(book.embedding).all()
    # count of code 0 smoothed: (2 + eps) / (2 + 2 eps) * 2
    smoothed = (2 + 1e-5) / (2 + 2e-5) * 2
    assert float(book.embedding[0]) == pytest.approx(3.0 / smoothed)


def test_a_dead_code_restarts_from_a_current_vector():
    book = _book_with([[0.0], [100.0]], decay=0.9)
    book.restart_threshold = 1.0
    vectors = torch.tensor([0.5, 1.0, 1.5])
    torch.manual_seed(0)
    book(vectors.view(1, 1, 3))
    # Code 1 got nothing: its count fell to 0.9 < 1, so it now sits on one of the vectors.
    assert float(book.embedding[1]) in vectors.tolist()
    assert float(book.ema_count[1]) == 1.0


def test_straight_through_gradient_reaches_the_encoder_output():
    book = _book_with([[0.0], [10.0]])
    z = torch.tensor([1.0, 9.0]).view(1, 1, 2).requires_grad_(True)
    out = book(z)
    out.z_q.sum().backward()
    assert torch.equal(z.grad, torch.ones_like(z))


def test_first_training_batch_initialises_and_the_state_round_trips():
    torch.manual_seed(0)
    book = Codebook(16, 3)
    assert not bool(book.initialised)
    z = torch.randn(2, 3, 4, 4, 4)
    book(z)
    assert bool(book.initialised)
    restored = Codebook(16, 3)
    restored.load_state_dict(book.state_dict())
    assert bool(restored.initialised)
    assert torch.equal(restored.embedding, book.embedding)
    # A restored (resumed) codebook updates by EMA; it is not initialised again from the batch.
    z2 = torch.randn(2, 3, 4, 4, 4) + 50.0
    torch.manual_seed(1)
    restored.restart_threshold = 0.0
    restored(z2)
    assert float(restored.embedding.min()) < 45.0  # init from z2 would put every code near 50


def test_eval_mode_never_initialises_or_updates():
    book = Codebook(8, 2).eval()
    before = book.embedding.clone()
    book(torch.randn(1, 2, 5))
    assert not bool(book.initialised)
    assert torch.equal(book.embedding, before)


def test_wrong_channel_count_is_refused():
    with pytest.raises(ValueError, match="4-dimensional codes"):
        Codebook(8, 4)(torch.randn(1, 3, 2, 2))
