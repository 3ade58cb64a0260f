"""sendtime: which channel and what time to send, per subscriber."""
