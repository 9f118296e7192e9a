"""Structured layers and device instances in both SPICE realizations: the inline
synapse elements exist only where a structured layer has a synapse, both realizations
give the same gradients of a convolutional network, and a device instance whose nodes
each have their own R and C is built with x+ and x- as the RC nodes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from conftest import make_batch
from hwbp.hardware import hardware_from_mapping, realize
from hwbp.importers import load_onnx
from hwbp.lower import lower
from hwbp.models import random_mlp
from hwbp.oracle import exact_gradients
from hwbp.targets.spice.build import build_circuit
from hwbp.targets.spice.model import SpiceOptions, SynapseArray
from hwbp.targets.spice.writer import NgspiceWriter
from hwbp.types import Batch
from hwbp.verify import compare, verify

from spice_helpers import require_ngspice

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
#: `.op` gradients of the trained example against exact backprop.  Its loss is ~1e-5, so
#: the gradients are small against the solver's absolute tolerances (vntol 1e-12 V):
#: measured 1.3e-10 (differential, two samples as one sweep).
OP_TOL = 1e-9


def _cnn():
    return load_onnx(EXAMPLES / "cnn_digits.onnx").with_loss("ce")


def _lines(text: str, prefix: str) -> int:
    return sum(1 for ln in text.splitlines() if ln.startswith(prefix))


@pytest.mark.parametrize("realization", ["differential", "pair"])
def test_structured_layers_write_one_element_per_structural_synapse(realization: str, tmp_path: Path) -> None:
    system = lower(_cnn())
    circuit = build_circuit(system, SpiceOptions(realization=realization))
    arrays = [i for s in circuit.sections for i in s.items if isinstance(i, SynapseArray)]
    assert any(a.mask is not None for a in arrays), "the example has a structured layer"
    for a in arrays:
        assert a.flat and a.backward_s is None
    text = NgspiceWriter().write(circuit)
    fwd = sum(a.count for a in arrays)
    bwd = sum(a.count for a in arrays if a.gate is not None)
    dense = sum(a.conductance_s.size for a in arrays)
    assert fwd < dense  # the masks leave out the non-structural entries
    assert _lines(text, "Gsf_") == fwd and _lines(text, "Gsb_") == bwd and _lines(text, "Xs_") == 0
    assert circuit.synapse_count == fwd
    # a replacement synapse cell: one instance per structural synapse between populations
    mine = tmp_path / "hwbp_synapse.cir"
    mine.write_text((Path(__file__).resolve().parent.parent / "circuits/behavioral/hwbp_synapse.cir").read_text())
    text = NgspiceWriter().write(build_circuit(system, SpiceOptions(realization=realization,
                                                                    cells={"synapse": str(mine)})))
    assert _lines(text, "Xs_") == bwd and _lines(text, "Gsb_") == 0 and _lines(text, "Gsf_") == fwd - bwd


def test_both_realizations_give_the_cnn_gradients() -> None:
    require_ngspice()
    g = _cnn()
    data = np.load(EXAMPLES / "digits_batch.npz")
    batch = Batch({"x": data["x"][:2]}, data["y"][:2])
    exact = exact_gradients(g, batch)
    got = {}
    for realization in ("differential", "pair"):
        v = verify(g, batch, backend="spice", options={"analysis": "op", "realization": realization})
        assert v.result.settle["realization"] == realization
        assert compare(v.physical, exact).max_rel_err <= OP_TOL
        got[realization] = v.physical
    assert compare(got["pair"], got["differential"]).max_rel_err <= OP_TOL


def test_device_nodes_are_built_as_the_pair_and_device_weights_in_either() -> None:
    g = random_mlp([5, 6, 3], activation="tanh", seed=1).with_loss("mse")
    system = lower(g)
    weights = realize(system, hardware_from_mapping({"mismatch": {"sigma": 0.3, "correlation": 0.0}}), seed=2)
    nodes = realize(system, hardware_from_mapping({"nodes": {"r_sigma": 0.05}}), seed=2)
    for realization in ("differential", "pair"):
        c = build_circuit(weights, SpiceOptions(realization=realization))
        assert c.realization == realization
        arrays = [i for s in c.sections for i in s.items if isinstance(i, SynapseArray)]
        assert all(a.backward_s is not None for a in arrays)
        text = NgspiceWriter().write(c)
        assert _lines(text, "GXs_") == sum(a.count * (2 if a.gate is not None else 1) for a in arrays)
        # per-node R and C need x+ and x- as the RC nodes, whatever was asked for
        c = build_circuit(nodes, SpiceOptions(realization=realization))
        assert c.realization == "pair" and c.state_nodes() == c.nodes


def test_device_instance_verifies_in_the_default_realization() -> None:
    require_ngspice()
    g = random_mlp([5, 6, 3], activation="tanh", seed=1).with_loss("mse")
    batch = make_batch(g, 2, seed=1)
    hw = hardware_from_mapping({"mismatch": {"sigma": 0.3, "correlation": 0.0}})
    sp = {r: verify(g, batch, backend="spice", options={"analysis": "op", "realization": r}, hardware=hw, seed=5)
          for r in ("differential", "pair")}
    ref = verify(g, batch, options={"mode": "steady"}, hardware=hw, seed=5)
    for v in sp.values():
        assert compare(v.physical, ref.physical).max_rel_err <= 1e-9
