"""Gradient-boosted trees as tensors (`sousa_hf.boosted_trees`): the same raw predictions as scikit-learn's."""

import numpy as np
import pytest
import torch
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

from sousa_hf.boosted_trees import BoostedTrees, BoostedTreesSettings, trees_per_iteration
from sousa_hf.tree_fitting import fit_boosted_trees

SETTINGS = BoostedTreesSettings(max_iter=40, learning_rate=0.2, max_leaf_nodes=7, min_samples_leaf=5)


def _data(seed: int, rows: int = 160, statistics: int = 6) -> np.ndarray:
    x = np.random.default_rng(seed).normal(size=(rows, statistics)).astype(np.float32)
    x[::17, 2] = np.nan  # a statistic missing for some clips goes where scikit-learn sends it
    return x


def _raw(fitted, x: np.ndarray, num_statistics: int) -> np.ndarray:
    """The logits or scores a SOUSA head computes: each tree's leaf value, summed by the head's linear layer."""
    trees = BoostedTrees(num_statistics, fitted.weight.shape[1], SETTINGS.max_leaf_nodes)
    trees.load_predictors(fitted.predictors)
    return (trees(torch.from_numpy(x)).float() @ fitted.weight.T + fitted.bias).numpy()


@pytest.mark.parametrize("classes", [2, 4])
def test_a_classifiers_trees_as_tensors_give_scikit_learns_logits_at_the_iteration_chosen_on_validation(classes):
    x, x_val = _data(0), _data(1, rows=60)
    y = np.digitize(np.nan_to_num(x[:, 0] + 0.5 * x[:, 1]), np.linspace(-1, 1, classes - 1))
    y_val = np.digitize(np.nan_to_num(x_val[:, 0] + 0.5 * x_val[:, 1]), np.linspace(-1, 1, classes - 1))
    fitted = fit_boosted_trees(SETTINGS, "classification", classes, (x, y, None), (x_val, y_val, None))
    (best,) = fitted.iterations
    assert 1 <= best <= SETTINGS.max_iter
    assert fitted.weight.shape == (classes, SETTINGS.max_iter * trees_per_iteration("classification", classes))
    reference = HistGradientBoostingClassifier(**SETTINGS.to_dict(), early_stopping=False).fit(x, y)
    losses = [-np.mean(np.log(p[np.arange(len(y_val)), y_val])) for p in reference.staged_predict_proba(x_val)]
    assert best == int(np.argmin(losses)) + 1  # the iteration with the lowest validation log-loss
    expected = list(reference.staged_decision_function(x_val))[best - 1]
    logits = _raw(fitted, x_val, x.shape[1])
    if classes == 2:  # logits (0, log-odds of class 1): the same softmax as scikit-learn's sigmoid
        np.testing.assert_allclose(logits[:, 0], 0.0)
        np.testing.assert_allclose(logits[:, 1], expected, rtol=1e-5, atol=1e-5)
    else:
        np.testing.assert_allclose(logits, expected, rtol=1e-5, atol=1e-5)
    probabilities = torch.softmax(torch.from_numpy(logits), dim=-1).numpy()
    np.testing.assert_allclose(probabilities, list(reference.staged_predict_proba(x_val))[best - 1], atol=1e-5)


def test_regression_trees_fit_each_target_on_the_clips_that_have_it_and_match_scikit_learn():
    x, x_val = _data(2), _data(3, rows=60)
    signal = lambda a: np.nan_to_num(a[:, 0]) - np.nan_to_num(a[:, 3]) ** 2  # noqa: E731
    y = np.stack([signal(x), -signal(x)], axis=1)
    y_val = np.stack([signal(x_val), -signal(x_val)], axis=1)
    mask = np.ones_like(y, dtype=bool)
    mask[::3, 1] = False  # the second target is null on a third of the clips
    y[~mask] = 1e6  # and its placeholder must not reach the fit
    fitted = fit_boosted_trees(SETTINGS, "multitask", 2, (x, y, mask), (x_val, y_val, np.ones_like(y_val, bool)))
    predictions = _raw(fitted, x_val, x.shape[1])
    for k, rows in enumerate((mask[:, 0], mask[:, 1])):
        reference = HistGradientBoostingRegressor(**SETTINGS.to_dict(), early_stopping=False).fit(x[rows], y[rows, k])
        staged = list(reference.staged_predict(x_val))
        assert fitted.iterations[k] == int(np.argmin([np.mean((p - y_val[:, k]) ** 2) for p in staged])) + 1
        np.testing.assert_allclose(predictions[:, k], staged[fitted.iterations[k] - 1], rtol=1e-5, atol=1e-5)
    assert np.abs(predictions).max() < 100  # the null targets' placeholders were left out


def test_unfitted_trees_give_zero_and_the_wrong_number_of_statistics_is_named():
    trees = BoostedTrees(5, num_trees=3, max_leaf_nodes=4)
    assert torch.equal(trees(torch.randn(2, 5)), torch.zeros(2, 3))
    with pytest.raises(ValueError, match="expected 5 stroke statistics"):
        trees(torch.randn(2, 4))
    with pytest.raises(ValueError, match="every one of the 3 classes"):
        x = _data(4)
        fit_boosted_trees(SETTINGS, "classification", 3, (x, np.zeros(len(x), int), None),
                          (x, np.arange(len(x)) % 3, None))


def test_a_recipe_asks_for_trees_only_over_cached_stroke_statistics_and_names_a_wrong_setting():
    from sousa_hf import SousaDataError
    from sousa_hf.recipe import load_recipe

    strokes = ["pooling=stroke_statistics", "strokes_from=runs/strokes-cnn", "training_mode=freeze_backbone"]
    trees = [*strokes, "cache=backbone", "statistics_head=boosted_trees"]
    recipe, _ = load_recipe(None, [*strokes, "cache=backbone", "statistics_head=boosted_trees",
                                   "boosted_trees.max_leaf_nodes=15"])
    assert BoostedTreesSettings(**recipe.boosted_trees).max_leaf_nodes == 15
    with pytest.raises(SousaDataError, match="statistics_head: 'boosted_trees' is fitted on the cached"):
        load_recipe(None, [*strokes, "statistics_head=boosted_trees"])  # no cache: backbone
    with pytest.raises(SousaDataError, match="statistics_head is 'mlp'"):
        load_recipe(None, [*strokes, "cache=backbone", "boosted_trees={max_iter: 50}"])
    with pytest.raises(SousaDataError, match="boosted_trees: unknown entry 'max_depth_'"):
        load_recipe(None, [*trees, "boosted_trees.max_depth_=3"])
    with pytest.raises(SousaDataError, match="max_leaf_nodes >= 2"):
        load_recipe(None, [*trees, "boosted_trees.max_leaf_nodes=1"])
    with pytest.raises(SousaDataError, match="statistics_head: 'forest' is not one of mlp, boosted_trees"):
        load_recipe(None, [*strokes, "cache=backbone", "statistics_head=forest"])
