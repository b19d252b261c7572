"""Command line: `python -m course run` executes the course notebooks, `python -m course bench` times the trainer."""
from __future__ import annotations

import argparse
import sys

from course.config import DEVICES


def build_parser() -> argparse.ArgumentParser:
    """The parser of `python -m course`."""
    parser = argparse.ArgumentParser(prog="python -m course", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="execute the notebooks with papermill and write a report",
                              description="Execute the course notebooks headless and write <out>/summary.md.")
    run.add_argument("--device", default="auto", choices=DEVICES, help="device for every notebook (default auto)")
    run.add_argument("--notebooks", nargs="+", metavar="NB",
                     help="numbers (1 5) or names (02_standard_autoencoder); default all, in order")
    run.add_argument("--out", metavar="DIR", help="output folder (default runs/<timestamp>)")
    run.add_argument("-p", "--parameter", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"),
                     help="parameter for every notebook that declares it; VALUE read as papermill's -p reads it "
                          "(int, float, True/False/None, else text), and [...] as a JSON list")
    run.add_argument("--smoke", action="store_true", help="COURSE_SMOKE=1 for the kernels: tiny data, few steps")
    run.add_argument("--jobs", type=int, default=1, metavar="N",
                     help="notebooks run at once (04 still waits for 02, whose models it reuses)")
    run.add_argument("--fail-fast", action="store_true", help="stop starting notebooks after the first failure")
    run.add_argument("--notebook-dir", metavar="DIR", help="folder of NN_name.ipynb notebooks (default notebooks/)")

    bench = commands.add_parser("bench", help="time one epoch: seed-style DataLoader loop vs the course trainer")
    bench.add_argument("--dataset", choices=("mnist", "fashion-mnist"),
                       help="default: mnist if its full files are present, else fashion-mnist")
    bench.add_argument("--device", default="auto", choices=DEVICES)
    bench.add_argument("--epochs", type=int, default=1)
    return parser


def run_command(args: argparse.Namespace) -> int:
    """`run`: exit 0 when every notebook succeeded, 1 otherwise."""
    from course.tools.batch import parse_value, run_course

    parameters = {name: parse_value(value) for name, value in args.parameter}
    summary = run_course(notebooks=args.notebooks, out=args.out, device=args.device, parameters=parameters,
                         smoke=args.smoke, jobs=args.jobs, fail_fast=args.fail_fast, notebook_dir=args.notebook_dir)
    not_ok = summary["failed"] + summary["skipped"]
    print(f"report: {summary['output_dir']}/summary.md (and summary.json, executed notebooks, HTML)")
    if not_ok:
        print(f"not completed: {', '.join(not_ok)}", file=sys.stderr)
    return 1 if not_ok else 0


def bench_command(args: argparse.Namespace) -> int:
    """`bench`: print both timings and their ratio."""
    from course.tools.bench import format_result, run_bench

    print(format_result(run_bench(dataset=args.dataset, device=args.device, epochs=args.epochs)))
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point; argument and set-up errors exit with status 2 and a message naming the culprit."""
    args = build_parser().parse_args(argv)
    command = run_command if args.command == "run" else bench_command
    try:
        return command(args)
    except (ValueError, RuntimeError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
