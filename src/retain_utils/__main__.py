"""Command line: ``python -m retain_utils run|book|sweep|campaign|calibration ...`` (``--help`` on each)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .batch import calibrate, campaign, runner, sweep
from .core import results
from .chapters import calibration
from .chapters.profiles import PROFILE_NAMES


def _params(pairs: list[list[str]] | None) -> dict:
    """``-p NAME VALUE`` pairs as a dict; a name given twice is refused (which value was meant?)."""
    params = {}
    for name, value in pairs or []:
        if name in params:
            raise ValueError(f"parameter {name!r} is given twice (-p {name} ...): give it once")
        params[name] = runner.parse_value(value)
    return params


def _oserror(e: OSError) -> str:
    """One line for a failed read or write: what, which file, why (a full disk, a missing permission)."""
    where = f" {e.filename}" if e.filename else ""
    return f"error: cannot read or write{where}: {e.strerror or e}"


def build_parser() -> argparse.ArgumentParser:
    """The command line's arguments (also used by the tests that check the commands the docs show)."""
    parser = argparse.ArgumentParser(prog="python -m retain_utils", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="execute one notebook with papermill")
    run.add_argument("notebook", help=f"one of: {', '.join(runner.notebook_names())}")
    run.add_argument("--profile", default="quick", choices=PROFILE_NAMES)
    run.add_argument("-p", "--param", nargs=2, action="append", metavar=("NAME", "VALUE"),
                     help="a notebook parameter; VALUE is JSON if it parses (1, 0.5, [1,2], true), else a string")
    run.add_argument("-o", "--output-dir", help="default: _build/executed/PROFILE")

    book = sub.add_parser("book", help="execute every notebook, then build the HTML book")
    book.add_argument("--profile", default="quick", choices=PROFILE_NAMES)
    book.add_argument("--no-run", action="store_true", help="reuse the executed copies already there")

    sw = sub.add_parser("sweep", help="execute one notebook over a grid of parameters; rerun to resume")
    sw.add_argument("notebook", help=f"one of: {', '.join(runner.notebook_names())}")
    sw.add_argument("--grid", nargs="*", default=[], metavar="NAME=V1,V2",
                    help="e.g. target=mmlu,countdown seeds=[0],[1]; each value is JSON if it parses, else a string")
    sw.add_argument("--profile", default="quick", choices=PROFILE_NAMES)
    sw.add_argument("--workers", type=int, help="notebooks at once (local default 1, each at cores/workers torch threads; ray: all the "
                         "cluster fits)")
    sw.add_argument("--backend", default="local", choices=sweep.BACKENDS,
                    help="local: a process pool on this machine; ray: one Ray task per point (RAY_ADDRESS)")
    sw.add_argument("--gpus-per-point", type=float, default=0, help="GPUs Ray reserves per point (ray backend)")
    sw.add_argument("-o", "--output-dir", help="default: sweeps/NOTEBOOK/PROFILE")
    sw.add_argument("--rerun-changed", action="store_true",
                    help="also rerun finished points whose notebook code has changed since")
    camp = sub.add_parser("campaign", help="run or resume the seeded campaign (notebooks 2-4, fp32), committing "
                                           "each finished point; rerun to resume")
    camp.add_argument("--status", action="store_true", help="print what is done and the projected total, run nothing")
    camp.add_argument("--commit", action="store_true", help="git-commit each point's folder as it finishes")
    camp.add_argument("--allow-mixed", action="store_true",
                      help="run even from a tree with uncommitted changes or beside points of another code version")
    camp.add_argument("--limit", type=int, help="run at most this many points, then stop")
    camp.add_argument("--targets", nargs="+", metavar="TARGET",
                      help="run only these targets' points (e.g. the ones whose memory fits beside other work)")
    camp.add_argument("--workers", type=int, default=1,
                      help="points at once, each at cores/workers torch threads; a point starts only when its "
                           "expected peak memory fits beside the running ones (default 1)")
    camp.add_argument("-o", "--output-dir", help=f"default: {campaign.CAMPAIGN_DIR}")
    camp.add_argument("--verify", metavar="POINT", help="rerun one committed point folder into a temporary folder and "
                                                         "compare its numbers with the committed ones")
    cal = sub.add_parser("calibration", help="what the committed calibration chose per target and method, and why, "
                                             "and the campaign's cost projected from its points")
    cal.add_argument("-o", "--output-dir", help=f"the calibration's folder (default: {calibration.CALIBRATION_DIR})")
    cal.add_argument("--write", action="store_true",
                     help=f"also write the choice to {calibration.CHOICE_FILE} there (settings, rule, choices) for "
                          "every target whose calibration is complete")
    cal.add_argument("--run", nargs=4, action="append", metavar=("TARGET", "METHOD", "LR", "SEED"),
                     help="run this calibration point first (chapter 2 at the campaign budget, fp32), into the "
                          "calibration's folder; repeat for more points")
    cal.add_argument("--workers", type=int, default=1,
                     help="with --run: points at once, each at cores/workers torch threads (default 1)")
    cal.add_argument("--commit", action="store_true", help="with --run: git-commit each point's folder as it lands")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "run":
            params = _params(args.param)
            try:
                done = runner.run_notebook(args.notebook, args.profile, params, args.output_dir)
            except KeyboardInterrupt:
                print("run interrupted: its results file, if any, is marked incomplete; run the same command again",
                      file=sys.stderr)
                return 130
            print(f"{done.notebook}: {done.seconds:.0f} s -> {done.executed}\nresults: {done.results}")
        elif args.command == "book":
            index = runner.build_book(args.profile, run=not args.no_run)
            print(f"book: {index}")
        elif args.command == "sweep":
            try:
                summary = sweep.run_sweep(args.notebook, sweep.parse_grid(args.grid), args.profile, args.output_dir,
                                          args.workers, args.backend, rerun_changed=args.rerun_changed,
                                          gpus_per_point=args.gpus_per_point)
            except KeyboardInterrupt:
                print("sweep interrupted: run the same command again to resume", file=sys.stderr)
                return 130
            print(summary)
            print("tables:", ", ".join(str(p) for p in results.export_csv(summary.sweep_dir)))
            if summary.failed:
                return 1
        elif args.command == "campaign":
            if args.output_dir is not None and not args.output_dir.strip():
                raise ValueError("-o/--output-dir is empty: give the campaign folder (or leave -o out)")
            folder = args.output_dir if args.output_dir is not None else campaign.CAMPAIGN_DIR
            if args.limit is not None and args.limit < 1:
                raise ValueError(f"--limit must be a positive integer, got {args.limit}")
            if args.workers < 1:
                raise ValueError(f"--workers must be a positive integer, got {args.workers}")
            if args.verify is not None:
                import tempfile

                if not args.verify.strip() or not (Path(args.verify) / "params.json").is_file():
                    raise ValueError(f"--verify needs a point folder holding params.json, got {args.verify!r}")
                with tempfile.TemporaryDirectory() as tmp:
                    differences = campaign.verify(args.verify, tmp)
                print("\n".join(differences) or f"{args.verify}: every run's numbers are identical to the committed ones")
                if Path(args.verify).resolve().is_relative_to(Path(folder).resolve()):
                    print(f"recorded in {campaign.record_verification(folder, args.verify, differences)} "
                          "(the results chapter reads it: commit it)")
                return 1 if differences else 0
            if not args.status:
                try:
                    summary = campaign.run(folder, commit_points=args.commit, allow_mixed=args.allow_mixed,
                                           limit=args.limit, workers=args.workers, targets=args.targets)
                except KeyboardInterrupt:
                    print("campaign interrupted: run the same command again to resume", file=sys.stderr)
                    return 130
                print(summary)
            print(campaign.status(folder))
            if not args.status and summary.failed:
                return 1
        elif args.command == "calibration":
            if args.output_dir is not None and not args.output_dir.strip():
                raise ValueError("-o/--output-dir is empty: give the calibration folder (or leave -o out)")
            folder = Path(args.output_dir) if args.output_dir is not None else calibration.CALIBRATION_DIR
            if not folder.is_dir():
                raise FileNotFoundError(f"no calibration folder {folder}")
            if args.run:
                specs = [calibrate.Spec.parse(values) for values in args.run]
                print(calibrate.run(specs, commit_points=args.commit, workers=args.workers, calibration_dir=folder))
            settings = calibration.summary(calibration.load(folder))
            choices = calibration.choose(settings)
            print(calibration.settings_frame(settings).to_string(index=False) if settings else "(no runs)")
            print(calibration.status_sentence(settings, choices))
            if superseded := calibration.superseded_sentence(folder):
                print(superseded)
            print(calibration.cost_sentence(calibration.projected_campaign(calibration.point_costs(folder))))
            if args.write:
                if not settings:
                    raise ValueError(f"{folder} holds no finished calibration run: nothing to choose from")
                left = calibration.incomplete(settings, choices)
                done = calibration.complete_targets(settings, choices)
                if not done:
                    raise ValueError(f"the calibration is incomplete, so its choice is not written: {'; '.join(left)}")
                calibration.write_choice(folder / calibration.CHOICE_FILE, settings,
                                         [c for c in choices if c.target in done], pending=left)
                print(f"choice: {folder / calibration.CHOICE_FILE}" + (
                    f" (targets {', '.join(done)}; the others' points wait: {'; '.join(left)})" if left else ""))
    except (ValueError, runner.NotebookError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except OSError as e:  # a full disk, a lost mount: one line, and the point or run can be rerun
        print(_oserror(e), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
