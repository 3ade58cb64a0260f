"""Labelled examples from past sends, the LightGBM engagement model, baselines, MLflow and tuning."""
