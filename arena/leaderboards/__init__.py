"""Leaderboards: the store's frames turned into arena.stats inputs, every table at once, display tables, plots."""
