"""End-to-end workflows above serving: train, evaluate, tune, the capture measurement and the report of a
sent plan. They fit models with `training` and judge decisions with `serving`'s predictor and policy, so
they sit above both; the CLI and the benchmarks call them."""
