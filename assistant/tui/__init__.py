"""The terminal chat (`assistant chat`) and the `assistant sessions` commands.

Importing this package is free: Textual loads only when the chat starts, so
`assistant --help` and `assistant sessions list` stay light.
"""
