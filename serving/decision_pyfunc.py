"""The MLflow "model from code" of a version's decision model: MLflow stores this file with the version
and runs it on loading (no pickled object in the registry); its data are the model's artifacts."""

import mlflow

from sendtime.serving.decision_model import DecisionModel

mlflow.models.set_model(DecisionModel())
