"""Temporal activities of duban: the side effects that workflows ask for."""
