"""LMDB episode store, hindsight-relabeling replay, and atomic checkpoints."""
