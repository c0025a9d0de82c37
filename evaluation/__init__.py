"""Evaluation harnesses: ``python -m evaluation.beir`` (BEIR layout, pytrec_eval through beir)."""
