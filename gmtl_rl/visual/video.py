"""Frame labels and the video writers: .mp4 through imageio-ffmpeg (a pip package that ships
its own ffmpeg binary, so no system ffmpeg is needed) and .gif through Pillow.

Writers stream: an .mp4 frame goes to the encoder as it is rendered; a .gif keeps its frames
(palette images, ~1/3 the size of RGB) until `close`, which suits the short trials GIFs are
for. Both write under a temporary name and rename on success, so a failed recording leaves
no half-written file behind.
"""

from __future__ import annotations

import os
from collections.abc import Generator, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from gmtl_rl.errors import UsageError

VIDEO_SUFFIXES = (".mp4", ".gif")
MP4_MISSING = (
    ".mp4 needs the imageio-ffmpeg package (pip install 'gmtl-rl[video]', or pip install "
    "imageio-ffmpeg); or write a .gif"
)
# Option colours (RGB), shared by frames and pictures: option i is OPTION_COLORS[i % 10].
OPTION_COLORS = [
    (31, 119, 180),
    (255, 127, 14),
    (44, 160, 44),
    (214, 39, 40),
    (148, 103, 189),
    (140, 86, 75),
    (227, 119, 194),
    (127, 127, 127),
    (188, 189, 34),
    (23, 190, 207),
]


def option_color(option: int) -> tuple[int, int, int]:
    return OPTION_COLORS[option % len(OPTION_COLORS)]


def option_hex(option: int) -> str:
    """`option_color` as matplotlib takes it ('#1f77b4')."""
    return "#{:02x}{:02x}{:02x}".format(*option_color(option))


def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    try:  # Pillow >= 10.1 ships a scalable default font (with FreeType)
        return ImageFont.load_default(size=size)
    except (TypeError, OSError):
        return ImageFont.load_default()


def label_frame(
    image: np.ndarray, lines: Sequence[str], swatch: tuple[int, int, int] | None = None
) -> np.ndarray:
    """`image` with `lines` of text on a dark band in its top-left corner; `swatch` puts a
    square of that colour before the last line (the active option's colour)."""
    frame = Image.fromarray(np.ascontiguousarray(image[..., :3]).astype(np.uint8))
    size = max(9, frame.height // 20)
    font = _font(size)
    draw = ImageDraw.Draw(frame, "RGBA")
    pad, step = max(2, size // 4), size + max(2, size // 4)
    indent = [
        size + pad if swatch is not None and i == len(lines) - 1 else 0 for i in range(len(lines))
    ]
    width = max(
        (draw.textlength(t, font=font) + x for t, x in zip(lines, indent, strict=True)), default=0.0
    )
    draw.rectangle(
        (0, 0, min(frame.width, int(width) + 2 * pad), step * len(lines) + pad), (0, 0, 0, 150)
    )
    for i, (text, x) in enumerate(zip(lines, indent, strict=True)):
        y = pad + i * step
        if x:
            assert swatch is not None
            draw.rectangle((pad, y + 1, pad + size - 2, y + size - 1), (*swatch, 255))
        draw.text((pad + x, y), text, fill=(255, 255, 255, 255), font=font)
    return np.asarray(frame)


class VideoWriter(Protocol):
    """Frames in, one video file out (at `close`)."""

    frames: int

    def append(self, frame: np.ndarray) -> None:
        """Add an RGB frame [H, W, 3] uint8 of the writer's size."""

    def close(self) -> Path:
        """Finish the file; returns its path."""
        ...

    def abort(self) -> None:
        """Drop what was written (an error stopped the recording)."""


def _partial(path: Path) -> Path:
    # The suffix stays last: ffmpeg picks the container from it.
    return path.with_name(f".{path.stem}.partial{path.suffix}")


def _check_frame(frame: np.ndarray, size: tuple[int, int]) -> None:
    if frame.shape != (size[1], size[0], 3) or frame.dtype != np.uint8:
        raise ValueError(
            f"frame of shape {frame.shape} ({frame.dtype}); the video is {size[0]}x{size[1]} "
            "RGB uint8"
        )


class Mp4Writer:
    """H.264 in an .mp4 (yuv420p: plays everywhere; width and height must be even)."""

    def __init__(self, path: Path, size: tuple[int, int], fps: float) -> None:
        try:
            import imageio_ffmpeg
        except ImportError:
            raise UsageError(f"--out {path}: {MP4_MISSING}") from None
        if size[0] % 2 or size[1] % 2:
            raise UsageError(
                f"--size {size[0]}x{size[1]}: an .mp4 needs an even width and height "
                "(H.264 in yuv420p); use e.g. 320x240, or write a .gif"
            )
        self.path, self.size, self.frames = path, size, 0
        self._tmp = _partial(path)
        # macro_block_size=1: keep our size (its default of 16 would rescale frames).
        self._gen: Generator[Any, Any, Any] = imageio_ffmpeg.write_frames(
            str(self._tmp),
            size,
            fps=fps,
            codec="libx264",
            quality=7,
            macro_block_size=1,
            ffmpeg_log_level="error",
        )
        self._gen.send(None)

    def append(self, frame: np.ndarray) -> None:
        _check_frame(frame, self.size)
        self._gen.send(np.ascontiguousarray(frame).tobytes())
        self.frames += 1

    def close(self) -> Path:
        if self.frames == 0:
            self.abort()
            raise RuntimeError(f"{self.path}: no frames to write")
        self._gen.close()
        os.replace(self._tmp, self.path)
        return self.path

    def abort(self) -> None:
        self._gen.close()
        self._tmp.unlink(missing_ok=True)


class GifWriter:
    """An animated GIF that loops; frames are quantised to a 256-colour palette each."""

    def __init__(self, path: Path, size: tuple[int, int], fps: float) -> None:
        self.path, self.size, self.frames = path, size, 0
        # GIF delays are in hundredths of a second: round to what players will show.
        self.duration_ms = max(20, round(100.0 / fps) * 10)
        self._images: list[Image.Image] = []

    def append(self, frame: np.ndarray) -> None:
        _check_frame(frame, self.size)
        self._images.append(Image.fromarray(frame).quantize(colors=256))
        self.frames += 1

    def close(self) -> Path:
        if not self._images:
            raise RuntimeError(f"{self.path}: no frames to write")
        tmp = _partial(self.path)
        first, rest = self._images[0], self._images[1:]
        first.save(tmp, save_all=True, append_images=rest, duration=self.duration_ms, loop=0)
        os.replace(tmp, self.path)
        self._images = []
        return self.path

    def abort(self) -> None:
        self._images = []


def open_video(path: str | Path, size: tuple[int, int], fps: float) -> VideoWriter:
    """A writer for `path` by its suffix: .mp4 or .gif."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".mp4":
        return Mp4Writer(path, size, fps)
    if suffix == ".gif":
        return GifWriter(path, size, fps)
    raise UsageError(f"--out {path}: a video is .mp4 or .gif, not {suffix or 'no suffix'!r}")
