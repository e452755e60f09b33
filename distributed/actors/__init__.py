"""Ray actor classes of the distributed backend."""
