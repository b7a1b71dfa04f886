"""`mdiff-study create|status|export|audit|merge`: build and manage a blinded reader study.

Each subcommand parses its arguments and calls one library function. A user mistake is one
sentence on stderr and exit status 2; a failed audit exits 1.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from studies.study import MODALITIES, Study, StudyError

EXIT_AUDIT_FAILED = 1
EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130


def _create(args: argparse.Namespace) -> int:
    """Build a study from folders of volumes."""
    from studies.create import create_study

    made = create_study(args.out, synthetic=args.synthetic, real=args.real, n=args.n,
                        n_real=args.n_real, preset=args.preset, turing=args.turing,
                        key=args.key, seed=args.seed, title=args.title, dataset=args.dataset,
                        modality=args.modality, progress=True)
    print(f"Created study {made.folder} with {made.n_synthetic + made.n_real} cases "
          f"({made.n_synthetic} synthetic, {made.n_real} real); key: {made.key_path} "
          "(keep it away from the readers).")
    return 0


def _status(args: argparse.Namespace) -> int:
    """Readers, cases done and time spent."""
    from studies.status import status_report, status_text

    report = status_report(Study.open(args.study))
    print(json.dumps(report) if args.json else status_text(report))
    return 0


def _export(args: argparse.Namespace) -> int:
    """The ratings of every reader as one CSV."""
    from studies.export import export_study

    rows = export_study(args.study, args.out, key_path=args.key,
                        include_partial=args.include_partial)
    print(f"Wrote {rows} rating rows to {args.out}.")
    return 0


def _audit(args: argparse.Namespace) -> int:
    """Every blinding check with PASS/FAIL; exit 1 when any fails."""
    from studies.audit import audit_folder

    results = audit_folder(args.study, args.key)
    passed = all(r.passed for r in results)
    if args.json:
        print(json.dumps({"study": str(args.study), "passed": passed,
                          "checks": [{"name": r.name, "passed": r.passed, "reason": r.reason}
                                     for r in results]}))
    else:
        for r in results:
            print(f"{'PASS' if r.passed else 'FAIL'}  {r.name}: {r.reason}")
        failed = sum(not r.passed for r in results)
        print("Audit passed: nothing checked separates real from synthetic cases." if passed
              else f"Audit failed: {failed} of {len(results)} checks can tell real from "
                   "synthetic cases.")
    return 0 if passed else EXIT_AUDIT_FAILED


def _merge(args: argparse.Namespace) -> int:
    """Bring in the reader databases of a copy rated elsewhere."""
    from studies.merge import merge_studies

    result = merge_studies(args.study, args.other)
    added = ", ".join(result.added) or "none"
    same = ", ".join(result.identical) or "none"
    print(f"Merged readers: {added}; already present with the same answers: {same}.")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of mdiff-study."""
    parser = argparse.ArgumentParser(prog="mdiff-study", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    create = commands.add_parser("create", help="build a blinded study from volume folders")
    create.add_argument("--out", required=True, help="the new study folder (must not exist)")
    create.add_argument("--synthetic", metavar="DIR", help="folder of synthetic volumes")
    create.add_argument("--real", metavar="DIR", help="folder of real volumes")
    create.add_argument("--n", type=int, metavar="N",
                        help="synthetic cases to pick at random (default: all)")
    create.add_argument("--n-real", type=int, metavar="M",
                        help="real cases to pick at random (default: all; 0 for none)")
    create.add_argument("--preset", metavar="NAME",
                        help="bring every volume through this preset's pipeline")
    create.add_argument("--modality", choices=MODALITIES,
                        help="CT or MR, when neither the preset nor the files say")
    create.add_argument("--turing", action="store_true",
                        help="also ask 'Real or synthetic?' with a confidence 1-4")
    create.add_argument("--key", metavar="PATH",
                        help="where to write the key CSV (default: STUDY.key.csv beside it)")
    create.add_argument("--seed", type=int, help="seed for picking inputs and image values")
    create.add_argument("--title", help="the study's title shown to readers")
    create.add_argument("--dataset", help="data set name for the export (default: the preset)")
    create.set_defaults(run=_create)

    status = commands.add_parser("status", help="readers, cases done and time spent")
    status.add_argument("study")
    status.add_argument("--json", action="store_true", help="print one JSON object")
    status.set_defaults(run=_status)

    export = commands.add_parser("export", help="all ratings as one CSV")
    export.add_argument("study")
    export.add_argument("--out", required=True, help="the CSV to write")
    export.add_argument("--key", metavar="PATH", help="add source and origin from the key")
    export.add_argument("--include-partial", action="store_true",
                        help="also write cases not fully answered yet")
    export.set_defaults(run=_export)

    audit = commands.add_parser("audit", help="check that nothing but the image tells "
                                              "real from synthetic")
    audit.add_argument("study")
    audit.add_argument("--key", required=True, metavar="PATH", help="the study's key CSV")
    audit.add_argument("--json", action="store_true", help="print one JSON object")
    audit.set_defaults(run=_audit)

    merge = commands.add_parser("merge", help="bring in reader databases from a copy")
    merge.add_argument("study")
    merge.add_argument("other", help="a copy of the same study rated elsewhere")
    merge.set_defaults(run=_merge)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `mdiff-study`."""
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except StudyError as err:
        print(f"mdiff-study: {err}", file=sys.stderr)
    except OSError as err:
        where = f" {err.filename}" if err.filename else ""
        print(f"mdiff-study: cannot access{where} ({err.strerror or err}); check the path and "
              "its permissions.", file=sys.stderr)
    except KeyboardInterrupt:
        print("mdiff-study: interrupted by the user.", file=sys.stderr)
        return EXIT_INTERRUPTED
    return EXIT_USER_ERROR


if __name__ == "__main__":
    sys.exit(main())
