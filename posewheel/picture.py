"""A photograph held small, as its JPEG decoder can give it cheaply, and decoded whole only when a window needs it.

A phone's 12 MP JPEG took 35-65 ms to decode whole on one of this machine's cores (the more where its 48 MB come
from fresh pages) and 24 ms at half its size: the decoder's DCT scaling (`Image.draft`) makes each pixel of the half
picture from one 2 x 2 block of the picture's.
Every look the detector takes at such a picture, and every person's window at least twice the network's input,
shrinks the picture by blocks anyway (`posewheel.decoding.crop_images`), so it reads the half picture; a window
smaller than that, a person too small for the half picture's pixels, decodes the whole picture once (`Picture.whole`).
Coordinates stay the whole picture's throughout. NumPy and Pillow only.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from PIL import Image

# Transposes that swap a picture's width and height.
_SWAPS = frozenset({
    Image.Transpose.ROTATE_90, Image.Transpose.ROTATE_270, Image.Transpose.TRANSPOSE, Image.Transpose.TRANSVERSE
})  # fmt: skip


@dataclass(eq=False)
class Picture:
    """An RGB picture of `size` (width, height) pixels held `factor` times smaller (`small`: a side of n pixels is
    ceil(n / factor)), each of its pixels one factor x factor block of the picture's; `decode()` gives the picture
    itself, RGB and upright as `small`, called the first time `whole()` is asked for."""

    small: Image.Image
    factor: int
    size: tuple[int, int]
    decode: Callable[[], Image.Image]
    _whole: Image.Image | None = field(default=None, init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    @property
    def width(self) -> int:
        return self.size[0]

    @property
    def height(self) -> int:
        return self.size[1]

    @property
    def whole_decoded(self) -> bool:
        """Whether a window has needed the picture at its own size yet (`whole`)."""
        return self._whole is not None

    def whole(self) -> Image.Image:
        """The picture at its own size, decoded once (the first call pays the whole decode)."""
        with self._lock:
            if self._whole is None:
                whole = self.decode()
                if whole.size != self.size:
                    raise ValueError(f"the picture decoded whole is {whole.size[0]}x{whole.size[1]}, not {self.size}")
                self._whole = whole
            return self._whole

    def transpose(self, method: Image.Transpose) -> Picture:
        """The picture flipped or turned exactly (`Image.transpose`), held small as this one; whole when asked."""
        size = (self.size[1], self.size[0]) if method in _SWAPS else self.size
        return Picture(self.small.transpose(method), self.factor, size, lambda: self.whole().transpose(method))

    def copy(self) -> Picture:
        """Another Picture of the same pixels (neither is ever changed in place, so they share them)."""
        return Picture(self.small, self.factor, self.size, self.whole)

    def resize(self, size: tuple[int, int], resample: Image.Resampling) -> Image.Image:
        """The picture resized to `size` (`Image.resize`): from the small picture when `size` fits in it."""
        fits = size[0] <= self.small.width and size[1] <= self.small.height
        return (self.small if fits else self.whole()).resize(size, resample)


# What a picture's pixels are read from: a Pillow image, or a Picture held small.
Pixels = Image.Image | Picture
