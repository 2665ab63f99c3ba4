"""Eligibility traces (D-RTRL, pp-prop) and the online gradient engine."""

from reflect.traces.engine import TraceEngine
from reflect.traces.layer_traces import ALGORITHMS, LayerTraces

__all__ = ["ALGORITHMS", "LayerTraces", "TraceEngine"]
