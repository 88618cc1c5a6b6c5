"""Reconcilers: read what exists, ask a planner what should exist, apply the difference.

Each function is idempotent and level-triggered: it decides from the objects it reads, never
from which event woke it, so running it twice, late, or after a crash gives the same result.
"""
