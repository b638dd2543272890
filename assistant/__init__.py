"""A research-paper assistant: a library API first, a CLI and a terminal UI on top.

Importing the package is cheap on purpose; heavy dependencies load inside the
functions that need them.
"""

__version__ = "0.1.0"
