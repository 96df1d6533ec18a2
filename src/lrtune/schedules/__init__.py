"""Learning-rate schedules: pure, immutable ``t -> multiplier`` functions of the t-th optimizer update.

Build one from primitives and combinators, serialise it with ``to_spec()`` / :func:`from_spec`, and drive
any torch optimizer with :class:`LRScheduler`::

    from lrtune import schedules
    s = schedules.join([schedules.linear_warmup(4000), schedules.linear_decay(96_000)], [4000])
    s == schedules.warmup_linear_decay(4000, 100_000)      # True: warm-up + anything is a join
    sched = schedules.LRScheduler(optimizer, s)             # optimizer.step(); sched.step()
"""

from ._base import Schedule, from_spec
from ._combinators import Join, Product, Scale, Shift
from ._factories import (
    constant,
    cosine,
    exponential,
    inverse_sqrt,
    join,
    linear_decay,
    linear_warmup,
    noam,
    product,
    rectification,
    scale,
    shift,
    step_decay,
    untuned_warmup,
    warmup_cosine,
    warmup_linear_decay,
    wsd,
)
from ._plot import plot
from ._primitives import (
    Constant,
    Cosine,
    Exponential,
    InverseSqrt,
    LinearDecay,
    LinearWarmup,
    Noam,
    OneMinusSqrtDecay,
    Rectification,
    StepDecay,
    UntunedWarmup,
)
from ._scheduler import LRScheduler

__all__ = [
    "Constant",
    "Cosine",
    "Exponential",
    "InverseSqrt",
    "Join",
    "LRScheduler",
    "LinearDecay",
    "LinearWarmup",
    "Noam",
    "OneMinusSqrtDecay",
    "Product",
    "Rectification",
    "Scale",
    "Schedule",
    "Shift",
    "StepDecay",
    "UntunedWarmup",
    "constant",
    "cosine",
    "exponential",
    "from_spec",
    "inverse_sqrt",
    "join",
    "linear_decay",
    "linear_warmup",
    "noam",
    "plot",
    "product",
    "rectification",
    "scale",
    "shift",
    "step_decay",
    "untuned_warmup",
    "warmup_cosine",
    "warmup_linear_decay",
    "wsd",
]
