"""The terminal chat (`assistant chat`; its command is in `assistant/cli/sessions.py`).

Importing this package is free: Textual loads only when the chat starts, so
`assistant --help` and `assistant sessions list` stay light.
"""
