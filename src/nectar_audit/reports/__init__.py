"""Renderers: they turn results into text, JSON and other formats, and compute nothing."""
