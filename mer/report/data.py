"""A results folder read into one object for reporting: mer.experiment.run (the one reader, shared
with the sweep's summary), re-exported under the report's historical names."""

from mer.experiment.run import RunData, load_run
from mer.experiment.searchlog import STATES, search_configs, uncounted_trials

__all__ = ["STATES", "RunData", "load_run", "search_configs", "uncounted_trials"]
