"""Test setup: the shared oracle helpers live beside the tests; one thread for determinism.

The suite runs on the numpy backend unless ``REFLECT_BACKEND`` is set: numba compiles each
specialisation (learner x head x neuron model) for about 30 s on a fresh machine, which would dominate a
cold run. The compiled backend is held to the others by the tests that request it by name
(``tests/test_conformance.py``: every backend against BPTT; ``tests/test_backends.py``: the whole REFLECT
step on every backend), and ``.ci/run`` repeats the agent-level tests with ``REFLECT_BACKEND=numba``.
Subprocesses (the command-line tests) inherit the setting.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
torch.set_num_threads(1)
os.environ.setdefault("REFLECT_BACKEND", "numpy")
