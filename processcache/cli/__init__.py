"""The ``processcache`` command: thin click commands that parse, call the library, and format."""
