"""Placeholder until the tiny-model work lands (owned by the tiny-model helper)."""
