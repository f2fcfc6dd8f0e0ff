"""Policies as data: the file format, loading, applicability, three-valued evaluation, documentation answers."""
