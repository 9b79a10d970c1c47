"""Session-wide test setup.

MuJoCo fixes its OpenGL backend when it is first imported, and collecting the test modules
imports it (through `gmtl_rl.envs`) long before a recording test runs: choose the offscreen
backend here, first. Without a display this sets MUJOCO_GL=osmesa where OSMesa is installed
(`make test` installs it where it can) and changes nothing elsewhere.
"""

from gmtl_rl.visual import offscreen

offscreen.configure()
