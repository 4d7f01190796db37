"""Hosted image models behind one contract (`base.ImageProvider`), loaded by `registry`."""
