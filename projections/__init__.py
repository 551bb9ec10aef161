"""Read models built from item events: the projector, its Kafka consumer and the rankings."""
