"""Attestation predicates: what omsign can sign about a model besides "I published it".

Each module builds one kind of predicate as plain JSON data (no I/O beyond reading the input
file, no network); ``statement`` turns a predicate into the in-toto statement bytes a signer
wraps in DSSE. The JSON Schema of every predicate omsign builds lives in ``docs/predicates/``.
"""
