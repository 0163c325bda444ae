"""Debian: kernels locked to exact ABIs, their packages fetched and verified, images.

Owns archive (the signed chain: InRelease via gpgv -> Packages hash -> package SHA256),
indexes (verified kernel entries, cached briefly), lock (indexes -> matrix.lock, snapshot
pins), offered (is the lock still installable: `lock --check`, the check before a run),
kernels (download + sha256 check) and images (mmdebstrap + docker import, content-hash
tags).
May import: the base modules and pipeline.model.
"""
