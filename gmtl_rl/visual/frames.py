"""Pictures of an env's current state, rendered offscreen, one RGB array per call.

Two sources: MuJoCo scenes (gymnasium's MuJoCo envs, the PEARL suite, Fetch, Meta-World) are
drawn with `mujoco.Renderer` through our own camera, so a locomotion agent stays in view and
the size is ours; any other env that declares the `rgb_array` render mode (MiniGrid, a
plug-in's own env) draws itself and is letterboxed to the size. Envs with neither return no
source, and `gmtl record` draws a picture of the trial instead (`visual.pictures`).

Call `offscreen.configure()` before mujoco is imported (see `gmtl_rl.visual.offscreen`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import gymnasium as gym
import mujoco
import numpy as np
from PIL import Image

from gmtl_rl.envs.metaworld_families import MetaWorldTaskEnv
from gmtl_rl.visual import offscreen


class FrameSource(Protocol):
    """Renders the env it was made for, in its current state."""

    def render(self) -> np.ndarray:
        """An RGB image [H, W, 3] uint8 of the requested size."""
        ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class Camera:
    """How a MuJoCo scene is viewed: a camera of the model (by name), or MuJoCo's free camera
    tracking a body or looking at a point; None fields keep mujoco's defaults."""

    name: str | None = None
    rotate_180: bool = False
    track_body: int | None = None
    lookat: tuple[float, float, float] | None = None
    distance: float | None = None
    azimuth: float | None = None
    elevation: float | None = None


# Meta-World's `corner2` shows the arm, the table and the goal; its corner cameras are
# mounted upside down (their images look right turned by 180°, not mirrored).
METAWORLD_CAMERA = Camera(name="corner2", rotate_180=True)


def simulation(env: gym.Env) -> Any:
    """The env that simulates: `env.unwrapped`, or for Meta-World the env of the running
    task's class (the wrapper swaps it when a reset switches class: look it up every time)."""
    inner: Any = env.unwrapped
    if isinstance(inner, MetaWorldTaskEnv):
        inner = inner.simulation
    return inner


def mujoco_scene(env: gym.Env) -> tuple[mujoco.MjModel, mujoco.MjData] | None:
    """The MuJoCo model and data `env` simulates, or None for a non-MuJoCo env."""
    inner = simulation(env)
    model, data = getattr(inner, "model", None), getattr(inner, "data", None)
    if isinstance(model, mujoco.MjModel) and isinstance(data, mujoco.MjData):
        return model, data
    return None


def camera_for(env: gym.Env) -> Camera:
    """Meta-World's corner view; else the env's own camera settings (gymnasium's
    `default_camera_config`), tracking the root body unless they fix a point to look at, so a
    running cheetah or ant stays in the picture."""
    if isinstance(env.unwrapped, MetaWorldTaskEnv):
        return METAWORLD_CAMERA
    renderer = getattr(env.unwrapped, "mujoco_renderer", None)
    config = dict(getattr(renderer, "default_cam_config", None) or {})
    distance = float(config.get("distance", 4.0))
    azimuth = float(config["azimuth"]) if "azimuth" in config else None
    elevation = float(config.get("elevation", -20.0))
    lookat = config.get("lookat")
    if lookat is not None and "trackbodyid" not in config:  # a fixed scene (Fetch's table)
        point = (float(lookat[0]), float(lookat[1]), float(lookat[2]))
        return Camera(lookat=point, distance=distance, azimuth=azimuth, elevation=elevation)
    body = int(config.get("trackbodyid", 1))
    return Camera(track_body=body, distance=distance, azimuth=azimuth, elevation=elevation)


class MujocoFrames:
    """Offscreen frames of a MuJoCo env through `camera` (default: `camera_for(env)`)."""

    def __init__(self, env: gym.Env, width: int, height: int, camera: Camera | None = None) -> None:
        offscreen.check()
        self.env = env
        self.width, self.height = width, height
        self.camera = camera or camera_for(env)
        # One renderer (a GL context) per model: Meta-World swaps models between classes.
        self._renderers: dict[int, tuple[mujoco.Renderer, mujoco.MjvCamera | str]] = {}

    def _renderer(self, model: mujoco.MjModel) -> tuple[mujoco.Renderer, mujoco.MjvCamera | str]:
        key = id(model)
        if key not in self._renderers:
            # The offscreen buffer is sized by the model (gymnasium's: 640x480); grow it.
            vis = model.vis.global_
            vis.offwidth, vis.offheight = (
                max(vis.offwidth, self.width),
                max(vis.offheight, self.height),
            )
            try:
                renderer = mujoco.Renderer(model, self.height, self.width)
            except Exception as err:  # the GL backend's own errors
                text = " ".join(str(err).split()) or type(err).__name__
                raise offscreen.RenderingUnavailable(
                    f"MuJoCo cannot render offscreen ({text}); {offscreen.INSTALL_HINT}"
                ) from None
            self._renderers[key] = (renderer, self._view(model))
        return self._renderers[key]

    def _view(self, model: mujoco.MjModel) -> mujoco.MjvCamera | str:
        c = self.camera
        if c.name is not None:
            return c.name
        cam = mujoco.MjvCamera()
        mujoco.mjv_defaultFreeCamera(model, cam)
        if c.track_body is not None:
            cam.type = mujoco.mjtCamera.mjCAMERA_TRACKING
            cam.trackbodyid = min(c.track_body, model.nbody - 1)
        if c.lookat is not None:
            cam.lookat[:] = c.lookat
        for name in ("distance", "azimuth", "elevation"):
            value = getattr(c, name)
            if value is not None:
                setattr(cam, name, value)
        return cam

    def render(self) -> np.ndarray:
        scene = mujoco_scene(self.env)
        if scene is None:
            raise RuntimeError(f"{self.env} holds no MuJoCo model to render")
        model, data = scene
        renderer, view = self._renderer(model)
        renderer.update_scene(data, camera=view)
        image = renderer.render()
        if self.camera.rotate_180:
            image = image[::-1, ::-1]
        return np.ascontiguousarray(image)

    def close(self) -> None:
        for renderer, _ in self._renderers.values():
            renderer.close()
        self._renderers = {}


class EnvFrames:
    """Frames from the env's own `rgb_array` render, letterboxed to width x height."""

    def __init__(self, env: gym.Env, width: int, height: int) -> None:
        self.env = env
        self.width, self.height = width, height
        # Gymnasium envs read `render_mode` at render time; the family built this one without.
        env.unwrapped.render_mode = "rgb_array"

    def render(self) -> np.ndarray:
        image = np.asarray(self.env.unwrapped.render())
        return letterbox(image, self.width, self.height)

    def close(self) -> None:
        pass


def letterbox(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """`image` scaled to fit width x height, keeping its aspect ratio, on black."""
    if image.ndim != 3 or image.shape[2] < 3:
        raise ValueError(f"expected an RGB image [H, W, 3], got shape {image.shape}")
    rgb = Image.fromarray(np.ascontiguousarray(image[..., :3]).astype(np.uint8))
    scale = min(width / rgb.width, height / rgb.height)
    size = (max(1, round(rgb.width * scale)), max(1, round(rgb.height * scale)))
    canvas = Image.new("RGB", (width, height))
    canvas.paste(
        rgb.resize(size, Image.Resampling.LANCZOS),
        ((width - size[0]) // 2, (height - size[1]) // 2),
    )
    return np.asarray(canvas)


def real_time_fps(env: gym.Env) -> float | None:
    """Steps per second of simulated time (1 / dt of a MuJoCo env), else the env's
    `render_fps`, else None."""
    inner = simulation(env)
    dt = getattr(inner, "dt", None)
    if isinstance(dt, float) and dt > 0:
        return 1.0 / dt
    fps = (getattr(inner, "metadata", None) or {}).get("render_fps")
    return float(fps) if fps else None


def renders(env: gym.Env) -> bool:
    """Whether `env` can be filmed: a MuJoCo scene, or an env with an `rgb_array` render."""
    if mujoco_scene(env) is not None:
        return True
    return "rgb_array" in (env.unwrapped.metadata.get("render_modes") or [])


def frame_source(env: gym.Env, width: int, height: int) -> FrameSource | None:
    """The frames of `env` at width x height, or None if it has no renderer."""
    if mujoco_scene(env) is not None:
        return MujocoFrames(env, width, height)
    if renders(env):
        return EnvFrames(env, width, height)
    return None
