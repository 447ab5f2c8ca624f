"""nn's own error base: bad input a person can fix (a data file, a recipe), as opposed to a bug.

They subclass ValueError, so code that catches ValueError keeps working; a program using nn (the
cvfleet CLI) catches NNError once and prints its one-line message."""


class NNError(ValueError):
    """A one-line reason nn cannot do what was asked, and what to do instead."""
