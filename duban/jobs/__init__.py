"""The jobs a user runs once: the main job (``simulate``, with its ``replay_plan``) and the live ``demo``."""
