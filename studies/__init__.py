"""Blinded reader studies on disk: cases, per-reader ratings databases, export, audit, merge."""
