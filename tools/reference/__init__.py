"""Helpers of ``tools/make_reference_fixtures.py``.

They import the reference ``languagebind`` package, so they run only in the isolated reference venv
described in that script's docstring.
"""
