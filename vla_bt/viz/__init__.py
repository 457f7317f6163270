"""Seeing trees: static rendering, the terminal view, the live web viewer, recording and replay."""
