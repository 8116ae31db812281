"""The procedural face generator: determinism, ranges, and a smile that nothing else predicts."""

from __future__ import annotations

import numpy as np
import pytest

from bench.tasks import faces


def test_generate_is_deterministic_per_seed_and_in_range() -> None:
    images, factors = faces.generate(40, seed=3)
    again, factors_again = faces.generate(40, seed=3)
    other, _ = faces.generate(40, seed=4)
    assert images.shape == (40, 3, 64, 64) and images.dtype == np.float32
    assert images.min() >= 0.0 and images.max() <= 1.0
    np.testing.assert_array_equal(images, again)
    for key in factors:
        np.testing.assert_array_equal(factors[key], factors_again[key])
    assert not np.array_equal(images, other)
    assert factors["smile"].min() >= 0.0 and factors["smile"].max() <= faces.SMILE_MAX


def test_generate_leaves_the_global_rng_alone() -> None:
    state = np.random.get_state()[1].copy()
    faces.generate(4, seed=0)
    np.testing.assert_array_equal(np.random.get_state()[1], state)


def test_smile_range_is_respected() -> None:
    _, factors = faces.generate(64, seed=1, smile_range=(3.0, 5.0))
    assert factors["smile"].min() >= 3.0
    with pytest.raises(ValueError, match="smile_range"):
        faces.generate(1, seed=1, smile_range=(2.0, 1.0))


def test_smile_changes_the_mouth_region_most() -> None:
    """Same nuisance factors, smile 0 vs 5: the pixels change mostly in the lower face (mouth, cheeks)."""
    factors = faces.sample_factors(16, np.random.default_rng(0))
    for key in ("center_x", "center_y", "tilt", "noise"):
        factors[key] = np.zeros(16)
    low = faces.render({**factors, "smile": np.zeros(16)}, np.random.default_rng(1))
    high = faces.render({**factors, "smile": np.full(16, faces.SMILE_MAX)}, np.random.default_rng(1))
    change = np.abs(high - low).mean(axis=(0, 1))
    lower_face, top = change[34:52, 16:48].mean(), change[:16].mean()
    assert lower_face > 0.1  # a big, high-contrast change: it must survive an 8x8 VQ-VAE
    assert lower_face > 20 * max(top, 1e-4)


@pytest.mark.slow
def test_nuisance_factors_do_not_predict_the_smile() -> None:
    """A gradient-boosting regressor on every nuisance factor gets a held-out R^2 of about 0."""
    from sklearn.ensemble import HistGradientBoostingRegressor
    from sklearn.linear_model import Ridge
    from sklearn.model_selection import cross_val_score
    from threadpoolctl import threadpool_limits

    factors = faces.sample_factors(3000, np.random.default_rng(7))
    x, y = faces.nuisance_matrix(factors), factors["smile"]
    assert x.shape == (3000, len(faces.NUISANCE_FACTORS))
    for model in (Ridge(alpha=1.0), HistGradientBoostingRegressor(max_iter=60, random_state=0)):
        with threadpool_limits(1):  # OpenMP threads spin badly on a shared machine
            r2 = cross_val_score(model, x, y, cv=3, scoring="r2").mean()
        assert r2 < 0.05, (type(model).__name__, r2)
    # ... while the smile itself is recoverable from the factor targets (the check has power).
    assert np.corrcoef(faces.factor_targets(factors)[:, 0], y)[0, 1] == pytest.approx(1.0)
