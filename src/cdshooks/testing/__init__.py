"""Policy test cases as data (``policies/<id>_test.yaml``) and the runner behind ``cdshooks test``."""
