"""Experiments: the synthetic world and other tools to study the models against a known truth."""
