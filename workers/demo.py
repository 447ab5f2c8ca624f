"""`make demo`: start the local fleet, run each job on the bundled sample, say where things are."""
from __future__ import annotations

import subprocess
import sys


def run(*args: str) -> None:
    print(f"\n$ cvfleet {' '.join(args)}", flush=True)
    code = subprocess.call([sys.executable, "-m", "workers.cli", *args])
    if code:
        sys.exit(code)


def main() -> None:
    run("up")
    run("assets", "fetch")
    run("smoke")
    run("status")
    print("\nThe fleet keeps running so you can look around in Flower; `cvfleet down` stops it.")


if __name__ == "__main__":
    main()
