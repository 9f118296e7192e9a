"""Monte Carlo sweeps over device instances: grid x instances x backends on Dask.

:func:`load_spec` reads a sweep specification (TOML), :func:`run_sweep` runs it (or
resumes it) on a ``LocalCluster`` or an existing scheduler, and
:func:`hwbp.sweep.report.write_results` writes the CSV, the figure and the summary.
"""

from hwbp.sweep.run import columns, run_sweep, run_task
from hwbp.sweep.spec import SweepSpec, Task, load_spec, spec_from_mapping

__all__ = ["SweepSpec", "Task", "load_spec", "spec_from_mapping", "run_sweep", "run_task", "columns"]
