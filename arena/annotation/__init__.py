"""Answering and rating outside blind rounds: several models streamed side by side, answers stored, replay progress."""
