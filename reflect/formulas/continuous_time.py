"""Continuous-time neurons (NIR's leaky nodes) and reflect's discrete steps, related by forward Euler.

NIR writes a leaky state as an ODE, ``tau dx/dt = (x_leak - x) + r u``; a simulator with time step ``dt``
integrates it with forward Euler (snnTorch and Norse do) as::

    x_t = (1 - dt / tau) x_{t-1} + (dt / tau) x_leak + (r dt / tau) u_t
        = d x_{t-1} + (1 - d) x_leak + g u_t,       d = 1 - dt / tau,   g = r dt / tau

reflect's leaky integrator (:mod:`reflect.formulas.leaky`) is ``x_t = d x_{t-1} + (1 - d) y_t``, so a
node of decay ``d`` is ``tau = dt / (1 - d)`` with ``r = 1`` (then ``g = 1 - d``, reflect's input gain).
Since ``g / (1 - d) = r``, a node of any other ``r`` is reflect's with its input scaled by ``r``:
``y = r u``, and a constant ``x_leak`` is a constant input ``x_leak / r`` of the node.

A subtractive reset, ``v_t = d (v_{t-1} - theta s_{t-1}) + ...``, equals a self-connection of weight
:func:`reset_feedback` from the neuron's last spike into its input ``u`` (with ``r = 1``); that is how
the exporter writes reflect's reset with NIR's primitives (``docs/NIR.md``).

Element-wise, for numbers and numpy arrays.
"""

from __future__ import annotations


def euler_tau(decay, dt):
    """The time constant ``tau = dt / (1 - d)`` of a discrete decay ``d`` in ``[0, 1)`` at step ``dt``."""
    return dt / (1.0 - decay)


def euler_decay(tau, dt):
    """The discrete decay ``d = 1 - dt / tau`` of a time constant ``tau`` (>= ``dt``) at step ``dt``."""
    return 1.0 - dt / tau


def reset_feedback(decay, theta):
    """The weight ``-d theta / (1 - d)`` of the self-connection that subtracts ``d theta s_{t-1}`` from a
    membrane of decay ``d`` and input gain ``1 - d``: reflect's subtractive reset as an input."""
    return -decay * theta / (1.0 - decay)
