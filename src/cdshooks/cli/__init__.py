"""The ``cdshooks`` command: serve, health, check (with lint), eval, test, schemas, valuesets."""
