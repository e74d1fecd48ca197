"""Lexicons shipped with flagging: YAML data files operators extend by overrides; no code."""
