"""Evaluations into CDS Hooks cards, explanations and Da Vinci CRD coverage-information."""
