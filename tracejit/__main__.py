"""The command line: ``python -m tracejit cache info|clear``.

Input: command-line arguments. Output: text on stdout, and an exit status (0 on success).

    $ python -m tracejit cache info      # where the compile cache is, how many entries, bytes
    $ python -m tracejit cache clear     # delete its entries; prints how many
"""

from __future__ import annotations

import argparse
import sys


def _cache(args) -> int:
    from .runtime import diskcache
    if args.action == "clear":
        n = diskcache.clear()
        print(f"removed {n} entr{'y' if n == 1 else 'ies'} from {diskcache.cache_dir()}")
        return 0
    info = diskcache.info()
    if not info["enabled"]:
        print("disk cache: disabled (TRACEJIT_DISK_CACHE=0)")
        return 0
    state = ("not created yet" if not info["exists"] else "in use" if info["trusted"]
             else f"NOT USED: {info['problem']}")
    print(f"disk cache: {info['dir']} ({state})")
    print(f"entries: {info['entries']} ({info['libraries']} with a shared library), "
          f"{info['bytes'] / 1024:.1f} KiB, format {info['format']}")
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tracejit",
                                 description="tracejit command-line tools")
    sub = ap.add_subparsers(dest="command", required=True)
    cache = sub.add_parser("cache", help="inspect or clear the on-disk cache of compiled code",
                           description="The on-disk cache of compiled machine code "
                           "(TRACEJIT_CACHE_DIR; TRACEJIT_DISK_CACHE=0 disables it).")
    cache.add_argument("action", choices=("info", "clear"),
                       help="info: location, entries and size; clear: delete every entry")
    cache.set_defaults(run=_cache)
    args = ap.parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
