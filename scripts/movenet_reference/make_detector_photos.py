"""Write the real-photo check set at the detector's input size: `tests/fixtures/real_photos/NAME_512.png`.

    .venv/bin/python scripts/movenet_reference/make_detector_photos.py

The same photographs as make_fixture.py (which pip-downloads the pinned scipy wheel for "ascent"),
padded to a centred black square and resized to 512 x 512, CenterNet's input (Pillow, bilinear):
the people in them are counted by benchmarks/multi_person.py and tests/test_centernet.py at the
size the served detector sees them, not upsampled from the 256-px MoveNet inputs. Mirror images are
not stored: tests/support/real_photos.py mirrors them when read. Run once; commit the outputs.
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from make_fixture import OUT, photos, square  # noqa: E402

SIZE = 512


def main() -> None:
    images = photos()
    images = {name: image for name, image in images.items() if not name.endswith("_mirrored")}
    for name, image in images.items():
        square(image, SIZE).save(OUT / f"{name}_{SIZE}.png", optimize=True)
    print(f"wrote {len(images)} photographs at {SIZE} px to {OUT}")


if __name__ == "__main__":
    main()
