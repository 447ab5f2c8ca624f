"""The one exception type of `vision/`: bad input the caller can fix."""


class VisionError(ValueError):
    """A problem with an input (video, model, labels, settings), stated in one line.

    The message says what was wrong and what to do, so a batch can record it verbatim
    as the reason a video failed.
    """
