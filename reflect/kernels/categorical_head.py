"""Template: the softmax head's sample and score as loops for the compiled backend (formulas:
:mod:`reflect.formulas.categorical`; the array form is :class:`reflect.learning.heads.CategoricalHead`).

Handle positions: uniform numbers ``[B]`` (drawn by the head's numpy Generator before the call), the
actions ``[B]`` (int64), and two float64 rows ``[A]`` of scratch.
"""

from __future__ import annotations

from reflect.formulas.categorical import argmax, sample, score

TEMPLATE = ("head_sample", "head_score", "head_refresh")
INLINE = TEMPLATE  # into the REFLECT step
C_UNIFORM, C_ACTIONS, C_ROW, C_SCORE = range(4)


def head_sample(head, out, deterministic):
    uniform, actions, row = head[C_UNIFORM], head[C_ACTIONS], head[C_ROW]
    for b in range(actions.shape[0]):
        for k in range(row.shape[0]):
            row[k] = out[b, k]
        actions[b] = argmax(row) if deterministic else sample(row, uniform[b])


def head_score(head, out, weights, signal, entropies):
    actions, row, result = head[C_ACTIONS], head[C_ROW], head[C_SCORE]
    for b in range(actions.shape[0]):
        for k in range(row.shape[0]):
            row[k] = out[b, k]
        entropies[b] = score(row, actions[b], weights[b], result)
        for k in range(row.shape[0]):
            signal[b, k] = result[k]


def head_refresh(head):
    """Nothing is derived from parameters."""
