"""Vectorized number text of the netlist writer: byte for byte ``'%.17g' % v``, read
back to the same double, for ordinary and awkward values (powers of ten and their
neighbours, ties, zeros, subnormals, huge values)."""

from __future__ import annotations

import numpy as np
import pytest

from hwbp.targets.spice.numfmt import g17_strings, layer_blocks


def _awkward(rng: np.random.Generator) -> np.ndarray:
    p10 = 10.0 ** np.arange(-300, 300, dtype=np.float64)
    return np.concatenate([
        rng.standard_normal(20000) * 1e-4,  # conductances of a layer (w / R)
        rng.standard_normal(20000) * 10.0 ** rng.integers(-30, 30, 20000),
        p10, -p10, np.nextafter(p10, 0), np.nextafter(p10, np.inf),
        rng.integers(-10 ** 6, 10 ** 6, 5000) / 1024.0,  # short binary fractions: exact ties
        rng.integers(1, 10 ** 17, 5000).astype(np.float64) * 10.0 ** rng.integers(-25, 5, 5000),
        [0.0, -0.0, 0.5, 0.1, 1e16, 1e17, 99999999999999999.0, 9.999999999999999e16, 1e-5, 1e-4,
         5e-324, 2.2250738585072014e-308, 1.7976931348623157e308, 1e280, 1e-280, 0.30000000000000004],
    ])


def test_matches_python_formatting_and_reads_back() -> None:
    rng = np.random.default_rng(0)
    values = _awkward(rng)
    got = g17_strings(values)
    assert got == ["%.17g" % v for v in values.tolist()]
    assert np.array_equal(np.array([float(s) for s in got]), values)


def test_random_bit_patterns() -> None:
    rng = np.random.default_rng(1)
    values = np.frombuffer(rng.bytes(8 * 50000), np.float64)
    values = values[np.isfinite(values)]
    assert g17_strings(values) == ["%.17g" % v for v in values.tolist()]


def test_shapes_and_empty() -> None:
    assert g17_strings(np.zeros((0,))) == []
    assert g17_strings(np.array([[1.5, -2.0], [3.0, 0.25]])) == ["1.5", "-2", "3", "0.25"]


@pytest.mark.parametrize("block", [1, 1 << 21])
def test_layer_blocks_equal_python_lines(monkeypatch: pytest.MonkeyPatch, block: int) -> None:
    from hwbp.targets.spice import numfmt

    monkeypatch.setattr(numfmt, "BLOCK_BYTES", block)  # one row per block, or all rows in one
    rng = np.random.default_rng(2)
    g = rng.standard_normal((5, 7)) * 1e-3
    rows = ([f"G_{j}_" for j in range(5)], [f"post{j} " for j in range(5)])
    cols = ([f"{i} 0 " for i in range(7)], [f"pre{i}" for i in range(7)])
    line = (("r", 0), ("c", 0), ("r", 1), ("c", 1), ("v", 0))
    text = "\n".join(layer_blocks(rows, cols, g, (line, line)))
    want = "\n".join(f"G_{j}_{i} 0 post{j} pre{i}{'%.17g' % g[j, i]}" for j in range(5) for i in range(7)
                     for _ in range(2))
    assert text == want


@pytest.mark.parametrize("flat", [True, False])
@pytest.mark.parametrize("backward", [True, False])
def test_writer_synapse_lines(flat: bool, backward: bool) -> None:
    """Every dense synapse layout the writer emits, against the lines written one by one."""
    from hwbp.targets.spice.model import SynapseArray
    from hwbp.targets.spice.writer import NgspiceWriter

    rng = np.random.default_rng(3)
    g = rng.standard_normal((3, 4)) * 1e-3
    pre, post = tuple(f"u{i}" for i in range(4)), tuple(f"a{j}" for j in range(3))
    gate, sens = (tuple(f"g{j}" for j in range(3)), tuple(f"s{i}" for i in range(4))) if backward else (None, None)
    s = SynapseArray("Xs_1_0", "hwbp_synapse", pre, post, gate, sens, g, flat=flat)
    want = []
    for j in range(3):
        for i in range(4):
            v = "%.17g" % g[j, i]
            if flat:
                want.append(f"Gsf_1_0_{j}_{i} 0 {post[j]} {pre[i]} 0 {v}")
                if backward:
                    want.append(f"Gsb_1_0_{j}_{i} 0 {sens[i]} {gate[j]} 0 {v}")
            else:
                back = f" {gate[j]} {sens[i]}" if backward else ""
                want.append(f"Xs_1_0_{j}_{i} {pre[i]} {post[j]}{back} hwbp_synapse g={v}")
    assert "\n".join(NgspiceWriter().synapses(s)) == "\n".join(want)


@pytest.mark.parametrize("masked", [False, True])
def test_writer_device_synapse_lines(masked: bool) -> None:
    """A device instance's forward and backward devices, each its own conductance."""
    from hwbp.targets.spice.model import SynapseArray
    from hwbp.targets.spice.writer import NgspiceWriter

    rng = np.random.default_rng(4)
    fwd, bwd = rng.standard_normal((3, 4)) * 1e-3, rng.standard_normal((3, 4)) * 1e-3
    mask = rng.random((3, 4)) < 0.6 if masked else None
    pre, post = tuple(f"u{i}" for i in range(4)), tuple(f"a{j}" for j in range(3))
    gate, sens = tuple(f"g{j}" for j in range(3)), tuple(f"s{i}" for i in range(4))
    s = SynapseArray("Xs_1_0", "hwbp_synapse", pre, post, gate, sens, fwd, mask=mask, backward_s=bwd)
    want = []
    for j in range(3):
        for i in range(4):
            if mask is None or mask[j, i]:
                want.append(f"GXs_1_0f_{j}_{i} 0 {post[j]} {pre[i]} 0 {'%.17g' % fwd[j, i]}")
                want.append(f"GXs_1_0b_{j}_{i} 0 {sens[i]} {gate[j]} 0 {'%.17g' % bwd[j, i]}")
    assert "\n".join(NgspiceWriter().synapses(s)) == "\n".join(want)
