"""python -m ivr.scripts check [folder] [--customers file.csv]"""

from __future__ import annotations

import argparse
import logging
import sys

from .check import check_folder
from .customers import check_customers


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m ivr.scripts")
    sub = p.add_subparsers(dest="cmd", required=True)
    chk = sub.add_parser("check", help="check every call script of a folder")
    chk.add_argument("folder", nargs="?", default="scripts")
    chk.add_argument("--customers", help="also check this customer list (CSV)")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.ERROR)  # the problems are printed below
    problems = check_folder(args.folder)
    if args.customers:
        problems += check_customers(args.customers)
    for problem in problems:
        print(problem)
    print(f"{len(problems)} problem(s)" if problems else "scripts OK", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
