"""The harness: grids, the runner, MLflow tracking, work queues, tuning and checks."""
