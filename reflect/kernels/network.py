"""Template: a spiking network's step with eligibility traces, its backward pass and its stream reset,
as loops for the compiled backend (specialised per neuron model and surrogate by
:func:`reflect.kernels.specialize.specialize`).

Bound names: the model's formulas ``model_reset``, ``model_step``, ``model_excess``,
``model_state_jacobian``, ``model_input_jacobian``, ``model_parameter_jacobian``,
``model_excess_jacobian`` (see :mod:`reflect.spiking.models.registry`), ``surrogate_derivative(u, k)``,
and the model's sizes ``STATES`` (at most 4) and ``PARAMS`` (at most 6).

The forward step's element-wise math runs in float64 on values read from the buffers (of the network's
dtype), results rounded when stored, and currents ``y = z @ W`` are accumulated in float64, skipping zero
inputs (most inputs are spikes): a spike is a threshold, and the exported policy computes the same way.
The backward pass (outer products, learning signals) runs in the network's dtype, as numpy would. Per
layer ``l``, stream ``b`` and neuron ``j`` (``h`` the model's ``S`` states)::

    y = z @ W;   r = reset(h, s, p);   h' = step(h, s, r, y, p);   u = excess(h', p);   s' = H(u)
    (with a current normalisation gain g > 0, y is first centred and scaled across the layer's neurons,
    reflect.formulas.current_norm, and D_f below carries its factor)
    traces:  D = state_jacobian(...),  D_f = input_jacobian(...),  psi' = sigma'(u)
             pp-prop:  eps_x <- alpha_x eps_x + z                 (alpha_x: the model's decay, or fixed)
                       eps_f <- alpha_f D eps_f + (1 - alpha_f) D_f      (alpha_f > 0 only)
             d-rtrl:   eps[:, i, j] <- D eps[:, i, j] + z_i D_f
             learned constant q:  e_q <- D e_q + dh/dp_q
    readout: y_o = z_L @ W_o;  o <- leaky_integrate(o, y_o, d);  eps_o <- d eps_o + (1 - d) z_L

Backward, from ``dL/do`` per stream (``decay == 0`` overwrites)::

    g_o <- decay g_o + eps_o (outer) dL/do;          dL/ds_L = (1 - d) dL/do W_o^T
    delta = dL/ds psi du/dh   (S numbers);           w = delta . D_f  (= dL/dy)
    pp-prop:  g_W <- decay g_W + eps_x (outer) w      (alpha_f > 0: (delta . eps_f) / c instead of w)
    d-rtrl:   g_W[i, j] <- decay g_W[i, j] + delta . eps[:, i, j]
    constant q:  g_q <- decay g_q + delta . e_q + dL/ds psi du/dp_q      (summed over neurons when the
                                                                          constant is one per layer)
    dL/ds_{l-1} = w W_l[:in]^T

The network's buffers come as one tuple (positions below), built by the compiled backend
(:mod:`reflect.traces.backends`).
"""

from __future__ import annotations

import numpy as np

from reflect.formulas.current_norm import current_norm_apply, current_norm_scale
from reflect.formulas.leaky import leaky_integrate
from reflect.kernels.specialize import placeholder

TEMPLATE = (
    "load_state", "load_state4", "load_constants", "constant", "layer_forward", "network_forward",
    "readout_forward", "currents", "accumulate_outer", "times_transposed", "network_backward",
    "network_reset", "forward_entry", "normalize_currents",
)

INLINE = ("load_state", "load_state4", "load_constants", "constant", "layer_forward", "readout_forward",
          "currents", "accumulate_outer")
REASSOCIATE = ("times_transposed", "normalize_currents")  # sums over a row: vectorised
MAX_STATES = 4
MAX_PARAMS = 6
PP_PROP, D_RTRL = 0, 1

# positions in the network tuple
ZS, WS, HS, PSIS, DFS, JACS, EPS_XS, EPS_FS, EPSS, ETRACES, CONSTS, LEARN = range(12)
(YS, DELTAS, WEIGHTED, UPS, INFO, SCALARS, READOUT, READOUT_SCALARS, ALGORITHM, CORRECTION,
 CAST) = range(12, 23)
# columns of INFO (int64 [L, 4]) and SCALARS (float64 [L, 4])
RECURRENT, IN_FEATURES, DETACH, DECAY_INDEX = range(4)
ALPHA_X, ALPHA_F, SLOPE, CURRENT_NORM = range(4)

STATES = 1
PARAMS = 1


# bound per neuron model and surrogate
model_reset = model_step = model_excess = model_state_jacobian = model_input_jacobian = placeholder
model_parameter_jacobian = model_excess_jacobian = surrogate_derivative = placeholder


def load_state(a, b, j):
    """``(a[0, b, j], ..., a[S-1, b, j])`` in float64."""
    if STATES == 1:
        return (np.float64(a[0, b, j]),)
    elif STATES == 2:
        return (np.float64(a[0, b, j]), np.float64(a[1, b, j]))
    elif STATES == 3:
        return (np.float64(a[0, b, j]), np.float64(a[1, b, j]), np.float64(a[2, b, j]))
    return (np.float64(a[0, b, j]), np.float64(a[1, b, j]), np.float64(a[2, b, j]), np.float64(a[3, b, j]))


def load_state4(a, b, i, j):
    """``(a[0, b, i, j], ..., a[S-1, b, i, j])`` in float64."""
    if STATES == 1:
        return (np.float64(a[0, b, i, j]),)
    elif STATES == 2:
        return (np.float64(a[0, b, i, j]), np.float64(a[1, b, i, j]))
    elif STATES == 3:
        return (np.float64(a[0, b, i, j]), np.float64(a[1, b, i, j]), np.float64(a[2, b, i, j]))
    return (np.float64(a[0, b, i, j]), np.float64(a[1, b, i, j]), np.float64(a[2, b, i, j]),
            np.float64(a[3, b, i, j]))


def constant(view, j):
    """Neuron ``j``'s value of a constant held as ``[1, H]`` (per neuron) or ``[1, 1]`` (per layer)."""
    return np.float64(view[0, j if view.shape[1] > 1 else 0])


def load_constants(c, j):
    """The model's constants of neuron ``j`` as a tuple of float64."""
    if PARAMS == 1:
        return (constant(c[0], j),)
    elif PARAMS == 2:
        return (constant(c[0], j), constant(c[1], j))
    elif PARAMS == 3:
        return (constant(c[0], j), constant(c[1], j), constant(c[2], j))
    elif PARAMS == 4:
        return (constant(c[0], j), constant(c[1], j), constant(c[2], j), constant(c[3], j))
    elif PARAMS == 5:
        return (constant(c[0], j), constant(c[1], j), constant(c[2], j), constant(c[3], j),
                constant(c[4], j))
    return (constant(c[0], j), constant(c[1], j), constant(c[2], j), constant(c[3], j), constant(c[4], j),
            constant(c[5], j))


def currents(z, w, y):
    """``y = z @ w`` for one stream (``z`` ``[R]``, ``w`` ``[R, H]``, ``y`` ``[H]`` float64), skipping the
    inputs that are 0 (most of a spiking layer's); one output (a value, a one-dimensional action) runs as
    one flat loop (see :func:`accumulate_outer`)."""
    if y.shape[0] == 1:
        total = 0.0
        for r in range(z.shape[0]):
            zr = np.float64(z[r])
            if zr != 0.0:
                total += zr * np.float64(w[r, 0])
        y[0] = total
        return
    for j in range(y.shape[0]):
        y[j] = 0.0
    for r in range(z.shape[0]):
        zr = np.float64(z[r])
        if zr != 0.0:
            for j in range(y.shape[0]):
                y[j] += zr * np.float64(w[r, j])


def normalize_currents(row, gain):
    """Centre and scale one stream's currents ``row`` ``[H]`` (float64) in place across the neurons
    (:mod:`reflect.formulas.current_norm`); returns ``dy'/dy``. Compiled with reassociation: the two
    sums vectorise."""
    hidden = row.shape[0]
    mean = 0.0
    for j in range(hidden):
        mean += row[j]
    mean /= hidden
    variance = 0.0
    for j in range(hidden):
        centred = row[j] - mean
        variance += centred * centred
    scale = current_norm_scale(variance / hidden, gain)
    for j in range(hidden):
        row[j] = current_norm_apply(row[j], mean, scale)
    return scale


def layer_forward(net, layer, traces, active):
    """One step of hidden layer ``layer`` for the streams where ``active``."""
    z, w, h, psi = net[ZS][layer], net[WS][layer], net[HS][layer], net[PSIS][layer]
    spikes = net[ZS][layer + 1]
    consts, learn, etrace = net[CONSTS][layer], net[LEARN][layer], net[ETRACES][layer]
    y, df, jac = net[YS][layer], net[DFS][layer], net[JACS][layer]
    eps_x, eps_f, eps = net[EPS_XS][layer], net[EPS_FS][layer], net[EPSS][layer]
    info, scalars = net[INFO], net[SCALARS]
    recurrent, n_in = info[layer, RECURRENT] == 1, info[layer, IN_FEATURES]
    detach = info[layer, DETACH] == 1
    alpha_x, alpha_f, slope = scalars[layer, ALPHA_X], scalars[layer, ALPHA_F], scalars[layer, SLOPE]
    gain = scalars[layer, CURRENT_NORM]
    algorithm = net[ALGORITHM]
    batch, hidden = psi.shape
    rows = z.shape[1]
    needs_jacobian = algorithm == D_RTRL or alpha_f > 0.0 or learn.shape[0] > 0
    if traces and algorithm == PP_PROP and alpha_x != alpha_x:  # NaN: follow the model's decay constant
        view = consts[info[layer, DECAY_INDEX]]
        total = 0.0
        for j in range(hidden):
            total += constant(view, j)
        alpha_x = total / hidden
    for b in range(batch):
        if not active[b]:
            continue
        if recurrent:
            for j in range(hidden):
                z[b, n_in + j] = spikes[b, j]
        currents(z[b], w, y[b])
        input_scale = normalize_currents(y[b], gain) if gain > 0.0 else 1.0
        for j in range(hidden):
            hp = load_state(h, b, j)
            p = load_constants(consts, j)
            s_prev = np.float64(spikes[b, j])
            yj = y[b, j]
            reset = model_reset(hp, s_prev, p)
            hn = model_step(hp, s_prev, reset, yj, p)
            u = model_excess(hn, p)
            if traces:
                psi_prev = np.float64(psi[b, j])
                d_f = model_input_jacobian(hp, s_prev, reset, yj, p)
                for k in range(STATES):
                    df[k, b, j] = d_f[k] * input_scale
                if not needs_jacobian:  # pp-prop without an output trace or learned constants: D unused
                    psi[b, j] = surrogate_derivative(u, slope)
                    for k in range(STATES):
                        h[k, b, j] = hn[k]
                    spikes[b, j] = 1.0 if u > 0.0 else 0.0
                    continue
                d = model_state_jacobian(hp, s_prev, reset, yj, psi_prev, p, detach)
                for k in range(STATES * STATES):
                    jac[k, b, j] = d[k]
                if learn.shape[0] > 0:
                    d_p = model_parameter_jacobian(hp, s_prev, reset, yj, psi_prev, p, detach)
                    for q in range(learn.shape[0]):
                        immediate = d_p[learn[q]]
                        old = load_state(etrace[q], b, j)
                        for s in range(STATES):
                            total = immediate[s]
                            for k in range(STATES):
                                total += d[s * STATES + k] * old[k]
                            etrace[q, s, b, j] = total
                if algorithm == PP_PROP and alpha_f > 0.0:
                    old = load_state(eps_f, b, j)
                    for s in range(STATES):
                        total = 0.0
                        for k in range(STATES):
                            total += d[s * STATES + k] * old[k]
                        eps_f[s, b, j] = alpha_f * total + (1.0 - alpha_f) * d_f[s] * input_scale
                psi[b, j] = surrogate_derivative(u, slope)
            for k in range(STATES):
                h[k, b, j] = hn[k]
            spikes[b, j] = 1.0 if u > 0.0 else 0.0
        if traces:
            if algorithm == PP_PROP:
                for r in range(rows):
                    eps_x[b, r] = alpha_x * np.float64(eps_x[b, r]) + np.float64(z[b, r])
            else:
                for i in range(rows):
                    zi = np.float64(z[b, i])
                    for j in range(hidden):
                        old = load_state4(eps, b, i, j)
                        for s in range(STATES):
                            total = zi * df[s, b, j]
                            for k in range(STATES):
                                total += jac[s * STATES + k, b, j] * old[k]
                            eps[s, b, i, j] = total


def readout_forward(net, traces, active):
    """The readout's step; its output lands in ``o``."""
    w_o, y_o, o, eps_o = net[READOUT]
    decay = net[READOUT_SCALARS][0]
    z = net[ZS][len(net[ZS]) - 1]
    batch, outputs = o.shape
    rows = z.shape[1]
    for b in range(batch):
        if not active[b]:
            continue
        currents(z[b], w_o, y_o[b])
        for k in range(outputs):
            o[b, k] = leaky_integrate(np.float64(o[b, k]), y_o[b, k], decay) if decay > 0.0 else y_o[b, k]
        if traces and decay > 0.0:
            for r in range(rows):
                eps_o[b, r] = leaky_integrate(np.float64(eps_o[b, r]), np.float64(z[b, r]), decay)


def network_forward(net, traces, active):
    """One step of every layer and the readout (inputs already in the first ``z``)."""
    alpha_f = net[SCALARS][0, ALPHA_F]
    if traces and alpha_f > 0.0:
        correction = net[CORRECTION]
        for b in range(correction.shape[0]):
            if active[b]:
                correction[b] = alpha_f * correction[b] + (1.0 - alpha_f)
    for layer in range(len(net[WS])):
        layer_forward(net, layer, traces, active)
    readout_forward(net, traces, active)


def accumulate_outer(row, base, pre, post, decay, overwrite):
    """``G = decay * G + pre (outer) post`` for the block ``G`` ``[len(pre), len(post)]`` stored row-major
    in ``row`` from ``base`` (``overwrite``: ``G = pre (outer) post``). Loops index slices from 0 (an index
    that could be negative would stop them vectorising); one column (a readout of one output) runs as one
    flat loop, as a nested loop of one iteration costs more than its arithmetic."""
    rows, cols = pre.shape[0], post.shape[0]
    if cols == 1:
        column = row[base:base + rows]
        p = post[0]
        if overwrite:
            for r in range(rows):
                column[r] = pre[r] * p
        else:
            for r in range(rows):
                column[r] = decay * column[r] + pre[r] * p
        return
    for r in range(rows):
        x = pre[r]
        segment = row[base + r * cols:base + (r + 1) * cols]
        if overwrite:
            for j in range(cols):
                segment[j] = x * post[j]
        else:
            for j in range(cols):
                segment[j] = decay * segment[j] + x * post[j]


def times_transposed(vector, w, out, gain):
    """``out[i] = gain * sum_k vector[k] w[i, k]`` for ``i < len(out)`` (the learning signal sent down)."""
    cols = vector.shape[0]
    if cols == 1:
        v = vector[0] * gain
        for i in range(out.shape[0]):
            out[i] = v * w[i, 0]
        return
    for i in range(out.shape[0]):
        total = vector[0] * w[i, 0]
        for k in range(1, cols):
            total += vector[k] * w[i, k]
        out[i] = gain * total


def network_backward(net, signal, grads, decay, active):
    """Per-stream gradients from ``signal = dL/do`` ``[B, O]`` (see the module docstring).

    ``grads`` = ``(flat [B, P], offsets int64 [L + 2]: where each layer's ``[R_l, H_l]`` block, the
    readout's ``[R_o, O]`` block and the learned constants start in a row, the constants' table int64
    [n, 4]: layer, position in the layer's learned constants, column, width (1 or H))``; only the streams
    where ``active`` are touched.
    """
    flat, offsets, const_table = grads
    w_o, _, _, eps_o = net[READOUT]
    readout_decay = net[READOUT_SCALARS][0]
    z_top = net[ZS][len(net[ZS]) - 1]
    pre = eps_o if readout_decay > 0.0 else z_top
    layers = len(net[WS])
    batch = signal.shape[0]
    cast = net[CAST]  # numbers rounded to the network's dtype, so the loops below stay in it
    cast[0] = decay
    cast[1] = 1.0 - readout_decay
    cast[2] = 1.0
    d, gain, one = cast[0], cast[1], cast[2]
    readout_start, const_start = offsets[layers], offsets[layers + 1]
    const_stop = readout_start  # the constants come after the layers and before the readout
    for b in range(batch):
        if not active[b]:
            continue
        out = signal[b]
        accumulate_outer(flat[b], readout_start, pre[b], out, d, decay == 0.0)
        times_transposed(out, w_o, net[UPS][layers - 1][b], gain)
        for c in range(const_start, const_stop):
            flat[b, c] = 0.0 if decay == 0.0 else d * flat[b, c]
    alpha_f = net[SCALARS][0, ALPHA_F]
    algorithm = net[ALGORITHM]
    for layer in range(layers - 1, -1, -1):
        h, psi, df = net[HS][layer], net[PSIS][layer], net[DFS][layer]
        consts, learn, etrace = net[CONSTS][layer], net[LEARN][layer], net[ETRACES][layer]
        up, delta, weighted = net[UPS][layer], net[DELTAS][layer], net[WEIGHTED][layer]
        eps_x, eps_f, eps, w = net[EPS_XS][layer], net[EPS_FS][layer], net[EPSS][layer], net[WS][layer]
        start = offsets[layer]
        hidden = psi.shape[1]
        rows = w.shape[0]
        for b in range(batch):
            if not active[b]:
                continue
            inv_c = 1.0 / net[CORRECTION][b] if alpha_f > 0.0 else 1.0
            learned_here = False
            for t in range(const_table.shape[0]):
                if const_table[t, 0] == layer:
                    learned_here = True
            for j in range(hidden):
                p = load_constants(consts, j)
                du_dh, du_dp = model_excess_jacobian(load_state(h, b, j), p)
                g_u = up[b, j] * np.float64(psi[b, j])
                total = 0.0
                post = 0.0
                for s in range(STATES):
                    ds = g_u * du_dh[s]
                    delta[s, b, j] = ds
                    total += ds * np.float64(df[s, b, j])
                    if alpha_f > 0.0:
                        post += ds * np.float64(eps_f[s, b, j])
                weighted[b, j] = total
                if algorithm == PP_PROP:  # up is reused for the postsynaptic factor of the outer product
                    up[b, j] = post * inv_c if alpha_f > 0.0 else total
                if learned_here:
                    for t in range(const_table.shape[0]):
                        if const_table[t, 0] != layer:
                            continue
                        q = const_table[t, 1]
                        g = g_u * du_dp[learn[q]]
                        for s in range(STATES):
                            g += np.float64(delta[s, b, j]) * np.float64(etrace[q, s, b, j])
                        column = const_start + const_table[t, 2] + (j if const_table[t, 3] > 1 else 0)
                        flat[b, column] += g
            row = flat[b]
            if algorithm == PP_PROP:
                accumulate_outer(row, start, eps_x[b], up[b], d, decay == 0.0)
            else:
                for r in range(rows):
                    segment = row[start + r * hidden:start + (r + 1) * hidden]
                    for j in range(hidden):
                        acc = delta[0, b, j] * eps[0, b, r, j]
                        for s in range(1, STATES):
                            acc += delta[s, b, j] * eps[s, b, r, j]
                        segment[j] = acc if decay == 0.0 else d * segment[j] + acc
            if layer > 0:
                times_transposed(weighted[b], w, net[UPS][layer - 1][b], one)


def network_reset(net, done):
    """Zero the state and every trace of the streams where ``done``."""
    _, _, o, eps_o = net[READOUT]
    for layer in range(len(net[WS])):
        h, psi, spikes = net[HS][layer], net[PSIS][layer], net[ZS][layer + 1]
        eps_x, eps_f = net[EPS_XS][layer], net[EPS_FS][layer]
        eps, etrace = net[EPSS][layer], net[ETRACES][layer]
        hidden = psi.shape[1]
        for b in range(done.shape[0]):
            if not done[b]:
                continue
            for j in range(hidden):
                psi[b, j] = 0.0
                spikes[b, j] = 0.0
                for s in range(h.shape[0]):
                    h[s, b, j] = 0.0
            for r in range(eps_x.shape[1]):
                eps_x[b, r] = 0.0
            for s in range(eps_f.shape[0]):
                for j in range(eps_f.shape[2]):
                    eps_f[s, b, j] = 0.0
            for s in range(eps.shape[0]):
                for i in range(eps.shape[2]):
                    for j in range(eps.shape[3]):
                        eps[s, b, i, j] = 0.0
            for q in range(etrace.shape[0]):
                for s in range(etrace.shape[1]):
                    for j in range(etrace.shape[3]):
                        etrace[q, s, b, j] = 0.0
    for b in range(done.shape[0]):
        if done[b]:
            net[CORRECTION][b] = 0.0
            for k in range(o.shape[1]):
                o[b, k] = 0.0
            for r in range(eps_o.shape[1]):
                eps_o[b, r] = 0.0


def forward_entry(bundle, traces):
    """:func:`network_forward` of every stream for a call from Python: ``bundle.items = (net, active)``
    (one pointer to unbox, see reflect.kernels.compiler.bundle)."""
    net, active = bundle.items
    network_forward(net, traces, active)
