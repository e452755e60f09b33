"""Goal registry and the learning-progress curriculum that picks what to practise."""
