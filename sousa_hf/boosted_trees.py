"""Gradient-boosted trees as the head of a clip model scored from stroke statistics (`statistics_head:
boosted_trees`): fitted by scikit-learn's `HistGradientBoosting*` on the training split's statistics, evaluated as
tensors, saved in the model's weights like any other layer.

A boosted ensemble's raw prediction for output k is a baseline plus the sum of the leaf values its trees give.
`BoostedTrees` walks every tree for every clip at once and returns each tree's leaf value: that is the clip's
pooled vector, and the task head's linear layer (weights 1 where a tree belongs to an output, 0 elsewhere; the
baseline as its bias) sums it into the logits or scores. Each tree is a row of node arrays, padded to the node
count `max_leaf_nodes` allows: the feature a node splits on, its threshold, its two children, where a missing
value goes, whether it is a leaf and its value. Thresholds are compared in float64, as scikit-learn does.

`sousa_hf.tree_fitting` fits the ensemble with scikit-learn and gives it to the model as `FittedTrees`. This file
imports only torch and numpy: it travels as remote code with the model, and loading one needs no scikit-learn.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import nn


@dataclass
class BoostedTreesSettings:
    """What scikit-learn's `HistGradientBoostingClassifier` / `Regressor` fit (their arguments of the same names).

    `max_iter` and `max_leaf_nodes` also size the model's arrays: `max_iter` trees per output (per class of a
    classifier of three or more classes, per target of a multi-task model), each of `2 * max_leaf_nodes - 1` nodes.
    """

    max_iter: int = 300
    learning_rate: float = 0.05
    max_leaf_nodes: int = 31
    min_samples_leaf: int = 20
    l2_regularization: float = 0.0
    random_state: int = 0

    def __post_init__(self):
        if self.max_iter < 1 or self.max_leaf_nodes < 2:
            raise ValueError(f"boosted trees need max_iter >= 1 and max_leaf_nodes >= 2, got max_iter={self.max_iter}, "
                             f"max_leaf_nodes={self.max_leaf_nodes}")

    def to_dict(self) -> dict:
        return asdict(self)


class BoostedTrees(nn.Module):
    """Clip statistics `(batch, statistics)` -> each tree's leaf value `(batch, trees)`.

    Until fitted, every tree is a single leaf of value 0.
    """

    def __init__(self, num_statistics: int, num_trees: int, max_leaf_nodes: int):
        super().__init__()
        self.num_statistics = num_statistics
        nodes = 2 * max_leaf_nodes - 1
        self.register_buffer("feature", torch.zeros(num_trees, nodes, dtype=torch.long))
        self.register_buffer("threshold", torch.zeros(num_trees, nodes, dtype=torch.float64))
        self.register_buffer("left", torch.zeros(num_trees, nodes, dtype=torch.long))
        self.register_buffer("right", torch.zeros(num_trees, nodes, dtype=torch.long))
        self.register_buffer("missing_left", torch.zeros(num_trees, nodes, dtype=torch.bool))
        self.register_buffer("is_leaf", torch.ones(num_trees, nodes, dtype=torch.bool))
        self.register_buffer("value", torch.zeros(num_trees, nodes))
        self.register_buffer("depth", torch.zeros((), dtype=torch.long))  # the deepest leaf: steps of the walk

    @property
    def num_trees(self) -> int:
        return self.feature.shape[0]

    def forward(self, statistics: torch.Tensor) -> torch.Tensor:
        if statistics.shape[-1] != self.num_statistics:
            raise ValueError(f"expected {self.num_statistics} stroke statistics per clip, got {statistics.shape[-1]}: "
                             "were they computed with the model's use_tempo, rhythm_patterns, pattern_evidence and "
                             "pattern_matches settings?")
        x = statistics.to(self.threshold.device, torch.float64)
        trees, nodes = self.feature.shape
        offset = torch.arange(trees, device=x.device) * nodes  # each tree's first node in the flattened arrays
        node = offset.expand(len(x), trees)
        feature, threshold, left, right = (a.flatten() for a in (self.feature, self.threshold, self.left, self.right))
        missing_left, is_leaf = self.missing_left.flatten(), self.is_leaf.flatten()
        for _ in range(int(self.depth)):
            seen = x.gather(1, feature[node])
            goes_left = torch.where(seen.isnan(), missing_left[node], seen <= threshold[node])
            child = torch.where(goes_left, left[node], right[node]) + offset
            node = torch.where(is_leaf[node], node, child)
        return self.value.flatten()[node]

    @torch.no_grad()
    def load_predictors(self, predictors: list) -> None:
        """Set the trees from scikit-learn's fitted `TreePredictor`s, one per tree in the model's order (`None`, or
        fewer than `num_trees`: the rest stay single leaves of value 0)."""
        if len(predictors) > self.num_trees:
            raise ValueError(f"{len(predictors)} fitted trees do not fit in {self.num_trees}")
        self.is_leaf.fill_(True)
        self.value.zero_()
        depth = 0
        for t, predictor in enumerate(predictors):
            if predictor is None:
                continue
            nodes = predictor.nodes
            if len(nodes) > self.feature.shape[1]:
                raise ValueError(f"a fitted tree has {len(nodes)} nodes; the model holds {self.feature.shape[1]}")
            if nodes["is_categorical"].any():
                raise ValueError("categorical splits are not supported: the statistics are numbers")
            n = len(nodes)
            self.feature[t, :n] = torch.from_numpy(nodes["feature_idx"].astype(np.int64))
            self.threshold[t, :n] = torch.from_numpy(nodes["num_threshold"].astype(np.float64))
            self.left[t, :n] = torch.from_numpy(nodes["left"].astype(np.int64))
            self.right[t, :n] = torch.from_numpy(nodes["right"].astype(np.int64))
            self.missing_left[t, :n] = torch.from_numpy(nodes["missing_go_to_left"].astype(bool))
            self.is_leaf[t, :n] = torch.from_numpy(nodes["is_leaf"].astype(bool))
            self.value[t, :n] = torch.from_numpy(nodes["value"].astype(np.float32))
            depth = max(depth, int(nodes["depth"].max()))
        self.depth.fill_(depth)


@dataclass
class FittedTrees:
    """A fitted ensemble as the model takes it: the trees (scikit-learn `TreePredictor`s, in the model's tree
    order) and the head's linear layer that sums their leaf values, `weight` (outputs, trees) and `bias` (outputs),
    with `iterations` (per output group: the boosting iterations kept, chosen on validation)."""

    predictors: list
    weight: torch.Tensor
    bias: torch.Tensor
    iterations: list[int]


def trees_per_iteration(task_kind: str, num_outputs: int) -> int:
    """Trees one boosting iteration adds: one per class (three or more classes), per target (multi-task), else one."""
    if task_kind == "classification":
        return num_outputs if num_outputs > 2 else 1
    return num_outputs
