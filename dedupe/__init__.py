"""Duplicate detection: exact text keys now, near-duplicate clustering later."""
