"""The MLflow "model from code" of a profile-only version: MLflow stores this file with the version and
runs it on loading (no pickled object in the registry). Its kind comes from the logged `model_config`."""

import mlflow

from sendtime.training.profile_only_run import ProfileOnlyPyfunc

mlflow.models.set_model(ProfileOnlyPyfunc())
