"""A stop-gap for `citations.py` alone, which imports `stem` from here and is being edited on
another branch: the index's words live in `lexical/terms.py`. Delete this module (it shares its
name with the standard library's `keyword`) once citations.py imports from there."""

from .lexical.terms import stem

__all__ = ["stem"]
