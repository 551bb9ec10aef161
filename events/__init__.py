"""Domain events of supervision items: the envelope, the event types, the JSON codec, the event store."""
