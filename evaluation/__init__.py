"""Evaluation harnesses: ``python -m evaluation.beir`` (BEIR layout, pytrec_eval through beir),
``python -m evaluation.mldr`` (MLDR long documents) and ``python -m evaluation.codesearch``
(CodeSearchNet, StackOverflow-QA), the last two as loaders over the BEIR harness."""
