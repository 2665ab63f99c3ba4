"""The categorical head's entropy against torch's float64 ``Categorical``."""

from __future__ import annotations

import numpy as np
import torch
from torch.distributions import Categorical

from reflect.learning.heads import CategoricalHead


def test_the_entropy_matches_torchs_categorical_row_by_row() -> None:
    logits = np.random.default_rng(0).normal(scale=3.0, size=(5, 4))
    logits[0] = 0.0  # uniform: log 4
    expected = Categorical(logits=torch.tensor(logits, dtype=torch.float64)).entropy().numpy()
    entropy = CategoricalHead(4, seed=0).entropy(logits)
    assert entropy.shape == (5,)
    np.testing.assert_allclose(entropy, expected, rtol=1e-12)
    assert abs(entropy[0] - np.log(4.0)) < 1e-12
    # negative control: the rows differ, so one row's entropy is not another's
    assert np.abs(entropy[1:] - entropy[0]).min() > 1e-3
