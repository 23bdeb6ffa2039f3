"""The web console: server-rendered pages over the service layer (see routes.py)."""
