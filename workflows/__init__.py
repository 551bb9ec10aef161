"""Temporal workflows of duban and the pure decision core they orchestrate."""
