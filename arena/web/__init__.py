"""The web layer, the only package importing Gradio: composition root (server), HTTP API, login, policies, tabs."""
