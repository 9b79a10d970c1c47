"""The shared rollout/replay core every agent family runs on."""
