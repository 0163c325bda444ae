"""Debian: kernels locked to exact ABIs, their packages fetched and verified, images.

Owns lock (indexes -> matrix.lock), kernels (download + sha256 check) and images
(mmdebstrap + docker import, content-hash tags).
May import: the base modules and pipeline.model.
"""
