"""Gaussian coverage pooling against a hand-computed example, and its edge cases."""

from __future__ import annotations

import math

import numpy as np
import pytest

from fi_spark.embed.pooling import gaussian_coverage_pool, region_centres


def test_hand_computed_two_units_two_regions() -> None:
    """Units e0=(1,0) at p=0 and e1=(0,1) at p=1; N=2 centres 0.25/0.75; 2*sigma^2 = 0.25; alpha = 0.5.

    Kernel at c=0.25: exp(-0.0625/0.25)=e^-0.25 for e0, exp(-0.5625/0.25)=e^-2.25 for e1, so the
    weights normalize to a = 1/(1+e^-2) = 0.880797 and b = 1-a = 0.119203: g0 = (a, b), g1 = (b, a).
    Global mean m = (0.5, 0.5). r0 = 0.5*g0 + 0.5*m = (0.690399, 0.309601), norm 0.756639 ->
    (0.912454, 0.409180); r1 mirrors it. Global vector = (0.707107, 0.707107).
    """
    sigma = math.sqrt(0.125)
    vectors, centres = gaussian_coverage_pool([[1.0, 0.0], [0.0, 1.0]], 2, sigma, 0.5, positions=[0.0, 1.0])
    np.testing.assert_allclose(centres, [0.5, 0.25, 0.75])
    expected = [[0.707107, 0.707107], [0.912454, 0.409180], [0.409180, 0.912454]]
    np.testing.assert_allclose(vectors, expected, atol=1e-6)


def test_weights_shift_the_global_mean() -> None:
    """Unit weights (token counts) weight the mean: 3:1 gives (0.75, 0.25) before normalizing."""
    vectors, _ = gaussian_coverage_pool([[1.0, 0.0], [0.0, 1.0]], 0, 0.2, 0.5, weights=[3, 1])
    np.testing.assert_allclose(vectors, [[0.948683, 0.316228]], atol=1e-6)


def test_alpha_zero_gives_global_and_alpha_one_gives_local() -> None:
    """alpha=0 makes every region the global vector; alpha=1 follows the nearest unit when sigma is small."""
    emb = np.eye(3, dtype=np.float32)
    v0, _ = gaussian_coverage_pool(emb, 3, 0.05, 0.0)
    assert np.allclose(v0, v0[0])
    v1, _ = gaussian_coverage_pool(emb, 3, 0.05, 1.0)
    np.testing.assert_allclose(v1[1:], np.eye(3), atol=1e-6)


def test_short_documents_get_only_the_global_vector() -> None:
    """One unit (or fewer than min_units_for_regions) -> a single vector, no copies."""
    vectors, centres = gaussian_coverage_pool([[3.0, 4.0]], 4, 0.15, 0.5)
    np.testing.assert_allclose(vectors, [[0.6, 0.8]])
    assert centres.tolist() == [0.5]


def test_tiny_sigma_far_from_units_falls_back_to_the_mean() -> None:
    """A centre with a vanishing kernel gets the global mean instead of NaN."""
    vectors, _ = gaussian_coverage_pool([[1.0, 0.0], [0.0, 1.0]], 1, 1e-4, 1.0, positions=[0.0, 1.0])
    assert np.isfinite(vectors).all()
    np.testing.assert_allclose(vectors[1], vectors[0], atol=1e-6)


def test_outputs_are_unit_length_and_centres_evenly_spaced() -> None:
    """Every vector is normalized for inner-product search; centres are (j+0.5)/N."""
    rng = np.random.default_rng(0)
    vectors, _ = gaussian_coverage_pool(rng.normal(size=(9, 16)), 4, 0.15, 0.5)
    assert vectors.shape == (5, 16)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-6)
    np.testing.assert_allclose(region_centres(4), [0.125, 0.375, 0.625, 0.875])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"embeddings": np.zeros((0, 4))}, "non-empty"), ({"sigma": 0.0}, "sigma"), ({"positions": [0.1]}, "shape")],
)
def test_bad_arguments_are_named(kwargs: dict[str, object], message: str) -> None:
    """Bad shapes or parameters raise one clear ValueError."""
    args: dict[str, object] = {"embeddings": np.ones((2, 4)), "n_regions": 2, "sigma": 0.1, "alpha": 0.5}
    args.update(kwargs)
    with pytest.raises(ValueError, match=message):
        gaussian_coverage_pool(**args)  # type: ignore[arg-type]
