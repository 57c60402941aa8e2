"""FAISS template index: build by size (build), versioned artifacts (artifact), shipping to workers (distribute)."""
