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
    cooldown,
    cosine,
    cosine_warmup,
    exponential,
    exponential_warmup,
    inverse_sqrt,
    join,
    linear_decay,
    linear_warmup,
    noam,
    one_minus_sqrt_warmup,
    polynomial_decay,
    product,
    rectification,
    scale,
    shift,
    step_decay,
    untuned_warmup,
    warmup_cosine,
    warmup_linear_decay,
    warmup_polynomial_decay,
    wsd,
)
from ._plot import plot
from ._primitives import (
    Constant,
    Cosine,
    CosineWarmup,
    Exponential,
    ExponentialWarmup,
    InverseSqrt,
    LinearDecay,
    LinearWarmup,
    Noam,
    OneMinusSqrtDecay,
    OneMinusSqrtWarmup,
    PolynomialDecay,
    Rectification,
    StepDecay,
    UntunedWarmup,
)
from ._scheduler import LRScheduler

__all__ = [
    "Constant",
    "Cosine",
    "CosineWarmup",
    "Exponential",
    "ExponentialWarmup",
    "InverseSqrt",
    "Join",
    "LRScheduler",
    "LinearDecay",
    "LinearWarmup",
    "Noam",
    "OneMinusSqrtDecay",
    "OneMinusSqrtWarmup",
    "PolynomialDecay",
    "Product",
    "Rectification",
    "Scale",
    "Schedule",
    "Shift",
    "StepDecay",
    "UntunedWarmup",
    "constant",
    "cooldown",
    "cosine",
    "cosine_warmup",
    "exponential",
    "exponential_warmup",
    "from_spec",
    "inverse_sqrt",
    "join",
    "linear_decay",
    "linear_warmup",
    "noam",
    "one_minus_sqrt_warmup",
    "plot",
    "polynomial_decay",
    "product",
    "rectification",
    "scale",
    "shift",
    "step_decay",
    "untuned_warmup",
    "warmup_cosine",
    "warmup_linear_decay",
    "warmup_polynomial_decay",
    "wsd",
]
