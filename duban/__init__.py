"""duban (督办): supervision items from report to verified close-out, ranked from the event stream."""

__version__ = "0.1.0"
