"""End-to-end workflows above serving: each runs a whole user task (train, evaluate, capture, report)."""
