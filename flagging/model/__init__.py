"""Model files shipped with flagging (trained by `make train`); data, no code."""
