"""PyTorch in the loop: an ordinary torch training loop that takes its parameter
gradients from an hwbp backend (the reference dynamics, a SPICE circuit, ...).

    pg = physical_gradients(model, example_input, backend="reference", loss="ce")
    for x, labels in loader:
        opt.zero_grad()
        loss = pg(x, labels)          # the backend settles on the batch
        loss.backward()               # fills p.grad with what the backend computed
        opt.step()

The module is exported (``torch.onnx.export``, TorchScript exporter) and imported
into the IR once; each call copies the module's current weights into the graph
(float64), asks the gradient source (:func:`hwbp.train.get_source`: a backend, the
oracle, ``pc`` or ``pc-alm``) for the gradients of the batch-mean loss, and returns
the loss as a tensor whose backward pass hands those gradients to the parameters
(accumulating into ``.grad`` as autograd does).  No torch autograd graph of the
module is built: the gradients are the backend's.  Supported modules are those the
ONNX importer reads (Linear layers, the supported activations, residual adds); torch
parameter ``fc1.weight`` is IR parameter ``fc1.weight``.

The gradients are those of the module in eval mode (BatchNorm with its running
statistics, no dropout): a module in ``train()`` mode that holds such a layer is
refused, not silently evaluated otherwise.  Buffers (running statistics) are synced
like the parameters: when one has changed since the export, the module is exported
again.  Inputs must have the example input's per-sample shape.

torch is imported lazily (the CLI never needs it).
"""

from __future__ import annotations

import io
import warnings
from typing import Any, Mapping

import numpy as np

from hwbp.errors import ConfigError, ModelError

__all__ = ["PhysicalGradients", "physical_gradients"]


def _export(module: Any, example: Any) -> bytes:
    import torch

    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the legacy (TorchScript) exporter's deprecation notice
        with torch.no_grad():
            torch.onnx.export(module, (example,), buf, dynamo=False, input_names=["x"], output_names=["y"])
    return buf.getvalue()


def _mode_dependent(module: Any) -> list[str]:
    """Names of the submodules of ``module`` whose output depends on train/eval mode
    (batch normalization, dropout) and that are in training mode."""
    import torch

    kinds = (torch.nn.modules.batchnorm._NormBase, torch.nn.modules.dropout._DropoutNd)
    return [name or type(m).__name__ for name, m in module.named_modules() if isinstance(m, kinds) and m.training]


def _buffers(module: Any) -> dict[str, np.ndarray]:
    return {k: b.detach().cpu().double().numpy().copy() for k, b in module.named_buffers()}


class PhysicalGradients:
    """A torch module bound to a gradient source (see the module docstring).

    Parameters
    ----------
    module : torch.nn.Module
        The model; its parameters receive the gradients.
    example_input : torch.Tensor
        A ``(batch, n_in)`` input for the one-time export.
    backend : str
        Gradient source: ``reference``, ``spice``, any registered backend, ``oracle``,
        ``pc`` or ``pc-alm``.
    loss : {"mse", "ce"}
        Loss port (targets: class labels or one-hot rows for ce, values for mse).
    beta : float
        Loss perturbation strength of the dynamics.
    options : mapping, optional
        The source's options (e.g. ``{"steps": 12}`` or SPICE's ``{"analysis": "op"}``).
    initial : str, optional
        Initial state of each settle (default: the backend's).
    """

    def __init__(self, module: Any, example_input: Any, *, backend: str = "reference", loss: str = "ce",
                 beta: float = 1.0, options: Mapping[str, Any] | None = None, initial: str | None = None) -> None:
        from hwbp.train.sources import get_source

        self.module = module
        self.loss_name = loss
        self._check_mode()
        self._example = example_input
        self._sample_shape = tuple(example_input.shape[1:])
        self._export_graph()
        names = dict(module.named_parameters())
        ir = self.graph.parameters()
        if set(names) != set(ir):
            missing = sorted(set(names) ^ set(ir))
            raise ModelError(f"torch module and its exported graph name their parameters differently "
                             f"({', '.join(missing[:4])}); use named Linear modules")
        for k, p in names.items():
            if tuple(p.shape) != ir[k].shape:
                raise ModelError(f"parameter {k!r}: torch shape {tuple(p.shape)} != graph shape {ir[k].shape}")
        self.names = list(names)
        self.source = get_source(backend, beta=beta, options=options,
                                 **({"initial": initial} if initial is not None else {}))
        self.last = None  # the Gradients of the last call

    def _check_mode(self) -> None:
        busy = _mode_dependent(self.module)
        if busy:
            raise ConfigError(f"torch module is in training mode and {', '.join(busy[:3])} behave differently "
                              f"there (batch statistics, dropout); hwbp computes the gradients of the eval-mode "
                              f"network: call module.eval() first")

    def _export_graph(self) -> None:
        from hwbp.importers.onnx import load_onnx_bytes

        self._synced = _buffers(self.module)
        graph = load_onnx_bytes(_export(self.module, self._example), source="torch module")
        self.graph = graph.with_loss(self.loss_name)

    def _inputs(self, x: Any) -> np.ndarray:
        xs = x.detach().cpu().double().numpy() if hasattr(x, "detach") else np.asarray(x, dtype=np.float64)
        if xs.ndim < 1 or tuple(xs.shape[1:]) != self._sample_shape:
            raise ConfigError(f"input has shape {tuple(xs.shape)}; this module was exported for inputs of shape "
                              f"(batch, {', '.join(map(str, self._sample_shape))})")
        return xs.reshape(len(xs), -1)

    def _targets(self, target: Any, n: int) -> np.ndarray:
        y = target.detach().cpu().numpy() if hasattr(target, "detach") else np.asarray(target)
        n_out = self.graph.size(self.graph.output)
        if self.loss_name == "ce" and y.ndim == 1:
            if not np.issubdtype(y.dtype, np.integer) or y.min() < 0 or y.max() >= n_out:
                raise ConfigError(f"ce targets must be class labels in 0..{n_out - 1}")
            y = np.eye(n_out)[y]
        if y.shape != (n, n_out):
            raise ConfigError(f"targets must have shape ({n}, {n_out}) (or ({n},) class labels for ce), got {y.shape}")
        return y.astype(np.float64)

    def __call__(self, x: Any, target: Any) -> Any:
        """The batch-mean loss as a 0-d tensor; its ``backward()`` puts the source's
        gradients into the parameters' ``.grad``."""
        import torch

        from hwbp.types import Batch

        self._check_mode()
        xs = self._inputs(x)
        now = _buffers(self.module)
        if now.keys() != self._synced.keys() or any(not np.array_equal(v, self._synced[k]) for k, v in now.items()):
            self._export_graph()  # running statistics (or other buffers) changed: they are constants of the graph
        params = dict(self.module.named_parameters())
        values = {k: params[k].detach().cpu().double().numpy() for k in self.names}
        self.graph = self.graph.with_parameters(values)
        batch = Batch({self.graph.inputs[0].name: xs}, self._targets(target, len(xs)))
        grads = self.source(self.graph, batch)
        self.last = grads
        tensors = [params[k] for k in self.names]
        g = [torch.as_tensor(np.asarray(grads.parameters[k]), dtype=t.dtype, device=t.device)
             for k, t in zip(self.names, tensors)]
        return _Handoff.apply(torch.tensor(float(grads.loss), dtype=tensors[0].dtype), g, *tensors)


def _make_handoff():
    import torch

    class Handoff(torch.autograd.Function):
        """Identity on the loss value; backward hands precomputed gradients to the parameters."""

        @staticmethod
        def forward(ctx, loss, grads, *params):  # type: ignore[override]
            ctx.grads = grads
            return loss.clone()

        @staticmethod
        def backward(ctx, grad_output):  # type: ignore[override]
            return (None, None, *[grad_output * g for g in ctx.grads])

    return Handoff


class _LazyHandoff:
    _fn = None

    def apply(self, *args: Any) -> Any:
        if _LazyHandoff._fn is None:
            _LazyHandoff._fn = _make_handoff()
        return _LazyHandoff._fn.apply(*args)


_Handoff = _LazyHandoff()


def physical_gradients(module: Any, example_input: Any, **kwargs: Any) -> PhysicalGradients:
    """:class:`PhysicalGradients` of ``module`` (keyword arguments as there)."""
    return PhysicalGradients(module, example_input, **kwargs)
