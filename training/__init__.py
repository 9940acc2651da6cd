"""Training utilities: the tiny default models and LoRA adapters that enter the arena."""
