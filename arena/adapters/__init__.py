"""Trained LoRA adapters entering the running arena (arena.adapters.hotload); no HTTP in here (see arena.web.api)."""
