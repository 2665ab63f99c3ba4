"""Eligibility traces (D-RTRL, pp-prop), the online gradient engine and its backends."""

from reflect.traces.backends import Backend, BackendChoice, backend_names, register_backend, select_backend
from reflect.traces.engine import ALGORITHMS, TraceEngine

__all__ = [
    "ALGORITHMS", "Backend", "BackendChoice", "TraceEngine", "backend_names", "register_backend",
    "select_backend",
]
