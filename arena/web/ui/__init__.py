"""Gradio UI: one module per tab; handlers call the domain, never the reverse."""
