"""Near-duplicate detection: MinHash signatures, LSH banding, connected components in Spark."""
