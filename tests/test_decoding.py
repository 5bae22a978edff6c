"""How a window is cut out of a picture for a network (`posewheel.decoding.crop_images`): every pixel counted."""

from __future__ import annotations

import numpy as np
from PIL import Image

from posewheel.decoding import InputSpec, crop_image, crop_images, shrink_block
from tests.support.crops import sampled_crops

SPEC = InputSpec(width=64, height=64)


def test_a_large_windows_noise_is_averaged_away_not_sampled() -> None:
    """A window eight times the input over uniform noise: read 2 x 2 pixels at a time, half the noise passes
    (measured std 37 of 74); averaged over its 8 x 8 blocks, an eighth (9)."""
    rng = np.random.default_rng(0)
    image = Image.fromarray(rng.integers(0, 256, (600, 600, 3), dtype=np.uint8))
    window = (40.0, 40.0, 512.0, 512.0)
    assert shrink_block(window, SPEC) == 8
    sampled = sampled_crops(image, [window], SPEC)[0].astype(float).std()  # as cut until session 53
    averaged = crop_image(image, window, SPEC).astype(float).std()
    assert sampled > 30 and averaged < 12, (sampled, averaged)


def test_a_shape_lands_where_it_is_whatever_the_shrink() -> None:
    """A white square's centre in the crop is where the window puts it, within a quarter of an input pixel, for
    windows from under twice the input (not shrunk) to 47 times it, at any offset."""
    for side, x0, y0 in ((100.0, 3.3, 7.1), (300.0, 11.0, 5.5), (1000.0, 17.2, 2.9), (3000.0, 29.0, 31.7)):
        size = int(side + 60)
        pixels = np.zeros((size, size, 3), dtype=np.uint8)
        sq = int(side / 8)
        cx, cy = int(side * 0.6), int(side * 0.3)
        pixels[cy : cy + sq, cx : cx + sq] = 255
        crop = crop_image(Image.fromarray(pixels), (x0, y0, side, side), SPEC)[..., 0].astype(np.float64)
        ys, xs = np.mgrid[0:64, 0:64] + 0.5
        got = np.array([(crop * xs).sum(), (crop * ys).sum()]) / crop.sum()
        want = (np.array([cx + sq / 2, cy + sq / 2]) - (x0, y0)) * 64 / side
        assert np.abs(got - want).max() < 0.25, (side, got, want)


def test_a_window_is_cut_the_same_alone_or_among_others_and_black_outside_the_picture() -> None:
    """The blocks lie on one grid from the picture's corner: a window's pixels do not depend on the windows cut
    beside it (the picture shrunk once for them all or its part for one); the part outside the picture is black."""
    rng = np.random.default_rng(1)
    image = Image.fromarray(rng.integers(0, 256, (700, 900, 3), dtype=np.uint8))
    windows = [(-100.0, -50.0, 400.0, 400.0), (300.0, 200.0, 390.0, 390.0), (0.0, 0.0, 900.0, 900.0), (5, 5, 60, 60)]
    together = crop_images(image, windows, SPEC)
    assert together.shape == (4, 64, 64, 3) and together.dtype == np.uint8
    for window, crop in zip(windows, together, strict=True):
        assert np.array_equal(crop_image(image, window, SPEC), crop), window
    assert not together[0, :5, :10].any() and together[0, 20:, 20:].all(axis=-1).mean() > 0.99
    assert not together[2, 52:, :].any()  # below the picture: 700 of the window's 900 rows are inside
    assert crop_images(image, [], SPEC).shape == (0, 64, 64, 3)
