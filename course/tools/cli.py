"""Command line: `python -m course run` executes the course notebooks, `report` merges run folders,
`solutions` writes solved notebooks, `site` builds a website of a run, `bench` times the trainer, `models export`
publishes trained models."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from course.config import DEVICES

# Values of the right type that no notebook can run with. Checked before anything starts, so that
# `-p batch_size 0` is refused at once instead of failing as a ZeroDivisionError inside a notebook.
# Exit status after Ctrl-C, as a shell reports a command killed by SIGINT.
INTERRUPTED = 130


def build_parser() -> argparse.ArgumentParser:
    """The parser of `python -m course`."""
    parser = argparse.ArgumentParser(prog="python -m course", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="execute the notebooks with papermill and write a report",
                              description="Execute the course notebooks headless and write <out>/summary.md. "
                                          "Ctrl-C stops the running notebooks, reports what ran and exits 130.")
    run.add_argument("--device", default="auto", choices=DEVICES, help="device for every notebook (default auto)")
    run.add_argument("--notebooks", nargs="+", action="extend", metavar="NB",
                     help="numbers (1 5) or names (02_standard_autoencoder); may be repeated; default all, in order")
    run.add_argument("--out", metavar="DIR", help="output folder (default runs/<timestamp>, a new one per run); "
                                                  "never the notebooks' folder, nor one inside or around it")
    run.add_argument("--force", action="store_true",
                     help="write into an --out that already holds notebooks (an earlier run's), replacing them")
    run.add_argument("-p", "--parameter", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"),
                     help="parameter for every notebook that declares it, read as the type of its default there: "
                          "an int, a number, a bool (true/false, yes/no, on/off), a list ([64, 128]) or text; "
                          "a parameter whose default is None takes papermill's reading (5, 1e-3, True, None, "
                          "else text). batch_size and epochs must be >= 1, lr > 0, seed >= 0")
    run.add_argument("--smoke", action="store_true", help="COURSE_SMOKE=1 for the kernels: tiny data, few steps")
    run.add_argument("--jobs", type=int, default=1, metavar="N",
                     help="notebooks run at once, sharing the CPU cores (04 waits for 02 and 07 for 05, whose models they reuse)")
    run.add_argument("--fail-fast", action="store_true", help="stop starting notebooks after the first failure")
    run.add_argument("--notebook-dir", metavar="DIR", help="folder of NN_name.ipynb notebooks (default notebooks/)")
    run.add_argument("--solved", action="store_true",
                     help="run solved copies (exercise stubs replaced by their solutions), written first to "
                          "<out>/solved-notebooks/")

    report = commands.add_parser("report", help="merge the output folders of several runs into one report",
                                 description="Merge the output folders of several `python -m course run` calls "
                                             "(say one notebook per machine) into one summary.json and summary.md. "
                                             "A notebook found in several folders is taken from the run where it "
                                             "started last.")
    report.add_argument("runs", nargs="+", metavar="DIR", help="output folders of `course run` (with summary.json)")
    report.add_argument("--out", metavar="DIR", required=True,
                        help="folder for the merged report and copies of the notebooks, HTML and metrics files")

    solutions = commands.add_parser("solutions", help="write solved copies of the notebooks for instructors",
                                    description="Write a copy of each notebook whose exercise cells hold their "
                                                "solutions between nbgrader's BEGIN/END SOLUTION markers, "
                                                "without outputs.")
    solutions.add_argument("--out", metavar="DIR", required=True,
                           help="folder for the solved notebooks; never the notebooks' folder, nor one inside or "
                                "around it")
    solutions.add_argument("--force", action="store_true",
                           help="write into an --out that already holds notebooks, replacing those of the same name")
    solutions.add_argument("--notebooks", nargs="+", action="extend", metavar="NB",
                           help="numbers (1 5) or names; may be repeated; default all")
    solutions.add_argument("--notebook-dir", metavar="DIR", help="folder of NN_name.ipynb notebooks "
                                                                 "(default notebooks/)")

    grading = commands.add_parser("nbgrader", help="write an nbgrader course directory to grade the exercises",
                                  description="Write <out>/nbgrader_config.py and <out>/source/<stem>/<notebook>: "
                                              "exercise cells as solution cells, each followed by an autograded "
                                              "test worth points, every other cell read-only.")
    grading.add_argument("--out", metavar="DIR", required=True, help="the nbgrader course folder (new or empty)")
    grading.add_argument("--notebooks", nargs="+", action="extend", metavar="NB",
                         help="numbers (1 5) or names; may be repeated; default all")
    grading.add_argument("--notebook-dir", metavar="DIR", help="folder of NN_name.ipynb notebooks (default notebooks/)")
    grading.add_argument("--timeout", type=int, default=600, metavar="S", help="seconds a cell may run when "
                                                                               "autograded (default 600)")
    grading.add_argument("--force", action="store_true", help="write over the course files in a non-empty --out")

    site = commands.add_parser("site", help="build a static website of a run's executed notebooks",
                               description="Turn the output folder of `python -m course run` into a static site "
                                           "(Sphinx and myst-nb): a home page with the notebooks, how to launch them "
                                           "and the run's results beside the references, one page per notebook as "
                                           "it ran. Nothing is executed; a run of solved notebooks is refused.")
    site.add_argument("run_dir", metavar="RUN_DIR", help="output folder of `course run` (with summary.json)")
    site.add_argument("--out", metavar="SITE_DIR", required=True,
                      help="folder for the site, outside RUN_DIR and the notebooks; a site built there before is "
                           "replaced whole, any other non-empty folder refused")

    bench = commands.add_parser("bench", help="time one epoch: seed-style DataLoader loop vs the course trainer")
    bench.add_argument("--dataset", choices=("mnist", "fashion-mnist"),
                       help="default: mnist if its full files are present, else fashion-mnist")
    bench.add_argument("--device", default="auto", choices=DEVICES)
    bench.add_argument("--epochs", type=int, default=1)
    models = commands.add_parser("models", help="publish trained models: export the cache as a store")
    models_commands = models.add_subparsers(dest="models_command", required=True)
    export = models_commands.add_parser("export", help="write the cached models and a manifest into DIR",
                                        description="Copy the model cache's current models into DIR with "
                                                    "manifest.json (key, file, sha256, size, settings, course "
                                                    "version): a store to attach to a release (COURSE_MODELS_URL).")
    export.add_argument("--out", metavar="DIR", required=True, help="an empty folder for the store")
    export.add_argument("--cache", metavar="DIR", help="the model cache to export (default $COURSE_CACHE or "
                                                       "<repo>/.cache/models)")
    export.add_argument("--force", action="store_true", help="write into a folder that is not empty")
    return parser


def models_command(args: argparse.Namespace) -> int:
    """`models export`: exit 0 when the store is written."""
    from course.tools.models import export_store

    export_store(args.out, cache=args.cache, force=args.force)
    return 0


def run_command(args: argparse.Namespace) -> int:
    """`run`: exit 0 when every notebook succeeded, 1 otherwise, 130 after Ctrl-C."""
    from course.tools.batch import run_course

    from course.config import is_smoke
    from course.tools.params import check_rules

    parameters = dict(args.parameter)
    check_rules(parameters, smoke=args.smoke or is_smoke())  # before any kernel starts
    summary = run_course(notebooks=args.notebooks, out=args.out, device=args.device, parameters=parameters,
                         smoke=args.smoke, jobs=args.jobs, fail_fast=args.fail_fast, notebook_dir=args.notebook_dir,
                         solved=args.solved, force=args.force)
    report = f"{summary['output_dir']}/summary.md"
    if summary["stopped"]:
        parts = [f"{label}: {', '.join(summary[key])}" for key, label in
                 (("interrupted", "stopped"), ("skipped", "not started")) if summary[key]]
        print(f"interrupted ({'; '.join(parts) or 'nothing was running'}); report of what ran: {report}",
              file=sys.stderr)
        return INTERRUPTED
    not_ok = summary["failed"] + summary["skipped"]
    print(f"report: {report} (and summary.json, executed notebooks, HTML)")
    if not_ok:
        print(f"not completed: {', '.join(not_ok)}", file=sys.stderr)
    return 1 if not_ok else 0


def report_command(args: argparse.Namespace) -> int:
    """`report`: merge run folders; exit 0, or 1 when a merged notebook did not complete."""
    from course.tools.merge import merge_runs

    summary = merge_runs(args.runs, args.out)
    print(f"report: {summary['output_dir']}/summary.md ({len(summary['notebooks'])} notebook(s) from "
          f"{len(summary['merged_from'])} runs)")
    return 1 if summary["failed"] + summary["interrupted"] + summary["skipped"] else 0


def solutions_command(args: argparse.Namespace) -> int:
    """`solutions`: write the solved copies; exit 0."""
    from course.tools.batch import default_notebook_dir, find_notebooks, select_notebooks
    from course.tools.checks import check_notebook, prepare_out_dir, safe_out_dir
    from course.tools.solutions import solve_all, write_solved

    folder = Path(args.notebook_dir).resolve() if args.notebook_dir else default_notebook_dir()
    paths = select_notebooks(find_notebooks(folder), args.notebooks)
    for path in paths:
        check_notebook(path)
    out = safe_out_dir(args.out, [folder, *paths], args.force)  # before any solving: a refusal costs nothing
    solved = solve_all(paths)
    for copy, count in write_solved(solved, prepare_out_dir(out)).items():
        print(f"{copy}: {count} exercise cell(s) solved")
    return 0


def nbgrader_command(args: argparse.Namespace) -> int:
    """`nbgrader`: write the course directory; exit 0."""
    from course.tools.nbgrader import main

    return main(args)


def site_command(args: argparse.Namespace) -> int:
    """`site`: build the site; exit 0."""
    from course.tools.site import build_site

    out = build_site(args.run_dir, args.out)
    print(f"site: {out}/index.html (serve it with `python -m http.server -d {out}`)")
    return 0


def bench_command(args: argparse.Namespace) -> int:
    """`bench`: print both timings and their ratio."""
    from course.tools.bench import format_result, run_bench

    print(format_result(run_bench(dataset=args.dataset, device=args.device, epochs=args.epochs)))
    return 0


COMMANDS = {"run": run_command, "report": report_command, "solutions": solutions_command, "bench": bench_command,
            "site": site_command, "models": models_command, "nbgrader": nbgrader_command}


def main(argv: list[str] | None = None) -> int:
    """Entry point; argument and set-up errors exit with status 2 and a message naming the culprit."""
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except (ValueError, RuntimeError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # Ctrl-C before any notebook started (a running batch handles its own)
        print("interrupted", file=sys.stderr)
        return INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
