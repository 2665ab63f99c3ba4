"""Learning rules on top of the eligibility traces: the REFLECT three-factor learners.

Importing this package registers the built-in learners (``td``: actor-critic(lambda) with a spiking
critic; ``reward-baseline``: no critic). A new learner is a :class:`ReflectLearner` subclass with its
third-factor template functions, registered with :func:`register_learner`, plus its import line here.
"""

# isort: off  (each registers its learner; the order is the order they are listed in)
from reflect.learning.actor_critic import ActorCriticLearner
from reflect.learning.config import LearnerConfig
from reflect.learning.heads import CategoricalHead, GaussianHead, PolicyHead
from reflect.learning.learner import (
    Learner,
    LearnerStats,
    ReflectLearner,
    compile_steps,
    learner_class,
    learner_names,
    make_learner,
    register_learner,
)

# isort: on
from reflect.learning.obgd import obgd_step_size, obgd_step_sizes
from reflect.learning.reward_baseline import RewardBaselineLearner
from reflect.learning.trace_group import TraceGroup

THIRD_FACTORS = learner_names()

__all__ = [
    "THIRD_FACTORS", "ActorCriticLearner", "CategoricalHead", "GaussianHead", "Learner", "LearnerConfig",
    "LearnerStats", "PolicyHead", "ReflectLearner", "RewardBaselineLearner", "TraceGroup", "compile_steps",
    "learner_class",
    "learner_names", "make_learner", "obgd_step_size", "obgd_step_sizes", "register_learner",
]
