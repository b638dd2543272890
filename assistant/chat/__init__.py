"""The conversation service: one chat turn's life, shared by `assistant ask` and the chat.

`service` holds the library, the model client and the settings of a turn
(k, filters, model); `conversation` decides what the sessions file holds
before, during and after each turn. `ask` is a one-turn conversation through
the same code, so a question asked either way is answered and stored alike.
No Textual here: the terminal UI only draws what these return.
"""

# Defaults every front end shares (`ask --k`, the chat's /k, `eval run --k`); kept here,
# free of imports, so the command line can show them without loading the library.
DEFAULT_K = 4
MAX_K = 50
