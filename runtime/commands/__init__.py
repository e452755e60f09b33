"""The ``autotelic`` command line (``cli``) and the offline tools it runs on a run
directory: ``offline`` (restore a learner, evaluate a checkpoint), ``plot``,
``goals_report``."""
