"""Training loops, one per agent family, and what they share."""
