"""``reflect export``: write a checkpoint's policy as a stateful, inference-only TorchScript or ONNX file,
or its spiking network as a NIR graph for neuromorphic simulators and hardware.

    reflect export --checkpoint runs/<run>/final_model.pt --format torchscript    # -> final_model.ts.pt
    reflect export --checkpoint runs/<run>/final_model.pt --format onnx          # -> final_model.onnx
    reflect export --checkpoint PATH --format onnx --out policy.onnx --batch-size 1 --force
    reflect export --checkpoint runs/<run>/final_model.pt --format nir [--dt 1e-4]  # -> final_model.nir

The file maps (obs [B, obs_dim], state [B, state_size]) to (action, next_state): normalisation,
weights and action scaling inside, deterministic actions. Start each episode from a zero state.
TorchScript loads with torch alone; ONNX runs with onnxruntime and numpy alone. The metadata a
deployer needs (obs_dim, action kind and bounds, state layout, env id, version) is stored in the file.

NIR (pip install "reflect-rl[nir]") holds the network alone: observation normaliser, weights and neuron
time constants converted at the time step --dt (default 1e-4 s, what snnTorch's NIR import assumes);
its output is the readout (logits, or the Gaussian mean before squashing). docs/NIR.md gives the mapping;
reflect import-nir reads such a graph back.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from reflect.commands.common import positive_int, positive_seconds

FORMATS = ("torchscript", "onnx", "nir")


def add_parser(commands: argparse._SubParsersAction) -> None:
    export = commands.add_parser("export", help="export a checkpoint's policy (TorchScript, ONNX or NIR)",
                                 description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    export.add_argument("--checkpoint", type=Path, required=True, metavar="PATH")
    export.add_argument("--format", required=True, choices=FORMATS, dest="export_format",
                        help="torchscript (.ts.pt, needs torch), onnx (.onnx, needs onnxruntime) or nir "
                             "(.nir, a NIR graph of the spiking network)")
    export.add_argument("--out", type=Path, default=None, metavar="FILE",
                        help="output file (default: beside the checkpoint, .ts.pt, .onnx or .nir)")
    export.add_argument("--batch-size", type=positive_int, default=None, metavar="N",
                        help="fix the ONNX batch dimension to N (default: any batch size; "
                             "TorchScript always accepts any)")
    export.add_argument("--dt", type=positive_seconds, default=None, metavar="SECONDS",
                        help="NIR only: the time step the neuron constants are converted at "
                             "(default 1e-4, snnTorch's)")
    export.add_argument("--force", action="store_true", help="overwrite an existing output file")
    export.set_defaults(run=run)


def _write_error(target: Path, error: OSError, named: bool) -> ValueError:
    """The one-line error for an output file that cannot be written: the path the user gave (or the
    default beside the checkpoint), the operating system's reason and the fix."""
    from reflect.runs.run_dir import os_error_fix, os_error_reason

    elsewhere = "" if named else "; --out FILE writes it elsewhere"
    return ValueError(
        f"cannot write the exported policy to '{target}': {os_error_reason(error)}; "
        f"{os_error_fix(error)}{elsewhere}"
    )


def run(args: argparse.Namespace) -> int:
    if args.export_format == "nir":
        return _run_nir(args)
    if args.dt is not None:
        raise ValueError(f"--dt applies to --format nir only; drop it for --format {args.export_format}")
    from reflect.atomic_files import check_can_write
    from reflect.export.exporter import default_output_path, export_checkpoint

    target = args.out if args.out is not None else default_output_path(args.checkpoint, args.export_format)
    try:
        check_can_write(target)  # before the checkpoint is loaded and exported
        path, meta = export_checkpoint(args.checkpoint, args.export_format, out=args.out,
                                       batch_size=args.batch_size, overwrite=args.force)
    except OSError as error:
        if error.filename is None or Path(error.filename) != Path(target):
            raise
        raise _write_error(Path(target), error, named=args.out is not None) from error
    inputs = ", ".join(f"{io['name']} {io['shape']} {io['dtype']}" for io in meta["inputs"])
    outputs = ", ".join(f"{io['name']} {io['shape']} {io['dtype']}" for io in meta["outputs"])
    kind = "TorchScript" if args.export_format == "torchscript" else f"ONNX opset {meta.get('onnx_opset')}"
    print(f"wrote {path} ({kind}, {path.stat().st_size / 1024:.0f} KiB) for {meta['env_id']}")
    print(f"  ({inputs}) -> ({outputs}); start each episode from a zero state")
    diff = meta.get("check_max_abs_diff")
    if diff is None:
        print("  not test-run: onnxruntime is not installed (pip install \"reflect-rl[export]\")")
    else:
        print(f"  checked against the PyTorch policy: largest action/state difference {diff:.3g}")
    return 0


def _run_nir(args: argparse.Namespace) -> int:
    from reflect.atomic_files import check_can_write
    from reflect.export.nir import DEFAULT_DT, default_output_path, export_checkpoint_nir

    if args.batch_size is not None:
        raise ValueError("--batch-size applies to --format onnx only; a NIR graph has no batch dimension")
    dt = DEFAULT_DT if args.dt is None else args.dt
    target = args.out if args.out is not None else default_output_path(args.checkpoint)
    try:
        check_can_write(target)
        path, info = export_checkpoint_nir(args.checkpoint, out=args.out, dt=dt, overwrite=args.force)
    except OSError as error:
        if error.filename is None or Path(error.filename) != Path(target):
            raise
        raise _write_error(Path(target), error, named=args.out is not None) from error
    kinds = sorted(set(info["nodes"].values()) - {"Input", "Output"})
    action = info["metadata"]["action"]
    print(f"wrote {path} (NIR graph, {len(info['nodes'])} nodes: {', '.join(kinds)}; "
          f"{path.stat().st_size / 1024:.0f} KiB) for {info['env_id']}")
    print(f"  time step dt = {info['dt']:g} s (forward Euler); output: {action['output']}")
    print(f"  read back as reflect reads it: largest parameter difference {info['check_max_abs_diff']:.3g}")
    return 0
