"""``python -m protocol schema``: print the JSON Schema of every message."""

from __future__ import annotations

import argparse
import json
import sys

from protocol.schema import json_schemas


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(prog="python -m protocol", description="The field-enforcement wire protocol.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    sub.add_parser("schema", help="print the JSON Schema (draft 2020-12) of the envelope, every message and the device config")
    args = parser.parse_args(argv)
    if args.command == "schema":
        json.dump(json_schemas(), sys.stdout, indent=2, ensure_ascii=False)
        sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
