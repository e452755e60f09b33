"""What a run reports and where it goes: ``metrics`` (the Prometheus registry and the
counters a checkpoint saves), ``tracking`` (every key a learner reports, to every sink:
Prometheus, learner_stats.csv, TensorBoard), ``progress`` and ``run_logs`` (the run's
progress.csv and the files that read it back)."""
