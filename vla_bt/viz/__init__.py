"""Seeing trees: static rendering, the live terminal view (web viewer and replay later)."""
