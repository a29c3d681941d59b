"""Old import path of mer.experiment.plan (the plan is Ray-free and moved there); kept so code
and notes written against `mer.sweep.plan` keep working."""

from mer.experiment.costs import *  # noqa: F403
from mer.experiment.describe import describe  # noqa: F401
from mer.experiment.plan import *  # noqa: F403
