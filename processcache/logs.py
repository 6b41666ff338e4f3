"""Log types, as in the original: GENERIC, WARNING and ERROR."""

from enum import Enum


class LogType(str, Enum):
    """The type of a job log. A str, so it compares equal to its stored name."""

    GENERIC = "GENERIC"
    WARNING = "WARNING"
    ERROR = "ERROR"

    @classmethod
    def parse(cls, value: "LogType | str") -> "LogType":
        """Accept a LogType or its name in any case; refuse anything else clearly."""
        try:
            return cls(value.upper() if isinstance(value, str) else value)
        except ValueError:
            raise ValueError(
                f"unknown log type {value!r}: use GENERIC, WARNING or ERROR"
            ) from None

    def __str__(self) -> str:
        return self.value
