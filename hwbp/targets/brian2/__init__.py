"""The Brian2 realization: the conjugate-pair dynamics as Brian2 equations.

* :mod:`~hwbp.targets.brian2.model`: the lowered system as ``NeuronGroup`` equations and
  ``Synapses`` (pure Python, shared by the runner and the script);
* :mod:`~hwbp.targets.brian2.runner`: builds and runs them in Brian2 (numpy, cython,
  cpp_standalone) and reads the state back;
* :mod:`~hwbp.targets.brian2.backend`: the ``brian2`` backend (``hwbp verify --backend brian2``);
* :mod:`~hwbp.targets.brian2.emit` and :mod:`~hwbp.targets.brian2.script`: the ``brian2``
  compile target (a stand-alone script and an ``.npz`` of parameters).
"""
