"""How text is produced: one Backend interface over local transformers and OpenAI-compatible servers."""
