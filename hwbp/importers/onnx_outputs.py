"""Which tensor of an ONNX graph hwbp imports as the model's output, and the nodes it needs.

A model with one output uses it.  A model with several (scikit-learn classifiers
exported by skl2onnx have ``output_label`` and ``output_probability``) or a caller's
``output=NAME`` (any tensor of the graph, e.g. a classifier's logits) picks one; by
default a classifier's *logits*, the input of its last ``Softmax`` (the ``ce`` loss
applies the softmax itself), or, without a Softmax, the output of its last
``Sigmoid`` (a binary classifier's probability of the positive class).  The choice
is announced with a :class:`~hwbp.errors.ModelNote` warning.  Only the nodes the
chosen tensor depends on are imported, so a label branch (ArgMax, ZipMap, Cast to
int64) does not stop the import.
"""

from __future__ import annotations

from typing import Sequence

import warnings

import onnx

from hwbp.errors import ModelError, ModelNote

__all__ = ["choose_output", "needed_nodes"]


def choose_output(graph: onnx.GraphProto, source: str, output: str | None) -> str:
    """Name of the tensor to import as the model's output (see the module docstring).

    Raises
    ------
    ModelError
        If ``output`` names no tensor of the graph, or the graph has several outputs
        and no Softmax or Sigmoid to take the logits or probabilities from.
    """
    outputs = [o.name for o in graph.output]
    if output is not None:
        known = set(outputs) | {t for n in graph.node for t in n.output}
        if output not in known:
            raise ModelError(f"{source}: --output {output!r} is not a tensor of the model; graph outputs: "
                             f"{', '.join(outputs) or '(none)'}")
        return output
    if len(outputs) == 1:
        return outputs[0]
    if not outputs:
        raise ModelError(f"{source}: the model has no graph output")
    softmax = [n for n in graph.node if n.op_type == "Softmax" and n.domain in ("", "ai.onnx") and n.input]
    sigmoid = [n for n in graph.node if n.op_type == "Sigmoid" and n.domain in ("", "ai.onnx") and n.output]
    if softmax:
        chosen = softmax[-1].input[0]
        what = f"the logits (input of Softmax {softmax[-1].name or chosen!r})"
    elif sigmoid:
        chosen, what = sigmoid[-1].output[0], f"the probabilities (output of Sigmoid {sigmoid[-1].name!r})"
    else:
        raise ModelError(f"{source}: the model has {len(outputs)} outputs ({', '.join(outputs)}); "
                         f"pick one with --output NAME")
    warnings.warn(ModelNote(f"{source}: the model has {len(outputs)} outputs ({', '.join(outputs)}); using "
                            f"{what}: tensor {chosen!r}; pick another with --output NAME"), stacklevel=3)
    return chosen


def needed_nodes(nodes: Sequence[onnx.NodeProto], output: str) -> list[onnx.NodeProto]:
    """The ``nodes`` (a graph's, in order) that ``output`` depends on, in graph order."""
    need = {output}
    keep = []
    for node in reversed(list(nodes)):
        if any(o in need for o in node.output):
            keep.append(node)
            need.update(i for i in node.input if i)
    return keep[::-1]
