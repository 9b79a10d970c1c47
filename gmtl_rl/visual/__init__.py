"""See what an agent does: a trial of a run's checkpoint as a video or a picture (`gmtl record`).

- `offscreen`: MuJoCo's OpenGL backend on machines without a display (import it, and call
  `configure()`, before anything imports mujoco: mujoco fixes its backend at import);
- `trial`: one adaptation trial run exactly as the evaluator runs it, step by step;
- `beliefs`: what an agent exposes about its task during the trial, and how it is read;
- `frames`: rendering an env's state offscreen (MuJoCo cameras, or the env's own RGB render);
- `video`: frame labels and the .mp4 / .gif writers;
- `pictures`: the trial drawn for families without a renderer (point robots, Four Rooms, ...);
  `maps` draws the families with a map (paths, goals, VariBAD's belief over goal cells) and
  `panels` holds what every picture shares;
- `record`: the command: a run directory in, a file out.

This package's `__init__` imports nothing, so `gmtl_rl.visual.offscreen` stays importable
before mujoco is.
"""
