"""How a window is cut out of a picture for a network (`posewheel.decoding.crop_images`): every pixel counted, from a
picture held at half its size (`posewheel.picture.Picture`) where that holds them."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageFilter

from posewheel.decoding import InputSpec, crop_image, crop_images, shrink_block
from posewheel.picture import Picture
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


def held_at_half(whole: Image.Image) -> tuple[Picture, list[int]]:
    """`whole` as a Picture held at half its size (each pixel the mean of a 2 x 2 block, as a JPEG decoder's DCT
    scaling nearly gives it) and the count of its whole decodes."""
    decodes: list[int] = []

    def decode() -> Image.Image:
        decodes.append(1)
        return whole

    return Picture(whole.reduce(2), 2, whole.size, decode), decodes


def test_a_picture_held_at_half_cuts_large_windows_from_it_and_decodes_whole_only_for_small_ones() -> None:
    """A window at least twice the input is cut from the half picture as from the whole (within the rounding of
    shrinking in two steps), without decoding it whole; one under twice the input decodes it once and is cut from
    it exactly; coordinates are the whole picture's."""
    rng = np.random.default_rng(2)
    whole = Image.fromarray(rng.integers(0, 256, (900, 1200, 3), dtype=np.uint8)).filter(ImageFilter.BoxBlur(3))
    picture, decodes = held_at_half(whole)
    assert (picture.width, picture.height) == (1200, 900)
    large = [(100.0, 60.0, 300.0, 300.0), (-40.0, 20.0, 1100.0, 800.0), (703.3, 411.7, 150.0, 133.0)]
    cut = crop_images(picture, large, SPEC)
    assert not decodes and not picture.whole_decoded
    assert np.abs(cut.astype(int) - crop_images(whole, large, SPEC).astype(int)).max() <= 2
    small = [(500.0, 300.0, 100.0, 100.0), (10.5, 20.5, 127.0, 127.0)]
    both = crop_images(picture, [*small, large[0]], SPEC)
    assert decodes == [1] and picture.whole_decoded
    assert np.array_equal(both[:2], crop_images(whole, small, SPEC))
    assert np.array_equal(both[2], cut[0])  # the large one still from the half picture
    crop_images(picture, small, SPEC)
    assert decodes == [1]  # decoded whole once


def test_a_picture_held_at_half_turns_and_resizes_as_the_whole_one() -> None:
    """A quarter turn swaps the sides and cuts as the whole picture turned; a resize that fits the half picture is
    made from it; a whole decode of another size is refused, not cut from."""
    rng = np.random.default_rng(3)
    whole = Image.fromarray(rng.integers(0, 256, (600, 1000, 3), dtype=np.uint8)).filter(ImageFilter.BoxBlur(2))
    picture, decodes = held_at_half(whole)
    turned = picture.transpose(Image.Transpose.ROTATE_90)
    assert turned.size == (600, 1000)
    windows = [(50.0, 100.0, 400.0, 400.0), (300.0, 700.0, 90.0, 90.0)]
    expected = crop_images(whole.transpose(Image.Transpose.ROTATE_90), windows, SPEC).astype(int)
    got = crop_images(turned, windows, SPEC).astype(int)
    assert np.abs(got[0] - expected[0]).max() <= 2 and np.array_equal(got[1], expected[1])
    assert decodes == [1]
    resized = picture.resize((100, 60), Image.Resampling.BILINEAR)
    assert (
        np.abs(np.asarray(resized, int) - np.asarray(whole.resize((100, 60), Image.Resampling.BILINEAR), int)).max()
        <= 2
    )
    wrong = Picture(whole.reduce(2), 2, (1000, 601), lambda: whole)
    with pytest.raises(ValueError, match="decoded whole is 1000x600"):
        crop_images(wrong, [(0.0, 0.0, 64.0, 64.0)], SPEC)
