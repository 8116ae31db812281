"""The five-attribute face generator and the ``synthetic-faces/<attribute>`` twins (no training here)."""

from __future__ import annotations

import numpy as np
import pytest

from bench.core.errors import UserError
from bench.core.registry import task_spec
from bench.tasks import faces
from bench.tasks.synthetic_faces import SyntheticFacesTask, nuisance_figures

#: rows of the 64x64 picture where each attribute is drawn (face centre near row 30)
REGIONS = {"bangs": slice(8, 31), "eyeglasses": slice(20, 34), "beard": slice(36, 64), "age": slice(0, 64),
           "smile": slice(30, 50)}


def _factors(n: int, **degrees: float) -> dict[str, np.ndarray]:
    factors = faces.sample_factors(n, np.random.default_rng(3))
    for name in faces.ATTRIBUTES[1:]:
        factors[name] = np.full(n, degrees.get(name, 0.0))
    factors["smile"] = np.full(n, degrees.get("smile", 0.0))
    return factors


def test_degree_zero_draws_nothing_and_smile_faces_are_unchanged() -> None:
    plain = faces.sample_factors(16, np.random.default_rng(3))
    plain["smile"] = np.zeros(16)
    np.testing.assert_array_equal(faces.render(plain, np.random.default_rng(1)),
                                  faces.render(_factors(16), np.random.default_rng(1)))


@pytest.mark.parametrize("attribute", faces.ATTRIBUTES)
def test_each_attribute_changes_its_own_region_and_grows_with_its_degree(attribute: str) -> None:
    base = faces.render(_factors(8), np.random.default_rng(1))
    change = [np.abs(faces.render(_factors(8, **{attribute: d}), np.random.default_rng(1)) - base).sum(axis=1)
              for d in (1.0, 3.0, 5.0)]
    assert change[0].sum() < change[1].sum() < change[2].sum()  # more of it at a higher degree
    inside = change[2][:, REGIONS[attribute]].sum() / change[2].sum()
    assert inside > 0.8, inside
    assert change[2].mean() > 0.02  # large enough to matter at 64 px


def _change(n: int, attribute: str, degree: float, **others: float) -> np.ndarray:
    """(n, 64, 64) summed absolute RGB change that ``attribute`` at ``degree`` makes to faces with ``others``."""
    base = faces.render(_factors(n, **others), np.random.default_rng(1))
    drawn = faces.render(_factors(n, **{**others, attribute: degree}), np.random.default_rng(1))
    return np.abs(drawn - base).sum(axis=1)


@pytest.mark.parametrize("attribute", ["bangs", "beard"])
def test_bangs_and_beard_cover_more_of_every_face_at_every_degree_step(attribute: str) -> None:
    covered = np.stack([(_change(8, attribute, d) > 0.05).sum(axis=(1, 2)) for d in np.arange(0.5, 5.01, 0.5)])
    assert np.all(np.diff(covered, axis=0) > 0), covered  # per face, each half degree covers more pixels


@pytest.mark.parametrize("attribute", ["bangs", "beard"])
def test_bangs_and_beard_add_dark_pixels_whatever_the_hair_colour(attribute: str) -> None:
    """The hair-coloured drawings looked like the nuisance hair (a scorer learned neither): the new
    ones darken their region even for black hair on dark skin or grey hair on pale skin."""
    for hair in range(len(faces.HAIR_COLOURS)):
        for skin in (0, len(faces.SKIN_TONES) - 1):
            factors = {**_factors(4), "hair_colour": np.full(4, hair), "skin_tone": np.full(4, skin)}
            plain = faces.render(factors, np.random.default_rng(1)).mean(axis=1)[:, REGIONS[attribute]]
            drawn = faces.render({**factors, attribute: np.full(4, 5.0)}, np.random.default_rng(1))
            darker = plain - drawn.mean(axis=1)[:, REGIONS[attribute]] > 0.08
            assert darker.sum(axis=(1, 2)).min() > 60, (hair, skin)  # pixels of the 64x64 picture


@pytest.mark.parametrize("attribute", faces.ATTRIBUTES)
def test_an_attribute_draws_the_same_whatever_the_others(attribute: str) -> None:
    """Outside the pixels another attribute changes, an attribute's change does not depend on it (age
    is left out for the two drawn in the hair colour: it greys the hair, bangs and beard included)."""
    alone = _change(8, attribute, 4.0)
    hair_coloured = attribute in ("bangs", "beard")
    for other in (a for a in faces.ATTRIBUTES if a != attribute and not (hair_coloured and a == "age")):
        footprint = _change(8, other, 5.0) > 0
        together = _change(8, attribute, 4.0, **{other: 5.0})
        np.testing.assert_allclose(together[~footprint], alone[~footprint], atol=1e-5, err_msg=other)


def test_generate_attributes_ranges_and_independence() -> None:
    images, factors = faces.generate_attributes(400, seed=5, target="beard", target_range=(0.0, 2.5))
    assert images.shape == (400, 3, 64, 64) and images.dtype == np.float32
    assert factors["beard"].max() < 2.5 and factors["smile"].max() > 4.5 and factors["age"].min() < 0.5
    matrix = np.stack([factors[a] for a in faces.ATTRIBUTES], axis=1)
    corr = np.corrcoef(matrix, rowvar=False) - np.eye(len(faces.ATTRIBUTES))
    assert np.abs(corr).max() < 0.15
    again, _ = faces.generate_attributes(400, seed=5, target="beard", target_range=(0.0, 2.5))
    np.testing.assert_array_equal(images, again)
    with pytest.raises(ValueError, match="target must be one of"):
        faces.generate_attributes(2, seed=0, target="hat")


def test_twins_are_registered_one_artifact_folder_each() -> None:
    tasks = {slug: task_spec(f"synthetic-faces/{slug}").build(overrides={"device": "cpu"})
             for slug in ("smiling", "bangs", "eyeglasses", "beard", "age")}
    assert {t.artifact_dir.name for t in tasks.values()} == {f"synthetic-faces-{s}" for s in tasks}
    assert len({t.config_hash() for t in tasks.values()}) == 5
    eyeglasses = tasks["eyeglasses"]
    assert isinstance(eyeglasses, SyntheticFacesTask) and eyeglasses.target_factor == "eyeglasses"
    _, factors = eyeglasses.faces("vqvae", 64, seed=0)
    assert factors["eyeglasses"].max() < 2.5 and factors["smile"].max() > 4.0
    _, high = eyeglasses.faces("reference-high", 16, seed=0)
    assert high["eyeglasses"].min() >= 3.0
    assert eyeglasses.feature_targets(factors).shape == (64, eyeglasses.n_feature_targets)
    with pytest.raises(UserError, match="attribute must be one of smile, bangs"):
        SyntheticFacesTask(attribute="hat", device="cpu")
    with pytest.raises(UserError, match="bench prepare --task synthetic-faces/age"):
        task_spec("synthetic-faces/age").build(overrides={"device": "cpu", "artifacts": "/nonexistent"}).manifest


def test_nuisance_figures_tell_an_attribute_scorer_from_a_nuisance_scorer() -> None:
    _, factors = faces.generate_attributes(600, seed=9, target="bangs")
    noise = np.random.default_rng(0).standard_normal(600) * 0.05
    honest = nuisance_figures(factors["bangs"] + noise, factors, "bangs")
    assert honest["attribute_r2"] > 0.95 and honest["nuisance_r2"] < 0.05
    cheating = nuisance_figures(factors["bangs"] + factors["age"], factors, "bangs")
    assert cheating["nuisance_r2"] > 0.3


def test_twin_checks_add_the_nuisance_figures(monkeypatch: pytest.MonkeyPatch) -> None:
    """The twin's extra figures, with the generic checks stubbed (they need trained models)."""
    from bench.tasks.smile_synthetic import SmileSyntheticTask

    stub = {"checks": {}, "figures": {"recon_score_vs_true_smile_corr_full_range": 0.5}, "passed": True}
    monkeypatch.setattr(SmileSyntheticTask, "validity_checks", lambda self, quick=False: stub)
    task = task_spec("synthetic-faces/beard").build(overrides={"device": "cpu"})
    beard = np.clip(np.arange(64) / 64 * 5, 0, 5)
    def stub_faces(split: str, n: int, seed: int) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        return np.zeros((n, 3, 64, 64), np.float32), {**faces.generate_attributes(n, seed)[1], "beard": beard}

    monkeypatch.setattr(task, "faces", stub_faces)
    monkeypatch.setattr(task, "score_images", lambda images: beard * 2.0)  # a scorer of the beard only
    figures = task.validity_checks(quick=True)["figures"]
    assert figures["recon_score_vs_true_attribute_corr_full_range"] == 0.5
    assert figures["attribute_r2"] > 0.7 and figures["nuisance_r2"] < 0.1  # 64 faces: a coarse fit


#: the twins whose artifacts ship in tasks/artifacts/synthetic-faces-<slug>/
SHIPPED_TWINS = ("smiling", "bangs", "eyeglasses", "beard", "age")


@pytest.mark.parametrize("slug", SHIPPED_TWINS)
def test_shipped_twin_loads_passes_its_checks_and_evaluates(slug: str) -> None:
    task = task_spec(f"synthetic-faces/{slug}").build(overrides={"device": "cpu"})
    manifest = task.manifest  # refuses artifacts of another configuration or that failed a check
    assert manifest["passed"] and not manifest["training"]["quick"]
    assert manifest["checks"]["survival_corr"]["value"] >= 0.9
    figures = manifest["figures"]
    # It scores its own attribute (age is the least legible one: scorer R^2 0.72).
    assert figures["nuisance_r2"] < 0.1 and figures["attribute_r2"] > 0.7
    assert manifest["scorers"]["scorer_r2"] > 0.7 and manifest["scorers"]["heldout_vs_scorer_corr"] > 0.85
    data = task.initial_data(seed=0, n=32)
    evaluation = task.evaluate(data.latents)
    assert evaluation.images is not None and evaluation.images.shape == (32, 3, 64, 64)
    assert np.all((evaluation.scores >= 0) & (evaluation.scores <= 5))
    assert np.corrcoef(data.scores, evaluation.scores)[0, 1] > 0.8  # what the encoder kept, the scorer sees
