"""The softmax policy head over ``A`` actions, per stream (one row of logits ``l``)::

    p_k = exp(l_k - max l) / sum_j exp(l_j - max l)
    d/dl_k [log p_a + w H] = [k == a] - p_k - w p_k (log p_k + H),     H = -sum_k p_k log p_k

A draw takes the first action whose cumulative weight exceeds ``u * sum_k exp(l_k - max l)`` for a
uniform ``u``. Written as loops over the row, so the same code runs compiled or interpreted.
"""

from __future__ import annotations

from reflect.formulas.ops import exp, log


def row_max(logits):
    top = logits[0]
    for k in range(1, len(logits)):
        if logits[k] > top:
            top = logits[k]
    return top


def argmax(logits):
    """The first index of the largest logit."""
    best = 0
    for k in range(1, len(logits)):
        if logits[k] > logits[best]:
            best = k
    return best


def sample(logits, uniform):
    """The action drawn from ``softmax(logits)`` by the uniform number ``uniform`` in ``[0, 1)``."""
    top = row_max(logits)
    total = 0.0
    for k in range(len(logits)):
        total += exp(logits[k] - top)
    threshold = uniform * total
    cumulative = 0.0
    for k in range(len(logits)):
        cumulative += exp(logits[k] - top)
        if threshold < cumulative:
            return k
    return len(logits) - 1


def score(logits, action, weight, out):
    """``out[k] = d/dl_k [log p_action + weight * H]``; returns ``H``."""
    top = row_max(logits)
    total = 0.0
    for k in range(len(logits)):
        total += exp(logits[k] - top)
    log_total = log(total)
    entropy = 0.0
    for k in range(len(logits)):
        log_p = logits[k] - top - log_total
        entropy -= exp(log_p) * log_p
    for k in range(len(logits)):
        log_p = logits[k] - top - log_total
        p = exp(log_p)
        out[k] = (1.0 if k == action else 0.0) - p - weight * p * (log_p + entropy)
    return entropy
