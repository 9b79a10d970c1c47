"""gmtl_rl: multi-task, goal-conditioned, meta- and hierarchical RL in PyTorch."""

__version__ = "0.1.0"
