"""Evaluation: ``evaluate`` runs a policy on a goal split once (greedy or sampled);
``periodic`` does it on a schedule during a run, on its own environments and seed
streams, and appends the results to the run's evaluations file."""
