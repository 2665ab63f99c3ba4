"""Eligibility traces (D-RTRL, pp-prop), the online gradient engine and its backends."""

from reflect.traces.backends import BACKEND_NAMES, BackendChoice, select_backend
from reflect.traces.engine import ALGORITHMS, TraceEngine

__all__ = ["ALGORITHMS", "BACKEND_NAMES", "BackendChoice", "TraceEngine", "select_backend"]
