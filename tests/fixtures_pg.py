"""Placeholder until the store work lands (owned by the store helper)."""
