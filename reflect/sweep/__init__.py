"""``reflect sweep``: hyperparameter sweeps of (config point x env x seed) trials on Ray Tune.

* :mod:`reflect.sweep.spec`: the YAML sweep spec, parsed and checked without Ray;
* :mod:`reflect.sweep.search`: grid axes and sampled distributions (random, Optuna's TPE);
* :mod:`reflect.sweep.trial`: one trial in its run folder, resumed from its newest checkpoint;
* :mod:`reflect.sweep.plan`: the sweep folder and the loop over rounds of trials;
* :mod:`reflect.sweep.report`: results CSV, median/IQR summary and learning-curve plot;
* :mod:`reflect.sweep.runner`: the Ray Tune executor (the only module that imports Ray).
"""

from reflect.sweep.plan import Sweep, SweepError, create_sweep, open_sweep, run_sweep
from reflect.sweep.report import write_report
from reflect.sweep.spec import SweepSpec, load_sweep_spec, parse_sweep_spec

__all__ = [
    "Sweep",
    "SweepError",
    "SweepSpec",
    "create_sweep",
    "load_sweep_spec",
    "open_sweep",
    "parse_sweep_spec",
    "run_sweep",
    "write_report",
]
