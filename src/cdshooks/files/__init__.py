"""Hand-edited data files: YAML with line marks, one error record for every problem, name suggestions."""
