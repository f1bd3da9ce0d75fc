"""Noise control: the pure building blocks of silences and inhibition (Alertmanager semantics).

`matchers` (label matchers and their text and API forms), `silences` (the silence model, its
states and its create/update/expire rules) and `inhibit` (inhibition rules). No I/O here: the
engine and the HTTP API build on these.
"""
