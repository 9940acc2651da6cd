"""Schema revisions, one file each, applied in order (``0001_...``, ``0002_...``)."""
