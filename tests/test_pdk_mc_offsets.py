"""The Monte Carlo comparison with every cell at transistor level
(``sims/sky130/predict_mc.md``): a cached circuit draw is reproduced by ngspice, and the
model's band is reproduced from the committed derived model, the synapse offsets included."""

from __future__ import annotations

import csv
import json
import sys
import tomllib
from pathlib import Path

import numpy as np
import pytest

from hwbp.hardware import hardware_from_mapping
from hwbp.io import random_batch
from hwbp.models import random_mlp
from hwbp.verify.run import verify

ROOT = Path(__file__).resolve().parents[1]
SIMS = ROOT / "sims" / "sky130"


def _tiny():
    g = random_mlp([4, 8, 3], activation="tanh", seed=0).with_loss("mse")
    return g, random_batch(g, 2, seed=0)


def _rows() -> list[dict[str, str]]:
    with (SIMS / "predict_mc.csv").open() as fh:
        return list(csv.DictReader(fh))


@pytest.mark.long
def test_a_cached_circuit_draw_is_reproduced_by_its_seed():
    """Every cell at transistor level, tt_mm at --mc-seed 3: the committed 1 - cosine."""
    from spice_helpers import require_ngspice

    require_ngspice()
    g, b = _tiny()
    v = verify(g, b, backend="spice", options={"pdk": "sky130", "corner": "tt", "pdk_cells": "act,syn,node,loss",
                                               "mc_seed": 3, "timeout_s": 3000.0})
    cached = json.loads((SIMS / "predict_mc_all_circuit.json").read_text())["tt/3"]
    for name, m in v.report["parameters"].items():
        assert 1.0 - m["cosine"] == pytest.approx(cached[name], rel=1e-6, abs=1e-12)


@pytest.mark.long
def test_the_models_band_comes_from_the_committed_model_with_its_offsets():
    """The reference backend over 400 instances of the committed derived model gives the
    table's percentiles; without the synapse offsets its median is far below the circuit's
    (the term the circuit's error needs)."""
    sys.path.insert(0, str(SIMS))
    import predict

    g, b = _tiny()
    full = tomllib.loads((SIMS / "characterization" / "hardware.toml").read_text())
    sections = [s for k in ("act", "syn", "node", "loss") for s in predict.MC_SECTIONS[k]]
    hw = hardware_from_mapping({k: full[k] for k in sections if k in full})
    assert hw.synapses.offset_fwd_sigma > 0 and hw.loss.offset_sigma > 0
    model = predict._instances(g, b, hw, 400)
    rows = [r for r in _rows() if r["mc_seed"] == "1"]
    for r in rows:
        m = model[r["tensor"]]
        for q, key in ((5, "model_p5"), (50, "model_median"), (95, "model_p95")):
            assert float(np.percentile(m, q)) == pytest.approx(float(r[key]), rel=1e-5)
        assert float(r["model_median_without_synapse_offsets"]) < 0.3 * float(r["model_median"])
    circuit = [float(r["one_minus_cos_circuit"]) for r in _rows()]
    without = [float(r["model_median_without_synapse_offsets"]) for r in _rows()]
    assert np.median(circuit) > 3 * np.median(without)
