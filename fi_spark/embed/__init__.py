"""Embeddings: sentence-transformers encoders loaded once per process (encoder), coverage pooling (pooling)."""
