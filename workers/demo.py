"""`make demo`: start the local fleet, run each job on the bundled samples, say where things are.

Output goes to ./demo-out/ (the annotated sample video, a sweep's leaderboard and plot); the fleet
keeps running afterwards so Flower can be looked at; `cvfleet down` stops it.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

OUT = Path("demo-out").resolve()


def run(*args: str, ok=(0,)) -> None:
    print(f"\n$ cvfleet {' '.join(args)}", flush=True)
    code = subprocess.call([sys.executable, "-m", "workers.cli", *args])
    if code not in ok:
        sys.exit(code)


def main() -> None:
    from workers import asset_cache, config, fleet

    run("up")
    run("assets", "fetch", "yolov3-tiny", "vtest.avi", "mnist5k")
    run("smoke")
    run(
        "annotate", str(asset_cache.ensure("vtest.avi")), "--out", str(OUT / "annotations"), "--every", "5", "--preview"
    )
    grid = Path(__file__).resolve().parents[1] / "examples" / "grid-demo.toml"
    run("sweep", str(grid))
    from tasks.sweep_grid import parse_grid, read_grid

    sweep_id = parse_grid(read_grid(grid)).id
    run("sweep", "plot", sweep_id, "--out", str(OUT / "sweep-curves.png"))
    run("sweep", "best", sweep_id)
    cfg = config.load()
    print(
        f"\nLabelImg-ready dataset: {OUT / 'annotations' / 'vtest'}  (images/, labels/, classes.txt; "
        f"previews/ and contact_sheet.png show the boxes)"
    )
    print(
        f"Flower: {cfg.flower_url}  user {cfg.flower_user}  password in {cfg.fleet_dir / 'flower.password'}: "
        f"{fleet.flower_password(cfg)}"
    )
    print("The fleet keeps running so you can look around in Flower; `cvfleet down` stops it.")


if __name__ == "__main__":
    main()
