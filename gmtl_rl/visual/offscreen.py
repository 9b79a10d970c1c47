"""MuJoCo's OpenGL backend on machines without a display (servers, CI).

mujoco reads MUJOCO_GL once, when it is imported: `glfw` (its default on Linux) needs a display;
`osmesa` (software rendering: Debian/Ubuntu's `libosmesa6`) and `egl` (a GPU driver) do not.
`configure()` picks osmesa where there is no display, MUJOCO_GL is unset and the OSMesa library
loads. It must run before anything imports mujoco (`gmtl_rl.envs` does), so `gmtl record` calls
it first thing and the tests' conftest at session start; library users call it at the top of
their script. This module imports neither mujoco nor OpenGL.

    from gmtl_rl.visual import offscreen
    offscreen.configure()          # before `import gmtl_rl.envs` / `import mujoco`
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

from gmtl_rl.errors import UsageError

INSTALL_HINT = (
    "install OSMesa (Debian/Ubuntu: apt-get install libosmesa6) and set MUJOCO_GL=osmesa, "
    "or set MUJOCO_GL=egl on a machine with a GPU driver"
)


class RenderingUnavailable(UsageError):
    """MuJoCo cannot render offscreen in this process; the message says what to install."""


def has_display() -> bool:
    """Whether GLFW can open a (hidden) window: always off Linux, else an X or Wayland display."""
    if not sys.platform.startswith("linux"):
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def osmesa_library() -> str | None:
    """The OSMesa shared library's name if it is installed and loads, else None."""
    name = ctypes.util.find_library("OSMesa")
    if name is None:
        return None
    try:
        lib = ctypes.CDLL(name)
    except OSError:
        return None
    return name if hasattr(lib, "OSMesaCreateContextExt") else None


def configure() -> str | None:
    """Choose osmesa for MuJoCo where it is needed and can work; returns the backend mujoco
    will use (None: mujoco's default, glfw on Linux). A MUJOCO_GL set by the user is kept."""
    chosen = os.environ.get("MUJOCO_GL", "").strip().lower()
    if chosen:
        return chosen
    if has_display():
        return None
    # Too late once mujoco (or PyOpenGL, whose platform is fixed at import) is loaded, and
    # PyOpenGL refuses osmesa when told another platform: `check` explains instead.
    if "mujoco" in sys.modules or "OpenGL" in sys.modules:
        return None
    if os.environ.get("PYOPENGL_PLATFORM", "osmesa").lower() != "osmesa":
        return None
    if osmesa_library() is None:  # setting it anyway would make `import mujoco` itself fail
        return None
    os.environ["MUJOCO_GL"] = "osmesa"
    os.environ["PYOPENGL_PLATFORM"] = "osmesa"
    return "osmesa"


def active_backend() -> str:
    """The GL backend mujoco loaded: glfw, osmesa, egl, cgl or wgl (imports mujoco)."""
    import mujoco

    return str(mujoco.GLContext.__module__).rsplit(".", 1)[-1]


def check() -> None:
    """Raise `RenderingUnavailable` (one line, what to install) unless an offscreen MuJoCo
    context can be made here."""
    try:
        backend = active_backend()
    except (ImportError, AttributeError, RuntimeError) as err:
        raise RenderingUnavailable(
            f"mujoco cannot load its GL backend ({err}); {INSTALL_HINT}"
        ) from None
    if backend == "glfw" and not has_display():
        # GLFW cannot start without a display; `configure` found no OSMesa to use instead, or
        # ran after mujoco was imported.
        raise RenderingUnavailable(
            "MuJoCo renders through GLFW, which needs a display, and there is none (DISPLAY "
            f"unset); set MUJOCO_GL before mujoco is imported: {INSTALL_HINT}"
        )
    import mujoco

    try:
        context = mujoco.GLContext(8, 8)
        context.make_current()
        context.free()
    except Exception as err:  # each backend raises its own (GLError, RuntimeError, ...)
        text = " ".join(str(err).split()) or type(err).__name__
        raise RenderingUnavailable(
            f"MuJoCo cannot render offscreen with MUJOCO_GL={backend} ({text}); {INSTALL_HINT}"
        ) from None


def unavailable_reason() -> str | None:
    """Why MuJoCo cannot render offscreen here (for a test's skip), or None if it can."""
    try:
        check()
    except RenderingUnavailable as err:
        return str(err)
    return None
