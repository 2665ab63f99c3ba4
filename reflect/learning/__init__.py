"""Learning rules on top of the eligibility traces (the REFLECT three-factor learner)."""

from reflect.learning.config import THIRD_FACTORS, LearnerConfig
from reflect.learning.heads import CategoricalHead, PolicyHead
from reflect.learning.obgd import obgd_step_size, obgd_step_sizes
from reflect.learning.reflect_learner import LearnerStats, ReflectLearner
from reflect.learning.trace_group import TraceGroup

__all__ = [
    "THIRD_FACTORS", "CategoricalHead", "LearnerConfig", "LearnerStats", "PolicyHead", "ReflectLearner",
    "TraceGroup", "obgd_step_size", "obgd_step_sizes",
]
