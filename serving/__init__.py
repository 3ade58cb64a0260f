"""Serving: from a score grid to decisions.

The predictor scores subscriber x channel x candidate-hour grids; the policy modules here (quiet hours,
decisions, follow-ups) turn those scores into what to send and when. They are pure NumPy functions
shared by the HTTP API and the batch scheduler, so both answer a request the same way.
"""
