"""End-to-end workflows above serving: train, evaluate, tune and the capture measurement. They fit
models with `training` and judge the decisions with `serving`'s predictor and policy, so they sit
above both; the CLI and the benchmarks call them."""
